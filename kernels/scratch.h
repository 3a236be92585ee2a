/* scratch.h: the sizes of the CUDA backend's scratch (kernels/cuda/cuda.cuh: one buffer per slot,
   grown to the largest request), in plain C so a memory plan can add them up in any build: the CUDA
   ops ask cuda_scratch for these very sizes, and scratch_plan gives what a training step's
   attention, CEMA, TimestepNorm and GEMMs grow them to. Not planned: the per-block partial sums of
   parameter gradients and the loss and norm reductions (SCRATCH_PARTIALS, SCRATCH_REDUCE: at most
   64 rows of the widest output, a few MiB). */
#ifndef MEGATRAIN_SCRATCH_H
#define MEGATRAIN_SCRATCH_H

#include <stddef.h>

#define SCRATCH_ATTN ((size_t)512 << 20) /* bytes of S (fp32) + P (bf16) per batch of chunks */
#define SCRATCH_LT ((size_t)32 << 20)    /* the cuBLASLt workspace: what NVIDIA suggests for Hopper */
#define CEMA_NK 16                       /* CEMA's states per channel: N <= 16 */
#define CEMA_SEG 256                     /* CEMA's steps per segment (16 chunks of 16, a warp's MMA rows) */
#define CEMA_NSUM 5                      /* per (d, k): dp, G_q (re, im), G_g (re, im) */
#define CEMA_WANT_WARPS (1 << 11)        /* (channel, part) warps: long parts amortise a warp's set-up */
#define TSN_SEG 32                       /* TimestepNorm's steps per segment summary */
#define EMB_SORT_TEMP ((size_t)4 << 20)  /* the embedding backward's radix sort: its own temporaries */

/* a slot's size as cuda_scratch allocates it: whole 4 KiB pages */
size_t scratch_round(size_t bytes);

/* attention over chunks of c = min(L, C) rows: how many chunks' S and P fit SCRATCH_ATTN (at
   least one), and the bytes of S (fp32) and P (bf16) for B sequences of L */
int scratch_attn_maxb(int c);
size_t scratch_attn_s(int B, int L, int C);
size_t scratch_attn_p(int B, int L, int C);
/* what the CUDA forward keeps for its backward (Ops.attention_saved_size): each chunk's P (bf16,
   c x c, a sequence's last and shorter chunk in a whole slot), by head, sequence and chunk */
size_t scratch_attn_saved(int B, int L, int H, int C);

/* CEMA over B sequences of L steps and D channels: the steps of a part (a whole number of segments,
   enough parts for about CEMA_WANT_WARPS warps), then the forward's part starts, the backward's
   segment starts and its part starts, carries and sums */
int scratch_cema_part_len(int B, int L, int D);
size_t scratch_cema_starts(int B, int L, int D);
size_t scratch_cema_segs(int B, int L, int D);
size_t scratch_cema_back(int B, int L, int D);
/* what the CUDA forward keeps for its backward (Ops.cema_saved_size): the part starts, then the
   segments' local starts */
size_t scratch_cema_saved(int B, int L, int D);

/* TimestepNorm over B sequences of L steps in G groups: segments, then the forward's and the
   backward's per-cell statistics and segment summaries */
int scratch_tsn_nseg(int L);
size_t scratch_tsn_forward(int B, int L, int G);
size_t scratch_tsn_backward(int B, int L, int G);

/* the embedding backward over T tokens: the ids and positions twice (the sort's two buffers), then
   from a 256-byte boundary the sort's temporaries */
size_t scratch_embedding(int T);

/* The scratch a training step grows on a rank whose micro-batch is B sequences of L tokens in
   chunks of C, with D channels and G TimestepNorm groups (its tensor-parallel shares). */
size_t scratch_plan(int B, int L, int C, int D, int G);

#endif
