/* ops.c: pick a backend by name, or describe one that may not be built or usable here. */
#include "kernels/ops.h"

#include "autoconfig.h"
#include "kernels/scratch.h"
#include <string.h>

/* the two builds of kernels/cpu (cpu.h) */
const Ops *cpu32_ops(void);
const Ops *cpu64_ops(void);

const Ops *ops_cpu(void) { return cpu32_ops(); }
const Ops *ops_cpu64(void) { return cpu64_ops(); }

#ifndef HAVE_CUDA
const Ops *ops_cuda(void) { return NULL; }
const char *ops_cuda_missing(void) { return OPS_NO_CUDA; }
#endif

const Ops *ops_get(const char *name)
{
    if (!strcmp(name, "cpu"))
        return ops_cpu();
    if (!strcmp(name, "cpu64"))
        return ops_cpu64();
    if (!strcmp(name, "cuda"))
        return ops_cuda();
    return NULL;
}

const char *ops_missing(const char *name)
{
    return !strcmp(name, "cuda") ? ops_cuda_missing() : "no such backend in this build";
}

/* the CUDA backend's dtype, as kernels/cuda/table.cu gives it, for builds and machines without it */
static const Ops cuda_described = {
    .name = "cuda", .act = DTYPE_BF16, .act_size = 2, .on_device = 1, .scratch_plan = scratch_plan,
    .cema_saved_size = scratch_cema_saved, .attention_saved_size = scratch_attn_saved};

const Ops *ops_describe(const char *name)
{
    return !strcmp(name, "cuda") ? &cuda_described : ops_get(name);
}
