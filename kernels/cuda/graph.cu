/* graph.cu: a piece of queued work as a CUDA graph (ops.h: graph_run). A micro-batch's forward
   and backward queue about a thousand kernels and GEMMs; at one sequence of 4K tokens many take a
   few microseconds, about what the host needs to launch one, so the GPU waits on the host. A
   graph replays them all with one launch. The first call runs the work directly, so that the
   scratch slots (memory.cu) and cuBLASLt's plans reach their sizes; the second captures it from
   the compute stream; later calls replay it. A capture holds the scratch's addresses, so it is
   made again when the scratch has moved since (other work grew a slot). */
#include "kernels/cuda/cuda.cuh"

#include <stdlib.h>

typedef struct {
    int runs;             /* direct runs so far */
    unsigned epoch;       /* the scratch epoch of the capture */
    cudaGraphExec_t exec; /* NULL until captured */
} CudaGraph;

static void capture(CudaCtx *x, CudaGraph *g, void (*fn)(void *ctx), void *ctx)
{
    cudaGraph_t graph;
    x->capturing = 1;
    /* thread-local: an unsafe call (a synchronisation, an allocation) from this thread fails
       the capture instead of passing unseen; cuda_outside_graph names ours first */
    CUDA_CHECK(cudaStreamBeginCapture(x->stream, cudaStreamCaptureModeThreadLocal));
    fn(ctx);
    CUDA_CHECK(cudaStreamEndCapture(x->stream, &graph));
    x->capturing = 0;
    CUDA_CHECK(cudaGraphInstantiate(&g->exec, graph, 0));
    CUDA_CHECK(cudaGraphDestroy(graph));
    g->epoch = x->scratch_epoch;
}

void cuda_graph_run(void **graph, void (*fn)(void *ctx), void *ctx)
{
    CudaCtx *x = cuda_ctx();
    CudaGraph *g = (CudaGraph *)*graph;
    if (!g) {
        g = (CudaGraph *)xcalloc(1, sizeof *g);
        *graph = g;
    }
    if (g->exec && g->epoch != x->scratch_epoch) {
        CUDA_CHECK(cudaGraphExecDestroy(g->exec));
        g->exec = NULL;
    }
    if (!g->exec && g->runs++ == 0) {
        fn(ctx);
        return;
    }
    if (!g->exec)
        capture(x, g, fn, ctx);
    CUDA_CHECK(cudaGraphLaunch(g->exec, x->stream));
}

void cuda_graph_free(void *graph)
{
    CudaGraph *g = (CudaGraph *)graph;
    if (g && g->exec)
        CUDA_CHECK(cudaGraphExecDestroy(g->exec));
    free(g);
}
