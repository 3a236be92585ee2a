/* safetensors.h: the safetensors tensor file (as written by Hugging Face's safetensors library),
   float32 only, for megackpt export and import:

     8 bytes    N, the header's length, unsigned little-endian
     N bytes    a JSON object {NAME: {"dtype": "F32", "shape": [...], "data_offsets": [BEGIN, END]},
                ..., "__metadata__": {KEY: "string", ...}}, padded with spaces to a multiple of 8
     the rest   the tensors' raw little-endian bytes, row-major; BEGIN and END count from here

   Bad files (truncated, malformed header, overlapping or out-of-range data) stop with one message
   naming the file (exit 2). */
#ifndef MEGATRAIN_SAFETENSORS_H
#define MEGATRAIN_SAFETENSORS_H

#include <stdint.h>
#include <stdio.h>

#define SAFETENSORS_MAXDIM 8

typedef struct {
    char *name;
    char *dtype;      /* "F32", "BF16", ... as in the file */
    int ndim;
    int64_t shape[SAFETENSORS_MAXDIM];
    uint64_t begin, end; /* byte range in the data section */
} SafeTensor;

typedef struct {
    char *path;
    FILE *f;
    uint64_t data0; /* file offset of the data section */
    SafeTensor *t;  /* in file order */
    int n;
} SafeTensors;

/* Open and check a file: header, every entry's dtype size times its shape against its offsets,
   offsets inside the file. */
void safetensors_open(SafeTensors *st, const char *path);
void safetensors_close(SafeTensors *st);
const SafeTensor *safetensors_find(const SafeTensors *st, const char *name);
/* A tensor's values (dtype F32: else bad input naming it); out holds its numel floats. */
void safetensors_read_f32(const SafeTensors *st, const SafeTensor *t, float *out);

/* What to write: n float32 tensors, and string metadata (NULL-terminated key, value pairs). */
typedef struct {
    const char *name;
    int ndim;
    const int64_t *shape;
} SafeTensorSpec;

/* Write path (through path.tmp, renamed when complete); fill(ctx, i, out) gives tensor i's values.
   Replaces only a regular file (else bad input, before any work); a failed write leaves no file. */
void safetensors_write(const char *path, const SafeTensorSpec *specs, int n, const char *const *metadata,
                       void (*fill)(void *ctx, int i, float *out), void *ctx);

#endif
