# data/: HDF5 token shards, reader, sampler, tokenizer (owned by the data work).
noinst_LIBRARIES += data/libdata.a
data_libdata_a_SOURCES = data/dataset.h data/sampler.h
