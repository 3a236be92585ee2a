/* test_comm_gpu.c: the NCCL side of the communication interface on one GPU (one rank: NCCL
   refuses two ranks on one device), and the trainer on CUDA with NCCL communicators.
   1. Every collective on device buffers (in-place all-reduce, reduce-scatter, the asynchronous
      reduce, all-gather, broadcast) through a one-rank NCCL group returns its input: exact.
   2. Three training steps of a small model on CUDA (all groups NCCL) against the CPU trainer
      (MPI) from the same seed: losses agree to 2e-2 relative (bf16 activations; see
      test_model_gpu.c for why), and the step counter, data cursor and learning rate agree. */
#include "kernels/ops.h"
#include "parallel/comm.h"
#include "parallel/topo.h"
#include "src/config.h"
#include "src/train.h"
#include "src/util.h"
#include "tests/tap.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void test_collectives(const Ops *gpu)
{
    Comm c;
    comm_init_nccl(&c, MPI_COMM_WORLD);
    const size_t n = 4099;
    float *h = xmalloc(n * sizeof(float)), *back = xmalloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        h[i] = (float)rng_normal(3, i);
    float *a = gpu->alloc(n * sizeof(float)), *b = gpu->alloc(n * sizeof(float));
    gpu->upload(a, h, n * sizeof(float));
    comm_allreduce(&c, a, n, COMM_F32);
    comm_reduce_scatter(&c, a, b, n, COMM_F32);
    comm_reduce(&c, b, a, n, COMM_F32, 0);
    comm_wait(&c);
    comm_allgather(&c, a, b, n, COMM_F32);
    comm_broadcast(&c, b, n, COMM_F32, 0);
    comm_wait(&c);
    gpu->download(back, b, n * sizeof(float));
    tap_check(!memcmp(h, back, n * sizeof(float)),
              "NCCL all-reduce, reduce-scatter, reduce, all-gather, broadcast on one rank");
    tap_check(c.device && c.size == 1, "the group is an NCCL one of one rank");
    gpu->release(a);
    gpu->release(b);
    free(h);
    free(back);
    comm_free(&c);
}

static double train3(const char *device, double *lr_out, int64_t *cursor)
{
    Config c;
    config_defaults(&c);
    const char *sets[] = {"model.vocab_size=512", "model.n_layers=2",     "model.d_model=128", "model.n_heads=2",
                          "model.z_dim=64",       "model.v_dim=128",      "model.ffn_dim=256", "model.chunk=64",
                          "model.groups=4",       "data.seq_len=128",     "data.batch_size=4", "train.steps=3",
                          "train.seed=9",         "log.metrics=",         "parallel.micro_batches=2"};
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++)
        config_set(&c, sets[i]);
    char *dev = xasprintf("train.device=%s", device);
    config_set(&c, dev);
    free(dev);
    config_finish(&c, 1, 0, 1);
    Topo t;
    topo_init(&t, MPI_COMM_WORLD, 1, 1, 1);
    Trainer tr;
    trainer_init(&tr, &c, &t, NULL);
    double loss = 0, gn;
    for (int s = 0; s < 3; s++)
        loss = trainer_step(&tr, &gn, lr_out);
    *cursor = tr.cursor;
    int nccl = tr.dpcp.device;
    trainer_free(&tr);
    topo_free(&t);
    if (!strcmp(device, "cuda"))
        tap_check(nccl, "the CUDA trainer's gradient group is NCCL");
    return loss;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    const Ops *gpu = ops_cuda();
    if (!gpu)
        tap_bail_out("no CUDA device: the GPU tests must run on a machine with a GPU");
    test_collectives(gpu);
    double lr_c, lr_g;
    int64_t cur_c, cur_g;
    double lc = train3("cpu", &lr_c, &cur_c), lg = train3("cuda", &lr_g, &cur_g);
    tap_check(fabs(lg - lc) <= 2e-2 * lc, "3 steps: CUDA/NCCL trainer loss %.5f matches the CPU trainer's %.5f", lg,
              lc);
    tap_check(lr_c == lr_g && cur_c == cur_g, "same schedule and data cursor (lr %g, cursor %lld)", lr_g,
              (long long)cur_g);
    int rc = tap_done();
    MPI_Finalize();
    return rc;
}
