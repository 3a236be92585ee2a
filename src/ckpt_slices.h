/* ckpt_slices.h: the slices of a format 4 checkpoint (doc/checkpoint.md), for src/ckpt.c.

   Every rank writes the elements it owns, as slices, to its own file rank-NNNNN.h5: a slice is
   elements [lo, hi) of tensor-parallel shard `shard` of a tensor (row-major in the shard's
   shape), stored from element `offset` of the file's 1-D datasets /params, /adam_m and /adam_v,
   with the FNV-1a 64 of each. meta.h5 holds the index (CkptInfo's tensors and slices), and a
   reader reads, under any layout, only the slices that overlap what it needs. */
#ifndef MEGATRAIN_CKPT_SLICES_H
#define MEGATRAIN_CKPT_SLICES_H

#include "src/ckpt.h"

#include <hdf5.h>

/* Elements of a slice at most: every buffer of writing and reading is this size or less. */
#define CKPT_SLICE_MAX ((int64_t)1 << 22)

/* Columns of meta.h5's /tensors (ndim, shape[3], split) and /slices (tensor, shard, lo, hi,
   file, offset, fnv1a64 of params, adam_m, adam_v). */
enum { SLICES_TENSOR_COLS = 5, SLICES_SLICE_COLS = 9 };

/* The slices a writer builds: appended in file order (offset counts up), *at: where the writer
   takes each from. */
typedef struct {
    CkptSlice *s;
    int n, cap;
    int64_t len; /* elements of the file */
} SliceList;

/* The tensors of the whole model laid out for tp (names, global shapes, splits); returns their
   number, *out allocated. */
int slices_tensors(const ModelDims *d, int tp, CkptTensor **out);
/* The index of tensor `name`, or -1. */
int slices_find(const CkptTensor *t, int n, const char *name);
/* Append elements [lo, hi) of shard `shard` of tensor `tensor`, cut into slices of at most
   CKPT_SLICE_MAX elements, the first taken from `at`. */
void slices_add(SliceList *l, int tensor, int shard, int64_t lo, int64_t hi, int file, int64_t at);

/* A rank file being written. */
typedef struct {
    const char *path;
    hid_t f, d[3];
} SliceFile;
void slices_create(SliceFile *w, const char *path, int64_t len);
/* Store slice s of group g (0 params, 1 adam_m, 2 adam_v) from data (hi - lo floats), setting its
   checksum. */
void slices_put(SliceFile *w, CkptSlice *s, int g, const float *data);
void slices_close(SliceFile *w);

/* meta.h5's index: the rows of its two tables (allocated), and back into ck from nt and ns rows
   and the names (one a line), checked (the tensors of ck's model, in its table's order, with
   their shapes; every value in range; every shard covered exactly once by its slices) and the
   slices sorted; data_bad naming file otherwise. */
int64_t *slices_tensor_rows(const CkptInfo *ck);
int64_t *slices_slice_rows(const CkptInfo *ck);
void slices_from_rows(const char *file, CkptInfo *ck, const char *names, const int64_t *tensors, int nt,
                      const int64_t *slices, int ns);

/* The path of rank file `file` of checkpoint folder dir (allocated). */
char *slices_file(const char *dir, int64_t file);
/* Read back n slices of one file and check their checksums (buf: CKPT_SLICE_MAX floats);
   data_bad on the first that differs. */
void slices_check(const CkptInfo *ck, const char *path, const CkptSlice *s, int n, float *buf);
/* Elements [lo, hi) of shard tp_rank of p (p->split, p->local: the reader's layout) of group g,
   from the slices that hold them, each checked (buf: CKPT_SLICE_MAX floats); data_bad if not. */
void slices_read(const CkptInfo *ck, int g, const ParamInfo *p, int tp_rank, int64_t lo, int64_t hi, float *out,
                 float *buf);

#endif
