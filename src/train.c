/* train.c: the training loop (see train.h). */
#include "src/train.h"

#include "kernels/ops.h"
#include "parallel/mpi_check.h"
#include "src/metrics.h"
#include "src/model.h"
#include "src/optim.h"
#include "src/util.h"

#include <math.h>
#include <omp.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

void batch_read(BatchSource *src, int64_t first, int nrows, int32_t *out)
{
    if (src->sampler) {
        sampler_read(src->sampler, first, 0, nrows, 0, src->L, out);
        return;
    }
    uint64_t key = rng_key(src->seed, "random-tokens");
    const int64_t w = src->L + 1;
    for (int r = 0; r < nrows; r++)
        for (int64_t j = 0; j < w; j++)
            out[r * w + j] = (int32_t)(rng_u64(key, (uint64_t)((first + r) * w + j)) % (uint64_t)src->vocab);
}

/* Mean validation loss over eval.batches global batches of the val split (in order). */
static double evaluate(Model *m, const Config *c, const Topo *t, Dataset *val, int32_t *tokens)
{
    Sampler *s = sampler_create(val, (uint64_t)c->train.seed, c->data.seq_len, 0);
    BatchSource src = {.sampler = s, .L = c->data.seq_len};
    const int B = c->data.batch_size, rows = B / t->dp;
    double sum = 0;
    for (int e = 0; e < c->eval.batches; e++)
        for (int r = 0; r < rows; r += m->B) {
            /* unshuffled: sample k is window k mod W, so a small split just repeats */
            batch_read(&src, (int64_t)e * B + (int64_t)t->dp_rank * rows + r, m->B, tokens);
            model_set_batch(m, tokens);
            sum += model_forward(m, 0.0f);
        }
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &sum, 1, MPI_DOUBLE, MPI_SUM, t->dpcp_comm));
    sampler_free(s);
    return sum / ((double)c->eval.batches * B * c->data.seq_len);
}

void train_run(const Config *c, const char *config_path, const Topo *t, Dataset *train, Dataset *val)
{
    /* threads: the config's, else OMP_NUM_THREADS, else this node's cores shared among its ranks
       (oversubscribed OpenMP threads spin-wait each other into the ground) */
    int threads = c->train.threads;
    if (threads == 0 && !getenv("OMP_NUM_THREADS")) {
        cpu_set_t set;
        int cores = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
        threads = cores / t->local_size > 0 ? cores / t->local_size : 1;
    }
    if (threads > 0)
        omp_set_num_threads(threads);
    const Ops *ops = ops_get(config_device_name(c->train.device));
    if (!ops)
        fail_input("train.device: %s: no such backend in this build", config_device_name(c->train.device));
    ModelDims dims;
    model_dims_from_config(&dims, c);
    const int B = c->data.batch_size, L = c->data.seq_len, micro = c->parallel.micro_batches;
    const int rows = B / t->dp, mb_rows = rows / micro; /* this rank's sequences per step, per micro-batch */
    Model m;
    model_create(&m, &dims, ops, mb_rows, L, c->train.recompute);
    model_init_params(&m, (uint64_t)c->train.seed);

    BatchSource src = {.seed = (uint64_t)c->train.seed, .L = L, .vocab = dims.vocab};
    if (train)
        src.sampler = sampler_create(train, (uint64_t)c->train.seed, L, 1);
    int32_t *tokens = xmalloc((size_t)mb_rows * (L + 1) * sizeof(int32_t));
    float *host_grads = ops->on_device ? xmalloc(m.n_elems * sizeof(float)) : NULL;

    Metrics mt;
    double flops_token = model_flops_per_token(&dims, L);
    metrics_open(&mt, c, config_path, t, model_param_count(&dims), flops_token);
    log_info("megatrain: %lld parameters, %d layers, D=%d, %s on %s (%d threads per rank); %d ranks (dp %d, tp %d, "
             "pp %d, cp %d); batch %d x %d tokens, %lld steps",
             (long long)model_param_count(&dims), dims.n_layers, dims.D, config_precision_name(c->train.precision),
             ops->name, omp_get_max_threads(), t->world, t->dp, t->tp, t->pp, t->cp, B, L, (long long)c->train.steps);

    const float grad_scale = 1.0f / ((float)B * (float)L);
    int64_t cursor = 0; /* samples drawn so far (the data cursor) */
    for (int64_t step = 1; step <= c->train.steps; step++) {
        double t0 = util_now(), loss = 0;
        model_zero_grads(&m);
        for (int k = 0; k < micro; k++) {
            batch_read(&src, cursor + (int64_t)t->dp_rank * rows + (int64_t)k * mb_rows, mb_rows, tokens);
            model_set_batch(&m, tokens);
            loss += model_forward(&m, grad_scale);
            model_backward(&m);
        }
        cursor += B;
        /* data parallel: sum the gradients of all replicas (each already scaled by 1/(B L)) */
        if (t->dp * t->cp > 1) {
            float *g = m.grads;
            if (host_grads)
                ops->download(g = host_grads, m.grads, m.n_elems * sizeof(float));
            MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, g, (int)m.n_elems, MPI_FLOAT, MPI_SUM, t->dpcp_comm));
            if (host_grads)
                ops->upload(m.grads, g, m.n_elems * sizeof(float));
        }
        MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &loss, 1, MPI_DOUBLE, MPI_SUM, t->dpcp_comm));
        loss /= (double)B * L;
        if (!isfinite(loss))
            fail("step %lld: the loss is not finite (%g); stopping", (long long)step, loss);
        double lr = schedule_lr(c, step);
        double gnorm = optim_step(&m, c, step, ops->sumsq(m.grads, m.n_elems));
        ops->sync();
        StepStats st = {.step = step,
                        .steps = c->train.steps,
                        .tokens = step * (int64_t)B * L,
                        .step_tokens = (int64_t)B * L,
                        .loss = loss,
                        .lr = lr,
                        .grad_norm = gnorm,
                        .step_s = util_now() - t0,
                        .step_flops = flops_token * B * L};
        metrics_step(&mt, &st);
        if (val && c->eval.every > 0 && (step % c->eval.every == 0 || step == c->train.steps))
            metrics_eval(&mt, step, st.tokens, evaluate(&m, c, t, val, tokens));
    }
    metrics_close(&mt);
    if (src.sampler)
        sampler_free(src.sampler);
    free(tokens);
    free(host_grads);
    model_free(&m);
}
