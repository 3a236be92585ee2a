/* model.c: parameter table and initialisation, buffer layout (one allocation), and the MEGALODON
   forward and backward over the ops interface (spec sections 1-6). */
#include "src/model.h"

#include "src/util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void model_dims_from_config(ModelDims *d, const Config *c)
{
    *d = (ModelDims){
        .vocab = c->model.vocab_size,
        .n_layers = c->model.n_layers,
        .D = c->model.d_model,
        .H = c->model.n_heads,
        .Z = c->model.z_dim,
        .V = c->model.v_dim,
        .F = c->model.ffn_dim,
        .C = c->model.chunk,
        .G = c->model.groups,
        .N = c->model.cema_ndim,
        .swiglu = c->model.ffn == FFN_SWIGLU,
        .scale_emb = c->model.scale_emb,
        .share_emb = c->model.share_emb,
        .rope_base = (float)c->model.rope_base,
        .eps = (float)c->model.norm_eps,
    };
}

/* ---- parameter table ---- */

typedef struct {
    ParamInfo *p;
    int n, cap;
    size_t elems;
} Table;

static size_t table_add(Table *t, const char *name, int ndim, const int64_t *shape, int split, InitKind init,
                        double std, double clip)
{
    if (t->p && t->n == t->cap)
        fail("parameter table overflow");
    ParamInfo info = {.ndim = ndim, .split = split, .init = init, .std = std, .clip = clip, .offset = t->elems};
    snprintf(info.name, PARAM_NAME, "%s", name);
    info.numel = 1;
    for (int i = 0; i < ndim; i++)
        info.numel *= (size_t)(info.shape[i] = shape[i]);
    if (t->p)
        t->p[t->n] = info;
    t->n++;
    t->elems += info.numel;
    return info.offset;
}

#define SHAPE(...) ((const int64_t[]){__VA_ARGS__})
#define NDIM(...) ((int)(sizeof((const int64_t[]){__VA_ARGS__}) / sizeof(int64_t)))
#define ADD(t, name, split, init, std, clip, ...)                                                          \
    table_add(t, name, NDIM(__VA_ARGS__), SHAPE(__VA_ARGS__), split, init, std, clip)

/* linear weight (out, in): N(0, 1/(3 fan_in)) (Kaiming-normal with a = sqrt(5)) */
static double linear_std(int64_t fan_in) { return 1.0 / sqrt(3.0 * (double)fan_in); }

/* Names, shapes and splits of spec section 16; fills m->blocks and the global offsets. */
static void build_table(Model *m, Table *t)
{
    const ModelDims *d = &m->d;
    const int64_t D = d->D, N = d->N, Z = d->Z, V = d->V, F = d->F, vocab = d->vocab;
    const double emb_std = 1.0 / sqrt((double)D);
    char name[PARAM_NAME];
#define NAME(...) (snprintf(name, sizeof name, __VA_ARGS__), name)
    m->embed = ADD(t, "embed.weight", 1, INIT_TRUNCATED, emb_std, 3 * emb_std, vocab, D);
    for (int l = 0; l < d->n_layers; l++) {
        BlockParams *b = &m->blocks[l];
        b->tsn_w = ADD(t, NAME("layers.%d.mega.timenorm.weight", l), 0, INIT_ZERO, 0, 0, D);
        b->tsn_b = ADD(t, NAME("layers.%d.mega.timenorm.bias", l), 0, INIT_ZERO, 0, 0, D);
        b->alpha = ADD(t, NAME("layers.%d.mega.cema.alpha", l), 0, INIT_NORMAL, 0.2, 0, D, N, 1);
        b->delta = ADD(t, NAME("layers.%d.mega.cema.delta", l), 0, INIT_NORMAL, 0.2, 0, D, N, 1);
        b->theta = ADD(t, NAME("layers.%d.mega.cema.theta", l), 0, INIT_CEMA_THETA, 0, 0, D, 1, 1);
        b->gamma = ADD(t, NAME("layers.%d.mega.cema.gamma", l), 0, INIT_CEMA_GAMMA, 1.0, 0, D, N, 2);
        b->omega = ADD(t, NAME("layers.%d.mega.cema.omega", l), 0, INIT_TRUNCATED, 0.25, 1.0, D, 1);
        b->rms_w = ADD(t, NAME("layers.%d.mega.rmsnorm.weight", l), -1, INIT_ZERO, 0, 0, D);
        b->wz = ADD(t, NAME("layers.%d.mega.wz.weight", l), 0, INIT_NORMAL, linear_std(D), 0, Z, D);
        b->bz = ADD(t, NAME("layers.%d.mega.wz.bias", l), 0, INIT_ZERO, 0, 0, Z);
        b->qk_gamma = ADD(t, NAME("layers.%d.mega.gamma", l), 1, INIT_ZERO, 0, 0, 2, Z);
        b->qk_beta = ADD(t, NAME("layers.%d.mega.beta", l), 1, INIT_ZERO, 0, 0, 2, Z);
        b->wv = ADD(t, NAME("layers.%d.mega.wv.weight", l), 0, INIT_NORMAL, linear_std(D), 0, V, D);
        b->bv = ADD(t, NAME("layers.%d.mega.wv.bias", l), 0, INIT_ZERO, 0, 0, V);
        b->wr = ADD(t, NAME("layers.%d.mega.wr.weight", l), 0, INIT_NORMAL, linear_std(D), 0, V, D);
        b->br = ADD(t, NAME("layers.%d.mega.wr.bias", l), 0, INIT_ZERO, 0, 0, V);
        b->wh1 = ADD(t, NAME("layers.%d.mega.wh1.weight", l), 0, INIT_NORMAL, linear_std(D), 0, D, D);
        b->bh1 = ADD(t, NAME("layers.%d.mega.wh1.bias", l), 0, INIT_ZERO, 0, 0, D);
        b->wh2 = ADD(t, NAME("layers.%d.mega.wh2.weight", l), 1, INIT_NORMAL, linear_std(V), 0, D, V);
        b->ln_w = ADD(t, NAME("layers.%d.nffn.norm.weight", l), -1, INIT_ZERO, 0, 0, D);
        b->ln_b = ADD(t, NAME("layers.%d.nffn.norm.bias", l), -1, INIT_ZERO, 0, 0, D);
        b->w1 = ADD(t, NAME("layers.%d.nffn.fc1.weight", l), 0, INIT_NORMAL, linear_std(D), 0, F, D);
        if (d->swiglu)
            b->w3 = ADD(t, NAME("layers.%d.nffn.fc3.weight", l), 0, INIT_NORMAL, linear_std(D), 0, F, D);
        b->w2 = ADD(t, NAME("layers.%d.nffn.fc2.weight", l), 1, INIT_NORMAL, linear_std(F), 0, D, F);
    }
    m->final_w = ADD(t, "output.final_norm.weight", 0, INIT_ZERO, 0, 0, D);
    m->final_b = ADD(t, "output.final_norm.bias", 0, INIT_ZERO, 0, 0, D);
    m->out = d->share_emb ? m->embed : ADD(t, "output.output.weight", 1, INIT_TRUNCATED, emb_std, 3 * emb_std, vocab, D);
#undef NAME
}

int64_t model_param_count(const ModelDims *d)
{
    int64_t D = d->D, per_layer = 4 * D * d->N + 2 * D    /* CEMA */
                                  + 2 * D + D              /* TimestepNorm, RMSNorm */
                                  + (D + 1) * (d->Z + 2 * d->V + D) + D * d->V + 4 * d->Z /* projections, Q/K affine */
                                  + 2 * D + (d->swiglu ? 3 : 2) * D * d->F; /* LayerNorm, FFN */
    return d->n_layers * per_layer + 2 * D + (int64_t)d->vocab * D * (d->share_emb ? 1 : 2);
}

/* 6 FLOPs per parameter per token for every parameter used in a matrix product (all but the
   input embedding lookup, unless it is tied to the head), plus the attention's two products:
   per head and token, forward 2 (dz + dv) FLOPs per attended key, on average (c + 1) / 2 keys
   in a causal chunk of c = min(C, L) tokens; backward twice the forward. */
double model_flops_per_token(const ModelDims *d, int seq_len)
{
    double matmul_params = (double)model_param_count(d) - (d->share_emb ? 0.0 : (double)d->vocab * d->D);
    double c = d->C < seq_len ? d->C : seq_len;
    double attn = 3.0 * d->n_layers * 2.0 * (double)(d->Z + d->V) * (c + 1.0) / 2.0;
    return 6.0 * matmul_params + attn;
}

const ParamInfo *model_param(const Model *m, const char *name)
{
    for (int i = 0; i < m->n_params; i++)
        if (!strcmp(m->params_info[i].name, name))
            return &m->params_info[i];
    return NULL;
}

/* ---- buffers: measured in a first pass, carved from one allocation in the second ---- */

typedef struct {
    char *base; /* NULL while measuring */
    size_t used;
} Arena;

static void *carve(Arena *a, size_t bytes)
{
    size_t at = a->used;
    a->used += (bytes + 255) & ~(size_t)255;
    return a->base ? a->base + at : NULL;
}

static void layout(Model *m, Arena *a)
{
    const ModelDims *d = &m->d;
    const size_t T = (size_t)m->T, D = d->D, Z = d->Z, V = d->V, F = d->F, G = d->G, H = d->H, as = m->ops->act_size;
    const size_t f4 = sizeof(float), nl = (size_t)d->n_layers;
#define ACT(n) carve(a, (n) * as)
#define F32(n) ((float *)carve(a, (n) * f4))
    m->params = F32(m->n_elems);
    m->params_act = m->ops->act == DTYPE_F32 ? (void *)m->params : ACT(m->n_elems);
    m->grads = F32(m->n_elems);
    m->adam_m = F32(m->n_elems);
    m->adam_v = F32(m->n_elems);
    m->tokens = (int32_t *)carve(a, T * sizeof(int32_t));
    m->targets = (int32_t *)carve(a, T * sizeof(int32_t));
    for (size_t l = 0; l <= nl; l++)
        m->x[l] = ACT(T * D);
    for (size_t l = 0; l < nl; l++) {
        BlockActs *s = &m->acts[l];
        if (m->recompute && l > 0) {
            *s = m->acts[0];
            continue;
        }
        s->xhat = ACT(T * D);
        s->tsn_mean = F32(T * G);
        s->tsn_rstd = F32(T * G);
        s->cema = ACT(T * D);
        s->m = ACT(T * D);
        s->rms = F32(T);
        s->zs = ACT(T * Z);
        s->qk_rstd = F32(T * H);
        s->q = ACT(T * Z);
        s->k = ACT(T * Z);
        s->av = ACT(T * V);
        s->vv = ACT(T * V);
        s->ar = ACT(T * V);
        s->r = ACT(T * V);
        s->o = ACT(T * V);
        s->lse = F32(T * H);
        s->ro = ACT(T * V);
        s->yhat = ACT(T * D);
        s->ln_mean = F32(T);
        s->ln_rstd = F32(T);
        s->u = ACT(T * D);
        s->a1 = ACT(T * F);
        s->a3 = d->swiglu ? ACT(T * F) : NULL;
        s->p = ACT(T * F);
    }
    m->xf = ACT(T * D);
    m->f_mean = F32(T * G);
    m->f_rstd = F32(T * G);
    m->logits = ACT(T * (size_t)d->vocab);
    BlockGrads *g = &m->g;
    void **td[] = {&g->dxhat, &g->dcema, &g->dm, &g->dyhat, &g->du, &g->dxf, &m->dx, &m->dy};
    for (size_t i = 0; i < sizeof td / sizeof td[0]; i++)
        *td[i] = ACT(T * D);
    void **tz[] = {&g->dzs, &g->dq, &g->dk};
    for (size_t i = 0; i < 3; i++)
        *tz[i] = ACT(T * Z);
    void **tv[] = {&g->dvv, &g->dav, &g->dr, &g->dar, &g->do_, &g->dro};
    for (size_t i = 0; i < 6; i++)
        *tv[i] = ACT(T * V);
    g->da1 = ACT(T * F);
    g->da3 = d->swiglu ? ACT(T * F) : NULL;
    g->dp = ACT(T * F);
    size_t states = (nl + 1) * m->state_elems;
    m->state_in = F32(states);
    m->state_out = F32(states);
    m->dstate_in = F32(states);
    m->dstate_out = F32(states);
#undef ACT
#undef F32
}

void model_create(Model *m, const ModelDims *d, const Ops *ops, int B, int L, int recompute)
{
    memset(m, 0, sizeof *m);
    m->d = *d;
    m->ops = ops;
    m->B = B;
    m->L = L;
    m->T = B * L;
    m->recompute = recompute;
    m->blocks = xcalloc((size_t)d->n_layers, sizeof *m->blocks);
    Table t = {0};
    build_table(m, &t); /* count */
    t = (Table){.p = xcalloc((size_t)t.n, sizeof(ParamInfo)), .cap = t.n};
    build_table(m, &t);
    m->params_info = t.p;
    m->n_params = t.n;
    m->n_elems = t.elems;
    m->state_elems = (size_t)B * d->G * 2 + (size_t)B * d->D * d->N * 2;
    m->x = xcalloc((size_t)d->n_layers + 1, sizeof *m->x);
    m->acts = xcalloc((size_t)d->n_layers, sizeof *m->acts);
    Arena a = {0};
    layout(m, &a);
    a = (Arena){.base = ops->alloc(a.used)};
    layout(m, &a);
}

void model_free(Model *m)
{
    m->ops->release(m->params); /* the arena starts with the parameters */
    free(m->blocks);
    free(m->params_info);
    free(m->x);
    free(m->acts);
    memset(m, 0, sizeof *m);
}

/* ---- initialisation: a value depends on (seed, name, global index) only ---- */

static double truncated_normal(uint64_t key, uint64_t index, double std, double clip)
{
    for (uint64_t attempt = 0;; attempt++) {
        double z = std * rng_normal(rng_mix(key + attempt * 0x9e3779b97f4a7c15ULL), index);
        if (fabs(z) <= clip)
            return z;
    }
}

static void init_param(const ParamInfo *p, uint64_t seed, float *out)
{
    uint64_t key = rng_key(seed, p->name);
    switch (p->init) {
    case INIT_ZERO:
        memset(out, 0, p->numel * sizeof(float));
        break;
    case INIT_NORMAL:
        for (size_t i = 0; i < p->numel; i++)
            out[i] = (float)(p->std * rng_normal(key, i));
        break;
    case INIT_TRUNCATED:
        for (size_t i = 0; i < p->numel; i++)
            out[i] = (float)truncated_normal(key, i, p->std, p->clip);
        break;
    case INIT_CEMA_THETA: {
        /* f_j = D^(-j/D), j = 1..D, permuted over channels (Fisher-Yates from the key), stored as
           logit(f) so that sigmoid(theta) = f */
        int64_t D = p->shape[0];
        int64_t *perm = xmalloc((size_t)D * sizeof *perm);
        for (int64_t i = 0; i < D; i++)
            perm[i] = i;
        for (int64_t i = D - 1; i > 0; i--) {
            int64_t j = (int64_t)(rng_u64(key, (uint64_t)i) % (uint64_t)(i + 1)), tmp = perm[i];
            perm[i] = perm[j];
            perm[j] = tmp;
        }
        for (int64_t c = 0; c < D; c++) {
            double f = exp(-(double)(perm[c] + 1) * log((double)D) / (double)D);
            out[c] = (float)log(f / (1.0 - f));
        }
        free(perm);
        break;
    }
    case INIT_CEMA_GAMMA:
        for (size_t i = 0; i < p->numel; i += 2) {
            out[i] = (float)(p->std * rng_normal(key, i / 2));
            out[i + 1] = 0.0f;
        }
        break;
    }
}

void model_params_from_host(Model *m, const float *host)
{
    m->ops->upload(m->params, host, m->n_elems * sizeof(float));
    m->ops->f32_to_act(m->params_act, m->params, m->n_elems);
}

void model_params_to_host(const Model *m, float *host)
{
    m->ops->download(host, m->params, m->n_elems * sizeof(float));
}

void model_init_params(Model *m, uint64_t seed)
{
    float *host = xmalloc(m->n_elems * sizeof(float));
    for (int i = 0; i < m->n_params; i++)
        init_param(&m->params_info[i], seed, host + m->params_info[i].offset);
    model_params_from_host(m, host);
    free(host);
    m->ops->zero(m->adam_m, m->n_elems * sizeof(float));
    m->ops->zero(m->adam_v, m->n_elems * sizeof(float));
}

/* ---- forward and backward ---- */

void model_set_batch(Model *m, const int32_t *tokens)
{
    int32_t *in = xmalloc((size_t)m->T * sizeof(int32_t)), *tg = xmalloc((size_t)m->T * sizeof(int32_t));
    for (int b = 0; b < m->B; b++)
        for (int l = 0; l < m->L; l++) {
            in[b * m->L + l] = tokens[(size_t)b * (m->L + 1) + l];
            tg[b * m->L + l] = tokens[(size_t)b * (m->L + 1) + l + 1];
        }
    m->ops->upload(m->tokens, in, (size_t)m->T * sizeof(int32_t));
    m->ops->upload(m->targets, tg, (size_t)m->T * sizeof(int32_t));
    free(in);
    free(tg);
}

/* compute copy / gradient of the parameter at element offset o */
#define P(o) ((const void *)((const char *)m->params_act + (o) * m->ops->act_size))
#define GR(o) (m->grads + (o))

/* state slots: block l (or n_layers for the final norm): TimestepNorm part, then CEMA part */
static float *slot(const Model *m, float *base, int l) { return base + (size_t)l * m->state_elems; }
static float *slot_h(const Model *m, float *base, int l) { return slot(m, base, l) + (size_t)m->B * m->d.G * 2; }

static CemaParams cema_params(const Model *m, const BlockParams *b)
{
    return (CemaParams){P(b->alpha), P(b->delta), P(b->theta), P(b->gamma), P(b->omega)};
}

static void block_forward(Model *m, int l)
{
    const Ops *ops = m->ops;
    const ModelDims *d = &m->d;
    const BlockParams *b = &m->blocks[l];
    BlockActs *s = &m->acts[l];
    const int B = m->B, L = m->L, T = m->T, D = d->D, Z = d->Z, V = d->V, F = d->F;
    const size_t TD = (size_t)T * D, TV = (size_t)T * V, TF = (size_t)T * F;
    const void *x = m->x[l];
    void *y = m->x[l + 1];
    const int has_in = m->pos0 > 0;

    /* attention sub-layer (spec section 2, steps 1-11) */
    ops->tsnorm_forward(s->xhat, s->tsn_mean, s->tsn_rstd, m->want_state_out ? slot(m, m->state_out, l) : NULL, x,
                        P(b->tsn_w), P(b->tsn_b), has_in ? slot(m, m->state_in, l) : NULL, m->pos0, B, L, D, d->G,
                        d->eps);
    ops->cema_forward(s->cema, m->want_state_out ? slot_h(m, m->state_out, l) : NULL, s->xhat, cema_params(m, b),
                      has_in ? slot_h(m, m->state_in, l) : NULL, B, L, D, d->N);
    ops->rmsnorm_forward(s->m, s->rms, s->cema, P(b->rms_w), T, D, d->eps);
    ops->matmul_forward(s->zs, s->m, P(b->wz), P(b->bz), T, D, Z, 0);
    ops->qk_forward(s->q, s->k, s->qk_rstd, s->zs, P(b->qk_gamma), P(b->qk_beta), B, L, d->H, Z / d->H, d->C,
                    d->rope_base, d->eps);
    ops->matmul_forward(s->av, s->xhat, P(b->wv), P(b->bv), T, D, V, 0); /* value from the TimestepNorm output */
    ops->silu_forward(s->vv, s->av, TV);
    ops->matmul_forward(s->ar, s->m, P(b->wr), P(b->br), T, D, V, 0);
    ops->silu_forward(s->r, s->ar, TV);
    ops->attention_forward(s->o, s->lse, s->q, s->k, s->vv, B, L, d->H, Z / d->H, V / d->H, d->C);
    ops->mul_forward(s->ro, s->r, s->o, TV);
    ops->copy(s->yhat, x, TD); /* yhat = x + m Wh1^T + bh1 + (r o) Wh2^T */
    ops->matmul_forward(s->yhat, s->m, P(b->wh1), P(b->bh1), T, D, D, 1);
    ops->matmul_forward(s->yhat, s->ro, P(b->wh2), NULL, T, V, D, 1);

    /* FFN sub-layer (steps 12-14): normalises yhat, but the residual is the block input x */
    ops->layernorm_forward(s->u, s->ln_mean, s->ln_rstd, s->yhat, P(b->ln_w), P(b->ln_b), T, D, d->eps);
    ops->matmul_forward(s->a1, s->u, P(b->w1), NULL, T, D, F, 0);
    if (d->swiglu) {
        ops->matmul_forward(s->a3, s->u, P(b->w3), NULL, T, D, F, 0);
        ops->swiglu_forward(s->p, s->a1, s->a3, TF);
    } else {
        ops->silu_forward(s->p, s->a1, TF);
    }
    ops->copy(y, x, TD);
    ops->matmul_forward(y, s->p, P(b->w2), NULL, T, F, D, 1);
}

/* dy: gradient of the block's output; dx (zeroed by the caller) receives the input's. */
static void block_backward(Model *m, int l, const void *dy, void *dx)
{
    const Ops *ops = m->ops;
    const ModelDims *d = &m->d;
    const BlockParams *b = &m->blocks[l];
    const BlockActs *s = &m->acts[l];
    const BlockGrads *g = &m->g;
    const int B = m->B, L = m->L, T = m->T, D = d->D, Z = d->Z, V = d->V, F = d->F;
    const size_t as = ops->act_size, TD = (size_t)T * D, TZ = (size_t)T * Z, TV = (size_t)T * V,
                 TF = (size_t)T * F;
    const void *x = m->x[l];
    const int has_in = m->pos0 > 0;
    void *zero_list[] = {g->dp, g->da1, g->da3, g->du, g->dyhat, g->dm, g->dro, g->dr, g->do_, g->dq, g->dk,
                         g->dvv, g->dar, g->dav, g->dxhat, g->dzs, g->dcema};
    size_t zero_size[] = {TF, TF, TF, TD, TD, TD, TV, TV, TV, TZ, TZ, TV, TV, TV, TD, TZ, TD};
    for (size_t i = 0; i < sizeof zero_list / sizeof zero_list[0]; i++)
        if (zero_list[i])
            ops->zero(zero_list[i], zero_size[i] * as);

    /* FFN: y = x + p W2^T */
    ops->accumulate(dx, dy, TD);
    ops->matmul_backward(g->dp, GR(b->w2), NULL, dy, s->p, P(b->w2), T, F, D);
    if (d->swiglu) {
        ops->swiglu_backward(g->da1, g->da3, g->dp, s->a1, s->a3, TF);
        ops->matmul_backward(g->du, GR(b->w3), NULL, g->da3, s->u, P(b->w3), T, D, F);
    } else {
        ops->silu_backward(g->da1, g->dp, s->a1, TF);
    }
    ops->matmul_backward(g->du, GR(b->w1), NULL, g->da1, s->u, P(b->w1), T, D, F);
    ops->layernorm_backward(g->dyhat, GR(b->ln_w), GR(b->ln_b), g->du, s->yhat, s->ln_mean, s->ln_rstd, P(b->ln_w),
                            T, D);

    /* attention: yhat = x + m Wh1^T + bh1 + (r o) Wh2^T */
    ops->accumulate(dx, g->dyhat, TD);
    ops->matmul_backward(g->dm, GR(b->wh1), GR(b->bh1), g->dyhat, s->m, P(b->wh1), T, D, D);
    ops->matmul_backward(g->dro, GR(b->wh2), NULL, g->dyhat, s->ro, P(b->wh2), T, V, D);
    ops->mul_backward(g->dr, g->do_, g->dro, s->r, s->o, TV);
    ops->attention_backward(g->dq, g->dk, g->dvv, g->do_, s->q, s->k, s->vv, s->o, s->lse, B, L, d->H, Z / d->H,
                            V / d->H, d->C);
    ops->silu_backward(g->dar, g->dr, s->ar, TV);
    ops->matmul_backward(g->dm, GR(b->wr), GR(b->br), g->dar, s->m, P(b->wr), T, D, V);
    ops->silu_backward(g->dav, g->dvv, s->av, TV);
    ops->matmul_backward(g->dxhat, GR(b->wv), GR(b->bv), g->dav, s->xhat, P(b->wv), T, D, V);
    ops->qk_backward(g->dzs, GR(b->qk_gamma), GR(b->qk_beta), g->dq, g->dk, s->zs, s->qk_rstd, P(b->qk_gamma), B, L,
                     d->H, Z / d->H, d->C, d->rope_base);
    ops->matmul_backward(g->dm, GR(b->wz), GR(b->bz), g->dzs, s->m, P(b->wz), T, D, Z);
    ops->rmsnorm_backward(g->dcema, GR(b->rms_w), g->dm, s->cema, s->rms, P(b->rms_w), T, D);
    CemaGrads cg = {GR(b->alpha), GR(b->delta), GR(b->theta), GR(b->gamma), GR(b->omega)};
    ops->cema_backward(g->dxhat, cg, has_in ? slot_h(m, m->dstate_in, l) : NULL, g->dcema,
                       m->want_state_out ? slot_h(m, m->dstate_out, l) : NULL, s->xhat, cema_params(m, b),
                       has_in ? slot_h(m, m->state_in, l) : NULL, B, L, D, d->N);
    ops->tsnorm_backward(dx, GR(b->tsn_w), GR(b->tsn_b), has_in ? slot(m, m->dstate_in, l) : NULL, g->dxhat,
                         m->want_state_out ? slot(m, m->dstate_out, l) : NULL, x, s->tsn_mean, s->tsn_rstd,
                         P(b->tsn_w), has_in ? slot(m, m->state_in, l) : NULL, m->pos0, B, L, D, d->G);
}

double model_forward(Model *m, float grad_scale)
{
    const Ops *ops = m->ops;
    const ModelDims *d = &m->d;
    const int nl = d->n_layers, has_in = m->pos0 > 0;
    ops->embedding_forward(m->x[0], m->tokens, P(m->embed), m->T, d->D, d->scale_emb ? sqrtf((float)d->D) : 1.0f);
    for (int l = 0; l < nl; l++)
        block_forward(m, l);
    ops->tsnorm_forward(m->xf, m->f_mean, m->f_rstd, m->want_state_out ? slot(m, m->state_out, nl) : NULL, m->x[nl],
                        P(m->final_w), P(m->final_b), has_in ? slot(m, m->state_in, nl) : NULL, m->pos0, m->B, m->L,
                        d->D, d->G, d->eps);
    ops->matmul_forward(m->logits, m->xf, P(m->out), NULL, m->T, d->D, d->vocab, 0);
    m->loss_sum = ops->crossentropy(m->logits, m->targets, m->T, d->vocab, grad_scale);
    return m->loss_sum;
}

void model_backward(Model *m)
{
    const Ops *ops = m->ops;
    const ModelDims *d = &m->d;
    const int nl = d->n_layers, has_in = m->pos0 > 0;
    const size_t TD = (size_t)m->T * d->D, as = ops->act_size;
    ops->zero(m->g.dxf, TD * as);
    ops->matmul_backward(m->g.dxf, GR(m->out), NULL, m->logits, m->xf, P(m->out), m->T, d->D, d->vocab);
    ops->zero(m->dy, TD * as);
    ops->tsnorm_backward(m->dy, GR(m->final_w), GR(m->final_b), has_in ? slot(m, m->dstate_in, nl) : NULL, m->g.dxf,
                         m->want_state_out ? slot(m, m->dstate_out, nl) : NULL, m->x[nl], m->f_mean, m->f_rstd,
                         P(m->final_w), has_in ? slot(m, m->state_in, nl) : NULL, m->pos0, m->B, m->L, d->D, d->G);
    for (int l = nl - 1; l >= 0; l--) {
        if (m->recompute && l < nl - 1) /* the last block's activations are still there */
            block_forward(m, l);
        ops->zero(m->dx, TD * as);
        block_backward(m, l, m->dy, m->dx);
        void *t = m->dx;
        m->dx = m->dy;
        m->dy = t;
    }
    ops->embedding_backward(GR(m->embed), m->dy, m->tokens, m->T, d->D, d->scale_emb ? sqrtf((float)d->D) : 1.0f);
}

void model_zero_grads(Model *m) { m->ops->zero(m->grads, m->n_elems * sizeof(float)); }
