# tests of kernels/ (owned by the kernels work)
