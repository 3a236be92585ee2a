/* dataset.h: a token dataset is a folder of HDF5 shard files (format in doc/data.md). Shards of
   one split ("train", "val") are read as one stream of tokens in file-name order. A Dataset is
   one split of one folder, or of several in a blend. */
#ifndef MEGATRAIN_DATASET_H
#define MEGATRAIN_DATASET_H

#include <stdint.h>

typedef struct Dataset Dataset;

/* Open the shards of one split under dir. On bad input (no such folder, no shard of that split,
   a corrupted or truncated file, shards that disagree on vocabulary) it stops the job through
   fail_input() with the file name and what is wrong. Opening reads only metadata. */
Dataset *dataset_open(const char *dir, const char *split);
/* The split of every dataset of a blend (data.blend's text, blend.h), drawn from in proportion
   to the weights: the sampler reads a blend; dataset_read does not. Its datasets must share the
   vocabulary, end-of-document id and tokenizer. Bad input stops as dataset_open's does. */
Dataset *dataset_open_blend(const char *blend, const char *split);
void dataset_close(Dataset *ds);

int64_t dataset_ntokens(const Dataset *ds);
int dataset_vocab(const Dataset *ds);  /* vocabulary size: every id is < this */
int dataset_eod(const Dataset *ds);    /* end-of-document id, or -1 */
int dataset_bos(const Dataset *ds);    /* beginning-of-document id, or -1 */
const char *dataset_tokenizer(const Dataset *ds);
uint64_t dataset_tokenizer_checksum(const Dataset *ds); /* of the tokenizer file; 0: none recorded */
/* A 64-bit fingerprint of the split's shard names, sizes and checksums (for checkpoints); of a
   blend, of its datasets' fingerprints and weights. */
uint64_t dataset_fingerprint(const Dataset *ds);

/* Copy tokens [start, start + n) of the stream into out, across shard boundaries; reads only
   those tokens. */
void dataset_read(Dataset *ds, int64_t start, int64_t n, int32_t *out);

#endif
