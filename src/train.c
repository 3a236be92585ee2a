/* train.c: the 4-D parallel trainer and the training loop (see train.h). */
#include "src/train.h"

#include "kernels/ops.h"
#include "parallel/mpi_check.h"
#include "parallel/watchdog.h"
#include "src/ckpt.h"
#include "src/metrics.h"
#include "src/optim.h"
#include "src/plan.h"
#include "base/util.h"

#include <math.h>
#include <omp.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

/* ---- set-up ---- */

/* parallel.comm, resolved (config_finish) */
static CommVia via_of(const Config *c) { return c->parallel.comm == PARALLEL_COMM_NCCL ? COMM_NCCL : COMM_MPI; }

/* a Comm over an axis for the backend's buffers, via parallel.comm */
static void comm_over(Comm *c, const Trainer *tr, MPI_Comm axis, const char *name)
{
    comm_init(c, axis, name, tr->ops, via_of(tr->c));
}

/* Testing aid, never set in production: MEGATRAIN_TEST_INJECT_NAN=FIRST[-LAST]:RANK[:VALUE] puts
   VALUE (default NaN) into the first gradient element of rank RANK of the job before the backward
   of steps FIRST to LAST, as a bad batch would, so tests can check that every rank skips the
   update. Read once, at start-up; a run that has it set says so. */
static void inject_init(Trainer *tr)
{
    const char *s = getenv("MEGATRAIN_TEST_INJECT_NAN");
    if (!s)
        return;
    char *end;
    long long first = strtoll(s, &end, 10), last = first, rank = -1;
    if (end > s && *end == '-')
        last = strtoll(end + 1, &end, 10);
    double value = NAN;
    if (end > s && *end == ':') {
        const char *r = end + 1;
        rank = strtoll(r, &end, 10);
        if (end == r)
            rank = -1;
        else if (*end == ':')
            value = strtod(end + 1, &end);
    }
    if (first < 1 || last < first || rank < 0 || *end)
        fail_input_all("MEGATRAIN_TEST_INJECT_NAN=%s: expected FIRST[-LAST]:RANK[:VALUE] (a testing aid)", s);
    log_warn("MEGATRAIN_TEST_INJECT_NAN=%s (a testing aid): rank %lld's gradient gets %g at steps %lld to %lld", s,
             rank, value, first, last);
    if (rank == tr->t->rank) {
        tr->inject_first = first;
        tr->inject_last = last;
        tr->inject_value = (float)value;
    }
}

static int replicated(const ParamInfo *p) { return p->replicated; }
static int tied(const ParamInfo *p) { return p->tied_as != NULL; }

/* The sums over comm of the gradients of the parameters that `which` selects (NULL: none). */
static void replicas_of(Replicas *r, const Model *m, Comm *comm, int (*which)(const ParamInfo *))
{
    GradSpan *spans = xcalloc((size_t)m->n_params, sizeof *spans);
    int n = 0;
    for (int i = 0; which && i < m->n_params; i++)
        if (which(&m->params_info[i]))
            spans[n++] = (GradSpan){m->params_info[i].offset, m->params_info[i].numel};
    replicas_init(r, comm, spans, n);
    free(spans);
}

TrainShape train_shape(const Config *c, const ModelDims *d, int dp, int tp, int pp, int cp, int tp_rank, int pp_rank)
{
    const int micro = c->parallel.micro_batches, rows = c->data.batch_size / dp;
    return (TrainShape){.rows = rows,
                        .mb_rows = rows / micro,
                        .Lloc = c->data.seq_len / cp,
                        .slots = pipeline_slots(pp_rank, pp, micro),
                        .part = model_part(d, tp, tp_rank, pp, pp_rank),
                        .pad_to = (size_t)dp * (size_t)cp,
                        .bucket = (size_t)(c->parallel.grad_bucket_mb * 1048576.0 / sizeof(float)),
                        .wire = c->parallel.grad_reduce_dtype == GRAD_REDUCE_BF16 ? COMM_BF16 : COMM_F32,
                        .via = via_of(c)};
}

/* The first stage embeds the tokens and the last one predicts them; a stage between needs none. */
static int needs_tokens(const Model *m) { return m->part.first || m->part.last; }

void trainer_init(Trainer *tr, const Config *c, const Topo *t, Dataset *train)
{
    memset(tr, 0, sizeof *tr);
    tr->c = c;
    tr->t = t;
    tr->ops = ops_get(config_device_name(c->train.device));
    if (!tr->ops)
        fail_input("train.device: %s: %s", config_device_name(c->train.device),
                   ops_missing(config_device_name(c->train.device)));
    const Ops *ops = tr->ops;
    if (ops->select_device)
        ops->select_device(t->local_rank);
    watchdog_set_timeout(c->parallel.timeout);
    model_dims_from_config(&tr->dims, c);
    comm_over(&tr->tp, tr, t->tp_comm, "tp");
    comm_over(&tr->cp, tr, t->cp_comm, "cp");
    comm_over(&tr->pp, tr, t->pp_comm, "pp");
    comm_over(&tr->dpcp, tr, t->dpcp_comm, "dp x cp");
    comm_init(&tr->world, t->world_comm, "world", NULL, COMM_MPI); /* host scalars: losses, norms */
    if ((tr->emb_live = t->emb_comm != MPI_COMM_NULL && c->model.share_emb))
        comm_over(&tr->emb, tr, t->emb_comm, "embedding (first and last stage)");

    const int B = c->data.batch_size, L = c->data.seq_len, micro = c->parallel.micro_batches;
    const TrainShape sh = train_shape(c, &tr->dims, t->dp, t->tp, t->pp, t->cp, t->tp_rank, t->pp_rank);
    tr->rows = sh.rows;
    tr->mb_rows = sh.mb_rows;
    tr->Lloc = sh.Lloc;
    Model *m = &tr->m;
    model_create(m, &tr->dims, &sh.part, ops, sh.mb_rows, sh.Lloc, c->train.recompute, sh.slots, sh.pad_to);
    m->tp = t->tp > 1 ? tp_create(&tr->tp, ops, (size_t)m->T * m->Dl) : NULL;
    m->cp = t->cp > 1 ? cp_create(&tr->cp) : NULL;
    if (m->cp)
        cp_reserve(m->cp, model_boundaries(m), micro, m->state_elems);
    m->grads_ctx = tr; /* grads_final is set around a step's last backward */
    m->pos0 = (int64_t)t->cp_rank * tr->Lloc;
    m->want_state_out = t->cp_rank < t->cp - 1;
    tr->pipe = (Pipeline){.comm = &tr->pp,
                          .micro_batches = micro,
                          .n = (size_t)m->T * m->Dl,
                          .type = comm_type_of(ops->act)};
    pipeline_reserve(&tr->pipe);
    replicas_of(&tr->tp_sums, m, &tr->tp, replicated);
    replicas_of(&tr->tied_sums, m, &tr->emb, tr->emb_live ? tied : NULL); /* held by two stages */
    zero_init(&tr->zero, ops, &tr->dpcp, m->n_padded, m->params_act, m->grads, sh.bucket, sh.wire);
    float *init = xcalloc(m->n_padded, sizeof(float));
    model_init_host(m, (uint64_t)c->train.seed, init);
    model_params_from_host(m, init);
    zero_load(&tr->zero, init, NULL, NULL);
    free(init);

    tr->src = (BatchSource){.seed = (uint64_t)c->train.seed, .L = L, .vocab = tr->dims.vocab};
    if (train) {
        tr->src.sampler = sampler_create(train, (uint64_t)c->train.seed, L, 1);
        tr->data_fingerprint = dataset_fingerprint(train);
    }
    tr->reader = batch_reader_create((size_t)tr->mb_rows * (tr->Lloc + 1), c->data.prefetch && needs_tokens(m));
    tr->grad_scale = 1.0f / ((float)B * (float)L);
    guard_init(&tr->guard, c->train.spike_window);
    inject_init(tr);
}

void trainer_set_ops(Trainer *tr, const Ops *ops)
{
    tr->ops = tr->m.ops = tr->zero.ops = ops;
}

void trainer_free(Trainer *tr)
{
    /* what the Comms still move (e.g. the gradient sums of a forward and backward that no
       update followed) completes before its buffers go */
    Comm *cs[] = {&tr->tp, &tr->cp, &tr->pp, &tr->dpcp, &tr->world, &tr->emb};
    const int n = tr->emb_live ? 6 : 5;
    for (int i = 0; i < n; i++)
        comm_wait(cs[i]);
    batch_reader_free(tr->reader); /* before the sampler it may be reading */
    if (tr->src.sampler)
        sampler_free(tr->src.sampler);
    zero_free(&tr->zero);
    replicas_free(&tr->tp_sums);
    replicas_free(&tr->tied_sums);
    guard_free(&tr->guard);
    tp_free(tr->m.tp);
    cp_free(tr->m.cp);
    for (int i = 0; i < 2; i++)
        if (tr->graph[i])
            tr->ops->graph_free(tr->graph[i]);
    model_free(&tr->m);
    for (int i = 0; i < n; i++)
        comm_free(cs[i]);
}

/* ---- one micro-batch through this stage (callbacks of the pipeline schedule) ---- */

typedef struct {
    Trainer *tr;
    BatchSource *src;
    BatchReader *reader;
    int64_t first;      /* the global batch's first sample */
    int64_t next_first; /* the next one's, read during this one's last micro-batch; -1: none */
    float grad_scale; /* 0: evaluation, no backward */
    const EvalHook *hook; /* evaluation: after each forward of the last stage, or NULL */
    int k;                /* the micro-batch a graph runs */
} StepCtx;

/* Micro-batch k of the global batch from sample first: this rank's rows and columns of it. */
static BatchWant micro_want(const StepCtx *x, int64_t first, int k)
{
    const Trainer *tr = x->tr;
    const Topo *t = tr->t;
    return (BatchWant){.src = x->src,
                       .first = first + (int64_t)t->dp_rank * tr->rows + (int64_t)k * tr->mb_rows,
                       .nrows = tr->mb_rows,
                       .col0 = t->cp_rank * tr->Lloc,
                       .ncols = tr->Lloc};
}

/* This stage's tokens of micro-batch k into its slot, and the next micro-batch read meanwhile. */
static const int32_t *micro_tokens(StepCtx *x, int k, int slot)
{
    const BatchWant w = micro_want(x, x->first, k);
    const int32_t *tokens = batch_take(x->reader, &w);
    const int last = k + 1 == x->tr->c->parallel.micro_batches;
    if (!last || x->next_first >= 0) {
        const BatchWant next = last ? micro_want(x, x->next_first, 0) : micro_want(x, x->first, k + 1);
        batch_prefetch(x->reader, &next);
    }
    model_set_batch(&x->tr->m, slot, tokens);
    return tokens;
}

static const void *micro_forward(void *ctx, int k)
{
    StepCtx *x = ctx;
    Trainer *tr = x->tr;
    Model *m = &tr->m;
    const int slot = k % m->n_slots;
    const int32_t *tokens = needs_tokens(m) ? micro_tokens(x, k, slot) : NULL;
    model_forward(m, slot, x->grad_scale);
    if (x->hook && m->part.last)
        x->hook->after(x->hook->ctx, m, slot, tokens, tr->mb_rows, tr->Lloc, (int64_t)tr->t->cp_rank * tr->Lloc);
    return model_stage_output(m, slot);
}

/* Gradients at offsets >= from are final (the step's last backward has passed them): sum the
   tensor-parallel replicas' partial sums among them, then start the data-parallel sums of the
   ZeRO shards they complete, to run while backward goes on. */
static void grads_final(void *ctx, size_t from)
{
    Trainer *tr = ctx;
    replicas_sum_from(&tr->tp_sums, tr->m.grads, from);
    zero_reduce_from(&tr->zero, tr->m.grads, from);
}

static const void *micro_backward(void *ctx, int k)
{
    StepCtx *x = ctx;
    Trainer *tr = x->tr;
    Model *m = &tr->m;
    const Config *c = tr->c;
    m->grads_final = c->parallel.overlap_grad_reduce && k == c->parallel.micro_batches - 1 ? grads_final : NULL;
    model_backward(m, k % m->n_slots);
    m->grads_final = NULL;
    return model_input_grad(m);
}

static void *micro_input(void *ctx, int k)
{
    Model *m = &((StepCtx *)ctx)->tr->m;
    return model_stage_input(m, k % m->n_slots);
}

static void *micro_output_grad(void *ctx, int k) { return model_output_grad(&((StepCtx *)ctx)->tr->m); }

/* A job of one rank: a micro-batch's forward and backward, which queue the same work every step
   (no communication, no host round trip), as one graph (ops.h: graph_run); two when the first
   micro-batch, which writes the gradients, is not the only one, which add to them */
static int graphed(const Trainer *tr)
{
    return tr->c->train.graph && tr->ops->graph_run && tr->world.size == 1 && tr->m.n_slots == 1;
}

static void micro_graph(void *ctx)
{
    StepCtx *x = ctx;
    if (x->k == 0)
        model_zero_grads(&x->tr->m);
    model_forward(&x->tr->m, 0, x->grad_scale);
    model_backward(&x->tr->m, 0);
}

static PipelineSteps micro_steps(StepCtx *x)
{
    return (PipelineSteps){.ctx = x,
                           .input = micro_input,
                           .output_grad = micro_output_grad,
                           .forward = micro_forward,
                           .backward = micro_backward};
}

/* Losses live on the last stage, once per tp group: sum them over the job. */
static double job_loss(Trainer *tr)
{
    double loss = tr->m.part.last && tr->t->tp_rank == 0 ? tr->loss : 0.0;
    comm_allreduce(&tr->world, &loss, 1, COMM_F64);
    return loss;
}

/* Sum of squares of the gradient elements this rank updates, counting each parameter once over
   the job: tensor-parallel replicas on tp rank 0 only, not a stage's copy of another's tensor. */
static double grad_sumsq(Trainer *tr)
{
    const Model *m = &tr->m;
    double s = 0;
    size_t run_lo = 0, run_hi = 0; /* adjacent counted tensors make one run (few device syncs) */
    for (int i = 0; i <= m->n_params; i++) {
        size_t lo = 0, hi = 0;
        if (i < m->n_params) {
            const ParamInfo *p = &m->params_info[i];
            if ((p->replicated && tr->t->tp_rank > 0) || p->copy)
                continue;
            lo = p->offset;
            hi = p->offset + p->numel;
            if (lo == run_hi) {
                run_hi = hi;
                continue;
            }
        }
        if (run_lo < run_hi)
            s += zero_sumsq(&tr->zero, run_lo, run_hi);
        run_lo = lo;
        run_hi = hi;
    }
    comm_allreduce(&tr->world, &s, 1, COMM_F64);
    return s;
}

double trainer_forward_backward(Trainer *tr)
{
    const Config *c = tr->c;
    const int inject = tr->step + 1 >= tr->inject_first && tr->step + 1 <= tr->inject_last;
    replicas_restart(&tr->tp_sums);
    replicas_restart(&tr->tied_sums);
    model_loss_clear(&tr->m);
    StepCtx x = {.tr = tr,
                 .src = &tr->src,
                 .reader = tr->reader,
                 .first = tr->cursor,
                 .next_first = tr->step + 1 < c->train.steps ? tr->cursor + c->data.batch_size : -1,
                 .grad_scale = tr->grad_scale};
    if (graphed(tr) && !inject)
        for (x.k = 0; x.k < c->parallel.micro_batches; x.k++) {
            micro_tokens(&x, x.k, 0); /* the upload, before the graph */
            tr->ops->graph_run(&tr->graph[x.k > 0], micro_graph, &x);
        }
    else {
        model_zero_grads(&tr->m);
        if (inject)
            model_inject_grad(&tr->m, tr->inject_value);
        PipelineSteps steps = micro_steps(&x);
        pipeline_1f1b(&tr->pipe, &steps);
    }
    comm_wait(&tr->cp);
    tr->loss = model_loss_take(&tr->m);
    tr->cursor += c->data.batch_size;
    return tr->step_loss = job_loss(tr) / ((double)c->data.batch_size * c->data.seq_len);
}

GuardVerdict trainer_update(Trainer *tr, double *grad_norm, double *lr)
{
    const Config *c = tr->c;
    Model *m = &tr->m;
    tr->step++;
    /* gradients: backward started the sums of most (grads_final); a tied embedding has a part on
       the first and on the last stage, summed before the rest is; then the data-parallel sum of
       this rank's shard is complete */
    replicas_sum_from(&tr->tied_sums, m->grads, 0);
    grads_final(tr, 0);
    zero_reduce(&tr->zero, m->grads);
    *grad_norm = sqrt(grad_sumsq(tr));
    *lr = schedule_lr(c, tr->step);
    /* a NaN anywhere reaches every rank's loss and norm through the sums, but a spike verdict
       near its threshold could differ in the last bit of a sum: any rank's skip skips */
    int v = comm_max(&tr->world,
                     guard_check(&tr->guard, tr->step_loss, *grad_norm, c->train.spike_loss_z, c->train.spike_grad_z),
                     "all-reduce of the update's verdict");
    if (v == GUARD_APPLY)
        zero_step(&tr->zero, (float)*lr, (float)c->optimizer.beta1, (float)c->optimizer.beta2,
                  (float)c->optimizer.eps, (float)c->optimizer.weight_decay, (int)tr->step,
                  (float)clip_scale(c, *grad_norm));
    tr->ops->sync();
    return (GuardVerdict)v;
}

double trainer_step(Trainer *tr, double *grad_norm, double *lr)
{
    double loss = trainer_forward_backward(tr);
    trainer_update(tr, grad_norm, lr);
    return loss;
}

double trainer_eval(Trainer *tr, Dataset *val, const EvalHook *hook)
{
    const Config *c = tr->c;
    Sampler *s = val ? sampler_create(val, (uint64_t)c->train.seed, c->data.seq_len, 0) : NULL;
    BatchSource src = {.sampler = s, .seed = rng_key((uint64_t)c->train.seed, "eval"), .L = c->data.seq_len,
                       .vocab = tr->dims.vocab};
    /* through the training reader: its batch read ahead is dropped, read again after */
    StepCtx x = {.tr = tr, .src = &src, .reader = tr->reader, .grad_scale = 0.0f, .hook = hook};
    PipelineSteps steps = micro_steps(&x);
    model_loss_clear(&tr->m);
    for (int e = 0; e < c->eval.batches; e++) {
        /* unshuffled: sample k is window k mod W, so a small split just repeats */
        x.first = (int64_t)e * c->data.batch_size;
        x.next_first = e + 1 < c->eval.batches ? x.first + c->data.batch_size : -1;
        pipeline_forwards(&tr->pipe, &steps);
        comm_wait(&tr->cp);
    }
    tr->loss = model_loss_take(&tr->m);
    if (s)
        sampler_free(s);
    return job_loss(tr) / ((double)c->eval.batches * c->data.batch_size * c->data.seq_len);
}

/* ---- gathering whole parameters on rank 0 ---- */

void trainer_gather_all(Trainer *tr, void (*take)(void *ctx, const char *name, const int64_t *shape, int ndim,
                                                  const float *data),
                        void *ctx)
{
    const Topo *t = tr->t;
    const Model *m = &tr->m;
    /* the master weights, on rank 0 of each stage's dp x cp groups (dp and cp rank 0) */
    float *host = tr->dpcp.rank == 0 ? xmalloc(m->n_padded * sizeof(float)) : NULL;
    zero_gather(&tr->zero, tr->zero.master, host);
    for (int s = 0; s < t->pp; s++) {
        ModelPart part = model_part(&tr->dims, t->tp, 0, t->pp, s);
        ParamInfo *table;
        int n = model_table(&tr->dims, &part, &table);
        for (int i = 0; i < n; i++) {
            const ParamInfo *p = &table[i];
            if (p->copy)
                continue; /* gathered from the stage that owns it */
            size_t global = 1;
            for (int k = 0; k < p->ndim; k++)
                global *= (size_t)p->shape[k];
            float *full = t->rank == 0 ? xmalloc(global * sizeof(float)) : NULL, *piece = NULL;
            int ranks = p->replicated ? 1 : t->tp;
            if (t->rank == 0)
                piece = xmalloc(p->numel * sizeof(float));
            for (int j = 0; j < ranks; j++) {
                int src = topo_rank_of(t, 0, s, 0, j);
                if (t->rank == src && src != 0) {
                    comm_send(&tr->world, host + model_param(m, p->name)->offset, p->numel, COMM_F32, 0, i);
                    comm_wait(&tr->world); /* one tensor in flight: the staging pool stays small */
                }
                if (t->rank == 0) {
                    if (src == 0)
                        memcpy(piece, host + model_param(m, p->name)->offset, p->numel * sizeof(float));
                    else
                        comm_recv(&tr->world, piece, p->numel, COMM_F32, src, i);
                    for (size_t e = 0; e < p->numel; e++)
                        full[param_global_index(p, j, (int64_t)e)] = piece[e];
                }
            }
            if (t->rank == 0)
                take(ctx, p->name, p->shape, p->ndim, full);
            free(full);
            free(piece);
        }
        free(table);
    }
    free(host);
}

/* ---- the training loop ---- */

static volatile sig_atomic_t stop_signal; /* SIGTERM or SIGUSR1 (Slurm's warning before the time limit) */
static void on_signal(int sig) { stop_signal = sig; }

/* Where to resume from: checkpoint.resume is auto (the run's folder), never, or a path. The run's
   own checkpoints come before a path: a requeued run that started from another run's checkpoint
   continues itself, not its starting point. */
static void resume(Trainer *tr, const Config *c)
{
    const char *r = c->checkpoint.resume;
    if (!strcmp(r, "never") || (c->checkpoint.dir[0] && ckpt_resume(tr, c->checkpoint.dir)))
        return;
    if (strcmp(r, "auto") && !ckpt_resume(tr, r))
        fail_input_all("%s: checkpoint.resume: %s holds no checkpoint", config_origin("checkpoint.resume"), r);
}

void train_set_threads(const Config *c, const Topo *t)
{
    /* oversubscribed OpenMP threads spin-wait each other into the ground */
    int threads = c->train.threads;
    if (threads == 0 && !getenv("OMP_NUM_THREADS")) {
        cpu_set_t set;
        int cores = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
        threads = cores / t->local_size > 0 ? cores / t->local_size : 1;
    }
    if (threads > 0)
        omp_set_num_threads(threads);
}

/* Save the state after the last update applied, unless *saved (the step last saved) is it. After
   `skipped` skipped updates that is the parameters and moments as they are, at the step and data
   cursor before the skips; a resume from it meets those batches again. */
static void save_good(Trainer *tr, const char *dir, int skipped, int64_t *saved)
{
    const int64_t step = tr->step, cursor = tr->cursor;
    if (step - skipped == *saved)
        return;
    tr->step -= skipped;
    tr->cursor -= (int64_t)skipped * tr->c->data.batch_size;
    ckpt_save(tr, dir);
    *saved = tr->step;
    tr->step = step;
    tr->cursor = cursor;
}

int train_run(const Config *c, const char *config_path, const Topo *t, Dataset *train, Dataset *val)
{
    train_set_threads(c, t);
    /* from the start: a signal while loading a checkpoint stops the run after its first step */
    struct sigaction sa = {.sa_handler = on_signal, .sa_flags = SA_RESTART};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    plan_check_run(c, config_path, ops_get(config_device_name(c->train.device)), t);
    Trainer tr;
    trainer_init(&tr, c, t, train);
    resume(&tr, c);

    const ModelDims *dims = &tr.dims;
    const int B = c->data.batch_size, L = c->data.seq_len;
    const char *dir = c->checkpoint.dir[0] ? c->checkpoint.dir : NULL;
    Metrics mt;
    double flops_token = model_flops_per_token(dims, L);
    metrics_open(&mt, c, config_path, t, model_param_count(dims), flops_token);
    log_info("megatrain: %lld parameters, %d layers, D=%d, %s on %s (%d threads per rank); %d ranks (dp %d, tp %d, "
             "pp %d, cp %d); batch %d x %d tokens, steps %lld to %lld%s",
             (long long)model_param_count(dims), dims->n_layers, dims->D, config_precision_name(c->train.precision),
             tr.ops->name, omp_get_max_threads(), t->world, t->dp, t->tp, t->pp, t->cp, B, L,
             (long long)tr.step + 1, (long long)c->train.steps,
             graphed(&tr) ? "; each micro-batch's forward and backward as one graph" : "");
    int status = 0, skipped = 0; /* updates skipped in a row */
    int64_t saved = -1;          /* the step of the last checkpoint written */
    /* a blend: the tokens drawn from each of its datasets, from the data cursor */
    const int nblend = c->data.blend[0] && tr.src.sampler ? sampler_datasets(tr.src.sampler) : 0;
    int64_t *blend_tokens = xcalloc((size_t)nblend + 1, sizeof *blend_tokens);
    while (tr.step < c->train.steps) {
        Comm *axes[4] = {&tr.dpcp, &tr.tp, &tr.pp, &tr.cp};
        double busy[4];
        for (int i = 0; i < 4; i++)
            busy[i] = axes[i]->busy_s;
        double t0 = util_now(), gnorm, lr;
        double loss = trainer_forward_backward(&tr);
        GuardVerdict verdict = trainer_update(&tr, &gnorm, &lr);
        skipped = verdict == GUARD_APPLY ? 0 : skipped + 1;
        const int64_t step = tr.step;
        StepStats st = {.step = step,
                        .steps = c->train.steps,
                        .tokens = step * (int64_t)B * L,
                        .step_tokens = (int64_t)B * L,
                        .loss = loss,
                        .lr = lr,
                        .grad_norm = gnorm,
                        .step_s = util_now() - t0,
                        .step_flops = flops_token * B * L,
                        .skipped = guard_name(verdict),
                        .skipped_in_row = skipped};
        for (int i = 0; i < 4; i++)
            st.comm_s[i] = axes[i]->busy_s - busy[i];
        if (nblend) {
            sampler_counts(tr.src.sampler, tr.cursor, blend_tokens);
            for (int i = 0; i < nblend; i++)
                blend_tokens[i] *= L;
            st.ndatasets = nblend;
            st.dataset_tokens = blend_tokens;
        }
        if (tr.ops->peak_memory)
            st.mem_gb = (double)tr.ops->peak_memory() / 1073741824.0;
        metrics_step(&mt, &st);
        if (skipped == c->train.max_skips) {
            if (dir)
                save_good(&tr, dir, skipped, &saved);
            log_error("steps %lld to %lld: %d updates in a row skipped (train.max_skips; the last: %s); stopping "
                      "with the state after step %lld (%s%s); lower optimizer.lr or check the data",
                      (long long)(step - skipped + 1), (long long)step, skipped, guard_name(verdict),
                      (long long)(step - skipped), dir ? "saved in " : "no checkpoint.dir: not saved",
                      dir ? dir : "");
            status = 1; /* a scheduler must not requeue it */
            break;
        }
        if (val && c->eval.every > 0 && (step % c->eval.every == 0 || step == c->train.steps))
            metrics_eval(&mt, step, st.tokens, trainer_eval(&tr, val, NULL));
        /* every rank must agree to stop at the same step */
        int stop = comm_max(&tr.world, stop_signal, "all-reduce of the stop flag");
        if (dir && (stop || step == c->train.steps || (c->checkpoint.every > 0 && step % c->checkpoint.every == 0)))
            save_good(&tr, dir, skipped, &saved);
        if (stop) {
            log_info("signal %d: stopping after step %lld%s", stop, (long long)step,
                     dir ? " and its checkpoint" : " (no checkpoint.dir: nothing saved)");
            status = !dir; /* nothing saved is a failure (a scheduler must not requeue it) */
            break;
        }
    }
    metrics_close(&mt);
    free(blend_tokens);
    /* Testing aid, never set in production: MEGATRAIN_TEST_PEAK makes every rank say the most
       backend memory it held, for tests/test_plan.sh to compare with the memory plan. */
    if (getenv("MEGATRAIN_TEST_PEAK") && tr.ops->peak_memory)
        fprintf(stderr, "megatrain: rank %d stage %d cp %d: peak memory %zu bytes\n", t->rank, t->pp_rank,
                t->cp_rank, tr.ops->peak_memory());
    trainer_free(&tr);
    return status;
}
