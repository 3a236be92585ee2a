/* ops.h: the compute interface. The model graph (src/model.c) calls compute only through an Ops
   table, so the CPU reference (fp32), its float64 twin for gradient checks, and the CUDA backend
   (bf16 activations, fp32 accumulation) run the same model code.

   Conventions, for every op:
   - Pointers are backend memory (host for the CPU backends, device for CUDA).
   - `void *` / `const void *` are activations and compute copies of parameters, in the backend's
     activation dtype (Ops.act); `float *` are fp32 (saved statistics, states, gradients of
     parameters, master weights, optimizer moments); `double *` are the cross-entropy's row
     statistics (the CPU reference sums the softmax in fp64); `int32_t *` are token ids.
   - Activations are row-major (B, L, features): token t = b*L + l, feature fastest. T = B*L.
   - Backward ops write gradients as their last argument says (GRAD_ADD, GRAD_NEW below). The
     gradients of their activation inputs (din, da, db, dinp, dx, du, dzs, attention's dq, dk,
     dvalue) are overwritten, or added to with GRAD_ADD: a tensor used twice gets its first
     contribution written and the second added. Parameter gradients are added to, or overwritten
     with GRAD_NEW: a step's first backward writes each and later ones (micro-batches, a tied
     tensor's second use) add. So no gradient buffer needs zeroing. Ops without parameters name
     the argument `accumulate` (GRAD_ADD or 0), ops with them `mode` (any of the two bits).
     The gradients of incoming chunk states (ChunkState's dtsn_in, dh_in) are always overwritten.
   - Linear weights are stored as in PyTorch, (out, in), and applied as y = x W^T + b.
   - Norm scales are applied as (1 + w) (spec: "+1" reparameterisation).
   - Feature vectors of Q/K (size Z = H*dz) and of values (V = H*dv) are head-major.
   - What crosses a chunk boundary (ChunkState) is fp32: TimestepNorm (B, G, 2) = [mean, var]
     per (b, g); CEMA hidden state (B, D, N, 2) = complex h as (re, im). NULL means "none": a
     fresh state in forward, no final state, a zero gradient in backward. */
#ifndef MEGATRAIN_OPS_H
#define MEGATRAIN_OPS_H

#include <stddef.h>
#include <stdint.h>

typedef enum { DTYPE_F32 = 0, DTYPE_F64 = 1, DTYPE_BF16 = 2 } Dtype;

/* A backward op's gradient mode (its last argument): bits */
enum {
    GRAD_ADD = 1, /* add to the activation inputs' gradients (else overwrite them) */
    GRAD_NEW = 2  /* overwrite the parameter gradients (else add to them) */
};

/* CEMA's parameters for one layer (compute copies, each in the act dtype). */
typedef struct {
    const void *alpha; /* (D, N)    p = sigmoid(alpha) */
    const void *delta; /* (D, N)    damping sigmoid(delta) */
    const void *theta; /* (D)       base angle sigmoid(theta) * 2 pi / N */
    const void *gamma; /* (D, N, 2) complex output projection, g = gamma / sqrt(N) */
    const void *omega; /* (D)       real skip weight */
} CemaParams;

/* Their gradients (fp32). */
typedef struct {
    float *alpha, *delta, *theta, *gamma, *omega;
} CemaGrads;

/* The state that crosses a chunk boundary at one TimestepNorm and the CEMA after it (spec section
   12), for a piece of B sequences that may follow an earlier piece and precede a later one: where
   it starts, where it ends, and their gradients. TimestepNorm uses n0 and the tsn members, CEMA
   the h members. */
typedef struct {
    int64_t n0;                     /* timesteps before the piece: TimestepNorm's running count */
    const float *tsn_in, *h_in;     /* (B, G, 2), (B, D, N, 2): the states the piece starts from */
    float *tsn_out, *h_out;         /* the same at its end (forward writes them) */
    float *dtsn_in, *dh_in;         /* gradients of the incoming states (backward writes them) */
    const float *dtsn_out, *dh_out; /* gradients of the final states (backward reads them) */
} ChunkState;

typedef struct Ops {
    const char *name; /* "cpu", "cpu64", "cuda" */
    Dtype act;        /* activation and compute-parameter dtype */
    size_t act_size;  /* bytes per activation element */
    int on_device;    /* buffers live in device memory (not host-addressable) */

    /* ---- memory (called at start-up and for I/O, never per step in the hot loop) ---- */
    void *(*alloc)(size_t bytes); /* zero-filled */
    void (*release)(void *p);
    void (*upload)(void *dst, const void *host_src, size_t bytes);
    void (*download)(void *host_dst, const void *src, size_t bytes);
    void (*zero)(void *p, size_t bytes);
    void (*sync)(void);
    /* fp32 backend array <-> act dtype backend array (n elements); dst may alias src when the
       act dtype is fp32 */
    void (*f32_to_act)(void *dst, const float *src, size_t n);
    void (*act_to_f32)(float *dst, const void *src, size_t n);
    /* fp32 backend array <-> bf16 (n elements, round to nearest even), whatever the act dtype:
       the gradients' wire format under parallel.grad_reduce_dtype: bf16 */
    void (*f32_to_bf16)(void *dst, const float *src, size_t n);
    void (*bf16_to_f32)(float *dst, const void *src, size_t n);

    /* ---- elementwise (n elements of act dtype) ---- */
    void (*copy)(void *dst, const void *src, size_t n);
    void (*accumulate)(void *dst, const void *src, size_t n); /* dst += src */
    void (*silu_forward)(void *out, const void *in, size_t n);
    /* refwd (may be NULL): the forward's output written too, its bits (a backward that recomputes
       it reads the inputs once) */
    void (*silu_backward)(void *din, const void *dout, const void *in, size_t n, int accumulate, void *refwd);
    /* out = silu(a) * b (SwiGLU gate) */
    void (*swiglu_forward)(void *out, const void *a, const void *b, size_t n);
    void (*swiglu_backward)(void *da, void *db, const void *dout, const void *a, const void *b, size_t n,
                            int accumulate, void *refwd);

    /* ---- tensor-parallel layout: between n blocks (n, T, w) and rows (T, n * w) (pure copies) ---- */
    void (*join_columns)(void *dst, const void *src, int n, int T, int w);
    void (*split_columns)(void *dst, const void *src, int n, int T, int w);

    /* ---- embedding over a slice of the vocabulary (tensor parallelism splits it): table (V, D)
       holds the rows of ids v0 .. v0 + V - 1; out (T, D) = table[tok - v0] * scale for the tokens
       in the slice and 0 for the others; backward adds only those tokens' rows (GRAD_NEW: to a
       zeroed table) ---- */
    void (*embedding_forward)(void *out, const int32_t *tok, const void *table, int T, int D, int v0, int V,
                              float scale);
    void (*embedding_backward)(float *dtable, const void *dout, const int32_t *tok, int T, int D, int v0, int V,
                               float scale, int mode);

    /* ---- linear: out (T, OC) = res + inp (T, IC) w^T (w: (OC, IC)) + bias (OC, may be NULL); res
       (T, OC) may be NULL (nothing added), out itself (add to it) or another buffer, as a residual
       (one pass: no copy of it into out first) ---- */
    void (*matmul_forward)(void *out, const void *inp, const void *w, const void *bias, const void *res, int T, int IC,
                           int OC);
    /* dinp (T, IC) = dout w, or += with GRAD_ADD; dw += dout^T inp; dbias += colsum(dout); = instead
       of += with GRAD_NEW. dinp or dw may be NULL (that product is skipped); dbias may be NULL and is
       computed only with dw */
    void (*matmul_backward)(void *dinp, float *dw, float *dbias, const void *dout, const void *inp, const void *w,
                            int T, int IC, int OC, int mode);

    /* ---- RMSNorm over D: y = x / sqrt(mean(x^2) + eps) * (1 + w); rrms (T) saved ---- */
    void (*rmsnorm_forward)(void *y, float *rrms, const void *x, const void *w, int T, int D, float eps);
    void (*rmsnorm_backward)(void *dx, float *dw, const void *dy, const void *x, const float *rrms, const void *w,
                             int T, int D, int mode);

    /* ---- LayerNorm over D: y = (x - mean) * rstd * (1 + w) + b; mean, rstd (T) saved ---- */
    void (*layernorm_forward)(void *y, float *mean, float *rstd, const void *x, const void *w, const void *b, int T,
                              int D, float eps);
    void (*layernorm_backward)(void *dx, float *dw, float *db, const void *dy, const void *x, const float *mean,
                               const float *rstd, const void *w, int T, int D, int mode);

    /* ---- TimestepNorm (spec section 4): x, y (B, L, D), G groups of D/G channels.
       Running state starts from (chunk.n0, chunk.tsn_in) -- n0 timesteps already seen and their
       [mean, var] (ignored when n0 == 0 or tsn_in is NULL: a fresh start). Saves the
       per-timestep mean and rstd (B, L, G); writes the final [mean, var] to chunk.tsn_out when it
       is not NULL. ---- */
    void (*tsnorm_forward)(void *y, float *mean, float *rstd, const void *x, const void *w, const void *b,
                           ChunkState chunk, int B, int L, int D, int G, float eps);
    /* takes chunk.dtsn_out (the gradient of tsn_out, or NULL) and writes chunk.dtsn_in when it is
       not NULL */
    void (*tsnorm_backward)(void *dx, float *dw, float *db, const void *dy, const void *x, const float *mean,
                            const float *rstd, const void *w, ChunkState chunk, int B, int L, int D, int G,
                            int mode);

    /* ---- CEMA (spec section 3): u, y (B, L, D); states (B, D, N, 2).
       y = causal EMA of u along L per channel + omega * u, from the hidden state chunk.h_in (NULL:
       zero); chunk.h_out gets the final hidden state when it is not NULL. saved (cema_saved_size
       bytes, the backend's own layout) keeps hidden states the backward would otherwise compute
       again; NULL, or a size of 0, keeps none. ---- */
    size_t (*cema_saved_size)(int B, int L, int D);
    void (*cema_forward)(void *y, void *saved, const void *u, CemaParams p, ChunkState chunk, int B, int L, int D,
                         int N);
    /* takes chunk.dh_out (the gradient of h_out, or NULL) and writes chunk.dh_in when it is not
       NULL; saved as the forward left it (same u, parameters and chunk.h_in), or NULL */
    void (*cema_backward)(void *du, CemaGrads g, const void *dy, const void *saved, const void *u, CemaParams p,
                          ChunkState chunk, int B, int L, int D, int N, int mode);

    /* ---- Q/K (spec section 2 steps 4, 5, 8): zs (B, L, Z = H*dz) -> per-head RMS norm (rstd
       (B, L, H) saved), affine q = zn (1 + gamma[0]) / sqrt(dz) + beta[0] (k with row 1),
       then RoPE at position (l mod C) with the given base. gamma, beta: (2, Z). ---- */
    void (*qk_forward)(void *q, void *k, float *rstd, const void *zs, const void *gamma, const void *beta, int B,
                       int L, int H, int dz, int C, float rope_base, float eps);
    /* dq, dk are clobbered (used as scratch). */
    void (*qk_backward)(void *dzs, float *dgamma, float *dbeta, void *dq, void *dk, const void *zs,
                        const float *rstd, const void *gamma, int B, int L, int H, int dz, int C, float rope_base,
                        int mode);

    /* ---- chunk-local causal attention (spec section 5), scale 1: q, k (B, L, H*dz);
       v, o (B, L, H*dv); chunks of C along L (one chunk when L <= C); lse (B, H, L) fp32 saved
       (log-sum-exp of each score row). saved (attention_saved_size bytes, the backend's own layout)
       keeps the probabilities the backward would otherwise compute again; NULL, or a size of 0,
       keeps none. The backward's results are the same bits either way. ---- */
    size_t (*attention_saved_size)(int B, int L, int H, int C);
    void (*attention_forward)(void *o, float *lse, void *saved, const void *q, const void *k, const void *v, int B,
                              int L, int H, int dz, int dv, int C);
    /* saved as the forward left it (same q, k), or NULL */
    void (*attention_backward)(void *dq, void *dk, void *dvalue, const void *dout, const void *saved, const void *q,
                               const void *k, const void *v, const void *o, const float *lse, int B, int L, int H,
                               int dz, int dv, int C, int accumulate);
    /* ---- one token of recurrent decoding (spec section 13): q, k (B, H*dz) as qk_forward gives
       them at position 0 (not rotated), v (B, H*dv); kcache (B, C, H*dz) and vcache (B, C, H*dv)
       hold rows 0..pos-1 of the current chunk (keys rotated). Rotates q and k to position pos
       (0 <= pos < C), writes k and v into row pos of the caches, and o (B, H*dv) = causal softmax
       attention of q over rows 0..pos, scale 1: the row of attention_forward for that token. ---- */
    void (*attention_step)(void *o, const void *q, const void *k, const void *v, void *kcache, void *vcache, int pos,
                           int B, int H, int dz, int dv, int C, float rope_base);

    /* ---- cross-entropy over a vocabulary cut into n equal slices (tensor parallelism; n = 1: the
       whole vocabulary), the rank of a slice holding its logits (T, V), ids v0 .. v0 + V - 1.
       crossentropy_stats writes the slice's statistics of each row to stats (T, 3) fp64: the
       max logit, the sum of exp(logit - max), and the target's logit when the slice holds the
       target, else 0. crossentropy takes every slice's statistics, all (n, T, 3) in slice
       order, and adds the sum over tokens of -log softmax(logits)[target] (the same from every
       slice) to loss[0]; when grad_scale != 0 it overwrites the slice's logits with
       grad_scale * d(sum)/d(logits). A target < 0 is ignored (no loss, zero gradient); one at or
       above n V is an error, which sets loss[1] to 1 + its token. loss (2) is fp64 in backend
       memory, so the loss of a step is read once, after it (src/model.c: model_loss_take). ---- */
    void (*crossentropy_stats)(double *stats, const void *logits, const int32_t *targets, int T, int V, int v0);
    void (*crossentropy)(double *loss, void *logits, const int32_t *targets, const double *all, int n, int T, int V,
                         int v0, float grad_scale);

    /* ---- optimizer ---- */
    /* sum of squares of n fp32 values, fp64 on the host */
    double (*sumsq)(const float *x, size_t n);
    /* AdamW with decoupled weight decay on n fp32 master weights, moments m, v, gradient times
       grad_scale (clipping and averaging folded in), bias-corrected at step t >= 1; also refreshes
       the compute copy param_act (which may alias param when the act dtype is fp32). */
    void (*adamw)(float *param, void *param_act, const float *grad, float *m, float *v, size_t n, float lr,
                  float beta1, float beta2, float eps, float weight_decay, int step, float grad_scale);

    /* ---- optional: NULL where a backend has none ---- */
    /* the most backend memory (bytes) held at once so far: allocations plus the backend's own
       scratch (CUDA); for the metrics' peak memory */
    size_t (*peak_memory)(void);
    /* the device's total memory in bytes (what the memory plan must fit) */
    size_t (*device_memory)(void);
    /* the bytes of the backend's own scratch a training step grows for micro-batches of B
       sequences of L tokens in chunks of C, D channels and G groups (kernels/scratch.h); for the
       memory plan, so also in the table ops_describe gives */
    size_t (*scratch_plan)(int B, int L, int C, int D, int G);
    /* use the local_rank-th device of the node (before any other call; several ranks per node) */
    void (*select_device)(int local_rank);
    /* the stream every op of the backend runs on (a cudaStream_t), for communication and timing
       to order their own streams and events against */
    void *(*stream)(void);
    /* The work fn(ctx) queues, run as one graph: directly on the first call (what grows on first
       use settles), captured on the second and replayed from then on, captured again when the
       backend's scratch has moved (CUDA graphs: one launch instead of hundreds). fn must queue
       the same work every time, with no upload, download, sync, alloc or release inside (the CPU
       backends run fn directly, make no graph, and fail on any of those). *graph starts NULL;
       graph_free releases what graph_run made. */
    void (*graph_run)(void **graph, void (*fn)(void *ctx), void *ctx);
    void (*graph_free)(void *graph);
} Ops;

/* The backends built into this binary; NULL when absent (CUDA without --with-cuda or no GPU). */
const Ops *ops_cpu(void);   /* fp32 reference */
const Ops *ops_cpu64(void); /* the same code in float64, for gradient checks */
const Ops *ops_cuda(void);
const char *ops_cuda_missing(void); /* ops_missing("cuda") */
#define OPS_NO_CUDA "this megatrain was built without CUDA (configure --with-cuda)"
/* By name ("cpu", "cpu64", "cuda"); NULL if unknown or not built. */
const Ops *ops_get(const char *name);
/* Why ops_get(name) is NULL, for the user: not built, or for "cuda" no GPU visible (with the CUDA
   runtime's reason and CUDA_VISIBLE_DEVICES). */
const char *ops_missing(const char *name);
/* What memory plans need of a backend, built or not: its name, act dtype and size and whether its
   memory is a device's. "cuda" is a table with only those set (never the device's own, which
   would touch the GPU); the CPU backends are their tables. NULL if unknown. */
const Ops *ops_describe(const char *name);

#endif
