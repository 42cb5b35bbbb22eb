"""Mojo package of Puzzle 20: 1D convolution ops for MAX graphs and PyTorch.

kernels.mojo holds the GPU and CPU kernels; conv1d.mojo registers the ops.
"""
