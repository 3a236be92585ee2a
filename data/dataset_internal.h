/* dataset_internal.h: what the data layer's own files need from a Dataset beyond dataset.h. */
#ifndef MEGATRAIN_DATASET_INTERNAL_H
#define MEGATRAIN_DATASET_INTERNAL_H

#include "data/dataset.h"

/* "DIR (split SPLIT)", to name the dataset in messages. */
const char *dataset_name(const Dataset *ds);

#endif
