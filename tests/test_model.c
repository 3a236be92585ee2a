/* test_model.c: the whole model on the CPU backends.
   1. Parameter table: names unique, count = model_param_count, preset sizes as spec section 8.
   2. Finite differences (float64 twin, ops_cpu64) of the loss against the analytic gradient of
      every parameter tensor, on a tiny config with several chunks, both FFN kinds.
   3. Chunk split (what chunk parallelism relies on, spec section 12): running a sequence as two
      pieces, carrying every TimestepNorm and CEMA state forward and their gradients backward,
      gives the whole sequence's logits, loss and parameter gradients; the state gradients sent
      backward match finite differences of the loss in the incoming state.
   4. Initialisation does not depend on the batch size or the backend.
   5. Recomputation (train.recompute) changes what is kept, not what is computed: with two
      micro-batch slots in flight, elementwise and blocks give the losses and gradients of none
      bit for bit, both FFN kinds. (The finite differences of 2 run blocks with swiglu and
      elementwise with silu.) */
#include "kernels/ops.h"
#include "src/config.h"
#include "src/model.h"
#include "base/util.h"
#include "tests/tap.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* a forward's summed loss, read back at once */
static double forward_loss(Model *m, int slot, float grad_scale)
{
    model_forward(m, slot, grad_scale);
    return model_loss_take(m);
}

static ModelDims tiny(int swiglu)
{
    return (ModelDims){.vocab = 24, .n_layers = 2, .D = 16, .H = 2, .Z = 8, .V = 12, .F = 20, .C = 4, .G = 4,
                       .N = 3, .swiglu = swiglu, .scale_emb = swiglu, .share_emb = swiglu,
                       .rope_base = 10000.0f, .eps = 1e-5f};
}

/* Parameters away from any special point: the init plus noise (zero-initialised tensors too). */
static void perturb_params(Model *m, uint64_t seed)
{
    float *h = xmalloc(m->n_elems * sizeof(float));
    model_params_to_host(m, h);
    for (size_t i = 0; i < m->n_elems; i++)
        h[i] += (float)(0.2 * rng_normal(seed, i));
    model_params_from_host(m, h);
    free(h);
}

static void random_tokens(int32_t *t, size_t n, int vocab, uint64_t seed)
{
    for (size_t i = 0; i < n; i++)
        t[i] = (int32_t)(rng_u64(seed, i) % (uint64_t)vocab);
}

/* the whole model on one rank, one slot */
static void create(Model *m, const ModelDims *d, const Ops *ops, int B, int L, int recompute)
{
    ModelPart part = model_part(d, 1, 0, 1, 0);
    model_create(m, d, &part, ops, B, L, recompute, 1, 1);
}

static double act_get(const Model *m, const void *buf, size_t i)
{
    return m->ops->act == DTYPE_F64 ? ((const double *)buf)[i] : ((const float *)buf)[i];
}

static void test_table(void)
{
    for (int sw = 0; sw < 2; sw++) {
        ModelDims d = tiny(sw);
        Model m;
        create(&m, &d, ops_cpu(), 2, 8, 0);
        int unique = 1;
        for (int i = 0; i < m.n_params; i++)
            for (int j = i + 1; j < m.n_params; j++)
                unique &= strcmp(m.params_info[i].name, m.params_info[j].name) != 0;
        tap_check(unique, "parameter names are unique (%s)", sw ? "swiglu, tied" : "silu, untied");
        tap_check((int64_t)m.n_elems == model_param_count(&d), "table holds model_param_count = %lld elements",
                  (long long)model_param_count(&d));
        model_free(&m);
    }
    /* spec section 8, vocab 32000: 0.22B, 1.34B, 7.12B, 7.39B */
    const struct {
        const char *preset;
        double billions;
    } sizes[] = {{"mega200M", 0.22}, {"mega1.3B", 1.34}, {"mega7.1B", 7.12}, {"mega7.3B", 7.39}};
    for (int i = 0; i < 4; i++) {
        Config c;
        config_defaults(&c);
        char *preset = xasprintf("model.preset=%s", sizes[i].preset);
        config_set(&c, preset);
        free(preset);
        config_set(&c, "model.vocab_size=32000");
        config_set(&c, "data.seq_len=4096");
        config_finish(&c, 1, 0, 0);
        ModelDims d;
        model_dims_from_config(&d, &c);
        double b = (double)model_param_count(&d) / 1e9;
        tap_check(fabs(b - sizes[i].billions) < 0.006, "%s has %.3fB parameters (spec: %.2fB)", sizes[i].preset, b,
                  sizes[i].billions);
    }
}

/* Central differences in float64 on a few elements of every parameter tensor. */
static void test_gradcheck(int swiglu)
{
    ModelDims d = tiny(swiglu);
    const int B = 2, L = 12; /* three attention chunks of 4 */
    Model m;
    create(&m, &d, ops_cpu64(), B, L, swiglu ? RECOMPUTE_BLOCKS : RECOMPUTE_ELEMENTWISE);
    model_init_params(&m, 11);
    perturb_params(&m, 99 + swiglu);
    int32_t tok[2 * 13];
    random_tokens(tok, sizeof tok / sizeof tok[0], d.vocab, 5);
    model_set_batch(&m, 0, tok);
    const double ntok = B * L;
    model_zero_grads(&m);
    forward_loss(&m, 0, (float)(1.0 / ntok));
    model_backward(&m, 0);
    double *pa = m.params_act;
    const double h = 1e-5;
    double worst = 0, worst_abs = 0;
    for (int i = 0; i < m.n_params; i++) {
        const ParamInfo *p = &m.params_info[i];
        double num[4], ana[4];
        int n = p->numel < 4 ? (int)p->numel : 4;
        for (int k = 0; k < n; k++) {
            size_t e = p->offset + rng_u64(1234 + i, k) % p->numel;
            double keep = pa[e];
            pa[e] = keep + h;
            double lp = forward_loss(&m, 0, 0) / ntok;
            pa[e] = keep - h;
            double lm = forward_loss(&m, 0, 0) / ntok;
            pa[e] = keep;
            num[k] = (lp - lm) / (2 * h);
            ana[k] = m.grads[e];
        }
        /* |ana - num| <= 2e-6 |num| + 1e-8 (2-norms over the n elements). Measured with these
           seeds: relative error at most 3.7e-7 (layers.1.mega.wr.weight, swiglu; the analytic
           gradient is stored in fp32, 6e-8 relative), absolute at most 1.8e-8 where |num| = 0.5
           and 1.8e-9 where |num| = 3e-3; every |num| is above 6e-4. The 1e-8 floor is the fp64
           central difference's own error (truncation h^2 f'''/6 and rounding 1e-16 loss / h,
           both of order 1e-9 here), so a gradient whose true value is 0 is still checked. */
        double num_norm = 0, diff = 0;
        for (int k = 0; k < n; k++) {
            num_norm += num[k] * num[k];
            diff += (ana[k] - num[k]) * (ana[k] - num[k]);
        }
        num_norm = sqrt(num_norm);
        diff = sqrt(diff);
        worst = fmax(worst, diff / fmax(num_norm, 1e-300));
        worst_abs = fmax(worst_abs, diff);
        tap_check(diff <= 2e-6 * num_norm + 1e-8, "finite differences: %s (%s) |error| %.2e, |gradient| %.2e", p->name,
                  swiglu ? "swiglu" : "silu", diff, num_norm);
    }
    tap_diag("largest relative error %.2e, largest absolute error %.2e", worst, worst_abs);
    model_free(&m);
}

/* Copy the backend state slots (fp32 on every CPU backend). */
static void copy_states(float *dst, const float *src, const Model *m)
{
    memcpy(dst, src, (size_t)(m->d.n_layers + 1) * m->state_elems * sizeof(float));
}

static void test_split(const Ops *ops, double tol)
{
    ModelDims d = tiny(1);
    const int B = 2, L1 = 8, L = 2 * L1;
    Model whole, p1, p2;
    create(&whole, &d, ops, B, L, 0);
    create(&p1, &d, ops, B, L1, 0);
    create(&p2, &d, ops, B, L1, 0);
    ModelSlot *sw = &whole.slots[0], *s1 = &p1.slots[0], *s2 = &p2.slots[0];
    Model *ms[3] = {&whole, &p1, &p2};
    for (int i = 0; i < 3; i++) {
        model_init_params(ms[i], 21);
        perturb_params(ms[i], 77);
        model_zero_grads(ms[i]);
    }
    int32_t tok[2 * 17], t1[2 * 9], t2[2 * 9];
    random_tokens(tok, sizeof tok / sizeof tok[0], d.vocab, 8);
    for (int b = 0; b < B; b++) {
        memcpy(t1 + b * (L1 + 1), tok + b * (L + 1), (L1 + 1) * sizeof(int32_t));
        memcpy(t2 + b * (L1 + 1), tok + b * (L + 1) + L1, (L1 + 1) * sizeof(int32_t));
    }
    model_set_batch(&whole, 0, tok);
    model_set_batch(&p1, 0, t1);
    model_set_batch(&p2, 0, t2);
    const float gs = 1.0f / (float)(B * L);
    double lw = forward_loss(&whole, 0, 0), l1, l2;
    /* logits of the whole run, before the training forward overwrites them */
    size_t V = (size_t)d.vocab, nl = (size_t)B * L * V;
    double *logits_whole = xmalloc(nl * sizeof(double)), *logits_split = xmalloc(nl * sizeof(double));
    for (size_t i = 0; i < nl; i++)
        logits_whole[i] = act_get(&whole, sw->logits, i);
    p1.want_state_out = 1;
    l1 = forward_loss(&p1, 0, 0);
    p2.pos0 = L1;
    copy_states(s2->state_in, s1->state_out, &p1);
    l2 = forward_loss(&p2, 0, 0);
    for (int b = 0; b < B; b++)
        for (int l = 0; l < L; l++)
            for (size_t v = 0; v < V; v++) {
                const Model *p = l < L1 ? &p1 : &p2;
                logits_split[((size_t)b * L + l) * V + v] =
                    act_get(p, p->slots[0].logits, ((size_t)b * L1 + l % L1) * V + v);
            }
    double e = tap_relerr(logits_split, logits_whole, nl), el = fabs(l1 + l2 - lw) / fabs(lw);
    tap_check(e < tol, "%s: split logits match the whole sequence (relative error %.2e)", ops->name, e);
    tap_check(el <= tol, "%s: split loss %.9g matches %.9g (relative error %.2e)", ops->name, l1 + l2, lw, el);

    /* backward: whole; then piece 2, whose state gradients feed piece 1 */
    forward_loss(&whole, 0, gs);
    model_backward(&whole, 0);
    forward_loss(&p1, 0, gs);
    forward_loss(&p2, 0, gs);
    model_backward(&p2, 0);
    copy_states(s1->dstate_out, s2->dstate_in, &p2);
    model_backward(&p1, 0);
    double *gw = xmalloc(whole.n_elems * sizeof(double)), *gsum = xmalloc(whole.n_elems * sizeof(double));
    for (size_t i = 0; i < whole.n_elems; i++) {
        gw[i] = whole.grads[i];
        gsum[i] = (double)p1.grads[i] + p2.grads[i];
    }
    e = tap_relerr(gsum, gw, whole.n_elems);
    tap_check(e < tol, "%s: split parameter gradients match the whole sequence (relative error %.2e)", ops->name, e);
    free(gw);
    free(gsum);

    /* the state gradients piece 2 sends back, against finite differences of its loss in its
       incoming state (states are fp32: use the step the fp32 values actually took) */
    if (ops->act == DTYPE_F64) {
        const size_t tsn = (size_t)B * d.G * 2;
        const size_t picks[] = {0, 1, 5, tsn, tsn + 7, tsn + 30, p2.state_elems - 1, /* block 0 */
                                p2.state_elems + 3, p2.state_elems + tsn + 11,      /* block 1 */
                                2 * p2.state_elems + 2, 2 * p2.state_elems + 3};   /* final norm */
        double num[11], ana[11];
        for (int k = 0; k < 11; k++) {
            float *s = s2->state_in + picks[k], keep = *s;
            *s = keep + 1e-3f;
            float up = *s;
            double lp = forward_loss(&p2, 0, 0);
            *s = keep - 1e-3f;
            float dn = *s;
            double lm = forward_loss(&p2, 0, 0);
            *s = keep;
            num[k] = (lp - lm) * gs / ((double)up - dn);
            ana[k] = s2->dstate_in[picks[k]];
        }
        /* central differences with h = 1e-3 on fp32 states: truncation ~h^2 relative; measured
           4.2e-7, bound 2e-6 */
        e = tap_relerr(ana, num, 11);
        tap_check(e < 2e-6, "%s: state gradients sent backward match finite differences (relative error %.2e)",
                  ops->name, e);
    }
    free(logits_whole);
    free(logits_split);
    for (int i = 0; i < 3; i++)
        model_free(ms[i]);
}

/* A whole model on the CPU with two slots of 2 sequences of 12 tokens, its parameters the init
   plus noise, and two micro-batches of tokens (seeds tok_seed, tok_seed + 1) */
static void two_slot_model(Model *m, int swiglu, int recompute, uint64_t init_seed, int32_t tok[2][2 * 13],
                           uint64_t tok_seed)
{
    ModelDims d = tiny(swiglu);
    const ModelPart part = model_part(&d, 1, 0, 1, 0);
    random_tokens(tok[0], 2 * 13, d.vocab, tok_seed);
    random_tokens(tok[1], 2 * 13, d.vocab, tok_seed + 1);
    model_create(m, &d, &part, ops_cpu(), 2, 12, recompute, 2, 1);
    model_init_params(m, init_seed);
    perturb_params(m, init_seed + 1 + swiglu);
}

/* forward 0, forward 1, backward 1, backward 0, as a pipeline stage runs two micro-batches; each
   mode from the same parameters and tokens */
static void test_recompute(int swiglu)
{
    int32_t tok[2][2 * 13];
    Model m[RECOMPUTE_MODES];
    double loss[RECOMPUTE_MODES][2];
    for (int k = 0; k < RECOMPUTE_MODES; k++) {
        two_slot_model(&m[k], swiglu, k, 13, tok, 31);
        model_zero_grads(&m[k]);
        for (int s = 0; s < 2; s++) {
            model_set_batch(&m[k], s, tok[s]);
            loss[k][s] = forward_loss(&m[k], s, 1.0f / (float)m[k].T);
        }
        for (int s = 1; s >= 0; s--)
            model_backward(&m[k], s);
    }
    for (int k = 0; k < RECOMPUTE_MODES; k++)
        if (k != RECOMPUTE_NONE)
            tap_check(!memcmp(loss[k], loss[RECOMPUTE_NONE], sizeof loss[k]) &&
                          !memcmp(m[k].grads, m[RECOMPUTE_NONE].grads, m[k].n_elems * sizeof(float)),
                      "recompute %s (%s): the losses and gradients of none, bit for bit", config_recompute_name(k),
                      swiglu ? "swiglu" : "silu");
    for (int k = 0; k < RECOMPUTE_MODES; k++)
        model_free(&m[k]);
}

/* The first backward after model_zero_grads writes every parameter gradient (GRAD_NEW) and the
   next adds: two micro-batches onto a buffer of NaN give the sum of the two micro-batches' own
   gradients (each the only one of its step). A gradient left unwritten stays NaN; one the second
   micro-batch overwrote, or the first added to, is off by a whole micro-batch's part. share_emb
   (swiglu) writes the tied table twice in each. The sums round differently (each op adds its fp64
   partial sums to the fp32 gradient): measured 3e-8 relative, tolerance 1e-6. */
static void test_fresh_grads(int swiglu)
{
    int32_t tok[2][2 * 13];
    Model m;
    two_slot_model(&m, swiglu, RECOMPUTE_NONE, 17, tok, 41);
    const size_t n = m.n_elems;
    double *sum = xcalloc(n, sizeof(double)), *both = xmalloc(n * sizeof(double));
    for (int s = 0; s < 2; s++) { /* each micro-batch alone, onto what the other left */
        model_zero_grads(&m);
        model_set_batch(&m, s, tok[s]);
        forward_loss(&m, s, 1.0f / (float)m.T);
        model_backward(&m, s);
        for (size_t i = 0; i < n; i++)
            sum[i] += m.grads[i];
    }
    for (size_t i = 0; i < n; i++)
        m.grads[i] = NAN;
    model_zero_grads(&m);
    for (int s = 0; s < 2; s++)
        forward_loss(&m, s, 1.0f / (float)m.T);
    for (int s = 1; s >= 0; s--)
        model_backward(&m, s);
    for (size_t i = 0; i < n; i++)
        both[i] = m.grads[i];
    const double err = tap_relerr(both, sum, n);
    tap_check(err < 1e-6, "%s: two micro-batches' gradients onto NaN = the sum of each alone (rel err %.1e)",
              swiglu ? "swiglu, tied embedding" : "silu", err);
    free(sum);
    free(both);
    model_free(&m);
}

static void test_init_layout_free(void)
{
    ModelDims d = tiny(0);
    Model a, b;
    create(&a, &d, ops_cpu(), 1, 4, 0);
    create(&b, &d, ops_cpu64(), 3, 8, 1);
    model_init_params(&a, 5);
    model_init_params(&b, 5);
    float *ha = xmalloc(a.n_elems * sizeof(float)), *hb = xmalloc(b.n_elems * sizeof(float));
    model_params_to_host(&a, ha);
    model_params_to_host(&b, hb);
    tap_check(a.n_elems == b.n_elems && !memcmp(ha, hb, a.n_elems * sizeof(float)),
              "initialisation is independent of batch shape and backend");
    model_init_params(&b, 6);
    model_params_to_host(&b, hb);
    tap_check(memcmp(ha, hb, a.n_elems * sizeof(float)) != 0, "another seed gives other parameters");
    /* a tensor-parallel shard of the second stage initialises to its slice of the whole model */
    Model s;
    ModelPart part = model_part(&d, 2, 1, 2, 1);
    model_create(&s, &d, &part, ops_cpu(), 1, 4, 0, 1, 1);
    model_init_params(&s, 5);
    float *hs = xmalloc(s.n_elems * sizeof(float));
    model_params_to_host(&s, hs);
    int same = 1, n = 0;
    for (int i = 0; i < s.n_params; i++) {
        const ParamInfo *p = &s.params_info[i], *w = model_param(&a, p->name);
        same &= w != NULL;
        for (size_t e = 0; w && e < p->numel; e++, n++)
            same &= hs[p->offset + e] == ha[w->offset + param_global_index(p, 1, (int64_t)e)];
    }
    tap_check(same && n > 0, "a tp=2 shard of pipeline stage 2/2 initialises to its slice (%d values)", n);
    free(hs);
    model_free(&s);
    free(ha);
    free(hb);
    model_free(&a);
    model_free(&b);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    test_table();
    test_init_layout_free();
    test_gradcheck(0);
    test_gradcheck(1);
    test_recompute(0);
    test_recompute(1);
    test_fresh_grads(0);
    test_fresh_grads(1);
    /* fp64 compute, but the states that cross are fp32 (as in the repository, spec section 12):
       their rounding (relative 6e-8) bounds the difference; measured 6.4e-9 (logits) and 4.3e-8
       (gradients) */
    test_split(ops_cpu64(), 1e-7);
    /* fp32: the pieces reorder fp32 sums; measured 1.1e-7 (logits) and 1.8e-7 (gradients), a
       few ulps: 1e-6 leaves a margin of 5 */
    test_split(ops_cpu(), 1e-6);
    int rc = tap_done();
    MPI_Finalize();
    return rc;
}
