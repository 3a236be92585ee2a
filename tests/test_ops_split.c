/* test_ops_split.c: TimestepNorm and CEMA carry their state across a split of the sequence, as
   chunk parallelism uses them. Running L1 + L2 steps at once must equal running the first L1
   steps, feeding state_out (h_out) as state_in (h0) with n0 = L1 (more with a prior), then the
   remaining L2 steps; backward through the split (the second half's dstate_in (dh0) fed as the
   first half's dstate_out (dh_out)) must give the same input, parameter and state gradients.

   fp64 build. Tolerance 1e-6: the state crosses the split in fp32 (~6e-8 relative) and the
   parameter gradients are fp32, so the two paths differ by a few 1e-7 at most, while a wrong
   carry gives O(1) differences. */
#include "tests/tap.h"
#include "tests/ops_harness.h"

#define TOL 1e-6

/* an array (B, L, F) that is split along L */
typedef struct {
    const char *name;
    int F;
} Seq;

static const Seq *seq_find(const Seq *seqs, const char *name)
{
    for (; seqs->name; seqs++)
        if (!strcmp(seqs->name, name))
            return seqs;
    return NULL;
}

/* dst (B, len, F) <-> src[:, l0:l0+len, :] of a (B, L, F) array; to_part picks the direction */
static void seq_copy(double *part, double *whole, int B, int L, int F, int l0, int len, int to_part)
{
    for (int b = 0; b < B; b++) {
        double *p = part + (size_t)b * len * F, *w = whole + ((size_t)b * L + l0) * F;
        if (to_part)
            memcpy(p, w, (size_t)len * F * sizeof(double));
        else
            memcpy(w, p, (size_t)len * F * sizeof(double));
    }
}

/* Splits `full` into `a` (first L1 steps) and `b` (the rest), which have the same arguments but
   length L1 and L2; sin and sout name the state input and output. */
static void check_split(OpCase *full, OpCase *a, OpCase *b, const Seq *seqs, const char *sin, const char *sout)
{
    const Ops *o = ops_cpu64();
    const int B = full->B, L = full->L, L1 = a->L, L2 = b->L;
    for (int i = 0; i < full->nin; i++) {
        Arg *f = &full->in[i];
        const Seq *s = seq_find(seqs, f->name);
        if (s) {
            seq_copy(case_arg(a, 1, f->name)->val, f->val, B, L, s->F, 0, L1, 1);
            seq_copy(case_arg(b, 1, f->name)->val, f->val, B, L, s->F, L1, L2, 1);
        } else {
            memcpy(case_arg(a, 1, f->name)->val, f->val, f->n * sizeof(double));
            if (strcmp(f->name, sin))
                memcpy(case_arg(b, 1, f->name)->val, f->val, f->n * sizeof(double));
        }
    }
    for (int i = 0; i < full->nout; i++) {
        Arg *f = &full->out[i];
        const Seq *s = seq_find(seqs, f->name);
        if (s) {
            seq_copy(case_arg(a, 0, f->name)->grad, f->grad, B, L, s->F, 0, L1, 1);
            seq_copy(case_arg(b, 0, f->name)->grad, f->grad, B, L, s->F, L1, L2, 1);
        }
    }
    memcpy(case_arg(b, 0, sout)->grad, case_arg(full, 0, sout)->grad, case_arg(full, 0, sout)->n * sizeof(double));

    case_run(o, full, 0);
    case_forward(o, a);
    memcpy(case_arg(b, 1, sin)->val, case_arg(a, 0, sout)->val, case_arg(a, 0, sout)->n * sizeof(double));
    case_run(o, b, 0);
    memcpy(case_arg(a, 0, sout)->grad, case_arg(b, 1, sin)->grad, case_arg(a, 0, sout)->n * sizeof(double));
    case_backward(o, a, 0);
    case_release(o, a);

    /* outputs: sequences reassembled, the final state from b */
    for (int i = 0; i < full->nout; i++) {
        Arg *f = &full->out[i];
        const Seq *s = seq_find(seqs, f->name);
        double *got = xcalloc(f->n, sizeof(double));
        if (s) {
            seq_copy(case_arg(a, 0, f->name)->val, got, B, L, s->F, 0, L1, 0);
            seq_copy(case_arg(b, 0, f->name)->val, got, B, L, s->F, L1, L2, 0);
        } else {
            memcpy(got, case_arg(b, 0, f->name)->val, f->n * sizeof(double));
        }
        double err = tap_relerr(got, f->val, f->n);
        tap_check(err < TOL, "%s split %d+%d: %s as a whole (rel err %.1e)", full->name, L1, L2, f->name, err);
        free(got);
    }
    /* gradients: sequences reassembled, parameters summed, the initial state's from a */
    for (int i = 0; i < full->nin; i++) {
        Arg *f = &full->in[i];
        const Seq *s = seq_find(seqs, f->name);
        double *got = xcalloc(f->n, sizeof(double));
        if (s) {
            seq_copy(case_arg(a, 1, f->name)->grad, got, B, L, s->F, 0, L1, 0);
            seq_copy(case_arg(b, 1, f->name)->grad, got, B, L, s->F, L1, L2, 0);
        } else {
            for (size_t j = 0; j < f->n; j++)
                got[j] =
                    case_arg(a, 1, f->name)->grad[j] + (strcmp(f->name, sin) ? case_arg(b, 1, f->name)->grad[j] : 0);
        }
        double err = tap_relerr(got, f->grad, f->n);
        tap_check(err < TOL, "%s split %d+%d: d%s as a whole (rel err %.1e)", full->name, L1, L2, f->name, err);
        free(got);
    }
    case_free(full);
    case_free(a);
    case_free(b);
}

static void split_tsnorm(int B, int L1, int L2, int D, int G, int64_t n0)
{
    const Seq seqs[] = {{"x", D}, {"y", D}, {"mean", G}, {"rstd", G}, {NULL, 0}};
    check_split(tsnorm_case(B, L1 + L2, D, G, n0, 1), tsnorm_case(B, L1, D, G, n0, 1),
                tsnorm_case(B, L2, D, G, n0 + L1, 1), seqs, "state_in", "state_out");
}

static void split_cema(int B, int L1, int L2, int D, int N, int with_h0)
{
    const Seq seqs[] = {{"u", D}, {"y", D}, {NULL, 0}};
    check_split(cema_case(B, L1 + L2, D, N, with_h0, 1), cema_case(B, L1, D, N, with_h0, 1),
                cema_case(B, L2, D, N, 1, 1), seqs, "h0", "h_out");
}

int main(void)
{
    split_tsnorm(2, 4, 7, 8, 2, 0);
    split_tsnorm(2, 6, 5, 6, 3, 3);
    split_cema(2, 4, 7, 3, 4, 0);
    split_cema(2, 6, 5, 2, 5, 1);
    return tap_done();
}
