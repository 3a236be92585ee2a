/* fuzz_config.c: libFuzzer target for the YAML config loader. The input is a run file: load it
   and resolve it (config_finish, for the layout it asks for and a dataset of 256 token ids) as
   megatrain does. Bad input must stop with exit code 2 and nothing else; a file that passes must
   print (--print-config) as YAML that loads back to the same configuration. */
#include "src/config.h"
#include "base/util.h"
#include "tests/fuzz/fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_VOCAB 256      /* the dataset's vocabulary that config_finish is told of */
#define FUZZ_WORLD_MAX 4096 /* a larger layout is checked against one rank */

typedef struct {
    const char *path;
    Config c;
} Load;

/* The job size the file's layout asks for (as megasweep --ranks would give), else 1. */
static int world_of(const Config *c)
{
    int64_t n = (int64_t)c->parallel.tp * c->parallel.pp * c->parallel.cp;
    return n >= 1 && n <= FUZZ_WORLD_MAX ? (int)n : 1;
}

static void load(void *arg)
{
    Load *l = arg;
    config_defaults(&l->c);
    config_load_yaml(&l->c, l->path);
    config_finish(&l->c, world_of(&l->c), FUZZ_VOCAB, 1);
}

/* c printed as --print-config does (heap string). */
static char *printed(const Config *c)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        fuzz_found("open_memstream failed");
    config_print(c, f);
    fclose(f);
    return text;
}

static void check_status(int status, const char *what)
{
    if (status != FUZZ_RETURNED && status != UTIL_EXIT_INPUT)
        fuzz_found("%s: exit %d, bad input must give exit %d", what, status, UTIL_EXIT_INPUT);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Load first = {.path = fuzz_write("run.yaml", data, size)};
    int status = fuzz_call(load, &first);
    check_status(status, "run.yaml");
    if (status != FUZZ_RETURNED)
        return 0;
    char *text = printed(&first.c);
    Load again = {.path = fuzz_write("printed.yaml", text, strlen(text))};
    status = fuzz_call(load, &again);
    check_status(status, "printed.yaml");
    if (status != FUZZ_RETURNED)
        fuzz_found("the printed config does not load back:\n%s", text);
    char *text2 = printed(&again.c);
    if (strcmp(text, text2) != 0)
        fuzz_found("the printed config loads back as another one:\n%s\n---- prints as ----\n%s", text, text2);
    free(text);
    free(text2);
    return 0;
}
