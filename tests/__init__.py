"""tfnode's tests. tfnode is imported before TensorFlow, so that the tests
run on the oneDNN CPU kernels it asks for, as `train.py` does."""

import tfnode  # noqa: F401
