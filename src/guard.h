/* guard.h: whether an optimizer step applies its update. Not when the loss or the global gradient
   norm is not finite, and optionally not when either spikes: more than a z-score threshold above
   the mean of the last `window` steps' values (llm.c's outlier detector). The caller makes every
   rank agree on the verdict. */
#ifndef MEGATRAIN_GUARD_H
#define MEGATRAIN_GUARD_H

typedef enum { GUARD_APPLY = 0, GUARD_NONFINITE, GUARD_LOSS_SPIKE, GUARD_GRAD_SPIKE } GuardVerdict;

typedef struct {
    int window, n, next; /* history length; values held (n <= window); ring slot of the next one */
    double *loss, *norm; /* (window) recent finite losses and gradient norms */
} Guard;

void guard_init(Guard *g, int window);
void guard_free(Guard *g);
/* The verdict on a step's mean loss and gradient norm; loss_z, grad_z: spike thresholds (0: off),
   which apply once the window is full. A finite pair then joins the window, skipped or not, so a
   lasting change of level is absorbed within a window instead of skipping every step. */
GuardVerdict guard_check(Guard *g, double loss, double norm, double loss_z, double grad_z);
/* "nonfinite", "loss_spike", "grad_spike" (for logs); NULL for GUARD_APPLY. */
const char *guard_name(GuardVerdict v);

#endif
