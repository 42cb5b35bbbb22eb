"""A trainable PyTorch conv1d operator whose kernels are Mojo (mojo_conv1d/kernels)."""

from .ops import SUPPORTED_DTYPES, conv1d

__all__ = ["SUPPORTED_DTYPES", "conv1d"]
