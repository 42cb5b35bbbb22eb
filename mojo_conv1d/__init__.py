"""Trainable PyTorch 1D convolutions whose kernels are Mojo (mojo_conv1d/kernels):
`conv1d`, one filter for every row, and `depthwise_conv1d` / `DepthwiseConv1d`,
one filter per channel."""

from .depthwise import DepthwiseConv1d, depthwise_conv1d
from .ops import SUPPORTED_DTYPES, conv1d

__all__ = ["SUPPORTED_DTYPES", "DepthwiseConv1d", "conv1d", "depthwise_conv1d"]
