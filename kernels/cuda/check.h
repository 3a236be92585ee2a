/* check.h: CUDA_CHECK, the one check of CUDA runtime calls, for C and CUDA sources alike: the call,
   where, and CUDA's reason, then the job goes down (fail). */
#ifndef MEGATRAIN_CUDA_CHECK_H
#define MEGATRAIN_CUDA_CHECK_H

#include "base/util.h"

#include <cuda_runtime.h>

#define CUDA_CHECK(call)                                                                                       \
    do {                                                                                                       \
        cudaError_t err_ = (call);                                                                             \
        if (err_ != cudaSuccess)                                                                               \
            fail("%s:%d: %s: %s", __FILE__, __LINE__, #call, cudaGetErrorString(err_));                        \
    } while (0)

#endif
