/* model.h: the MEGALODON graph (spec sections 1-2), written once over the ops interface.
   Parameters live in one fp32 master buffer carved by a table of (name, global shape, split);
   gradients and AdamW moments mirror it; activations are allocated once at start-up.

   A Model instance computes one piece of B sequences of L tokens. For chunk parallelism a piece
   may be the continuation of an earlier one: then pos0 > 0 tokens come before it and every
   TimestepNorm and CEMA starts from the state in state_in; each piece leaves its final states in
   state_out and, in backward, takes their gradients in dstate_out and gives the gradients of its
   incoming states in dstate_in (spec section 12). */
#ifndef MEGATRAIN_MODEL_H
#define MEGATRAIN_MODEL_H

#include "kernels/ops.h"
#include "src/config.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int vocab, n_layers, D, H, Z, V, F, C, G, N;
    int swiglu, scale_emb, share_emb;
    float rope_base, eps;
} ModelDims;

typedef enum {
    INIT_ZERO,       /* biases, norm weights, Q/K affine */
    INIT_NORMAL,     /* N(0, std^2) */
    INIT_TRUNCATED,  /* N(0, std^2) truncated to [-clip, clip] */
    INIT_CEMA_THETA, /* logit of a permutation of D^(-j/D), j = 1..D */
    INIT_CEMA_GAMMA, /* real part N(0, 1), imaginary part 0 */
} InitKind;

#define PARAM_NAME 64
#define PARAM_MAXDIM 3

typedef struct {
    char name[PARAM_NAME];            /* spec section 16 */
    int ndim;
    int64_t shape[PARAM_MAXDIM];      /* global shape */
    int split;                        /* dimension split under tensor parallelism, -1: replicated */
    InitKind init;
    double std, clip;
    size_t offset, numel;             /* in this rank's buffers */
} ParamInfo;

/* Offsets (in elements) of one block's parameters in the parameter buffer. */
typedef struct {
    size_t tsn_w, tsn_b;                          /* (D) */
    size_t alpha, delta, theta, gamma, omega;     /* (D,N) (D,N) (D) (D,N,2) (D) */
    size_t rms_w;                                 /* (D) */
    size_t wz, bz, qk_gamma, qk_beta;             /* (Z,D) (Z) (2,Z) (2,Z) */
    size_t wv, bv, wr, br;                        /* (V,D) (V) (V,D) (V) */
    size_t wh1, bh1, wh2;                         /* (D,D) (D) (D,V) */
    size_t ln_w, ln_b;                            /* (D) */
    size_t w1, w3, w2;                            /* (F,D) (F,D, swiglu only) (D,F) */
} BlockParams;

/* What one block saves for its backward. */
typedef struct {
    void *xhat;              /* (T, D) TimestepNorm output */
    float *tsn_mean, *tsn_rstd; /* (B, L, G) */
    void *cema;              /* (T, D) CEMA output */
    void *m;                 /* (T, D) RMSNorm output */
    float *rms;              /* (T) */
    void *zs;                /* (T, Z) shared projection */
    float *qk_rstd;          /* (T, H) */
    void *q, *k;             /* (T, Z) after norm, affine, RoPE */
    void *av, *vv;           /* (T, V) value pre-activation and value */
    void *ar, *r;            /* (T, V) gate pre-activation and gate */
    void *o;                 /* (T, V) attention output */
    float *lse;              /* (B, H, L) */
    void *ro;                /* (T, V) r * o */
    void *yhat;              /* (T, D) attention sub-layer output plus residual */
    float *ln_mean, *ln_rstd; /* (T) */
    void *u;                 /* (T, D) LayerNorm output */
    void *a1, *a3, *p;       /* (T, F) FFN: W1 branch, W3 branch (swiglu), product */
} BlockActs;

/* Gradient scratch shared by all blocks in backward. */
typedef struct {
    void *dxhat, *dcema, *dm, *dyhat, *du;   /* (T, D) */
    void *dzs, *dq, *dk;                     /* (T, Z) */
    void *dvv, *dav, *dr, *dar, *do_, *dro; /* (T, V) */
    void *da1, *da3, *dp;                    /* (T, F) */
    void *dxf;                               /* (T, D) final norm output */
} BlockGrads;

typedef struct {
    ModelDims d;
    const Ops *ops;
    int B, L, T; /* sequences, tokens per sequence, B*L */
    int recompute;

    ParamInfo *params_info;
    int n_params;
    size_t n_elems;          /* parameter elements on this rank */
    BlockParams *blocks;     /* (n_layers) */
    size_t embed, out, final_w, final_b; /* out == embed when share_emb */

    float *params;      /* (n_elems) fp32 master */
    void *params_act;   /* (n_elems) compute copy, aliases params when the act dtype is fp32 */
    float *grads;       /* (n_elems) */
    float *adam_m, *adam_v; /* (n_elems) */

    int32_t *tokens, *targets; /* (T) */
    void **x;                  /* (n_layers + 1) x (T, D) residual stream at each block's input */
    BlockActs *acts;           /* (n_layers); all alias one set when recompute */
    void *xf;                  /* (T, D) final TimestepNorm output */
    float *f_mean, *f_rstd;    /* (B, L, G) */
    void *logits;              /* (T, vocab); holds d(loss)/d(logits) after a training forward */
    BlockGrads g;
    void *dx, *dy;             /* (T, D) residual gradient, ping-pong */

    /* chunk-boundary states, one slot per block and one for the final norm:
       [TimestepNorm (B, G, 2) | CEMA h (B, D, N, 2)] fp32 */
    int64_t pos0;           /* tokens of the sequence before this piece; > 0: states come in */
    int want_state_out;     /* compute the final states (a next piece exists) */
    size_t state_elems;     /* floats per slot */
    float *state_in, *state_out, *dstate_in, *dstate_out; /* (n_layers + 1) x state_elems */

    double loss_sum;        /* of the last forward */
} Model;

void model_dims_from_config(ModelDims *d, const Config *c);
/* Number of parameters of the whole model and FLOPs per token of one training step
   (6 x matmul parameters + attention score/value products; see doc/model.md). */
int64_t model_param_count(const ModelDims *d);
double model_flops_per_token(const ModelDims *d, int seq_len);

/* Lay out parameters, allocate every buffer once. */
void model_create(Model *m, const ModelDims *d, const Ops *ops, int B, int L, int recompute);
void model_free(Model *m);
/* Initialise parameters (spec sections 3 and 6) from the seed; depends on nothing else. */
void model_init_params(Model *m, uint64_t seed);
/* Parameter I/O through host fp32 arrays in table order. */
void model_params_to_host(const Model *m, float *host);
void model_params_from_host(Model *m, const float *host);
const ParamInfo *model_param(const Model *m, const char *name);

/* tokens: host (B, L + 1); inputs are columns 0..L-1, targets 1..L. */
void model_set_batch(Model *m, const int32_t *tokens);
/* Forward; returns the summed cross-entropy of the piece's tokens. grad_scale != 0 prepares
   backward with d(loss)/d(logits) = grad_scale * d(sum)/d(logits). */
double model_forward(Model *m, float grad_scale);
/* Backward of the last forward; accumulates into m->grads (zero them per step). */
void model_backward(Model *m);
void model_zero_grads(Model *m);

#endif
