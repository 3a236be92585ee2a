/* model.h: the MEGALODON graph (spec sections 1-2), written once over the ops interface, for any
   part of the model a rank holds under the 4-D layout.

   Parameters live in one buffer of compute copies (the act dtype) carved by a table of (name,
   global shape, split); fp32 gradients mirror it. The fp32 master weights are the optimizer's
   (parallel/zero.h), each on the rank that updates it. Activations live in slots, one per
   micro-batch in flight (pipeline parallelism keeps several), all allocated once at start-up.

   A rank's part (ModelPart) is a tensor-parallel shard of a pipeline stage: D, G, Z, V, F and
   the heads are split tp ways as in spec section 7 (residual stream sharded on features; CEMA
   output, TimestepNorm output and the attention output gathered to full width where a full-width
   consumer needs them; W_h2 and W_2 row-parallel with a reduce-scatter), and so is the
   vocabulary (the embedding's and the head's rows: each rank looks up the ids of its slice and
   computes its slice's logits, and the cross-entropy combines the slices' softmax statistics);
   the stage holds blocks [layer0, layer0 + n_layers) and, on the first stage, the embedding, on
   the last, the final norm, the head and the loss.

   A slot computes B sequences of L tokens. Under chunk parallelism they are a piece of longer
   sequences: pos0 > 0 tokens come before it and every TimestepNorm and CEMA starts from the state
   of the previous piece (state_in); the piece leaves its final states in state_out, takes their
   gradients in dstate_out and gives its incoming states' gradients in dstate_in (spec section
   12).

   The model computes; it reaches the other ranks only through two opaque handles of parallel/
   that the caller sets: the tensor-parallel mappings (tp.h: gathers, reduce-scatters,
   row-parallel layers, the vocabulary-parallel cross-entropy) and the chunk-parallel exchange
   (cp.h), through which it trades its states with its neighbours block by block, so the ranks
   run as a wavefront. */
#ifndef MEGATRAIN_MODEL_H
#define MEGATRAIN_MODEL_H

#include "kernels/ops.h"
#include "parallel/cp.h"
#include "parallel/tp.h"
#include "src/config.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int vocab, n_layers, D, H, Z, V, F, C, G, N;
    int swiglu, scale_emb, share_emb;
    float rope_base, eps;
} ModelDims;

typedef struct {
    int tp, tp_rank;        /* tensor-parallel shard */
    int layer0, n_layers;   /* this stage's blocks */
    int first, last;        /* the stage holds the embedding / the final norm, head and loss */
} ModelPart;

typedef enum {
    INIT_ZERO,       /* biases, norm weights, Q/K affine */
    INIT_NORMAL,     /* N(0, std^2) */
    INIT_TRUNCATED,  /* N(0, std^2) truncated to [-clip, clip] */
    INIT_CEMA_THETA, /* logit of a permutation of D^(-j/D), j = 1..D */
    INIT_CEMA_GAMMA, /* real part N(0, 1), imaginary part 0 */
} InitKind;

#define PARAM_NAME 64
#define PARAM_MAXDIM 3

/* One parameter of a part's table. What the trainer, checkpoints, dumps and converters must treat
   specially is recorded here when the table is built, never recognised by name. */
typedef struct {
    char name[PARAM_NAME];        /* spec section 16 */
    int ndim;
    int64_t shape[PARAM_MAXDIM];  /* global shape */
    int64_t local[PARAM_MAXDIM];  /* this rank's shard: shape[split] / tp */
    int split;                    /* dimension split under tensor parallelism, -1: none */
    int replicated;               /* whole on each of tp > 1 ranks, which hold partial sums of its
                                     gradient: summed over tp, counted and gathered from tp rank 0 */
    int layer;                    /* its block; -1: before the blocks (the embedding: first stage),
                                     n_layers: after them (final norm, head: last stage) */
    const char *tied_as;          /* NULL, or the second name of a tensor that serves twice: with
                                     share_emb the embedding is the head, "output.output.weight" */
    int copy;                     /* a copy of a tensor another stage owns (a tied head on the last
                                     stage): its gradient is summed with the owner's; it is not
                                     written, gathered or counted here */
    InitKind init;
    double std, clip;
    size_t offset, numel;         /* the shard's place and size in this rank's buffers */
} ParamInfo;

/* Offsets (in elements) of one block's parameters in the parameter buffer; local shapes. */
typedef struct {
    size_t tsn_w, tsn_b;                          /* (Dl) */
    size_t alpha, delta, theta, gamma, omega;     /* (Dl,N) (Dl,N) (Dl) (Dl,N,2) (Dl) */
    size_t rms_w;                                 /* (D) replicated */
    size_t wz, bz, qk_gamma, qk_beta;             /* (Zl,D) (Zl) (2,Zl) (2,Zl) */
    size_t wv, bv, wr, br;                        /* (Vl,D) (Vl) (Vl,D) (Vl) */
    size_t wh1, bh1, wh2;                         /* (Dl,D) (Dl) (D,Vl) */
    size_t ln_w, ln_b;                            /* (D) replicated */
    size_t w1, w3, w2;                            /* (Fl,D) (Fl,D, swiglu only) (D,Fl) */
} BlockParams;

/* What one block saves for its backward (Dl = D/tp etc. are this rank's widths). With recompute
   elementwise, those marked [e] are elementwise (or per-head, for q and k) functions of the others,
   which backward recomputes into one set that all blocks share. */
typedef struct {
    void *xhat;              /* (T, Dl) TimestepNorm output */
    void *xhat_full;         /* (T, D) gathered (aliases xhat when tp = 1) */
    float *tsn_mean, *tsn_rstd; /* (B, L, Gl) */
    void *cema;              /* (T, Dl) CEMA output */
    void *cema_saved;        /* what the backend's CEMA forward keeps for its backward (ops->cema_saved_size) */
    void *cema_full;         /* (T, D) gathered (aliases cema when tp = 1) */
    void *m;                 /* (T, D) RMSNorm output */
    float *rms;              /* (T) */
    void *zs;                /* (T, Zl) shared projection */
    float *qk_rstd;          /* (T, Hl) [e] */
    void *q, *k;             /* (T, Zl) after norm, affine, RoPE [e] */
    void *av, *vv;           /* (T, Vl) value pre-activation and value = SiLU(av) [e] */
    void *ar;                /* (T, Vl) gate pre-activation (the gate SiLU(ar) is not kept) */
    void *o;                 /* (T, Vl) attention output */
    float *lse;              /* (B, Hl, L) */
    void *attn_saved;        /* attention's probabilities (ops->attention_saved_size), none with
                                recompute elementwise */
    void *ro;                /* (T, Vl) SiLU(ar) * o [e] */
    void *yhat;              /* (T, Dl) attention sub-layer output plus residual */
    void *yhat_full;         /* (T, D) gathered (aliases yhat when tp = 1) */
    float *ln_mean, *ln_rstd; /* (T) */
    void *u;                 /* (T, D) LayerNorm output */
    void *a1, *a3, *p;       /* (T, Fl) FFN: W1 branch, W3 branch (swiglu), product [e] */
} BlockActs;

/* Gradient scratch shared by all blocks and slots in backward. */
typedef struct {
    void *dxhat, *dcema, *dyhat;             /* (T, Dl) */
    void *dxhat_full, *dcema_full, *dyhat_full; /* (T, D) partial sums over tp (alias when tp = 1) */
    void *dm, *du;                           /* (T, D) partial sums over tp */
    void *dzs, *dq, *dk;                     /* (T, Zl) */
    void *dvv, *dav, *dar, *do_, *dro;       /* (T, Vl) */
    void *da1, *da3, *dp;                    /* (T, Fl) */
    void *dxf;                               /* (T, Dl) final norm output */
    void *dxf_full;                          /* (T, D) partial sums over tp (aliases dxf when tp = 1) */
} BlockGrads;

/* One micro-batch's activations. */
typedef struct {
    int32_t *tokens, *targets; /* (T) each; targets = tokens + T */
    void **x;                  /* (n_layers + 1) x (T, Dl) residual stream at each block's input */
    BlockActs *acts;           /* (n_layers); with recompute blocks all alias one shared set */
    void *xf;                  /* (T, Dl) final TimestepNorm output (last stage) */
    float *f_mean, *f_rstd;    /* (B, L, Gl) */
    void *xf_full;             /* (T, D) gathered (aliases xf when tp = 1) */
    void *logits;              /* (T, vocab_l) this rank's vocabulary slice; d(loss)/d(logits) after a
                                  training forward */
    /* chunk-boundary states, one slot per block and one for the final norm:
       [TimestepNorm (B, Gl, 2) | CEMA h (B, Dl, N, 2)] fp32 */
    float *state_in, *state_out, *dstate_in, *dstate_out; /* (n_layers + 1) x state_elems */
} ModelSlot;

/* Recurrent decoding (spec section 13): with a cache, the forward of a slot of L = 1 is one token
   of each of its B sequences at position pos0, and attention reads and extends the keys and values
   of the token's chunk kept here (src/decode.h owns them) instead of seeing only the piece. */
typedef struct {
    void **k, **v; /* (part.n_layers) x (B, C, Zl), (B, C, Vl) */
} ModelCache;

typedef struct {
    ModelDims d;
    ModelPart part;
    int Dl, Gl, Zl, Vl, Fl, Hl; /* this rank's widths */
    int vocab_l;                /* its vocabulary slice: ids tp_rank vocab_l .. (tp_rank + 1) vocab_l - 1 */
    const Ops *ops;
    int B, L, T; /* sequences, tokens per sequence, B*L */
    int recompute; /* RecomputeMode (src/config.h) */

    ParamInfo *params_info;
    int n_params;
    size_t n_elems;          /* parameter elements on this rank */
    size_t n_padded;         /* n_elems rounded up for optimizer sharding (model_create's pad_to) */
    BlockParams *blocks;     /* (part.n_layers) */
    size_t embed, out, final_w, final_b; /* out == embed when share_emb; (size_t)-1 if not here */

    void *params_act;   /* (n_padded) compute copy */
    float *grads;       /* (n_padded) fp32 */
    unsigned char *unwritten; /* (n_params) gradients no backward has written since model_zero_grads:
                                 their next writer overwrites them (ops.h: GRAD_NEW) */
    int n_unwritten;

    ModelSlot *slots;
    int n_slots;
    int shared_slot, shared_layer; /* whose block activations the recompute blocks set holds */
    BlockGrads g;
    void *dy;                  /* (T, Dl) residual gradient: a block's output's, then its input's */
    void *emb_full;            /* (T, D) the embedding's partial sums over tp, then its gathered
                                  gradient (first stage, tp > 1; else NULL) */
    double *ce_stats;          /* (tp, T, 3) the cross-entropy's row statistics (last stage) */
    double *loss;              /* (2, 2) backend: the forwards' loss sum and bad-target flag
                                  (ops.h: crossentropy), then model_loss's (last stage) */
    int32_t *batch_host;       /* (2, T) host: a batch's inputs and targets on their way up */

    /* chunk parallelism: set by the caller */
    int64_t pos0;           /* tokens of the sequence before this piece; > 0: states come in */
    int want_state_out;     /* a next piece exists: compute the final states (and their gradients come) */
    size_t state_elems;     /* floats per state slot */

    /* set by the caller: the other ranks (NULL: none on that axis) */
    TpGroup *tp;            /* the tensor-parallel group, for pieces of (T, Dl) */
    CpChain *cp;            /* the chunk-parallel neighbours (NULL: the caller moves the states) */
    ModelCache *cache;      /* recurrent decoding; NULL: whole pieces (training, evaluation) */

    /* set by the caller around a step's last backward: called after each block with the offset
       from which the gradients are final (the block's first parameter), to start their reduction */
    void (*grads_final)(void *ctx, size_t from);
    void *grads_ctx;
} Model;

void model_dims_from_config(ModelDims *d, const Config *c);
/* The whole model on one rank, or the part of rank (tp_rank, pp_rank) of a tp x pp layout:
   blocks are split over stages as evenly as possible, earlier stages taking the extra ones. */
ModelPart model_part(const ModelDims *d, int tp, int tp_rank, int pp, int pp_rank);
/* Number of parameters of the whole model and FLOPs per token of one training step
   (6 x matmul parameters + attention score/value products; see doc/model.md). */
int64_t model_param_count(const ModelDims *d);
double model_flops_per_token(const ModelDims *d, int seq_len);

/* The bytes of a part's one allocation (model_create's arena), by what they hold. */
typedef struct {
    size_t params;   /* (n_padded) compute copy of the parameters */
    size_t grads;    /* (n_padded) fp32 gradients */
    size_t acts;     /* the micro-batch slots: tokens, block inputs, the activations backward needs
                        (one block's with recompute blocks; with elementwise, one set of the
                        recomputed ones), the head's, the chunk states */
    size_t backward; /* backward's gradient scratch, the embedding's partial sums, the
                        cross-entropy's statistics */
} ModelBytes;
size_t model_bytes_total(const ModelBytes *b);
/* model_create in two halves, for memory plans: model_shape fills in everything but the buffers
   (widths, the parameter table and its offsets, the slots' host arrays; ops need only describe
   the backend, ops_describe), model_measure gives what its one allocation would hold (the same
   layout, not carved), model_unshape frees the host arrays. */
void model_shape(Model *m, const ModelDims *d, const ModelPart *part, const Ops *ops, int B, int L, int recompute,
                 int n_slots, size_t pad_to);
ModelBytes model_measure(Model *m);
void model_unshape(Model *m);
/* Lay out this part's parameters and allocate every buffer once: n_slots micro-batch slots;
   parameter buffers padded to a multiple of pad_to elements (optimizer sharding). */
void model_create(Model *m, const ModelDims *d, const ModelPart *part, const Ops *ops, int B, int L, int recompute,
                  int n_slots, size_t pad_to);
void model_free(Model *m);
/* The initial parameters (spec sections 3 and 6) in host (n_elems); a value depends on (seed,
   name, global index) only, so every layout starts from the same model. */
void model_init_host(const Model *m, uint64_t seed, float *host);
/* Set the parameters to their initial values. */
void model_init_params(Model *m, uint64_t seed);
/* Parameter I/O through host fp32 arrays in table order (n_elems). */
void model_params_to_host(const Model *m, float *host);
void model_params_from_host(Model *m, const float *host);
const ParamInfo *model_param(const Model *m, const char *name);
/* Global row-major index of element i of tensor-parallel shard tp_rank of parameter p. */
int64_t param_global_index(const ParamInfo *p, int tp_rank, int64_t i);
/* The parameter table of any part (names, global and local shapes, offsets), without building
   the model; returns the number of parameters, *out allocated. */
int model_table(const ModelDims *d, const ModelPart *part, ParamInfo **out);

/* tokens: host (B, L + 1); inputs are columns 0..L-1, targets 1..L. */
void model_set_batch(Model *m, int slot, const int32_t *tokens);
/* Forward of one slot; on the last stage adds the summed cross-entropy of its tokens to the
   model's loss sum, which stays in backend memory (no host round trip) until model_loss_take.
   grad_scale != 0 prepares backward with d(loss)/d(logits) = grad_scale * d(sum)/d(logits).
   A stage other than the first reads its input from model_stage_input. */
void model_forward(Model *m, int slot, float grad_scale);
/* The loss sum of the forwards since the last take or clear (0 on a stage other than the
   last), read back (a host round trip, which also reports a target outside the vocabulary),
   and cleared. */
double model_loss_take(Model *m);
void model_loss_clear(Model *m);
/* The summed cross-entropy of the logits of that slot's last forward (last stage, grad_scale 0)
   against other targets (backend (T); < 0: ignored), such as a subset of its own; read back at
   once, apart from the loss sum. */
double model_loss(Model *m, int slot, const int32_t *targets);
/* Backward of that slot's last forward: adds to m->grads, except that the first backward after
   model_zero_grads writes every parameter's gradient (so no pass zeroes them; one it did not
   reach is an error). A stage other than the last takes the gradient of its output from
   model_output_grad. */
void model_backward(Model *m, int slot);
/* The gradients start over: the next backward's are the first (host bookkeeping only). */
void model_zero_grads(Model *m);
/* The first gradient element starts at value instead of zero (a testing aid; after
   model_zero_grads, before backward). */
void model_inject_grad(Model *m, float value);

/* The chunk boundaries a forward crosses (its blocks', and the final norm's on the last stage):
   states sent per micro-batch each way under chunk parallelism. */
int model_boundaries(const Model *m);
void *model_stage_input(Model *m, int slot);         /* (T, Dl) */
const void *model_stage_output(const Model *m, int slot); /* (T, Dl) */
void *model_output_grad(Model *m);                   /* (T, Dl): fill before backward */
const void *model_input_grad(const Model *m);        /* (T, Dl): valid after backward */

#endif
