/* batch.c: token windows and the reader that prefetches them on a thread (see batch.h). The
   thread reads into buf[1] inside data_try, so a bad shard it meets becomes a message kept for
   batch_take, which stops the job with it as a read on the trainer's thread would have. */
#include "src/batch.h"

#include "data/h5_check.h"
#include "base/util.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void batch_read(BatchSource *src, int64_t first, int nrows, int col0, int ncols, int32_t *out)
{
    if (src->sampler) {
        sampler_read(src->sampler, first, 0, nrows, col0, ncols, out);
        return;
    }
    uint64_t key = rng_key(src->seed, "random-tokens");
    const int64_t w = src->L + 1;
    for (int r = 0; r < nrows; r++)
        for (int j = 0; j <= ncols; j++)
            out[r * (ncols + 1) + j] =
                (int32_t)(rng_u64(key, (uint64_t)((first + r) * w + col0 + j)) % (uint64_t)src->vocab);
}

struct BatchReader {
    size_t elems;
    int32_t *buf[2]; /* (elems) each: the batch taken last; the one the thread reads */
    int threaded;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake, done; /* work or quit for the thread; its read finished */
    int busy, quit;            /* under lock */
    int pending;               /* buf[1] holds (or is getting) want; the trainer's thread only */
    BatchWant want;
    int ok;         /* the thread's last read finished; else msg says why not */
    char msg[1024];
};

/* Reads asked of all readers' threads and not finished, for a fatal error on another thread to
   wait for: exit tears HDF5 down (its atexit clean-up), which must not happen under a read. */
static pthread_mutex_t flight_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t flight_done = PTHREAD_COND_INITIALIZER;
static int in_flight;
static _Thread_local int on_worker;
#define BATCH_FATAL_WAIT_S 10 /* a read stuck longer (a hung file system) is left to exit */

static void flight(int delta)
{
    pthread_mutex_lock(&flight_lock);
    in_flight += delta;
    pthread_cond_broadcast(&flight_done);
    pthread_mutex_unlock(&flight_lock);
}

/* util_before_fatal: wait, boundedly, until no reading thread is inside a read */
static void batch_before_fatal(void)
{
    if (on_worker) /* it stops the job itself: a bug, never a bad shard (data_try catches those) */
        return;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += BATCH_FATAL_WAIT_S;
    pthread_mutex_lock(&flight_lock);
    while (in_flight > 0 && pthread_cond_timedwait(&flight_done, &flight_lock, &until) == 0)
        ;
    pthread_mutex_unlock(&flight_lock);
}

static void read_into(const BatchWant *w, int32_t *out)
{
    batch_read(w->src, w->first, w->nrows, w->col0, w->ncols, out);
}

static void read_wanted(void *arg)
{
    BatchReader *r = arg;
    read_into(&r->want, r->buf[1]);
}

static void *batch_worker(void *arg)
{
    BatchReader *r = arg;
    on_worker = 1;
    h5_init(); /* this thread's HDF5 error stack prints nothing either */
    pthread_mutex_lock(&r->lock);
    for (;;) {
        while (!r->busy && !r->quit)
            pthread_cond_wait(&r->wake, &r->lock);
        if (r->quit)
            break;
        pthread_mutex_unlock(&r->lock);
        int ok = data_try(read_wanted, r, r->msg, sizeof r->msg);
        flight(-1);
        pthread_mutex_lock(&r->lock);
        r->ok = ok;
        r->busy = 0;
        pthread_cond_signal(&r->done);
    }
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

BatchReader *batch_reader_create(size_t elems, int prefetch)
{
    BatchReader *r = xcalloc(1, sizeof *r);
    r->elems = elems;
    r->buf[0] = xmalloc((elems ? elems : 1) * sizeof(int32_t));
    if (prefetch && !h5_threadsafe())
        log_warn("data.prefetch: this HDF5 is not built thread-safe, so micro-batches are read when needed, "
                 "not ahead");
    if (!prefetch || !h5_threadsafe())
        return r;
    r->buf[1] = xmalloc((elems ? elems : 1) * sizeof(int32_t));
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->wake, NULL);
    pthread_cond_init(&r->done, NULL);
    /* signals (SIGTERM, SIGUSR1) go to the trainer's thread, which acts on them */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&r->thread, NULL, batch_worker, r);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc)
        fail("data.prefetch: cannot start the reading thread: %s", strerror(rc));
    r->threaded = 1;
    util_before_fatal(batch_before_fatal);
    return r;
}

void batch_idle(BatchReader *r)
{
    if (!r->threaded)
        return;
    pthread_mutex_lock(&r->lock);
    while (r->busy)
        pthread_cond_wait(&r->done, &r->lock);
    pthread_mutex_unlock(&r->lock);
}

void batch_reader_free(BatchReader *r)
{
    if (r->threaded) {
        batch_idle(r);
        pthread_mutex_lock(&r->lock);
        r->quit = 1;
        pthread_cond_signal(&r->wake);
        pthread_mutex_unlock(&r->lock);
        pthread_join(r->thread, NULL);
        pthread_cond_destroy(&r->wake);
        pthread_cond_destroy(&r->done);
        pthread_mutex_destroy(&r->lock);
    }
    free(r->buf[0]);
    free(r->buf[1]);
    free(r);
}

static void batch_fits(const BatchReader *r, const BatchWant *w)
{
    if ((size_t)w->nrows * (size_t)(w->ncols + 1) > r->elems)
        fail("batch: %d rows of %d tokens do not fit the reader's %zu", w->nrows, w->ncols + 1, r->elems);
}

void batch_prefetch(BatchReader *r, const BatchWant *w)
{
    if (!r->threaded)
        return;
    batch_fits(r, w);
    batch_idle(r);
    flight(1); /* from here: the thread's read ends with flight(-1) */
    pthread_mutex_lock(&r->lock);
    r->want = *w;
    r->pending = r->busy = 1;
    pthread_cond_signal(&r->wake);
    pthread_mutex_unlock(&r->lock);
}

static int same_want(const BatchWant *a, const BatchWant *b)
{
    return a->src == b->src && a->first == b->first && a->nrows == b->nrows && a->col0 == b->col0 &&
           a->ncols == b->ncols;
}

const int32_t *batch_take(BatchReader *r, const BatchWant *w)
{
    batch_fits(r, w);
    batch_idle(r);
    int hit = r->pending && same_want(&r->want, w);
    r->pending = 0;
    if (!hit) {
        read_into(w, r->buf[0]);
        return r->buf[0];
    }
    if (!r->ok)
        fail_input("%s", r->msg);
    int32_t *t = r->buf[0];
    r->buf[0] = r->buf[1];
    r->buf[1] = t;
    return r->buf[0];
}
