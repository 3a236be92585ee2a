/* dump.c: `megatrain dump` (see dump.h). */
#include "src/dump.h"

#include "data/dataset.h"
#include "data/sampler.h"
#include "parallel/topo.h"
#include "src/h5util.h"
#include "src/model.h"
#include "src/train.h"
#include "base/util.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

static void write_param(hid_t f, const char *file, const char *group, const char *name, const ParamInfo *p,
                        const float *host)
{
    hsize_t shape[PARAM_MAXDIM];
    for (int k = 0; k < p->ndim; k++)
        shape[k] = (hsize_t)p->shape[k];
    char *path = xasprintf("%s/%s", group, name);
    h5u_write(f, file, path, H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, p->ndim, shape, host + p->offset);
    free(path);
}

/* Every parameter as group/<name>, then a tensor that serves twice (a tied head) under its second
   name. */
static void write_params(hid_t f, const char *file, const char *group, const Model *m, const float *host)
{
    for (int i = 0; i < m->n_params; i++)
        write_param(f, file, group, m->params_info[i].name, &m->params_info[i], host);
    for (int i = 0; i < m->n_params; i++)
        if (m->params_info[i].tied_as)
            write_param(f, file, group, m->params_info[i].tied_as, &m->params_info[i], host);
}

static void load_params(Trainer *tr, const char *path)
{
    Model *m = &tr->m;
    hid_t f = h5u_open(path, 0);
    float *host = xcalloc(m->n_padded, sizeof(float));
    for (int i = 0; i < m->n_params; i++) {
        const ParamInfo *p = &m->params_info[i];
        hsize_t shape[PARAM_MAXDIM];
        for (int k = 0; k < p->ndim; k++)
            shape[k] = (hsize_t)p->shape[k];
        char *name = xasprintf("params/%s", p->name);
        h5u_read(f, name, H5T_NATIVE_FLOAT, p->ndim, shape, host + p->offset, path);
        free(name);
    }
    H5_CHECK_AT(path, H5Fclose(f));
    model_params_from_host(m, host);
    zero_load(&tr->zero, host, NULL, NULL);
    free(host);
}

static void write_attr_int(hid_t f, const char *file, const char *name, int v)
{
    h5u_attr_write(f, file, name, H5T_NATIVE_INT, H5T_STD_I32LE, &v);
}

static void write_attr_double(hid_t f, const char *file, const char *name, double v)
{
    h5u_attr_write(f, file, name, H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE, &v);
}

void dump_run(const Config *c, Dataset *train, const char *out_path, const char *load_path, int steps)
{
    /* the single-rank trainer: the same step code as training */
    Topo t;
    topo_init(&t, MPI_COMM_SELF, 1, 1, 1);
    train_set_threads(c, &t);
    Trainer tr;
    trainer_init(&tr, c, &t, train);
    Model *m = &tr.m;
    const Ops *ops = tr.ops;
    const ModelDims *d = &tr.dims;
    const int B = c->data.batch_size, L = c->data.seq_len;
    if (load_path)
        load_params(&tr, load_path);

    hid_t f = h5u_create(out_path);
    const char *int_names[] = {"vocab_size", "n_layers", "d_model", "n_heads", "z_dim", "v_dim", "ffn_dim", "swiglu",
                               "chunk", "groups", "cema_ndim", "scale_emb", "share_emb", "batch", "seq_len"};
    const int int_values[] = {d->vocab, d->n_layers, d->D, d->H, d->Z, d->V, d->F, d->swiglu, d->C, d->G, d->N,
                              d->scale_emb, d->share_emb, B, L};
    for (size_t i = 0; i < sizeof int_values / sizeof int_values[0]; i++)
        write_attr_int(f, out_path, int_names[i], int_values[i]);
    write_attr_double(f, out_path, "rope_base", c->model.rope_base);
    write_attr_double(f, out_path, "norm_eps", c->model.norm_eps);
    int32_t *tokens = xmalloc((size_t)B * (L + 1) * sizeof(int32_t));
    batch_read(&tr.src, 0, B, 0, L, tokens);
    h5u_write(f, out_path, "tokens", H5T_NATIVE_INT32, H5T_STD_I32LE, 2, (hsize_t[]){(hsize_t)B, (hsize_t)L + 1},
              tokens);

    float *host = xmalloc(m->n_padded * sizeof(float));
    zero_gather(&tr.zero, tr.zero.master, host);
    write_params(f, out_path, "params", m, host);

    /* logits first (a training forward overwrites them with their gradient), one micro-batch of
       tr.mb_rows rows at a time: the model holds one */
    const size_t nlogits = (size_t)m->T * d->vocab;
    float *dev = ops->alloc(nlogits * sizeof(float)), *logits = xmalloc(B * (size_t)L * d->vocab * sizeof(float));
    for (int k = 0; k < c->parallel.micro_batches; k++) {
        model_set_batch(m, 0, tokens + (size_t)k * tr.mb_rows * (L + 1));
        model_forward(m, 0, 0.0f);
        ops->act_to_f32(dev, m->slots[0].logits, nlogits);
        ops->download(logits + k * nlogits, dev, nlogits * sizeof(float));
    }
    h5u_write(f, out_path, "logits", H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, 3,
              (hsize_t[]){(hsize_t)B, (hsize_t)L, (hsize_t)d->vocab}, logits);

    double *losses = xmalloc((size_t)(steps > 0 ? steps : 1) * sizeof(double));
    double *lrs = xmalloc((size_t)(steps > 0 ? steps : 1) * sizeof(double));
    for (int k = 0; k < (steps > 0 ? steps : 1); k++) {
        tr.cursor = 0; /* the same batch every step */
        double loss = trainer_forward_backward(&tr), norm;
        if (k == 0) {
            h5u_write(f, out_path, "loss", H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE, 0, NULL, &loss);
            ops->download(host, m->grads, m->n_elems * sizeof(float));
            write_params(f, out_path, "grads", m, host);
        }
        if (steps == 0)
            break;
        losses[k] = loss;
        trainer_update(&tr, &norm, &lrs[k]);
    }
    if (steps > 0) {
        h5u_write(f, out_path, "train/losses", H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE, 1, (hsize_t[]){(hsize_t)steps},
                  losses);
        h5u_write(f, out_path, "train/lr", H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE, 1, (hsize_t[]){(hsize_t)steps}, lrs);
        hid_t g = H5_CHECK_AT(out_path, H5Gopen2(f, "train", H5P_DEFAULT));
        write_attr_double(g, out_path, "beta1", c->optimizer.beta1);
        write_attr_double(g, out_path, "beta2", c->optimizer.beta2);
        write_attr_double(g, out_path, "eps", c->optimizer.eps);
        write_attr_double(g, out_path, "weight_decay", c->optimizer.weight_decay);
        write_attr_double(g, out_path, "grad_clip", c->optimizer.grad_clip);
        H5_CHECK_AT(out_path, H5Gclose(g));
        zero_gather(&tr.zero, tr.zero.master, host);
        write_params(f, out_path, "updated", m, host);
    }
    H5_CHECK_AT(out_path, H5Fclose(f));
    log_info("megatrain dump: %s written (batch %d x %d in %d micro-batch%s, %s, %d threads)", out_path, B, L,
             c->parallel.micro_batches, c->parallel.micro_batches == 1 ? "" : "es", ops->name, omp_get_max_threads());
    ops->release(dev);
    free(logits);
    free(losses);
    free(lrs);
    free(host);
    free(tokens);
    trainer_free(&tr);
    topo_free(&t);
}
