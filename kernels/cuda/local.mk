# kernels/cuda/: the CUDA backend (built with --with-cuda)
