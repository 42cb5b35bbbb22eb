"""conv1d as a PyTorch operator: dtypes, batches, gradients, opcheck,
torch.compile, determinism, threads and clear errors on bad input."""

import importlib.util
import subprocess
import sys
import threading
import time

import pytest
import torch
from conftest import DEVICES, REPO, needs_cuda
from reference import SeenOps, assert_close, random, torch_conv1d

from mojo_conv1d import SUPPORTED_DTYPES, _cpu, _gpu, build, conv1d, ops


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", SUPPORTED_DTYPES)
@pytest.mark.parametrize("shape", [(1000,), (3, 257)])
def test_dtypes_and_batches(shape, dtype, device):
    x = random(shape, device, dtype, seed=3)
    w = random(9, device, dtype, seed=4)
    out = conv1d(x, w)
    assert out.dtype == dtype and out.shape == x.shape and out.device == x.device
    assert_close(out, x, w)


@pytest.mark.parametrize("device", DEVICES)
def test_gradcheck_float64(device):
    x = random((2, 40), device, torch.float64, seed=5, requires_grad=True)
    w = random(7, device, torch.float64, seed=6, requires_grad=True)
    assert torch.autograd.gradcheck(conv1d, (x, w))
    assert torch.autograd.gradgradcheck(conv1d, (x, w))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("shape", "k"), [((50,), 3), ((4, 3000), 64), ((2, 10), 25), ((3, 4100), 33)])  # the last: tensor cores both ways on Hopper (shift 32)
def test_gradients_match_torch(shape, k, device):
    x = random(shape, device, seed=7, requires_grad=True)
    w = random(k, device, seed=8, requires_grad=True)
    grad = random(shape, device, seed=9)
    ours = torch.autograd.grad(conv1d(x, w), (x, w), grad)
    # The reference runs in float64: on CUDA, cuDNN may use TF32 for float32.
    x64, w64 = (t.detach().double().requires_grad_() for t in (x, w))
    theirs = torch.autograd.grad(torch_conv1d(x64, w64), (x64, w64), grad.double())
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a.double(), b, rtol=1e-4, atol=1e-4 * shape[-1] ** 0.5)


def opcheck_samples(device):
    for dtype in (torch.float32, torch.float64, torch.bfloat16):
        for shape, k in [((20,), 3), ((3, 65), 8), ((5,), 9)]:
            for requires_grad in (False, True):
                yield (
                    random(shape, device, dtype, seed=k, requires_grad=requires_grad),
                    random(k, device, dtype, seed=k + 1, requires_grad=requires_grad),
                )


@pytest.mark.parametrize("device", DEVICES)
def test_opcheck(device):
    for args in opcheck_samples(device):
        torch.library.opcheck(torch.ops.mojo_conv1d.conv1d.default, args)


class Smoother(torch.nn.Module):
    def __init__(self, k, device):
        super().__init__()
        self.kernel = torch.nn.Parameter(random(k, device, seed=11))
        self.proj = torch.nn.Linear(64, 64, device=device)

    def forward(self, x):
        return self.proj(conv1d(x, self.kernel).relu())


@pytest.mark.parametrize("device", DEVICES)
def test_compile_fullgraph(device):
    model = Smoother(5, device)
    x = random((8, 64), device, seed=12)
    compiled = torch.compile(model, fullgraph=True)
    torch.testing.assert_close(compiled(x), model(x))
    compiled(x).sum().backward()
    assert model.kernel.grad is not None and model.kernel.grad.abs().sum() > 0


@needs_cuda
def test_compile_reduce_overhead_replays_the_op_from_a_cuda_graph(monkeypatch):
    # The op's launches are ordered with PyTorch's own kernels (cf.
    # extension-cpp's stream-sync test) and recorded in the CUDA graph: once
    # recorded, a call replays the graph without running the op's Python body.
    launches = []
    for name in ("correlate", "grad_kernel"):
        launch = getattr(_gpu, name)
        monkeypatch.setattr(_gpu, name, lambda *args, name=name, launch=launch: (launches.append(name), launch(*args)))
    model = Smoother(5, "cuda")
    compiled = torch.compile(model, mode="reduce-overhead", fullgraph=True)
    inputs = [random((8, 64), "cuda", seed=seed) for seed in range(6)]
    with torch.no_grad():
        expected = [model(x) for x in inputs]
        for x, want in zip(inputs[:3], expected):  # warm-up, recording, a first replay
            torch.testing.assert_close(compiled(x), want)
        launches.clear()
        for x, want in zip(inputs[3:], expected[3:]):
            torch.testing.assert_close(compiled(x), want)
    assert launches == []


@needs_cuda
def test_compile_reduce_overhead_trains():
    model = Smoother(5, "cuda")
    reference = Smoother(5, "cuda")
    reference.load_state_dict(model.state_dict())
    compiled = torch.compile(model, mode="reduce-overhead", fullgraph=True)
    for seed in range(4):
        x = random((8, 64), "cuda", seed=seed)
        for m in (model, reference):
            m.zero_grad()
        compiled(x).square().sum().backward()
        reference(x).square().sum().backward()
        torch.testing.assert_close(model.kernel.grad, reference.kernel.grad)


@needs_cuda
def test_cuda_graph_records_the_op():
    # Recorded once and replayed on new data: the launch must be a node of the
    # graph, not work that ran once during the capture.
    x = random((2, 5000), "cuda", seed=1)
    w = random(7, "cuda", seed=2)
    conv1d(x, w)  # compiled and warm before the capture
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = conv1d(x, w)
    for seed in (3, 4):
        x.copy_(random(x.shape, "cuda", seed=seed))
        out.zero_()
        graph.replay()
        torch.cuda.synchronize()
        assert_close(out, x, w)


@needs_cuda
def test_ordered_with_torch_kernels_on_the_stream():
    # A large producer right before the op and a consumer right after: a missing
    # stream dependency shows as a wrong sum.
    x = random((64, 1 << 16), "cuda", seed=13)
    w = random(31, "cuda", seed=14)
    expected = torch_conv1d((x * 2 + 1).double(), w.double()).float()
    for _ in range(5):
        y = conv1d(x * 2 + 1, w)
        torch.testing.assert_close(y * 3, expected * 3, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("device", DEVICES)
def test_forward_is_bitwise_deterministic(device):
    x = random((4, 100_003), device, seed=15)
    w = random(33, device, seed=16)
    first = conv1d(x, w)
    for _ in range(3):
        assert torch.equal(conv1d(x, w), first)


@pytest.mark.parametrize("device", DEVICES)
def test_calls_from_many_threads(device):
    inputs = [(random(1000 + 37 * i, device, seed=i), random(3 + i, device, seed=50 + i)) for i in range(8)]
    expected = [conv1d(x, w) for x, w in inputs]
    results, errors = [None] * len(inputs), []

    def call(i):
        try:
            for _ in range(5):
                results[i] = conv1d(*inputs[i])
        except Exception as e:  # reported below, with the thread's index
            errors.append((i, e))

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 300
    for t in threads:
        t.join(timeout=max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "a thread hung"
    assert not errors, errors
    for got, want in zip(results, expected):
        assert torch.equal(got, want)


def test_cpu_path_leaves_child_processes_alone():
    """The CPU path loads a Mojo extension, whose Python interop sets
    PYTHONEXECUTABLE and PYTHONPATH in the C environment; _cpu.py undoes that,
    or a Python started from this process would start outside the venv."""
    conv1d(random(100, "cpu"), random(4, "cpu"))
    child = subprocess.run([sys.executable, "-c", "import sys, torch; print(sys.prefix)"],
                           capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr[-2000:]
    assert child.stdout.strip() == sys.prefix


def test_a_failed_cpu_build_raises_a_clear_error(tmp_path, monkeypatch):
    """If cpu_ops.mojo does not compile, the first CPU call says so, with the
    compiler's message, instead of failing somewhere inside the import."""
    broken = tmp_path / "cpu_ops.mojo"
    broken.write_text("def PyInit_cpu_ops() -> Int:\n    return undefined_name\n")
    monkeypatch.setattr(_cpu, "SOURCE", broken)
    monkeypatch.setattr(_cpu, "_module", None)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(RuntimeError, match="building cpu_ops.so failed(.|\n)*undefined_name"):
        _cpu.module()
    assert not list((tmp_path / "cache" / "mojo_conv1d").iterdir())  # nothing half-built is left behind


def test_builds_go_to_the_user_cache(tmp_path, monkeypatch):
    """Products are built into $XDG_CACHE_HOME/mojo_conv1d, never beside their
    sources, so a read-only install works; a second request for the same
    product reuses the file without running the compiler. (A two-line
    package stands in for the kernels, which take far longer to compile.)"""
    source = tmp_path / "tiny"
    source.mkdir()
    (source / "__init__.mojo").write_text("")
    (source / "twice.mojo").write_text("def twice(x: Int) -> Int:\n    return 2 * x\n")
    source.chmod(0o555)  # read-only, as an installed package may be
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    package = build.kernel_package(source)
    assert package.is_file() and package.name == "tiny.mojoc"
    assert package.is_relative_to(tmp_path / "cache" / "mojo_conv1d")
    monkeypatch.setattr(build, "run_mojo", lambda args: pytest.fail(f"compiled again: {args}"))
    assert build.kernel_package(source) == package
    assert sorted(p.name for p in source.iterdir()) == ["__init__.mojo", "twice.mojo"]


def test_non_contiguous_input_is_handled():
    x = random((64, 30), "cpu", seed=17).t()  # (30, 64), strided
    w = random(5, "cpu", seed=18)
    assert not x.is_contiguous()
    torch.testing.assert_close(conv1d(x, w), torch_conv1d(x.contiguous(), w))


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: (torch.ones(10), torch.ones(3, dtype=torch.float64)), TypeError, "kernel dtype"),
        (lambda: (torch.ones(10, dtype=torch.int32), torch.ones(3, dtype=torch.int32)), TypeError, "input has dtype torch.int32"),
        (lambda: (torch.ones(10), torch.ones(3, dtype=torch.int64)), TypeError, "kernel has dtype torch.int64"),
        (lambda: (torch.ones(2, 3, 10), torch.ones(3)), ValueError, "input must have shape (N,) or (B, N)"),
        (lambda: (torch.ones(10), torch.ones(3, 1)), ValueError, "kernel must have shape (K,)"),
        (lambda: (torch.ones(0), torch.ones(3)), ValueError, "input is empty"),
        (lambda: (torch.ones(4, 0), torch.ones(3)), ValueError, "input is empty"),
        (lambda: (torch.ones(10), torch.ones(0)), ValueError, "kernel is empty"),
        (lambda: ([1.0, 2.0], torch.ones(3)), TypeError, "input must be a torch.Tensor"),
        (lambda: (torch.ones(10), torch.ones(3, device="meta")), ValueError, "kernel is on meta"),
    ],
)
def test_bad_input_raises_a_clear_error(make, error, message):
    x, w = make()
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        conv1d(x, w)


@needs_cuda
def test_devices_must_match():
    with pytest.raises(ValueError, match="kernel is on cpu but input is on cuda"):
        conv1d(torch.ones(10, device="cuda"), torch.ones(3))


def test_training_example_converges(capsys):
    spec = importlib.util.spec_from_file_location("train_filter", REPO / "examples" / "train_filter.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    assert example.main(["--device", "cpu"]) == 0
    assert "✅ converged" in capsys.readouterr().out


@pytest.mark.filterwarnings("ignore:There is a performance drop")  # vmap's loop over the op: expected
@pytest.mark.parametrize("device", DEVICES)
def test_calls_without_gradients_skip_the_dispatcher_unless_watched(device, monkeypatch):
    """With nothing to differentiate and nothing watching, conv1d runs the
    op's body itself (docs/call_cost.md); the result is the same and it
    records no graph. A dispatch mode (as FakeTensor uses), the profiler, a
    tensor subclass and vmap still see the op, and get the same values."""
    from mojo_conv1d import ops

    x = random((3, 500), device, seed=21, requires_grad=True)
    w = random(7, device, seed=22, requires_grad=True)
    with_graph = conv1d(x, w)
    assert with_graph.grad_fn is not None
    with torch.no_grad():
        plain = conv1d(x, w)
    assert plain.grad_fn is None and not plain.requires_grad
    assert torch.equal(plain, with_graph.detach())

    direct = []
    body = ops._BODIES["conv1d", torch.device(device).type]
    monkeypatch.setitem(ops._BODIES, ("conv1d", torch.device(device).type), lambda *a: direct.append(1) or body(*a))
    assert torch.equal(conv1d(x.detach(), w.detach()), plain) and direct == [1]
    assert torch.equal(conv1d(torch.nn.Parameter(x.detach(), requires_grad=False), w.detach()), plain)
    assert direct == [1, 1]  # a Parameter that needs no gradient is plain too

    with SeenOps() as seen:
        assert torch.equal(conv1d(x.detach(), w.detach()), plain)
    assert "mojo_conv1d.conv1d.default" in seen.ops
    with torch.profiler.profile() as profile:
        assert torch.equal(conv1d(x.detach(), w.detach()), plain)
    assert any(event.name == "mojo_conv1d::conv1d" for event in profile.events())

    class Tagged(torch.Tensor):
        pass

    assert torch.equal(conv1d(x.detach().as_subclass(Tagged), w.detach()), plain)
    batched = torch.func.vmap(lambda row: conv1d(row, w.detach()))(x.detach())
    torch.testing.assert_close(batched, plain)
    assert direct == [1, 1]  # none of these ran the body directly


def test_forward_mode_ad_raises_instead_of_dropping_the_tangent():
    import torch.autograd.forward_ad as fwAD

    x, w = random(20, "cpu", seed=23), random(3, "cpu", seed=24)
    with fwAD.dual_level():
        with pytest.raises(NotImplementedError, match="forward-mode AD"):
            conv1d(fwAD.make_dual(x, torch.ones_like(x)), w)
        assert torch.equal(conv1d(x, w), conv1d(x.clone(), w))  # plain tensors inside the level still work
