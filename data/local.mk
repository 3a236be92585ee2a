# data/: HDF5 token shards, reader, sampler, tokenizer, dataset builder (owned by the data work).
noinst_LIBRARIES += data/libdata.a
data_libdata_a_SOURCES = \
  data/dataset.h data/sampler.h data/dataset_internal.h \
  data/h5_check.h data/h5_check.c \
  data/shard.h data/shard.c \
  data/writer.h data/writer.c \
  data/manifest.h data/manifest.c \
  data/dataset.c \
  data/perm.h data/perm.c \
  data/blend.h data/blend.c data/sampler.c \
  data/tokenizer.h data/tokenizer_impl.h data/tokenizer.c \
  data/strmap.h data/strmap.c data/idcache.h data/idcache.c data/utf8.h data/utf8.c \
  data/pairheap.h data/pairheap.c data/spm_model.h data/spm_model.c data/spm_tokenizer.c \
  data/unicode_classes.h data/unicode_classes.c data/pretok.h data/pretok.c \
  data/hf_json.h data/hf_json.c data/hf_tokenizer.c \
  data/infile.h data/infile.c data/corpus.h data/corpus.c data/docread.h data/docread.c \
  data/spill.h data/spill.c data/progress.h data/progress.c \
  data/build.h data/build_internal.h data/build.c data/tokenize.c data/assemble.c \
  data/inspect.h data/inspect.c

# The data programs need only this library and util (not the model, kernels or CUDA).
DATA_LDADD = data/libdata.a base/libbase.a $(HDF5_LIBS) $(ZLIB_LIBS) -lm

bin_PROGRAMS += megadata
megadata_SOURCES = tools/megadata.c tools/megadata.h tools/megadata_tokenizer.c
megadata_LDADD = $(DATA_LDADD)

EXTRA_DIST += doc/data.md

# Fetches and converts the Brown Corpus for the demo (run by hand; nothing is downloaded at build
# or test time).
bin_SCRIPTS += tools/brown-corpus.sh
EXTRA_DIST += tools/brown-corpus.sh
# Times the tokenizers beside the reference encoders, and megadata build's tokenizing over ranks
# (run by hand; doc/data.md has their figures).
EXTRA_DIST += tools/tokenizer-bench.sh tools/tokenizer-scaling.sh

check_PROGRAMS += tests/test_data tests/test_sampler
tests_test_data_SOURCES = tests/test_data.c
tests_test_data_LDADD = $(DATA_LDADD)
tests_test_sampler_SOURCES = tests/test_sampler.c
tests_test_sampler_LDADD = $(DATA_LDADD)
TESTS += tests/test_data tests/test_sampler.sh tests/test_megadata.sh tests/test_data_h5py.py tests/test_tokenizers.py \
  tests/test_corpus.sh tests/test_blend.sh tests/test_tokenizer_scaling.sh
EXTRA_DIST += tests/test_sampler.sh tests/test_megadata.sh tests/test_data_h5py.py \
  tests/test_tokenizers.py tests/tokenizer_corpus.py tests/tap.py tools/gen-unicode-classes.py \
  tests/test_corpus.sh tests/test_blend.sh tests/test_tokenizer_scaling.sh \
  tests/data/text/notes.txt tests/data/text/poems/autumn.txt tests/data/text/poems/spring.txt \
  tests/data/text/unicode.txt
