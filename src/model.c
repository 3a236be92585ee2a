/* model.c: parameter table and initialisation, buffer layout (one allocation), and the MEGALODON
   forward and backward over the ops interface (spec sections 1-7, 12), for one rank's part. */
#include "src/model.h"

#include "base/util.h"

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

ModelPart model_part(const ModelDims *d, int tp, int tp_rank, int pp, int pp_rank)
{
    int base = d->n_layers / pp, extra = d->n_layers % pp;
    int layer0 = pp_rank * base + (pp_rank < extra ? pp_rank : extra);
    return (ModelPart){.tp = tp,
                       .tp_rank = tp_rank,
                       .layer0 = layer0,
                       .n_layers = base + (pp_rank < extra),
                       .first = pp_rank == 0,
                       .last = pp_rank == pp - 1};
}

/* ---- parameter table ---- */

typedef struct {
    ParamInfo *p;
    int n, cap, tp;
    size_t elems;
    int layer; /* of the entries being added */
} Table;

static size_t table_add(Table *t, const char *name, int ndim, const int64_t *shape, int split, InitKind init,
                        double std, double clip)
{
    if (t->p && t->n == t->cap)
        fail("parameter table overflow");
    ParamInfo info = {.ndim = ndim,
                      .split = split,
                      .replicated = split < 0 && t->tp > 1,
                      .layer = t->layer,
                      .init = init,
                      .std = std,
                      .clip = clip,
                      .offset = t->elems};
    snprintf(info.name, PARAM_NAME, "%s", name);
    info.numel = 1;
    for (int i = 0; i < ndim; i++) {
        info.shape[i] = shape[i];
        info.local[i] = i == split ? shape[i] / t->tp : shape[i];
        info.numel *= (size_t)info.local[i];
    }
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

/* The entry just added also serves as `also`; copy: held here for another stage's tensor. */
static void table_tie(Table *t, const char *also, int copy)
{
    if (t->p) {
        t->p[t->n - 1].tied_as = also;
        t->p[t->n - 1].copy = copy;
    }
}

/* linear weight (out, in): N(0, 1/(3 fan_in)) (Kaiming-normal with a = sqrt(5)) */
static double linear_std(int64_t fan_in) { return 1.0 / sqrt(3.0 * (double)fan_in); }

/* Names, global shapes and splits of spec section 16 for this part, with where each tensor lives
   (its block, the stage that owns it, a second name); fills m->blocks and the offsets. */
static void build_table(Model *m, Table *t)
{
    const ModelDims *d = &m->d;
    const ModelPart *part = &m->part;
    const int64_t D = d->D, N = d->N, Z = d->Z, V = d->V, F = d->F, vocab = d->vocab;
    const double emb_std = 1.0 / sqrt((double)D);
    const char *head = "output.output.weight"; /* the embedding's second name when tied */
    char name[PARAM_NAME];
#define NAME(...) (snprintf(name, sizeof name, __VA_ARGS__), name)
    m->embed = m->out = m->final_w = m->final_b = (size_t)-1;
    t->layer = -1;
    if (part->first || (part->last && d->share_emb)) {
        m->embed = ADD(t, "embed.weight", 0, INIT_TRUNCATED, emb_std, 3 * emb_std, vocab, D);
        table_tie(t, d->share_emb ? head : NULL, !part->first);
    }
    for (int i = 0; i < part->n_layers; i++) {
        const int l = t->layer = part->layer0 + i;
        BlockParams *b = &m->blocks[i];
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
    t->layer = d->n_layers;
    if (part->last) {
        m->final_w = ADD(t, "output.final_norm.weight", 0, INIT_ZERO, 0, 0, D);
        m->final_b = ADD(t, "output.final_norm.bias", 0, INIT_ZERO, 0, 0, D);
        m->out = d->share_emb ? m->embed : ADD(t, head, 0, INIT_TRUNCATED, emb_std, 3 * emb_std, vocab, D);
    }
#undef NAME
}

/* m's table (m->blocks allocated): counted, then filled */
static Table table_of(Model *m)
{
    Table t = {.tp = m->part.tp};
    build_table(m, &t);
    t = (Table){.p = xcalloc((size_t)t.n, sizeof(ParamInfo)), .cap = t.n, .tp = m->part.tp};
    build_table(m, &t);
    return t;
}

int model_table(const ModelDims *d, const ModelPart *part, ParamInfo **out)
{
    Model m = {.d = *d, .part = *part};
    m.blocks = xcalloc((size_t)part->n_layers, sizeof *m.blocks);
    Table t = table_of(&m);
    free(m.blocks);
    *out = t.p;
    return t.n;
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

int64_t param_global_index(const ParamInfo *p, int tp_rank, int64_t i)
{
    int64_t g = 0, rest = i;
    for (int k = 0; k < p->ndim; k++) {
        int64_t inner = 1;
        for (int j = k + 1; j < p->ndim; j++)
            inner *= p->local[j];
        int64_t c = rest / inner;
        rest %= inner;
        if (k == p->split)
            c += (int64_t)tp_rank * p->local[k];
        g = g * p->shape[k] + c;
    }
    return g;
}

/* ---- buffers: measured in a first pass, carved from one allocation in the second ---- */

typedef struct {
    char *base; /* NULL while measuring */
    size_t used;
    ModelBytes bytes;
    size_t *kind; /* the member of bytes that carve counts into */
} Arena;

static void *carve(Arena *a, size_t bytes)
{
    size_t at = a->used, r = (bytes + 255) & ~(size_t)255;
    a->used += r;
    *a->kind += r;
    return a->base ? a->base + at : NULL;
}

static void layout(Model *m, Arena *a)
{
    const ModelDims *d = &m->d;
    const size_t T = (size_t)m->T, D = d->D, Dl = m->Dl, Zl = m->Zl, Vl = m->Vl, Fl = m->Fl, Gl = m->Gl,
                 Hl = m->Hl, as = m->ops->act_size, f4 = sizeof(float), nl = (size_t)m->part.n_layers;
    const int tp1 = m->part.tp == 1;
    const size_t cema_saved = m->ops->cema_saved_size(m->B, m->L, (int)Dl);
    /* attention's P, (T, Hl x chunk) bf16 (the presets' value activation's size); recompute
       elementwise computes it again */
    const size_t attn_saved =
        m->recompute == RECOMPUTE_ELEMENTWISE ? 0 : m->ops->attention_saved_size(m->B, m->L, (int)Hl, d->C);
#define ACT(n) carve(a, (n) * as)
#define F32(n) ((float *)carve(a, (n) * f4))
    a->kind = &a->bytes.params;
    m->params_act = ACT(m->n_padded);
    a->kind = &a->bytes.grads;
    m->grads = F32(m->n_padded);
    a->kind = &a->bytes.acts;
    /* recompute blocks: every block's activations alias the first block's; elementwise: those
       block_recompute writes (RECOMPUTED) do */
    BlockActs shared = {0};
    for (int si = 0; si < m->n_slots; si++) {
        ModelSlot *sl = &m->slots[si];
        sl->tokens = (int32_t *)carve(a, 2 * T * sizeof(int32_t)); /* one upload: as batch_host */
        sl->targets = sl->tokens ? sl->tokens + T : NULL; /* NULL while measuring (no offset on NULL) */
        for (size_t l = 0; l <= nl; l++)
            sl->x[l] = ACT(T * Dl);
        for (size_t l = 0; l < nl; l++) {
            BlockActs *s = &sl->acts[l];
            const int later = si > 0 || l > 0;
            if (m->recompute == RECOMPUTE_BLOCKS && later) {
                *s = shared;
                continue;
            }
#define RECOMPUTED(f, buf) (s->f = m->recompute == RECOMPUTE_ELEMENTWISE && later ? shared.f : (buf))
            s->xhat = ACT(T * Dl);
            s->xhat_full = tp1 ? s->xhat : ACT(T * D);
            s->tsn_mean = F32(T * Gl);
            s->tsn_rstd = F32(T * Gl);
            s->cema = ACT(T * Dl);
            s->cema_saved = cema_saved ? carve(a, cema_saved) : NULL;
            s->cema_full = tp1 ? s->cema : ACT(T * D);
            s->m = ACT(T * D);
            s->rms = F32(T);
            s->zs = ACT(T * Zl);
            RECOMPUTED(qk_rstd, F32(T * Hl));
            RECOMPUTED(q, ACT(T * Zl));
            RECOMPUTED(k, ACT(T * Zl));
            s->av = ACT(T * Vl);
            RECOMPUTED(vv, ACT(T * Vl));
            s->ar = ACT(T * Vl);
            s->o = ACT(T * Vl);
            s->lse = F32(T * Hl);
            s->attn_saved = attn_saved ? carve(a, attn_saved) : NULL;
            RECOMPUTED(ro, ACT(T * Vl));
            s->yhat = ACT(T * Dl);
            s->yhat_full = tp1 ? s->yhat : ACT(T * D);
            s->ln_mean = F32(T);
            s->ln_rstd = F32(T);
            s->u = ACT(T * D);
            s->a1 = ACT(T * Fl);
            s->a3 = d->swiglu ? ACT(T * Fl) : NULL;
            RECOMPUTED(p, ACT(T * Fl));
#undef RECOMPUTED
            shared = *s;
        }
        if (m->part.last) {
            sl->xf = ACT(T * Dl);
            sl->xf_full = tp1 ? sl->xf : ACT(T * D);
            sl->f_mean = F32(T * Gl);
            sl->f_rstd = F32(T * Gl);
            sl->logits = ACT(T * (size_t)m->vocab_l);
        }
        size_t states = (nl + 1) * m->state_elems;
        sl->state_in = F32(states);
        sl->state_out = F32(states);
        sl->dstate_in = F32(states);
        sl->dstate_out = F32(states);
    }
    a->kind = &a->bytes.backward;
    BlockGrads *g = &m->g;
    void **tdl[] = {&g->dxhat, &g->dcema, &g->dyhat, &g->dxf, &m->dy};
    for (size_t i = 0; i < sizeof tdl / sizeof tdl[0]; i++)
        *tdl[i] = ACT(T * Dl);
    g->dxf_full = tp1 || !m->part.last ? g->dxf : ACT(T * D);
    g->dxhat_full = tp1 ? g->dxhat : ACT(T * D);
    g->dcema_full = tp1 ? g->dcema : ACT(T * D);
    g->dyhat_full = tp1 ? g->dyhat : ACT(T * D);
    g->dm = ACT(T * D);
    g->du = ACT(T * D);
    void **tz[] = {&g->dzs, &g->dq, &g->dk};
    for (size_t i = 0; i < 3; i++)
        *tz[i] = ACT(T * Zl);
    void **tv[] = {&g->dvv, &g->dav, &g->dar, &g->do_, &g->dro};
    for (size_t i = 0; i < 5; i++)
        *tv[i] = ACT(T * Vl);
    g->da1 = ACT(T * Fl);
    g->da3 = d->swiglu ? ACT(T * Fl) : NULL;
    g->dp = ACT(T * Fl);
    m->emb_full = m->part.first && !tp1 ? ACT(T * D) : NULL;
    m->ce_stats = m->part.last ? (double *)carve(a, (size_t)m->part.tp * T * 3 * sizeof(double)) : NULL;
    m->loss = m->part.last ? (double *)carve(a, 4 * sizeof(double)) : NULL;
#undef ACT
#undef F32
}

void model_shape(Model *m, const ModelDims *d, const ModelPart *part, const Ops *ops, int B, int L,
                        int recompute, int n_slots, size_t pad_to)
{
    memset(m, 0, sizeof *m);
    m->d = *d;
    m->part = *part;
    const int tp = part->tp;
    m->Dl = d->D / tp;
    m->Gl = d->G / tp;
    m->Zl = d->Z / tp;
    m->Vl = d->V / tp;
    m->Fl = d->F / tp;
    m->Hl = d->H / tp;
    m->vocab_l = d->vocab / tp;
    m->ops = ops;
    m->B = B;
    m->L = L;
    m->T = B * L;
    m->recompute = recompute;
    m->n_slots = n_slots;
    m->shared_slot = m->shared_layer = -1;
    m->batch_host = xmalloc(2 * (size_t)m->T * sizeof(int32_t));
    m->blocks = xcalloc((size_t)part->n_layers, sizeof *m->blocks);
    Table t = table_of(m);
    m->params_info = t.p;
    m->n_params = t.n;
    m->unwritten = xcalloc((size_t)t.n, 1);
    m->n_elems = t.elems;
    pad_to = pad_to ? pad_to : 1;
    m->n_padded = (t.elems + pad_to - 1) / pad_to * pad_to;
    m->state_elems = (size_t)B * m->Gl * 2 + (size_t)B * m->Dl * d->N * 2;
    m->slots = xcalloc((size_t)n_slots, sizeof *m->slots);
    for (int s = 0; s < n_slots; s++) {
        m->slots[s].x = xcalloc((size_t)part->n_layers + 1, sizeof(void *));
        m->slots[s].acts = xcalloc((size_t)part->n_layers, sizeof(BlockActs));
    }
}

void model_unshape(Model *m)
{
    for (int s = 0; s < m->n_slots; s++) {
        free(m->slots[s].x);
        free(m->slots[s].acts);
    }
    free(m->slots);
    free(m->blocks);
    free(m->params_info);
    free(m->unwritten);
    free(m->batch_host);
    memset(m, 0, sizeof *m);
}

ModelBytes model_measure(Model *m)
{
    Arena a = {0};
    layout(m, &a);
    return a.bytes;
}

size_t model_bytes_total(const ModelBytes *b) { return b->params + b->grads + b->acts + b->backward; }

void model_create(Model *m, const ModelDims *d, const ModelPart *part, const Ops *ops, int B, int L, int recompute,
                  int n_slots, size_t pad_to)
{
    model_shape(m, d, part, ops, B, L, recompute, n_slots, pad_to);
    ModelBytes b = model_measure(m);
    Arena a = {.base = ops->alloc(model_bytes_total(&b))};
    layout(m, &a);
}

void model_free(Model *m)
{
    m->ops->release(m->params_act); /* the arena starts with the parameters */
    model_unshape(m);
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

/* f_j = D^(-j/D), j = 1..D, permuted over channels (Fisher-Yates from the key): channel c gets
   f_(perm[c] + 1) */
static int64_t *theta_permutation(uint64_t key, int64_t D)
{
    int64_t *perm = xmalloc((size_t)D * sizeof *perm);
    for (int64_t i = 0; i < D; i++)
        perm[i] = i;
    for (int64_t i = D - 1; i > 0; i--) {
        int64_t j = (int64_t)(rng_u64(key, (uint64_t)i) % (uint64_t)(i + 1)), tmp = perm[i];
        perm[i] = perm[j];
        perm[j] = tmp;
    }
    return perm;
}

static void init_param(const Model *m, const ParamInfo *p, uint64_t seed, float *out)
{
    uint64_t key = rng_key(seed, p->name);
    int64_t *perm = p->init == INIT_CEMA_THETA ? theta_permutation(key, p->shape[0]) : NULL;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < p->numel; i++) {
        uint64_t g = (uint64_t)param_global_index(p, m->part.tp_rank, (int64_t)i);
        double v = 0;
        switch (p->init) {
        case INIT_ZERO:
            break;
        case INIT_NORMAL:
            v = p->std * rng_normal(key, g);
            break;
        case INIT_TRUNCATED:
            v = truncated_normal(key, g, p->std, p->clip);
            break;
        case INIT_CEMA_THETA: { /* stored as logit(f) so that sigmoid(theta) = f */
            double D = (double)p->shape[0], f = exp(-(double)(perm[g] + 1) * log(D) / D);
            v = log(f / (1.0 - f));
            break;
        }
        case INIT_CEMA_GAMMA: /* (D, N, 2): real parts N(0, 1), imaginary parts 0 */
            v = g % 2 ? 0.0 : p->std * rng_normal(key, g / 2);
            break;
        }
        out[i] = (float)v;
    }
    free(perm);
}

/* fp32 <-> the act dtype on the host: the backend holds no fp32 copy of the parameters */
static void host_to_act(Dtype t, void *dst, const float *src, size_t n)
{
    switch (t) {
    case DTYPE_BF16:
        util_f32_to_bf16(dst, src, n);
        break;
    case DTYPE_F64:
        for (size_t i = 0; i < n; i++)
            ((double *)dst)[i] = src[i];
        break;
    default:
        memcpy(dst, src, n * sizeof(float));
    }
}

static void host_from_act(Dtype t, float *dst, const void *src, size_t n)
{
    switch (t) {
    case DTYPE_BF16:
        util_bf16_to_f32(dst, src, n);
        break;
    case DTYPE_F64:
        for (size_t i = 0; i < n; i++)
            dst[i] = (float)((const double *)src)[i];
        break;
    default:
        memcpy(dst, src, n * sizeof(float));
    }
}

void model_params_from_host(Model *m, const float *host)
{
    void *act = xmalloc(m->n_elems * m->ops->act_size);
    host_to_act(m->ops->act, act, host, m->n_elems);
    m->ops->upload(m->params_act, act, m->n_elems * m->ops->act_size);
    free(act);
}

void model_params_to_host(const Model *m, float *host)
{
    void *act = xmalloc(m->n_elems * m->ops->act_size);
    m->ops->download(act, m->params_act, m->n_elems * m->ops->act_size);
    host_from_act(m->ops->act, host, act, m->n_elems);
    free(act);
}

void model_init_host(const Model *m, uint64_t seed, float *host)
{
    for (int i = 0; i < m->n_params; i++)
        init_param(m, &m->params_info[i], seed, host + m->params_info[i].offset);
}

void model_init_params(Model *m, uint64_t seed)
{
    float *host = xmalloc(m->n_elems * sizeof(float));
    model_init_host(m, seed, host);
    model_params_from_host(m, host);
    free(host);
}

/* ---- forward and backward ---- */

void model_set_batch(Model *m, int slot, const int32_t *tokens)
{
    int32_t *in = m->batch_host, *tg = m->batch_host + m->T;
    for (int b = 0; b < m->B; b++)
        for (int l = 0; l < m->L; l++) {
            in[b * m->L + l] = tokens[(size_t)b * (m->L + 1) + l];
            tg[b * m->L + l] = tokens[(size_t)b * (m->L + 1) + l + 1];
        }
    m->ops->upload(m->slots[slot].tokens, m->batch_host, 2 * (size_t)m->T * sizeof(int32_t));
}

int model_boundaries(const Model *m) { return m->part.n_layers + m->part.last; }

void *model_stage_input(Model *m, int slot) { return m->slots[slot].x[0]; }
const void *model_stage_output(const Model *m, int slot) { return m->slots[slot].x[m->part.n_layers]; }
void *model_output_grad(Model *m) { return m->dy; }
const void *model_input_grad(const Model *m) { return m->dy; }

/* compute copy / gradient of the parameter at element offset o */
#define P(o) ((const void *)((const char *)m->params_act + (o) * m->ops->act_size))
#define GR(o) (m->grads + (o))

/* The index of the parameter at offset o (the table is in offset order; none is empty) */
static int param_at(const Model *m, size_t o)
{
    int lo = 0, hi = m->n_params - 1;
    while (lo < hi) {
        const int mid = lo + (hi - lo + 1) / 2;
        if (m->params_info[mid].offset <= o)
            lo = mid;
        else
            hi = mid - 1;
    }
    if (m->n_params == 0 || m->params_info[lo].offset != o)
        fail("model: no parameter starts at offset %zu", o);
    return lo;
}

/* A backward op about to write the gradients of the n parameters at offsets o: GRAD_NEW when none
   was written since model_zero_grads (it overwrites them), else 0 (it adds; one not yet written,
   beside one that was, is zeroed first: model_inject_grad's) */
static int pnew_of(Model *m, int n, const size_t *o)
{
    int fresh = 0;
    for (int i = 0; i < n; i++)
        fresh += m->unwritten[param_at(m, o[i])];
    for (int i = 0; i < n && fresh; i++) {
        const ParamInfo *p = &m->params_info[param_at(m, o[i])];
        if (!m->unwritten[p - m->params_info])
            continue;
        if (fresh < n)
            m->ops->zero(GR(p->offset), p->numel * sizeof(float));
        m->unwritten[p - m->params_info] = 0;
        m->n_unwritten--;
    }
    return fresh == n ? GRAD_NEW : 0;
}
#define PNEW(...)                                                                                              \
    pnew_of(m, (int)(sizeof((const size_t[]){__VA_ARGS__}) / sizeof(size_t)), (const size_t[]){__VA_ARGS__})

/* state slots: block i (or n_layers for the final norm): TimestepNorm part, then CEMA part */
static float *st(const Model *m, float *base, int i) { return base + (size_t)i * m->state_elems; }
static float *st_h(const Model *m, float *base, int i) { return st(m, base, i) + (size_t)m->B * m->Gl * 2; }

/* The chunk boundary of state slot i: states come in when a piece precedes this one (pos0 > 0),
   go out when one follows (want_state_out), their gradients the other way. A forward rerun for
   backward (recomputing) writes no state out: what it sent stands. */
static ChunkState chunk_state(const Model *m, ModelSlot *sl, int i, int recomputing)
{
    const int in = m->pos0 > 0, out = m->want_state_out;
    return (ChunkState){.n0 = m->pos0,
                        .tsn_in = in ? st(m, sl->state_in, i) : NULL,
                        .h_in = in ? st_h(m, sl->state_in, i) : NULL,
                        .tsn_out = out && !recomputing ? st(m, sl->state_out, i) : NULL,
                        .h_out = out && !recomputing ? st_h(m, sl->state_out, i) : NULL,
                        .dtsn_in = in ? st(m, sl->dstate_in, i) : NULL,
                        .dh_in = in ? st_h(m, sl->dstate_in, i) : NULL,
                        .dtsn_out = out ? st(m, sl->dstate_out, i) : NULL,
                        .dh_out = out ? st_h(m, sl->dstate_out, i) : NULL};
}

/* ---- the exchanges with other ranks (parallel/tp.h, parallel/cp.h) ---- */

/* full (T, D) = the tp ranks' (T, Dl) pieces side by side */
static void gather(Model *m, void *full, const void *piece) { tp_gather(m->tp, m->ops, full, piece, m->T, m->Dl); }

/* piece (T, Dl) = this rank's columns of the sum over tp ranks of full (T, D) */
static void reduce_scatter(Model *m, void *piece, const void *full)
{
    tp_reduce_scatter(m->tp, m->ops, piece, full, m->T, m->Dl);
}

/* the first vocabulary id of this rank's slice (embedding and head rows) */
static int vocab0(const Model *m) { return m->part.tp_rank * m->vocab_l; }

/* Chunk states of slot i go to the next piece, their gradients to the previous one. */
static void state_recv(Model *m, ModelSlot *sl, int i)
{
    cp_recv_state(m->cp, st(m, sl->state_in, i), m->state_elems, m->part.layer0 + i);
}

static void state_send(Model *m, ModelSlot *sl, int i)
{
    cp_send_state(m->cp, st(m, sl->state_out, i), m->state_elems, m->part.layer0 + i);
}

static void dstate_recv(Model *m, ModelSlot *sl, int i)
{
    cp_recv_grad(m->cp, st(m, sl->dstate_out, i), m->state_elems, m->part.layer0 + i);
}

static void dstate_send(Model *m, ModelSlot *sl, int i)
{
    cp_send_grad(m->cp, st(m, sl->dstate_in, i), m->state_elems, m->part.layer0 + i);
}

static CemaParams cema_params(const Model *m, const BlockParams *b)
{
    return (CemaParams){P(b->alpha), P(b->delta), P(b->theta), P(b->gamma), P(b->omega)};
}

/* q and k (with their norm's rstd) from the shared projection zs: per-head norm, affine, RoPE */
static void block_qk(Model *m, const BlockParams *b, const BlockActs *s)
{
    const ModelDims *d = &m->d;
    m->ops->qk_forward(s->q, s->k, s->qk_rstd, s->zs, P(b->qk_gamma), P(b->qk_beta), m->B, m->L, m->Hl, d->Z / d->H,
                       d->C, d->rope_base, d->eps);
}

/* recomputing: rerun for backward (no state exchange, states already in place) */
static void block_forward(Model *m, ModelSlot *sl, int i, int recomputing)
{
    const Ops *ops = m->ops;
    const ModelDims *d = &m->d;
    const BlockParams *b = &m->blocks[i];
    BlockActs *s = &sl->acts[i];
    const int B = m->B, L = m->L, T = m->T, D = d->D, Dl = m->Dl, Zl = m->Zl, Vl = m->Vl, Fl = m->Fl;
    const size_t TV = (size_t)T * Vl;
    const void *x = sl->x[i];
    void *y = sl->x[i + 1];
    const ChunkState cs = chunk_state(m, sl, i, recomputing);
    if (!recomputing)
        state_recv(m, sl, i);

    /* attention sub-layer (spec section 2, steps 1-11) */
    ops->tsnorm_forward(s->xhat, s->tsn_mean, s->tsn_rstd, x, P(b->tsn_w), P(b->tsn_b), cs, B, L, Dl, m->Gl, d->eps);
    ops->cema_forward(s->cema, s->cema_saved, s->xhat, cema_params(m, b), cs, B, L, Dl, d->N);
    if (!recomputing)
        state_send(m, sl, i);
    gather(m, s->cema_full, s->cema);
    gather(m, s->xhat_full, s->xhat);
    ops->rmsnorm_forward(s->m, s->rms, s->cema_full, P(b->rms_w), T, D, d->eps);
    ops->matmul_forward(s->zs, s->m, P(b->wz), P(b->bz), NULL, T, D, Zl);
    block_qk(m, b, s);
    ops->matmul_forward(s->av, s->xhat_full, P(b->wv), P(b->bv), NULL, T, D, Vl); /* value from the TimestepNorm */
    ops->silu_forward(s->vv, s->av, TV);
    ops->matmul_forward(s->ar, s->m, P(b->wr), P(b->br), NULL, T, D, Vl);
    if (m->cache) /* one token: q and k are at position 0 so far, the step rotates them */
        ops->attention_step(s->o, s->q, s->k, s->vv, m->cache->k[i], m->cache->v[i], (int)(m->pos0 % d->C), B, m->Hl,
                            d->Z / d->H, d->V / d->H, d->C, d->rope_base);
    else
        ops->attention_forward(s->o, s->lse, s->attn_saved, s->q, s->k, s->vv, B, L, m->Hl, d->Z / d->H, d->V / d->H,
                               d->C);
    ops->swiglu_forward(s->ro, s->ar, s->o, TV); /* r o = SiLU(ar) o: the gate r is never stored */
    /* yhat = x + m Wh1^T + bh1 + (r o) Wh2^T, the residual x read by the first GEMM */
    ops->matmul_forward(s->yhat, s->m, P(b->wh1), P(b->bh1), x, T, D, Dl);
    tp_row_forward(m->tp, ops, s->yhat, s->yhat, s->ro, P(b->wh2), T, Vl, Dl);

    /* FFN sub-layer (steps 12-14): normalises yhat, but the residual is the block input x */
    gather(m, s->yhat_full, s->yhat);
    ops->layernorm_forward(s->u, s->ln_mean, s->ln_rstd, s->yhat_full, P(b->ln_w), P(b->ln_b), T, D, d->eps);
    ops->matmul_forward(s->a1, s->u, P(b->w1), NULL, NULL, T, D, Fl);
    if (d->swiglu) {
        ops->matmul_forward(s->a3, s->u, P(b->w3), NULL, NULL, T, D, Fl);
        ops->swiglu_forward(s->p, s->a1, s->a3, (size_t)T * Fl);
    } else {
        ops->silu_forward(s->p, s->a1, (size_t)T * Fl);
    }
    if (recomputing) /* backward needs the activations, not the output (it is x[i + 1] already) */
        return;
    tp_row_forward(m->tp, ops, y, x, s->p, P(b->w2), T, Fl, Dl); /* y = x + p W2^T */
}

/* recompute elementwise: what the block's backward needs and did not keep, recomputed into the
   set all blocks share by the forward's own ops from what it kept, so the bits are the forward's.
   The gate products p and r o come back later, from the backward ops that read their inputs anyway
   (row_backward). */
static void block_recompute(Model *m, ModelSlot *sl, int i)
{
    const BlockActs *s = &sl->acts[i];
    block_qk(m, &m->blocks[i], s);
    m->ops->silu_forward(s->vv, s->av, (size_t)m->T * m->Vl);
}

/* The backward of out = inp W^T (row-parallel, W at offset w) in parts: ROW_DINP the input's
   gradient dinp, ROW_DW W's. Under elementwise recomputation inp (a gate product) is not there
   until the backward op between the two parts writes it again. ROW_DW alone follows ROW_DINP of
   the same dout with no tp op between, so with tp it reuses that call's gather of dout. */
enum { ROW_DINP = 1, ROW_DW = 2 };
static void row_backward(Model *m, int parts, void *dinp, size_t w, const void *dout, const void *inp, int IC, int OC)
{
    tp_row_backward(m->tp, m->ops, parts & ROW_DINP ? dinp : NULL, parts & ROW_DW ? GR(w) : NULL, P(w),
                    m->tp && !(parts & ROW_DINP) ? NULL : dout, inp, m->T, IC, OC, parts & ROW_DW ? PNEW(w) : 0);
}

/* dy: gradient of the block's output on entry, of its input on return: both residuals carry dy
   through, so the input's gradient is dy + dyhat + the TimestepNorm's, added in place once the FFN's
   backward has read dy. Every other gradient buffer's first contribution overwrites it and later
   ones add (the ops' accumulate argument), so nothing is zeroed. */
static void block_backward(Model *m, ModelSlot *sl, int i, void *dy)
{
    const Ops *ops = m->ops;
    const ModelDims *d = &m->d;
    const BlockParams *b = &m->blocks[i];
    const BlockActs *s = &sl->acts[i];
    const BlockGrads *g = &m->g;
    const int B = m->B, L = m->L, T = m->T, D = d->D, Dl = m->Dl, Zl = m->Zl, Vl = m->Vl, Fl = m->Fl;
    const size_t TDl = (size_t)T * Dl, TV = (size_t)T * Vl, TF = (size_t)T * Fl;
    const void *x = sl->x[i];
    const ChunkState cs = chunk_state(m, sl, i, 0);
    const int ew = m->recompute == RECOMPUTE_ELEMENTWISE;
    /* the gate products: kept, or written again by their backward ops before W2's and Wh2's gradients */
    const int first = ew ? ROW_DINP : ROW_DINP | ROW_DW;
    void *p_again = ew ? s->p : NULL, *ro_again = ew ? s->ro : NULL;
    if (ew)
        block_recompute(m, sl, i);

    /* FFN: y = x + p W2^T (row-parallel) */
    row_backward(m, first, g->dp, b->w2, dy, s->p, Fl, Dl);
    if (d->swiglu)
        ops->swiglu_backward(g->da1, g->da3, g->dp, s->a1, s->a3, TF, 0, p_again);
    else
        ops->silu_backward(g->da1, g->dp, s->a1, TF, 0, p_again);
    if (ew)
        row_backward(m, ROW_DW, NULL, b->w2, dy, s->p, Fl, Dl);
    if (d->swiglu)
        ops->matmul_backward(g->du, GR(b->w3), NULL, g->da3, s->u, P(b->w3), T, D, Fl, PNEW(b->w3));
    ops->matmul_backward(g->du, GR(b->w1), NULL, g->da1, s->u, P(b->w1), T, D, Fl,
                         (d->swiglu ? GRAD_ADD : 0) | PNEW(b->w1)); /* after W3's */
    /* du is a partial sum over tp ranks; LayerNorm's backward is linear in it */
    ops->layernorm_backward(g->dyhat_full, GR(b->ln_w), GR(b->ln_b), g->du, s->yhat_full, s->ln_mean, s->ln_rstd,
                            P(b->ln_w), T, D, PNEW(b->ln_w, b->ln_b));
    reduce_scatter(m, g->dyhat, g->dyhat_full);

    /* attention: yhat = x + m Wh1^T + bh1 + (r o) Wh2^T */
    ops->accumulate(dy, g->dyhat, TDl); /* dy is the input's gradient from here */
    ops->matmul_backward(g->dm, GR(b->wh1), GR(b->bh1), g->dyhat, s->m, P(b->wh1), T, D, Dl,
                         PNEW(b->wh1, b->bh1)); /* Wr, Wz add */
    row_backward(m, first, g->dro, b->wh2, g->dyhat, s->ro, Vl, Dl);
    ops->swiglu_backward(g->dar, g->do_, g->dro, s->ar, s->o, TV, 0, ro_again);
    if (ew)
        row_backward(m, ROW_DW, NULL, b->wh2, g->dyhat, s->ro, Vl, Dl);
    ops->attention_backward(g->dq, g->dk, g->dvv, g->do_, s->attn_saved, s->q, s->k, s->vv, s->o, s->lse, B, L, m->Hl,
                            d->Z / d->H, d->V / d->H, d->C, 0);
    ops->matmul_backward(g->dm, GR(b->wr), GR(b->br), g->dar, s->m, P(b->wr), T, D, Vl, GRAD_ADD | PNEW(b->wr, b->br));
    ops->silu_backward(g->dav, g->dvv, s->av, TV, 0, NULL);
    ops->matmul_backward(g->dxhat_full, GR(b->wv), GR(b->bv), g->dav, s->xhat_full, P(b->wv), T, D, Vl,
                         PNEW(b->wv, b->bv));
    ops->qk_backward(g->dzs, GR(b->qk_gamma), GR(b->qk_beta), g->dq, g->dk, s->zs, s->qk_rstd, P(b->qk_gamma), B, L,
                     m->Hl, d->Z / d->H, d->C, d->rope_base, PNEW(b->qk_gamma, b->qk_beta));
    ops->matmul_backward(g->dm, GR(b->wz), GR(b->bz), g->dzs, s->m, P(b->wz), T, D, Zl, GRAD_ADD | PNEW(b->wz, b->bz));
    /* dm is a partial sum over tp ranks; RMSNorm's backward is linear in it */
    ops->rmsnorm_backward(g->dcema_full, GR(b->rms_w), g->dm, s->cema_full, s->rms, P(b->rms_w), T, D,
                          PNEW(b->rms_w));
    reduce_scatter(m, g->dcema, g->dcema_full);
    reduce_scatter(m, g->dxhat, g->dxhat_full);
    dstate_recv(m, sl, i);
    CemaGrads cg = {GR(b->alpha), GR(b->delta), GR(b->theta), GR(b->gamma), GR(b->omega)};
    /* adds to the value path's dxhat */
    ops->cema_backward(g->dxhat, cg, g->dcema, s->cema_saved, s->xhat, cema_params(m, b), cs, B, L, Dl, d->N,
                       GRAD_ADD | PNEW(b->alpha, b->delta, b->theta, b->gamma, b->omega));
    ops->tsnorm_backward(dy, GR(b->tsn_w), GR(b->tsn_b), g->dxhat, x, s->tsn_mean, s->tsn_rstd, P(b->tsn_w), cs, B, L,
                         Dl, m->Gl, GRAD_ADD | PNEW(b->tsn_w, b->tsn_b));
    dstate_send(m, sl, i);
}

void model_forward(Model *m, int slot, float grad_scale)
{
    const Ops *ops = m->ops;
    const ModelDims *d = &m->d;
    ModelSlot *sl = &m->slots[slot];
    const int nl = m->part.n_layers;
    if (m->part.first) { /* each tp rank looks up the ids of its vocabulary slice; the sum has them all */
        void *full = m->tp ? m->emb_full : sl->x[0];
        ops->embedding_forward(full, sl->tokens, P(m->embed), m->T, d->D, vocab0(m), m->vocab_l,
                               d->scale_emb ? sqrtf((float)d->D) : 1.0f);
        reduce_scatter(m, sl->x[0], full);
    }
    for (int i = 0; i < nl; i++)
        block_forward(m, sl, i, 0);
    if (m->recompute == RECOMPUTE_BLOCKS)
        m->shared_slot = slot, m->shared_layer = nl - 1;
    if (!m->part.last)
        return;
    state_recv(m, sl, nl);
    ops->tsnorm_forward(sl->xf, sl->f_mean, sl->f_rstd, sl->x[nl], P(m->final_w), P(m->final_b),
                        chunk_state(m, sl, nl, 0), m->B, m->L, m->Dl, m->Gl, d->eps);
    state_send(m, sl, nl);
    /* head: each tp rank computes the logits of its vocabulary slice from every feature */
    gather(m, sl->xf_full, sl->xf);
    ops->matmul_forward(sl->logits, sl->xf_full, P(m->out), NULL, NULL, m->T, d->D, m->vocab_l);
    tp_crossentropy(m->tp, ops, m->loss, sl->logits, sl->targets, m->ce_stats, m->T, m->vocab_l, grad_scale);
}

/* the loss sum and flag at acc (backend), read back and cleared */
static double loss_read(Model *m, double *acc)
{
    double host[2];
    m->ops->download(host, acc, sizeof host);
    m->ops->zero(acc, sizeof host);
    if (host[1] != 0)
        fail("crossentropy: the target at token %.0f is outside the vocabulary of %d", host[1] - 1, m->d.vocab);
    return host[0];
}

double model_loss_take(Model *m) { return m->part.last ? loss_read(m, m->loss) : 0.0; }

void model_loss_clear(Model *m)
{
    if (m->part.last)
        m->ops->zero(m->loss, 2 * sizeof(double));
}

double model_loss(Model *m, int slot, const int32_t *targets)
{
    tp_crossentropy(m->tp, m->ops, m->loss + 2, m->slots[slot].logits, targets, m->ce_stats, m->T, m->vocab_l, 0.0f);
    return loss_read(m, m->loss + 2);
}

void model_backward(Model *m, int slot)
{
    const Ops *ops = m->ops;
    const ModelDims *d = &m->d;
    ModelSlot *sl = &m->slots[slot];
    const int nl = m->part.n_layers;
    if (m->part.last) { /* the head and the final norm write dxf and dy */
        ops->matmul_backward(m->g.dxf_full, GR(m->out), NULL, sl->logits, sl->xf_full, P(m->out), m->T, d->D,
                             m->vocab_l, PNEW(m->out));
        reduce_scatter(m, m->g.dxf, m->g.dxf_full);
        dstate_recv(m, sl, nl);
        ops->tsnorm_backward(m->dy, GR(m->final_w), GR(m->final_b), m->g.dxf, sl->x[nl], sl->f_mean, sl->f_rstd,
                             P(m->final_w), chunk_state(m, sl, nl, 0), m->B, m->L, m->Dl, m->Gl,
                             PNEW(m->final_w, m->final_b));
        dstate_send(m, sl, nl);
    }
    for (int i = nl - 1; i >= 0; i--) {
        if (m->recompute == RECOMPUTE_BLOCKS && !(m->shared_slot == slot && m->shared_layer == i))
            block_forward(m, sl, i, 1);
        m->shared_slot = -1;
        block_backward(m, sl, i, m->dy);
        if (m->grads_final)
            m->grads_final(m->grads_ctx, m->blocks[i].tsn_w);
    }
    if (m->part.first) {
        void *full = m->tp ? m->emb_full : m->dy;
        gather(m, full, m->dy);
        ops->embedding_backward(GR(m->embed), full, sl->tokens, m->T, d->D, vocab0(m), m->vocab_l,
                                d->scale_emb ? sqrtf((float)d->D) : 1.0f, PNEW(m->embed));
    }
    for (int i = 0; m->n_unwritten && i < m->n_params; i++)
        if (m->unwritten[i])
            fail("model: the backward wrote no gradient of %s (it would hold an earlier step's)",
                 m->params_info[i].name);
}

void model_zero_grads(Model *m)
{
    memset(m->unwritten, 1, (size_t)m->n_params);
    m->n_unwritten = m->n_params;
}

void model_inject_grad(Model *m, float value)
{
    const size_t first = 0;
    pnew_of(m, 1, &first); /* written: its backward adds */
    m->ops->zero(m->grads, m->params_info[0].numel * sizeof(float));
    m->ops->upload(m->grads, &value, sizeof value);
}
