# tests/ref/: the PyTorch reference of the model (float64, autograd) and the tests that check it
# and compare megatrain's C model with it through `megatrain dump` (doc/model-check.md).
# .py tests run under $(PYTHON_REF), the python3 that has torch, numpy and h5py.
TESTS += tests/test_ref_selfcheck.py tests/test_reference.py
EXTRA_DIST += tests/ref/megalodon_ref.py tests/ref/tap.py tests/ref/ckpt_h5.py \
  tests/test_ref_selfcheck.py tests/test_reference.py
