/* test_ops_prec.c: the fp32 CPU backend (the reference that trains) against its fp64 twin on the
   same inputs (drawn as fp32 values), forward outputs, saved statistics and every gradient, at
   sizes where OpenMP and BLAS take their real paths (several threads' worth of rows, chunks,
   heads). The fp32 build runs on 3 OpenMP threads and the fp64 build on 1, so the per-thread
   partial sums and the work split are checked against the serial path too.

   Tolerance 1e-4 relative (norm-wise): fp32 rounding is 6e-8 per operation; these ops sum at most
   a few hundred terms per value (error growth up to ~1e-5 in the worst case, ~1e-6 typically)
   and are well conditioned at these random inputs (norm variances near 1, |q| < 1 in CEMA,
   scores of order 1 in attention), so a correct fp32 build lands near 1e-6. A build-specific
   slip (a float where a double belongs in the interface, a wrong stride, a type-size bug) gives
   O(1). */
#include "tests/tap.h"
#include "tests/ops_harness.h"

#include <omp.h>

#define TOL 1e-4

/* Runs a case on both builds (two identical instances, as the values depend only on the case's
   name) and compares every output and input gradient. */
static void compare(OpCase *(*make)(void))
{
    OpCase *c32 = make(), *c64 = make();
    omp_set_num_threads(3);
    case_run(ops_cpu(), c32, 1);
    omp_set_num_threads(1);
    case_run(ops_cpu64(), c64, 1);
    for (int i = 0; i < c64->nin + c64->nout; i++) {
        int input = i < c64->nin;
        Arg *a = input ? &c32->in[i] : &c32->out[i - c64->nin], *b = input ? &c64->in[i] : &c64->out[i - c64->nin];
        if (input && (a->flags & ARG_NOGRAD))
            continue;
        double err = tap_relerr(input ? a->grad : a->val, input ? b->grad : b->val, a->n);
        tap_check(err < TOL, "%s: %s%s fp32 = fp64 (rel err %.1e)", c64->name, input ? "d" : "", a->name, err);
    }
    case_free(c32);
    case_free(c64);
}

static OpCase *silu(void) { return elementwise_case("silu", 3000); }
static OpCase *swiglu(void) { return elementwise_case("swiglu", 3000); }
static OpCase *embedding(void) { return embedding_case(200, 48, 37, 0, 37); }
static OpCase *matmul(void) { return matmul_case(150, 96, 80, 1, 1, 1); }
static OpCase *rmsnorm(void) { return norm_case(0, 100, 96); }
static OpCase *layernorm(void) { return norm_case(1, 100, 96); }
static OpCase *tsnorm(void) { return tsnorm_case(3, 100, 64, 4, 0, 1); }
static OpCase *tsnorm_prior(void) { return tsnorm_case(2, 64, 32, 2, 64, 1); }
static OpCase *cema(void) { return cema_case(3, 100, 24, 8, 1, 1); }
static OpCase *qk(void) { return qk_case(2, 96, 2, 16, 32, 10000); }
static OpCase *attention(void) { return attention_case(2, 96, 2, 16, 24, 32); }
static OpCase *crossentropy(void) { return crossentropy_case(120, 97, 1); }

int main(void)
{
    compare(silu);
    compare(swiglu);
    compare(embedding);
    compare(matmul);
    compare(rmsnorm);
    compare(layernorm);
    compare(tsnorm);
    compare(tsnorm_prior);
    compare(cema);
    compare(qk);
    compare(attention);
    compare(crossentropy);
    return tap_done();
}
