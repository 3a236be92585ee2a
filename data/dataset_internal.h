/* dataset_internal.h: what the data layer's own files need from a Dataset beyond dataset.h. */
#ifndef MEGATRAIN_DATASET_INTERNAL_H
#define MEGATRAIN_DATASET_INTERNAL_H

#include "data/dataset.h"

/* "DIR (split SPLIT)", to name the dataset in messages. */
const char *dataset_name(const Dataset *ds);
/* A blend's datasets (none for one folder's split) and the weight of each, as data.blend gives it. */
int dataset_blend_size(const Dataset *ds);
Dataset *dataset_blend_member(const Dataset *ds, int i);
double dataset_blend_weight(const Dataset *ds, int i);

#endif
