/* test_ops_grad.c: finite-difference checks of every op's backward on the float64 CPU backend.

   For each case, f = sum(R * outputs) with a random upstream gradient R (states included, see
   case_loss); every element of every input is perturbed by +-h and the central difference
   (f(x+h) - f(x-h)) / 2h is compared with the analytic gradient, norm-wise per input. Gradient
   buffers start out holding random values (case_backward's prefill), so an op that overwrites
   where it must accumulate, or the reverse (dh0, dstate_in), fails as well. An op whose backward
   takes `accumulate` is checked in both modes: accumulating (the random values must be added
   to) and overwriting (they must be ignored).

   Step and tolerance: h = 2^-20 (about 1e-6), a power of two above the fp32 spacing of the
   state values used (all below 2 in magnitude, spacing <= 2^-23), so the fp32 inputs are
   perturbed exactly (checked below). The central difference then has truncation error
   ~h^2 |f'''| ~ 1e-12 and rounding error ~1e-16 |f| / h ~ 1e-9 relative. The analytic side is
   limited by what the interface stores in fp32 even in the fp64 build: parameter gradients,
   the saved statistics (rrms, mean, rstd of the norms) and the states, each rounded at ~6e-8
   relative, which after a few operations gives errors up to a few 1e-7. Tolerance 1e-6 sits
   above both; a wrong term, index or sign gives errors of 1e-3 to 1. */
#include "tests/tap.h"
#include "tests/ops_harness.h"

#define FD_STEP (1.0 / (1 << 20))
#define FD_TOL 1e-6

static void check_grads(OpCase *c)
{
    const Ops *o = ops_cpu64();
    double *num[CASE_MAXARGS] = {0};
    for (int i = 0; i < c->nin; i++) {
        Arg *a = &c->in[i];
        if (a->flags & ARG_NOGRAD)
            continue;
        num[i] = xmalloc(a->n * sizeof(double));
        for (size_t j = 0; j < a->n; j++) {
            double x = a->val[j];
            if (a->kind == ARG_F32 && ((float)(x + FD_STEP) != x + FD_STEP || (float)(x - FD_STEP) != x - FD_STEP))
                fail("%s: %s[%zu] = %g +- h is not exact in fp32", c->name, a->name, j, x);
            a->val[j] = x + FD_STEP;
            double fp = case_loss(o, c);
            a->val[j] = x - FD_STEP;
            double fm = case_loss(o, c);
            a->val[j] = x;
            num[i][j] = (fp - fm) / (2 * FD_STEP);
        }
    }
    for (int pass = 0; pass < 3; pass++) {
        if (!case_pass(c, pass))
            continue;
        case_run(o, c, 1);
        for (int i = 0; i < c->nin; i++)
            if (num[i]) {
                double err = tap_relerr(c->in[i].grad, num[i], c->in[i].n);
                tap_check(err < FD_TOL, "%s%s: d%s matches finite differences (rel err %.1e)", c->name, case_mode(c),
                          c->in[i].name, err);
            }
    }
    for (int i = 0; i < c->nin; i++)
        free(num[i]);
    case_free(c);
}

int main(void)
{
    check_grads(elementwise_case("silu", 37));
    check_grads(elementwise_case("swiglu", 37));
    check_grads(embedding_case(9, 5, 4, 0, 4));
    check_grads(embedding_case(9, 5, 8, 2, 3));
    check_grads(matmul_case(6, 5, 7, 1, 1, 1));
    check_grads(matmul_case(6, 5, 7, 0, 0, 0));
    check_grads(norm_case(0, 5, 8));
    check_grads(norm_case(1, 5, 8));
    /* a prior of 3 timesteps with a state, in and out; a fresh start that still returns its state */
    check_grads(tsnorm_case(2, 6, 8, 2, 3, 1));
    check_grads(tsnorm_case(2, 5, 6, 3, 0, 1));
    check_grads(tsnorm_case(1, 4, 4, 1, 2, 0));
    check_grads(cema_case(2, 7, 3, 4, 1, 1));
    check_grads(cema_case(2, 6, 2, 3, 0, 0));
    /* RoPE positions restart in each of 3 chunks */
    check_grads(qk_case(2, 12, 2, 6, 4, 10000));
    /* several chunks and heads, dz != dv; one chunk shorter than C; a ragged last chunk */
    check_grads(attention_case(2, 12, 2, 4, 6, 4));
    check_grads(attention_case(1, 5, 2, 3, 2, 8));
    check_grads(attention_case(1, 10, 1, 4, 3, 4));
    check_grads(crossentropy_case(6, 9, 1));
    check_grads(crossentropy_case(6, 9, 3));
    return tap_done();
}
