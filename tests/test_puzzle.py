"""The puzzle driver: the PyTorch path (CustomOpLibrary + torch.compile) and the
MAX Graph path agree with NumPy; problems/ is solutions/ minus one line; the
unsolved run and bad arguments fail clearly."""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import DEVICES, REPO
from reference import correlate

PROBLEM = REPO / "problems" / "p20" / "p20.py"
SOLUTION = REPO / "solutions" / "p20" / "p20.py"
FILL_IN = re.compile(r"# ANCHOR: conv1d_pytorch_call\n(.*?)# ANCHOR_END: conv1d_pytorch_call\n", re.S)


def load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


solution = load(SOLUTION, "p20_solution")
problem = load(PROBLEM, "p20_problem")


def run(path, *args, timeout=600):
    return subprocess.run(
        [sys.executable, str(path), *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


# Each (N, K) is a compile-time specialization of the puzzle op (seconds each),
# so this grid is small; tests/test_conv1d_op.py sweeps lengths on the same kernels.
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("n", "k"), [(15, 4), (257, 17), (3, 8)])
def test_pytorch_and_max_graph_agree_with_numpy(n, k, device):
    rng = np.random.default_rng(n * 1000 + k)
    x = rng.standard_normal(n).astype(np.float32)
    w = rng.standard_normal(k).astype(np.float32)
    expected = correlate(x, w)[0]
    via_torch = solution.conv1d_pytorch(torch.from_numpy(x).to(device), torch.from_numpy(w).to(device))
    assert via_torch.device.type == device
    via_graph = solution.conv1d_max_graph(x, w, device)
    np.testing.assert_allclose(via_torch.cpu().numpy(), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(via_graph, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(via_torch.cpu().numpy(), via_graph)  # the same kernel


def test_each_path_compiles_a_specialization_once(monkeypatch):
    """The seed's line wraps the op in a fresh torch.compile on every call:
    neither Dynamo nor MAX may compile it again for the same sizes, and the
    MAX Graph path compiles its graph once too."""
    from max.engine import InferenceSession
    from torch._dynamo.utils import counters

    loads = []
    load = InferenceSession.load
    monkeypatch.setattr(InferenceSession, "load", lambda self, *a, **kw: (loads.append(1), load(self, *a, **kw))[1])
    x, w = torch.arange(21.0), torch.arange(5.0)  # sizes no other test uses
    graphs = counters["stats"]["unique_graphs"]
    first = solution.conv1d_pytorch(x, w)
    assert (counters["stats"]["unique_graphs"] - graphs, len(loads)) == (1, 1)
    assert torch.equal(solution.conv1d_pytorch(x, w), first)
    assert (counters["stats"]["unique_graphs"] - graphs, len(loads)) == (1, 1)
    assert solution.op_library() is solution.op_library()
    for _ in range(2):
        np.testing.assert_array_equal(solution.conv1d_max_graph(x.numpy(), w.numpy(), "cpu"), first.numpy())
    assert len(loads) == 2


def test_problem_differs_from_solution_only_in_the_fill_in_line():
    problem, answer = PROBLEM.read_text(), SOLUTION.read_text()
    problem_region, answer_region = FILL_IN.search(problem), FILL_IN.search(answer)
    assert problem_region and answer_region, "both files need the conv1d_pytorch_call anchors"
    assert FILL_IN.sub("", problem) == FILL_IN.sub("", answer)
    assert "fill_in_here(" in problem_region.group(1)
    assert "fill_in_here(" not in answer_region.group(1)
    assert (REPO / "problems/p20/op").resolve() == (REPO / "solutions/p20/op").resolve() == REPO / "mojo_conv1d/kernels"


def test_unsolved_run_says_where_to_fill_in():
    result = run(PROBLEM, "--device", "cpu")
    assert result.returncode == 1, result.stderr
    assert "Puzzle 20 is not solved yet" in result.stdout
    line = next(i for i, text in enumerate(PROBLEM.read_text().splitlines(), 1) if text.strip().startswith("fill_in_here()"))
    assert f"problems/p20/p20.py:{line}" in result.stdout
    # The hint points at the op's `execute` signature, where the arguments can
    # be read, and at the chapter; it does not give the answer away.
    op_source = (REPO / "problems/p20/op/conv1d.mojo").read_text().splitlines()
    registered = next(i for i, text in enumerate(op_source) if '@extensibility.register("conv1d")' in text)
    execute = next(i for i in range(registered, len(op_source)) if "def execute" in op_source[i]) + 1
    assert f"problems/p20/op/conv1d.mojo:{execute}" in result.stdout
    assert "book/src/puzzle_20/puzzle_20.md" in result.stdout and '"Code to complete"' in result.stdout
    message = result.stdout[result.stdout.index("not solved yet"):]
    assert "torch.compile" not in message and "input_tensor" not in message and "first" not in message
    assert all(len(text) <= 80 for text in message.splitlines())
    assert "Traceback" not in result.stdout + result.stderr
    assert "PyTorch custom op result" not in result.stdout  # nothing uninitialized printed


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--size", "0"], "--size must be at least 1"),
        (["--kernel-size", "-3"], "--kernel-size must be at least 1"),
        (["--size", "ten"], "invalid int value"),
        (["--device", "tpu"], "invalid choice"),
    ],
)
def test_cli_rejects_bad_arguments(args, message):
    result = run(SOLUTION, *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cli_refuses_cuda_without_a_gpu():
    result = run(SOLUTION, "--device", "cuda")
    assert result.returncode == 2
    assert "no CUDA device" in result.stderr


@pytest.mark.parametrize("module", ["problem", "solution"])
def test_on_a_mac_the_puzzle_runs_on_the_cpu_and_says_why(module, monkeypatch, capsys):
    """MPS and no CUDA (a Mac): the CPU by default, one line on stderr that
    says why, and no mps choice."""
    puzzle = problem if module == "problem" else solution
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert puzzle.parse_args([]).device == "cpu"
    assert puzzle.parse_args(["--device", "cpu"]).device == "cpu"
    out, err = capsys.readouterr()
    line = "[p20] MAX's CustomOpLibrary (max 26.7) takes cpu and cuda tensors only, so the puzzle runs on the CPU\n"
    assert (out, err) == ("", line * 2)
    with pytest.raises(SystemExit) as refused:
        puzzle.parse_args(["--device", "mps"])
    assert refused.value.code == 2 and "invalid choice: 'mps'" in capsys.readouterr().err
    # Without MPS, no line.
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert puzzle.parse_args([]).device == "cpu"
    assert capsys.readouterr() == ("", "")


def test_solution_run_with_random_data_passes():
    result = run(SOLUTION, "--device", "cpu", "--size", "300", "--kernel-size", "33", "--seed", "5")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("PASSED") == 2 and "MATCH" in result.stdout


def test_a_later_run_loads_the_graphs_an_earlier_run_compiled(tmp_path, monkeypatch):
    """compiled_graphs keeps the MAX graphs compiled inside it beside the
    package build, and a later block loads them instead of compiling."""
    from max.engine import InferenceSession

    from mojo_conv1d.build import compiled_graphs

    package = tmp_path / "build" / "op.mojoc"  # only its folder is used
    with compiled_graphs(package, "cpu-23-6") as kept:
        solution.max_graph_model(23, 6, "cpu")
    assert (kept / "manifest.json").is_file() and list(kept.glob("*.mef"))
    assert [p.name for p in kept.parent.iterdir()] == ["cpu-23-6"]  # no half-written folder left

    compiled = []
    compile = InferenceSession.compile
    monkeypatch.setattr(InferenceSession, "compile", lambda self, model, **kw: (compiled.append(model), compile(self, model, **kw))[1])
    solution.max_graph_model.cache_clear()
    with compiled_graphs(package, "cpu-23-6"):
        x, w = np.arange(23, dtype=np.float32), np.arange(6, dtype=np.float32)
        np.testing.assert_allclose(solution.conv1d_max_graph(x, w, "cpu"), correlate(x, w)[0], rtol=1e-5)
    assert len(compiled) == 1 and isinstance(compiled[0], Path), compiled  # the kept artifact, not a Graph
