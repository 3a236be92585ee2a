/* ops.c: pick a backend by name. */
#include "kernels/ops.h"

#include "autoconfig.h"
#include <string.h>

/* the two builds of kernels/cpu (cpu.h) */
const Ops *cpu32_ops(void);
const Ops *cpu64_ops(void);

const Ops *ops_cpu(void) { return cpu32_ops(); }
const Ops *ops_cpu64(void) { return cpu64_ops(); }

#ifndef HAVE_CUDA
const Ops *ops_cuda(void) { return NULL; }
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
