"""depthwise_conv1d and DepthwiseConv1d against F.conv1d(groups=C) in float64,
over shapes that hit the kernels' edges (K = 1, K > L, C = 1, odd L), every
padding, with and without bias and SiLU, every dtype; gradients, opcheck,
torch.compile, nn.Conv1d's state_dict, and bad input; on the CPU and, where
there is one, on a CUDA device, where shapes also reach each GPU kernel
(window, tiled, tensor cores) and its aligned and unaligned paths."""

import importlib.util
import itertools

import pytest
import torch
import torch.nn.functional as F
from conftest import DEVICES, REPO, needs_cuda
from reference import SeenOps, random

from mojo_conv1d import DepthwiseConv1d, conv1d, depthwise_conv1d

SHAPES = [(1, 1, 1, 1), (2, 3, 17, 4), (1, 1, 5, 9), (3, 4, 8, 1), (2, 5, 33, 6), (1, 2, 70_001, 64), (4, 8, 257, 3)]
PADDINGS = ["causal", "same", "valid"]


def torch_reference(x, w, b, padding, activation):
    """The same through F.conv1d(groups=C); causal is padding K - 1 on both
    sides with the last K - 1 outputs cut."""
    c, k = w.shape[0], w.shape[-1]
    w3 = w.reshape(c, 1, k)
    if padding == "causal":
        out = F.conv1d(x, w3, b, padding=k - 1, groups=c)[..., : x.shape[-1]]
    else:
        out = F.conv1d(x, w3, b, padding=padding, groups=c)
    return F.silu(out) if activation == "silu" else out


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")
@pytest.mark.parametrize(("bias", "activation"), list(itertools.product([False, True], [None, "silu"])))
@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("shape", SHAPES, ids=[f"B{b}C{c}L{l}K{k}" for b, c, l, k in SHAPES])
@pytest.mark.parametrize("device", DEVICES)
def test_matches_grouped_conv1d_in_float64(device, shape, padding, bias, activation):
    b_, c, length, k = shape
    x = random((b_, c, length), device, torch.float64, seed=length)
    w = random((c, k), device, torch.float64, seed=k + 1)
    b = random(c, device, torch.float64, seed=c + 2) if bias else None
    if padding == "valid" and k > length:
        with pytest.raises(ValueError, match="padding 'valid' needs K <= L"):
            depthwise_conv1d(x, w, b, padding, activation)
        return
    got = depthwise_conv1d(x, w, b, padding, activation)
    torch.testing.assert_close(got, torch_reference(x, w, b, padding, activation), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("dtype", "tol"), [(torch.float16, 2e-3), (torch.bfloat16, 1.6e-2), (torch.float32, 2e-6)])
@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("device", DEVICES)
def test_lower_precision_dtypes_round_once(device, dtype, tol, padding):
    """Sums run in float32, so the result is the float64 sum rounded once
    to the dtype (within a few of its units, relative to the terms' size)."""
    x = random((3, 16, 1000), device, seed=1).to(dtype)
    w = random((16, 4), device, seed=2).to(dtype)
    b = random(16, device, seed=3).to(dtype)
    got = depthwise_conv1d(x, w, b, padding, "silu")
    assert got.dtype == dtype
    exact = torch_reference(x.double(), w.double(), b.double(), padding, "silu")
    scale = torch_reference(x.double().abs(), w.double().abs(), b.double().abs(), padding, None) + 1
    assert ((got.double() - exact).abs() / scale).max() <= 2 * tol


@pytest.mark.parametrize("device", DEVICES)
def test_a_two_dimensional_input_and_nn_conv1d_weights(device):
    x = random((6, 50), device, torch.float64, seed=4)
    w = random((6, 1, 5), device, torch.float64, seed=5)
    torch.testing.assert_close(depthwise_conv1d(x, w), torch_reference(x[None], w, None, "causal", None)[0])


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize(("b", "c", "length", "k"), [(2, 8, 300, 4), (3, 33, 64, 64), (2, 19, 103, 7), (1, 5, 17, 1)])
@pytest.mark.parametrize("device", DEVICES)
def test_channel_last_input_gives_the_same_result_in_its_layout(device, b, c, length, k, padding):
    """A channel-last tensor, as a (B, L, C) activation transposed, gives the
    same bits as the contiguous case. On the CPU it runs on its own kernel
    (SIMD over channels) and comes out channel-last too; on CUDA it is
    copied to the contiguous layout first."""
    x = random((b, length, c), device, torch.float64, seed=6).transpose(1, 2)
    w = random((c, k), device, torch.float64, seed=7)
    assert not x.is_contiguous()
    got = depthwise_conv1d(x, w, None, padding)
    assert got.transpose(1, 2).is_contiguous() if device == "cpu" else got.is_contiguous()
    assert torch.equal(got, depthwise_conv1d(x.contiguous(), w, None, padding))


@pytest.mark.parametrize("device", DEVICES)
def test_channel_last_gradients_and_opcheck(device):
    x = random((2, 30, 6), device, torch.float64, seed=20).transpose(1, 2).requires_grad_()
    w = random((6, 4), device, torch.float64, seed=21, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w: depthwise_conv1d(x, w, None, "same", "silu"), (x, w))
    b = random(6, device, torch.float64, seed=22, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w, b: depthwise_conv1d(x, w, b, "causal", "silu"), (x, w, b))
    torch.library.opcheck(torch.ops.mojo_conv1d.depthwise_correlate.default, (x, w, b, 3, False, 30, True))


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("activation", [None, "silu"])
@pytest.mark.parametrize("device", DEVICES)
def test_gradcheck(device, padding, activation):
    x = random((2, 3, 20), device, torch.float64, seed=8, requires_grad=True)
    w = random((3, 5), device, torch.float64, seed=9, requires_grad=True)
    b = random(3, device, torch.float64, seed=10, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w, b: depthwise_conv1d(x, w, b, padding, activation), (x, w, b))


@pytest.mark.parametrize("activation", [None, "silu"])
@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("device", DEVICES)
def test_gradgradcheck(device, padding, activation):
    x = random((2, 3, 12), device, torch.float64, seed=11, requires_grad=True)
    w = random((3, 4), device, torch.float64, seed=12, requires_grad=True)
    b = random(3, device, torch.float64, seed=13, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda x, w, b: depthwise_conv1d(x, w, b, padding, activation), (x, w, b))


@pytest.mark.parametrize("device", DEVICES)
def test_opcheck(device):
    x = random((2, 3, 40), device, seed=13, requires_grad=True)
    w = random((3, 6), device, seed=14, requires_grad=True)
    g = random((2, 3, 40), device, seed=15)
    b = random(3, device, seed=16, requires_grad=True)
    for shift, flip, bias, silu in ((5, False, b, True), (2, True, None, False), (0, False, b, False), (5, False, None, True)):
        n_out = 35 if shift == 0 else 40
        torch.library.opcheck(torch.ops.mojo_conv1d.depthwise_correlate.default, (x, w, bias, shift, flip, n_out, silu))
    torch.library.opcheck(torch.ops.mojo_conv1d.depthwise_grad_weight.default, (g, x, 5, 6))


@pytest.mark.parametrize("device", DEVICES)
def test_compile_fullgraph(device):
    model = torch.nn.Sequential(DepthwiseConv1d(4, 3, activation="silu"), DepthwiseConv1d(4, 5, padding="same")).to(device)
    x = random((2, 4, 64), device, seed=16)
    compiled = torch.compile(model, fullgraph=True)
    torch.testing.assert_close(compiled(x), model(x))


@pytest.mark.parametrize("device", DEVICES)
def test_inference_calls_skip_the_dispatcher_unless_watched(device, monkeypatch):
    """A module called with nothing to differentiate runs the op's body
    itself (its weight and bias are Parameters); under a dispatch mode or
    the profiler the call goes through the op; all give the same output."""
    from mojo_conv1d import ops

    model = DepthwiseConv1d(4, 3, activation="silu", device=device, dtype=torch.float64)
    x = random((2, 4, 50), device, torch.float64, seed=20)
    expected = torch_reference(x, model.weight.detach(), model.bias.detach(), "causal", "silu")
    direct = []
    key = ("depthwise_correlate", torch.device(device).type)
    body = ops._BODIES[key]
    monkeypatch.setitem(ops._BODIES, key, lambda *a: direct.append(1) or body(*a))
    with torch.no_grad():
        torch.testing.assert_close(model(x), expected)
        # The direct call reads the module's (C, 1, K) weight as it is, in either layout.
        torch.testing.assert_close(model(x.transpose(1, 2).contiguous().transpose(1, 2)), expected)
    assert direct == [1, 1]
    assert model(x).grad_fn is not None and direct == [1, 1]  # the weight needs a gradient: through the op

    with torch.no_grad(), SeenOps() as seen:
        torch.testing.assert_close(model(x), expected)
    assert "mojo_conv1d.depthwise_correlate.default" in seen.ops
    with torch.no_grad(), torch.profiler.profile() as profile:
        torch.testing.assert_close(model(x), expected)
    assert any(event.name == "mojo_conv1d::depthwise_correlate" for event in profile.events())
    assert direct == [1, 1]


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")
@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("device", DEVICES)
def test_loads_an_nn_conv1d_state_dict_and_gives_its_output(device, padding):
    torch.manual_seed(17)
    c, k = 6, 4
    conv = torch.nn.Conv1d(c, c, k, groups=c, padding=k - 1 if padding == "causal" else padding, dtype=torch.float64, device=device)
    ours = DepthwiseConv1d(c, k, padding=padding, dtype=torch.float64, device=device)
    ours.load_state_dict(conv.state_dict())
    x = random((3, c, 30), device, torch.float64, seed=18)
    expected = conv(x)[..., : x.shape[-1]] if padding == "causal" else conv(x)
    torch.testing.assert_close(ours(x), expected)
    assert set(ours.state_dict()) == {"weight", "bias"}


def test_initial_weights_follow_nn_conv1d():
    """Same initialisation scheme, so the same seed gives the same weights."""
    torch.manual_seed(19)
    conv = torch.nn.Conv1d(8, 8, 4, groups=8)
    torch.manual_seed(19)
    ours = DepthwiseConv1d(8, 4)
    assert torch.equal(conv.weight, ours.weight) and torch.equal(conv.bias, ours.bias)


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: ([1.0], torch.ones(2, 3), None, "causal", None), TypeError, "x must be a torch.Tensor"),
        (lambda: (torch.ones(1, 2, 5), torch.ones(3, 3), None, "causal", None), ValueError, "weight has 3 channels but x has 2"),
        (lambda: (torch.ones(1, 2, 5), torch.ones(2, 2, 3), None, "causal", None), ValueError, "weight must have shape"),
        (lambda: (torch.ones(2, 5), torch.ones(2, 3), torch.ones(3), "causal", None), ValueError, "bias must have shape (2,)"),
        (lambda: (torch.ones(5), torch.ones(1, 3), None, "causal", None), ValueError, "x must have shape"),
        (lambda: (torch.ones(2, 5), torch.ones(2, 3, dtype=torch.float64), None, "causal", None), TypeError, "weight dtype"),
        (lambda: (torch.ones(2, 5, dtype=torch.int32), torch.ones(2, 3, dtype=torch.int32), None, "causal", None), TypeError, "x has dtype torch.int32"),
        (lambda: (torch.ones(2, 5), torch.ones(2, 3, device="meta"), None, "causal", None), ValueError, "weight is on meta"),
        (lambda: (torch.ones(2, 5), torch.ones(2, 3), None, "full", None), ValueError, "padding must be one of"),
        (lambda: (torch.ones(2, 5), torch.ones(2, 3), None, "causal", "relu"), ValueError, "activation must be None or 'silu'"),
        (lambda: (torch.ones(2, 2), torch.ones(2, 3), None, "valid", None), ValueError, "padding 'valid' needs K <= L"),
        (lambda: (torch.ones(2, 0), torch.ones(2, 3), None, "causal", None), ValueError, "x is empty"),
        (lambda: (torch.ones(2, 5), torch.ones(2, 0), None, "causal", None), ValueError, "weight has no taps"),
        pytest.param(lambda: (torch.ones(2, 5), torch.ones(2, 3, device="cuda"), None, "causal", None), ValueError,
                     "weight is on cuda:0 but x is on cpu", marks=needs_cuda),
        pytest.param(lambda: (torch.ones(2, 5, device="cuda"), torch.ones(2, 3, device="cuda"), torch.ones(2), "causal", None),
                     ValueError, "bias is on cpu but x is on cuda:0", marks=needs_cuda),
    ],
)
def test_bad_input_raises_a_clear_error(make, error, message):
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        depthwise_conv1d(*make())


def test_training_example_matches_nn_conv1d_step_by_step(capsys):
    spec = importlib.util.spec_from_file_location("train_depthwise", REPO / "examples" / "train_depthwise.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    assert example.main([]) == 0
    assert "✅ the loss curves agree" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(channels=0, kernel_size=4), "channels must be a positive int"),
        (dict(channels=4, kernel_size=2.5), "kernel_size must be a positive int"),
        (dict(channels=4, kernel_size=4, padding="left"), "padding must be one of"),
        (dict(channels=4, kernel_size=4, activation="gelu"), "activation must be None or 'silu'"),
    ],
)
def test_module_rejects_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DepthwiseConv1d(**kwargs)


# Shapes that reach each CUDA kernel: L a multiple of 8 (16-byte rows) or
# not, K through the window kernel's two shapes, the tensor cores (K = 17 to
# 64 in bfloat16, 33 to 64 in float32) and the tiled kernel (beyond 64, and
# beyond its 256-tap chunk).
GPU_CASES = [(2, 64, 4096, 4), (3, 40, 1000, 3), (1, 16, 2051, 12), (2, 24, 2048, 16), (2, 16, 3000, 24),
             (2, 16, 4096, 40), (2, 8, 4096, 64), (1, 8, 2000, 64), (2, 4, 1500, 100), (1, 4, 1200, 300)]


@needs_cuda
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("case", GPU_CASES, ids=[f"B{b}C{c}L{l}K{k}" for b, c, l, k in GPU_CASES])
def test_cuda_kernels_match_the_float64_sum(case, padding, dtype):
    """Every output within a few units of the dtype of the float64 sum (the
    tensor cores split float32 into bfloat16 parts: about 5e-7 relative)."""
    b_, c, length, k = case
    x = random((b_, c, length), "cuda", seed=k).to(dtype)
    w = random((c, k), "cuda", seed=k + 1).to(dtype)
    bias = random(c, "cuda", seed=k + 2).to(dtype)
    for b, activation in ((None, None), (bias, "silu")):
        got = depthwise_conv1d(x, w, b, padding, activation)
        bd = None if b is None else b.double()
        exact = torch_reference(x.double(), w.double(), bd, padding, activation)
        scale = torch_reference(x.double().abs(), w.double().abs(), None if b is None else bd.abs(), padding, None) + 1
        tol = {torch.float32: 2e-6, torch.bfloat16: 1.6e-2, torch.float16: 2e-3}[dtype]
        assert ((got.double() - exact).abs() / scale).max() <= 2 * tol


@needs_cuda
@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("case", [(8, 32, 4096, 4), (2, 5, 1001, 3), (4, 16, 2048, 13), (2, 8, 4096, 64), (1, 3, 70_001, 7)])
def test_cuda_gradients_match_grouped_conv1d(case, padding):
    """The filters' gradient (its own two-pass kernel) and the input's, in
    float32 on shapes larger than gradcheck can take."""
    b_, c, length, k = case
    x = random((b_, c, length), "cuda", seed=30, requires_grad=True)
    w = random((c, k), "cuda", seed=31, requires_grad=True)
    bias = random(c, "cuda", seed=32, requires_grad=True)
    g = random((b_, c, length - k + 1 if padding == "valid" else length), "cuda", seed=33)
    ours = torch.autograd.grad(depthwise_conv1d(x, w, bias, padding, "silu"), (x, w, bias), g)
    x64, w64, b64 = (t.detach().double().requires_grad_() for t in (x, w, bias))
    theirs = torch.autograd.grad(torch_reference(x64, w64, b64, padding, "silu"), (x64, w64, b64), g.double())
    for got, want in zip(ours, theirs):
        torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-4 * want.abs().max().item())


@needs_cuda
@pytest.mark.parametrize("shape", [(32, 1024, 256), (65_600, 2, 600)], ids=["batches_share_a_block", "past_grid_y"])
def test_cuda_short_kernel_over_many_batches(shape):
    """The short kernel's grid is (filters, batches, splits): where a row is
    one tile (float32 rows of up to 512) a block takes several batches of its
    channel, and past 65535 batches (a grid's y) blocks loop over them."""
    x = random(shape, "cuda", seed=50)
    w = random((shape[1], 4), "cuda", seed=51)
    bias = random(shape[1], "cuda", seed=52)
    got = depthwise_conv1d(x, w, bias, "causal", "silu")
    torch.testing.assert_close(got, torch_reference(x, w, bias, "causal", "silu"), rtol=1e-5, atol=1e-5)


@needs_cuda
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize(("shape", "k"), [((2, 2048, 3000), 4), ((2, 2048, 3001), 3), ((1, 8, 2048), 4), ((1, 8, 2047), 2)])
def test_cuda_short_kernel_two_tiles_a_pass(shape, k, dtype):
    """16-bit data up to 4 taps: a block that walks its row's tiles in order
    takes two a pass (an odd count leaves one for the last), and a row of
    two tiles is one block's pass, except in the exact four-tap kernel,
    where it is two blocks of one; rows of odd length take the checked
    loads. The input's gradient (flipped taps) goes the same way."""
    tol = {torch.bfloat16: 1.6e-2, torch.float16: 2e-3}[dtype]
    x = random(shape, "cuda", seed=60).to(dtype).requires_grad_()
    w = random((shape[1], k), "cuda", seed=61).to(dtype)
    bias = random(shape[1], "cuda", seed=62).to(dtype)
    x64, w64, b64 = x.detach().double().requires_grad_(), w.double(), bias.double()
    for padding in PADDINGS:
        out = depthwise_conv1d(x, w, bias, padding, "silu")
        exact = torch_reference(x64, w64, b64, padding, "silu")
        scale = torch_reference(x64.detach().abs(), w64.abs(), b64.abs(), padding, None) + 1
        assert ((out.double() - exact).abs() / scale).max() <= 2 * tol, padding
    g = random(shape, "cuda", seed=63).to(dtype)
    (dx,) = torch.autograd.grad(depthwise_conv1d(x, w), x, g)
    (want,) = torch.autograd.grad(torch_reference(x64, w64, None, "causal", None), x64, g.double())
    scale = torch_reference(g.double().abs().flip(-1), w64.abs(), None, "causal", None).flip(-1) + 1
    assert ((dx.double() - want).abs() / scale).max() <= 2 * tol


@needs_cuda
@pytest.mark.parametrize(("shape", "k"), [((2, 3, 8200), 4), ((3, 5, 8193), 3), ((1, 2, 40_000), 2)])
def test_cuda_long_float32_rows_split_across_blocks(shape, k):
    """float32 rows of 16 short-kernel tiles or more take blocks of 4 tiles
    with the splits the grid's x (a block's last tiles may lie past the
    row); the input's gradient and the single-filter op's rows go the same
    way."""
    x = random(shape, "cuda", seed=70, requires_grad=True)
    w = random((shape[1], k), "cuda", seed=71)
    bias = random(shape[1], "cuda", seed=72)
    x64, w64 = x.detach().double().requires_grad_(), w.double()
    for padding in PADDINGS:
        got = depthwise_conv1d(x, w, bias, padding, "silu")
        want = torch_reference(x64, w64, bias.double(), padding, "silu")
        torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-5)
    g = random(shape, "cuda", seed=73)
    (dx,) = torch.autograd.grad(depthwise_conv1d(x, w), x, g)
    (want,) = torch.autograd.grad(torch_reference(x64, w64, None, "causal", None), x64, g.double())
    torch.testing.assert_close(dx.double(), want, rtol=1e-5, atol=1e-5)
    rows = x.detach().reshape(-1, shape[-1])
    padded = F.pad(rows.double()[:, None], (0, k - 1))  # conv1d pads on the right
    torch.testing.assert_close(conv1d(rows, w[0]).double(), F.conv1d(padded, w64[:1, None])[:, 0], rtol=1e-5, atol=1e-5)


@needs_cuda
def test_cuda_unaligned_rows_and_non_finite_inputs():
    """A view that starts one element in (no 16-byte accesses), and infinite
    and NaN inputs through the tensor cores: only the outputs whose window
    holds them are not finite."""
    x = random(2 * 8 * 4096 + 1, "cuda", seed=40)[1:].view(2, 8, 4096)
    assert x.is_contiguous() and x.data_ptr() % 16 != 0
    w = random((8, 40), "cuda", seed=41)
    torch.testing.assert_close(depthwise_conv1d(x, w), torch_reference(x, w, None, "causal", None), rtol=1e-5, atol=1e-5)
    x = random((2, 8, 4096), "cuda", seed=42)
    x[0, 3, 1000] = float("inf")
    x[1, 5, 2000] = float("nan")
    # Output t is not finite where x[t - 39 .. t] holds a non-finite input
    # (counted with cumulative sums: a convolution might spread NaN further).
    bad = (~x.isfinite()).long().cumsum(-1)
    held = bad - F.pad(bad, (40, 0))[..., :-40]
    for dtype in (torch.float32, torch.bfloat16):
        got = depthwise_conv1d(x.to(dtype), w.to(dtype))
        assert torch.equal(~got.isfinite(), held > 0), dtype


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("k, weight_offset", [(2, 0), (3, 0), (4, 0), (4, 1)])
@pytest.mark.parametrize("length", [2000, 3000])
def test_short_filters_with_non_finite_inputs(length, k, weight_offset, flip, dtype, device):
    """The GPU's 4-tap kernel reads four aligned taps in one load; filters
    of 2 or 3 taps, and 4 taps not aligned for that (a view one element
    into its storage), go through its other loop, with zero taps after
    theirs. A zero tap times an infinite input is NaN where the sum has no
    such term, so there outputs that come out infinite or NaN are computed
    again over the real taps: the pattern of non-finite outputs is exact,
    for taps read forward and reversed (the input's gradient). (Rows of
    2000 16-bit values are two tiles: one block's pass of two in that other
    loop, two blocks of one in the exact kernel; rows of 3000, three tiles
    in blocks of one.)"""
    x = random((2, 3, length), "cpu", seed=50)
    x[0, 1, 1000], x[1, 2, 1500], x[0, 0, length - 1], x[1, 0, 0] = float("inf"), float("-inf"), float("nan"), float("inf")
    w = random((3, k), "cpu", seed=51)
    x, w = x.to(dtype), w.to(dtype)
    w_on = torch.empty(3 * k + weight_offset, dtype=dtype, device=device)[weight_offset:].view(3, k)
    w_on.copy_(w)
    shift = k - 1
    got = torch.ops.mojo_conv1d.depthwise_correlate(x.to(device), w_on, None, shift, flip, length, False).cpu().double()
    # out[t] = sum over j of x[t + j - shift] * w'[j], w' reversed when flip, zeros outside the row.
    xd, wd = x.double(), (w.double().flip(-1) if flip else w.double())
    padded = F.pad(xd, (shift, k - 1 - shift))
    exact = sum(padded[..., j : j + length] * wd[:, j : j + 1] for j in range(k))
    assert torch.equal(got.isnan(), exact.isnan())
    assert torch.equal(got.isposinf(), exact.isposinf())
    assert torch.equal(got.isneginf(), exact.isneginf())
    finite = exact.isfinite()
    assert finite.sum() > 6 * length - 20
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    torch.testing.assert_close(got[finite], exact[finite], rtol=tol, atol=tol)


@needs_cuda
def test_cuda_graph_replays_the_op():
    """Launched on PyTorch's stream, the kernels are captured into a CUDA
    graph and replay on new data in the captured buffers."""
    model = DepthwiseConv1d(16, 4, activation="silu", device="cuda")
    x = random((4, 16, 512), "cuda", seed=43)
    with torch.no_grad():
        model(x)  # built and loaded before the capture
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            y = model(x)
        x.copy_(random((4, 16, 512), "cuda", seed=44))
        graph.replay()
        torch.testing.assert_close(y, model(x))
