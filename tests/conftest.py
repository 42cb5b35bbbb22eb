"""Shared fixtures: the repo root, and the devices to run on. The tests import
mojo_conv1d as installed (uv installs the project into its environment)."""

from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]

HAS_CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")

# Every op test runs on the CPU and, where there is one, on a CUDA device.
DEVICES = [pytest.param("cpu"), pytest.param("cuda", marks=needs_cuda)]
