# tests/fuzz/: libFuzzer targets for every parser of outside input (run files, token shards,
# checkpoint metadata, JSON Lines corpora, tokenizer files). `./configure --enable-fuzzing CC=clang`
# builds them; `make fuzz FUZZ_SECONDS=600` runs each for that long from its seed corpus
# (tests/fuzz/<name>/, files made by megatrain's own tools, for corpus by hand, for tokenizer by
# megadata tokenizer train and test_tokenizers.py's tokenizer_json) and prints what each found.
FUZZ_NAMES = config shard ckpt_meta corpus tokenizer
EXTRA_DIST += tests/fuzz/run.sh tests/fuzz/fuzz.h tests/fuzz/fuzz.c \
  tests/fuzz/fuzz_config.c tests/fuzz/fuzz_shard.c tests/fuzz/fuzz_ckpt_meta.c tests/fuzz/fuzz_corpus.c \
  tests/fuzz/fuzz_tokenizer.c tests/fuzz/config tests/fuzz/shard tests/fuzz/ckpt_meta tests/fuzz/corpus \
  tests/fuzz/tokenizer tests/fuzz/config.dict tests/fuzz/corpus.dict tests/fuzz/tokenizer.dict
FUZZ_SECONDS = 60
# config, corpus, tokenizer: every rejection ends in exit(2), where nothing is freed by design, so
# leaks there are not findings; the other readers return to their caller on bad input and must
# free everything.
FUZZ_ENV_config = ASAN_OPTIONS=detect_leaks=0
FUZZ_FLAGS_config = -dict=$(srcdir)/tests/fuzz/config.dict
FUZZ_ENV_corpus = ASAN_OPTIONS=detect_leaks=0
FUZZ_FLAGS_corpus = -dict=$(srcdir)/tests/fuzz/corpus.dict
FUZZ_ENV_tokenizer = ASAN_OPTIONS=detect_leaks=0
FUZZ_FLAGS_tokenizer = -dict=$(srcdir)/tests/fuzz/tokenizer.dict

if FUZZING
EXTRA_PROGRAMS = tests/fuzz/fuzz_config tests/fuzz/fuzz_shard tests/fuzz/fuzz_ckpt_meta tests/fuzz/fuzz_corpus \
  tests/fuzz/fuzz_tokenizer
FUZZ_LINK = -fsanitize=fuzzer -Wl,--wrap=exit
tests_fuzz_fuzz_config_SOURCES = tests/fuzz/fuzz_config.c tests/fuzz/fuzz.h tests/fuzz/fuzz.c
tests_fuzz_fuzz_config_LDFLAGS = $(FUZZ_LINK)
tests_fuzz_fuzz_shard_SOURCES = tests/fuzz/fuzz_shard.c tests/fuzz/fuzz.h tests/fuzz/fuzz.c
tests_fuzz_fuzz_shard_LDFLAGS = $(FUZZ_LINK)
tests_fuzz_fuzz_ckpt_meta_SOURCES = tests/fuzz/fuzz_ckpt_meta.c tests/fuzz/fuzz.h tests/fuzz/fuzz.c
tests_fuzz_fuzz_ckpt_meta_LDFLAGS = $(FUZZ_LINK)
tests_fuzz_fuzz_corpus_SOURCES = tests/fuzz/fuzz_corpus.c tests/fuzz/fuzz.h tests/fuzz/fuzz.c
tests_fuzz_fuzz_corpus_LDFLAGS = $(FUZZ_LINK)
tests_fuzz_fuzz_tokenizer_SOURCES = tests/fuzz/fuzz_tokenizer.c tests/fuzz/fuzz.h tests/fuzz/fuzz.c
tests_fuzz_fuzz_tokenizer_LDFLAGS = $(FUZZ_LINK)
CLEANFILES += $(EXTRA_PROGRAMS)

# One target at a time (each is one process); the status says whether any found something.
fuzz: $(EXTRA_PROGRAMS)
	@status=0; \
	$(foreach n,$(FUZZ_NAMES),$(FUZZ_ENV_$(n)) $(SHELL) $(srcdir)/tests/fuzz/run.sh tests/fuzz/fuzz_$(n) \
	  $(FUZZ_SECONDS) $(srcdir)/tests/fuzz/$(n) $(FUZZ_FLAGS_$(n)) || status=1;) \
	exit $$status
else
fuzz:
	@echo "fuzz: configure with --enable-fuzzing CC=clang to build the fuzz targets" >&2; exit 1
endif
.PHONY: fuzz
