/* metrics.c: JSON Lines metrics and progress lines (see metrics.h). */
#include "src/metrics.h"

#include "autoconfig.h"
#include "parallel/mpi_check.h"
#include "base/util.h"

#include <errno.h>
#include <stdlib.h>
#include <math.h>
#include <stdnoreturn.h>
#include <string.h>
#include <time.h>

/* a number, or null when it is not finite (JSON has no NaN) */
static void json_number(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "%.9g", v);
    else
        fputs("null", f);
}

/* A record that does not reach the log stops the run: a scaling study without its log is lost work,
   and what fills a disk leaves no room for a checkpoint either. */
static noreturn void write_failed(const Metrics *mt)
{
    fail_input("%s: cannot write the metrics log (log.metrics): %s; the run stops here", mt->path, strerror(errno));
}

static void metrics_flush(const Metrics *mt)
{
    if (fflush(mt->f) != 0 || ferror(mt->f))
        write_failed(mt);
}

void metrics_open(Metrics *mt, const Config *c, const char *config_path, const Topo *t, int64_t params,
                  double flops_per_token)
{
    memset(mt, 0, sizeof *mt);
    mt->every = c->log.every;
    mt->world = t->world;
    mt->peak_tflops = c->log.peak_tflops > 0 ? c->log.peak_tflops : c->train.device == DEVICE_CUDA ? 989.0 : 0.0;

    char host[MPI_MAX_PROCESSOR_NAME] = {0};
    int len;
    MPI_CHECK(MPI_Get_processor_name(host, &len));
    char *all = t->rank == 0 ? xcalloc((size_t)t->world, MPI_MAX_PROCESSOR_NAME) : NULL;
    MPI_CHECK(MPI_Gather(host, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, all, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, 0,
                         MPI_COMM_WORLD));
    if (t->rank != 0 || !c->log.metrics[0]) {
        free(all);
        return;
    }
    mt->path = c->log.metrics;
    mt->f = fopen(c->log.metrics, "a+");
    if (!mt->f)
        fail_input("%s: cannot open the metrics log (log.metrics) for appending: %s", c->log.metrics,
                   strerror(errno));
    FILE *f = mt->f;
    /* a job killed mid-write leaves a cut line: start the header on a line of its own */
    int cut = fseek(f, -1, SEEK_END) == 0 && fgetc(f) != '\n';
    fseek(f, 0, SEEK_END); /* reading, then writing: reposition in between */
    if (cut)
        fputc('\n', f);
    char stamp[64];
    time_t now = time(NULL);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    fprintf(f, "{\"type\":\"header\",\"time\":\"%s\",\"version\":\"%s\",\"git\":\"%s\",\"config_file\":", stamp,
            PACKAGE_VERSION, MEGATRAIN_GIT_REV);
    util_write_quoted(f, config_path);
    fputs(",\"config\":", f);
    config_print_json(c, f);
    fprintf(f, ",\"layout\":{\"world\":%d,\"dp\":%d,\"tp\":%d,\"pp\":%d,\"cp\":%d}", t->world, t->dp, t->tp, t->pp,
            t->cp);
    fputs(",\"hosts\":{", f);
    /* host -> number of ranks on it, in rank order of first appearance */
    int first = 1;
    for (int r = 0; r < t->world; r++) {
        const char *h = all + (size_t)r * MPI_MAX_PROCESSOR_NAME;
        int seen = 0, count = 0;
        for (int q = 0; q < t->world; q++) {
            if (!strcmp(h, all + (size_t)q * MPI_MAX_PROCESSOR_NAME)) {
                count++;
                seen |= q < r;
            }
        }
        if (seen)
            continue;
        fputs(first ? "" : ",", f);
        util_write_quoted(f, h);
        fprintf(f, ":%d", count);
        first = 0;
    }
    fprintf(f, "},\"params\":%lld,\"flops_per_token\":", (long long)params);
    json_number(f, flops_per_token);
    fputs(",\"peak_tflops_per_rank\":", f);
    json_number(f, mt->peak_tflops > 0 ? mt->peak_tflops : NAN);
    fputs("}\n", f);
    metrics_flush(mt);
    free(all);
}

void metrics_step(Metrics *mt, const StepStats *s)
{
    double tok_s = s->step_s > 0 ? (double)s->step_tokens / s->step_s : 0;
    double tflops = s->step_s > 0 ? s->step_flops / s->step_s / 1e12 : 0;
    double mfu = mt->peak_tflops > 0 ? tflops / (mt->peak_tflops * mt->world) : NAN;
    if (mt->f) {
        FILE *f = mt->f;
        fprintf(f, "{\"type\":\"step\",\"step\":%lld,\"tokens\":%lld,\"loss\":", (long long)s->step,
                (long long)s->tokens);
        json_number(f, s->loss);
        const char *names[] = {"lr", "grad_norm", "step_ms", "tokens_per_s", "tflops", "mfu", "mem_gb"};
        double values[] = {s->lr, s->grad_norm, s->step_s * 1e3, tok_s, tflops, mfu, s->mem_gb > 0 ? s->mem_gb : NAN};
        for (int i = 0; i < 7; i++) {
            fprintf(f, ",\"%s\":", names[i]);
            json_number(f, values[i]);
        }
        const char *axes[] = {"dp", "tp", "pp", "cp"};
        double comm = 0;
        for (int i = 0; i < 4; i++)
            comm += s->comm_s[i];
        fputs(",\"compute_ms\":", f);
        json_number(f, (s->step_s - comm) * 1e3);
        fputs(",\"comm_ms\":{", f);
        for (int i = 0; i < 4; i++) {
            fprintf(f, "%s\"%s\":", i ? "," : "", axes[i]);
            json_number(f, s->comm_s[i] * 1e3);
        }
        fputc('}', f);
        if (s->skipped)
            fprintf(f, ",\"skipped\":\"%s\",\"skipped_in_row\":%d", s->skipped, s->skipped_in_row);
        for (int i = 0; i < s->ndatasets; i++)
            fprintf(f, "%s%lld", i ? "," : ",\"dataset_tokens\":[", (long long)s->dataset_tokens[i]);
        fputs(s->ndatasets ? "]}\n" : "}\n", f);
        metrics_flush(mt);
    }
    if (s->step % mt->every == 0 || s->step == s->steps || s->step == 1 || s->skipped) {
        char mfu_text[32] = "", skip_text[64] = "";
        if (isfinite(mfu))
            snprintf(mfu_text, sizeof mfu_text, " | MFU %.1f%%", 100 * mfu);
        if (s->skipped)
            snprintf(skip_text, sizeof skip_text, " | update skipped: %s (%d in a row)", s->skipped,
                     s->skipped_in_row);
        log_info("step %6lld/%lld | loss %.4f | lr %.2e | gnorm %.3f | %.1f ms | %.0f tok/s | %.2f TFLOP/s%s%s",
                 (long long)s->step, (long long)s->steps, s->loss, s->lr, s->grad_norm, s->step_s * 1e3, tok_s,
                 tflops, mfu_text, skip_text);
    }
}

void metrics_eval(Metrics *mt, int64_t step, int64_t tokens, double val_loss)
{
    if (mt->f) {
        fprintf(mt->f, "{\"type\":\"eval\",\"step\":%lld,\"tokens\":%lld,\"val_loss\":", (long long)step,
                (long long)tokens);
        json_number(mt->f, val_loss);
        fputs(",\"val_ppl\":", mt->f);
        json_number(mt->f, exp(val_loss));
        fputs("}\n", mt->f);
        metrics_flush(mt);
    }
    log_info("eval  step %6lld | val loss %.4f | val ppl %.2f", (long long)step, val_loss, exp(val_loss));
}

void metrics_close(Metrics *mt)
{
    if (mt->f && fclose(mt->f) != 0)
        write_failed(mt);
    mt->f = NULL;
}
