"""Mojo package of Puzzle 20: 1D convolution ops for MAX graphs and PyTorch.

conv1d.mojo: the registered ops (MAX custom ops), routed to the CPU or GPU kernels.
common.mojo: the sum every kernel computes, and what several kernels share.
window.mojo: the register-window GPU kernel (short kernels).
tiled.mojo: the shared-memory tiled GPU kernel (long kernels).
tensor_cores.mojo: the float32 GPU kernel on Hopper's tensor cores (33 to 64 taps).
grad_kernel.mojo: the GPU two-pass reduction for the gradient with respect to the kernel.
gpu.mojo: the host-side GPU entry points, correlate_gpu and grad_kernel_gpu.
cpu.mojo: the CPU kernels, correlate_cpu and grad_kernel_cpu.
"""
