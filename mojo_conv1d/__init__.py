"""A trainable PyTorch conv1d operator whose kernels are Mojo (solutions/p20/op)."""

from .ops import SUPPORTED_DTYPES, conv1d

__all__ = ["SUPPORTED_DTYPES", "conv1d"]
