/* test_comm_gpu.c: the communication interface on device buffers, and the trainer on CUDA, with
   two ranks: `mpirun -np 2 tests/gpu/test_comm_gpu` (make check-gpu). Each rank takes GPU
   local_rank mod the GPUs present, so on one GPU both share it.
   1. tests/comm_checks.h (every collective in fp32 and bf16, the asynchronous reduce, sends that
      own their data, the staging pool) on device buffers over MPI through host staging copies
      (parallel.comm: mpi): always.
   2. The same over NCCL between the two ranks, when there are 2 GPUs or more (NCCL refuses two
      ranks on one GPU: the test says so, and make check-multigpu fails unless told that the
      machine has one).
   3. The trainer: 3 AdamW steps at a constant lr of 1e-3 on one batch, then that batch's loss
      again, on the CPU (one rank, fp32) and on CUDA with two ranks in dp2, tp2 and cp2, over MPI
      staging and (2 GPUs) over NCCL. Every loss within 1e-2 relative of the CPU's: bf16
      activations move the loss by ~1e-3 (test_model_gpu.c) and three steps of bf16 gradients
      by a few 1e-3 more. A trainer whose update does nothing stays at the first loss, 6.71,
      while the CPU's falls to 4.14, 60x the tolerance away (checked here, at least 5x, so the
      test can fail); `--no-update` runs the CUDA trainers at lr 0 to see that failure. */
#include "kernels/ops.h"
#include "parallel/comm.h"
#include "src/config.h"
#include "src/train.h"
#include "base/util.h"
#include "tests/tap.h"
#include "tests/comm_checks.h"
#include "tests/subjob.h"

#include <cuda_runtime.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TOL 1e-2

/* 3 steps on the first batch, then its loss again (subjob_run's body): losses[0..3] */
static void steps_on_one_batch(Trainer *tr, MPI_Comm sub, void *ctx)
{
    double *losses = ctx;
    for (int s = 0; s <= 3; s++) {
        double gn, lr;
        tr->cursor = 0; /* the same batch every time */
        losses[s] = s < 3 ? trainer_step(tr, &gn, &lr) : trainer_forward_backward(tr);
    }
}

/* That on the first `world` ranks with the given keys; the losses on every rank. */
static void train3(const char *sets, int world, double *losses)
{
    Config c;
    config_defaults(&c);
    char *all = xasprintf("model.vocab_size=512 model.n_layers=2 model.d_model=128 model.n_heads=2 model.z_dim=64 "
                          "model.v_dim=128 model.ffn_dim=256 model.chunk=64 model.groups=4 data.seq_len=128 "
                          "data.batch_size=4 parallel.micro_batches=2 train.steps=3 train.seed=9 log.metrics= "
                          "optimizer.lr=1e-3 schedule.warmup_steps=0 schedule.decay=constant %s",
                          sets);
    for (char *tok = strtok(all, " "); tok; tok = strtok(NULL, " "))
        config_set(&c, tok);
    free(all);
    config_finish(&c, world, 0, 1);
    subjob_run(&c, world, steps_on_one_batch, losses);
    MPI_Bcast(losses, 4, MPI_DOUBLE, 0, MPI_COMM_WORLD);
}

static int ngpus(void)
{
    int n = 0;
    return cudaGetDeviceCount(&n) == cudaSuccess ? n : 0;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    util_set_progname("test_comm_gpu");
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    tap_quiet = rank != 0;
    const Ops *gpu = ops_cuda();
    const int n = ngpus(), no_update = argc > 1 && !strcmp(argv[1], "--no-update");
    if (!gpu)
        tap_bail_out("no CUDA device: the GPU tests must run on a machine with a GPU");
    if (size != 2) {
        tap_check(0, "two ranks (mpirun -np 2; got %d)", size);
        int rc = tap_done();
        MPI_Finalize();
        return rc;
    }
    gpu->select_device(rank);
    tap_diag("%d GPU%s: the two ranks run on %s", n, n == 1 ? "" : "s", n == 1 ? "one GPU" : "GPUs 0 and 1");

    Comm c;
    comm_init(&c, MPI_COMM_WORLD, "world", gpu, COMM_MPI);
    comm_checks(&c, "device buffers over MPI (staged)");
    comm_free(&c);
    if (n >= 2) {
        comm_init(&c, MPI_COMM_WORLD, "world", gpu, COMM_NCCL);
        comm_checks(&c, "device buffers over NCCL");
        comm_free(&c);
    } else {
        tap_diag("NCCL between ranks not run here: one GPU (make check-multigpu runs it where 2 or more exist)");
    }

    double ref[4], still[4], got[4];
    train3("train.device=cpu", 1, ref);
    train3("train.device=cpu optimizer.lr=0", 1, still);
    tap_check(fabs(still[3] - ref[3]) > 5 * TOL * ref[3],
              "CPU: 3 steps move the loss from %.4f to %.4f, %.0fx the tolerance (lr 0: %.4f)", ref[0], ref[3],
              fabs(still[3] - ref[3]) / (TOL * ref[3]), still[3]);
    const char *layouts[] = {"", "parallel.tp=2", "parallel.cp=2"}, *names[] = {"dp2", "tp2", "cp2"};
    const char *comms[] = {"mpi", "nccl"};
    for (int k = 0; k < (n >= 2 ? 2 : 1); k++)
        for (int l = 0; l < 3; l++) {
            char *sets = xasprintf("train.device=cuda parallel.comm=%s %s%s", comms[k], layouts[l],
                                   no_update ? " optimizer.lr=0" : "");
            train3(sets, 2, got);
            free(sets);
            double worst = 0;
            for (int s = 0; s <= 3; s++)
                worst = fmax(worst, fabs(got[s] - ref[s]) / ref[s]);
            tap_check(worst < TOL, "CUDA %s over %s: losses %.4f .. %.4f match the CPU's (max rel. diff %.1e)",
                      names[l], comms[k], got[0], got[3], worst);
        }
    int rc = tap_done();
    MPI_Finalize();
    return rc;
}
