"""The CPU loss kernels (csrc/cpu/loss.cpp) that dwd_fast.torch.ops runs on float32 CPU tensors: equal to
the generic torch path of the same ops (and to F.cross_entropy) on hypothesis-generated batches with
sizes that are not multiples of the kernels' 8-pixel groups, any target dtype, every mask mode, sparse
and dense weights; the same result for any thread count; bad targets and NaN logits."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
F = torch.nn.functional

import dwd_fast  # noqa: E402
from dwd_fast.torch import ops  # noqa: E402

MODES = list(ops.LOSS_MASKS)
FG_ONLY = ["none", "mask_bg", "mask_zeros", "fg_bg_balanced"]


def generic(monkeypatch):
    """Forces the torch (non-kernel) path of every op."""
    monkeypatch.setattr(ops, "_fast_loss_args", lambda *a, **k: None)
    monkeypatch.setattr(ops, "_fast_labels", lambda *a: False)


def batch(seed, B, H, W, K, C, dtype, density):
    g = torch.Generator().manual_seed(seed)
    fg = torch.rand(B, H, W, generator=g) < density
    te = (torch.randint(1, K, (B, H, W), generator=g) * fg).to(dtype)
    tc = (torch.randint(1, C, (B, H, W), generator=g) * fg).to(dtype)
    ts = torch.rand(B, 2, H, W, generator=g) * 20 * fg[:, None]
    out = {"energy": torch.randn(B, K, H, W, generator=g) * 3, "classes": torch.randn(B, C, H, W, generator=g) * 3,
           "sizes": torch.rand(B, 2, H, W, generator=g) * 20}
    return out, te, tc, ts


KERNEL_SETS = ["avx512", "avx2", "baseline"]


def _supported():
    ext = dwd_fast._ext.cpu_ext()
    try:
        return {ext.loss_use_kernels(name) for name in KERNEL_SETS}
    finally:
        ext.loss_use_kernels("best")


SUPPORTED = _supported()


@pytest.fixture(params=KERNEL_SETS, autouse=True)
def kernel_set(request):
    """Every test runs with each kernel set this CPU supports (AVX-512, AVX2 + FMA, baseline target)."""
    if request.param not in SUPPORTED:
        pytest.skip(f"this CPU has no {request.param}")
    ext = dwd_fast._ext.cpu_ext()
    used = ext.loss_use_kernels(request.param)
    assert used == request.param
    yield used
    ext.loss_use_kernels("best")


shapes = st.tuples(st.integers(1, 3), st.integers(1, 23), st.integers(1, 29), st.integers(2, 9), st.integers(2, 13))


@settings(deadline=None, max_examples=40)
@given(shape=shapes, seed=st.integers(0, 2**16), dtype=st.sampled_from([torch.uint8, torch.int32, torch.int64]),
       density=st.sampled_from([0.0, 0.05, 0.4, 1.0]), em=st.sampled_from(MODES), cm=st.sampled_from(MODES),
       sm=st.sampled_from(FG_ONLY), size_loss=st.sampled_from(["l1", "l2"]))
def test_dwd_loss_kernel_equals_generic_path(shape, seed, dtype, density, em, cm, sm, size_loss):
    B, H, W, K, C = shape
    out, te, tc, ts = batch(seed, B, H, W, K, C, dtype, density)
    args = (out["energy"], out["classes"], out["sizes"], te, tc, ts, em, cm, sm, size_loss)
    assert ops._fast_loss_args(*args) is not None  # the kernel path is the one under test
    got = ops.dwd_loss(*args)
    grad = torch.rand(B, 3) + 0.5
    g_got = ops.dwd_loss_backward(grad, *args)
    with pytest.MonkeyPatch.context() as mp:
        generic(mp)
        want = ops.dwd_loss(*args)
        g_want = ops.dwd_loss_backward(grad, *args)
    torch.testing.assert_close(got, want, rtol=2e-6, atol=1e-6)
    # float32 rounding of softmax - onehot (cancellation at the target channel): absolute, on the scale
    # grad * weight / (H W) of the pixel's gradient
    weights = [ops.loss_mask(v, m) for v, m in ((te, em), (tc, cm), (te, sm))]
    for a, b, w in zip(g_got, g_want, weights):
        scale = float(grad.max()) * float(w.max()) / (H * W) * (40 if b is g_want[2] else 1)
        torch.testing.assert_close(a, b, rtol=1e-5, atol=scale * 4e-7 + 1e-30)
        assert int(a.masked_select((w == 0)[:, None]).count_nonzero()) == 0  # zero where the weight is zero


@settings(deadline=None, max_examples=40)
@given(shape=shapes, seed=st.integers(0, 2**16), dtype=st.sampled_from([torch.uint8, torch.int32, torch.int64]),
       density=st.sampled_from([0.0, 0.1, 0.5, 1.0]))
def test_masked_cross_entropy_kernel_equals_cross_entropy(shape, seed, dtype, density):
    B, H, W, K, _ = shape
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(B, K, H, W, generator=g) * 4).requires_grad_()
    t = torch.randint(0, K, (B, H, W), generator=g).to(dtype)
    w = torch.rand(B, H, W, generator=g) * (torch.rand(B, H, W, generator=g) < density)
    got = ops.masked_cross_entropy(x, t, w)
    ce = F.cross_entropy(x, t.long(), reduction="none")
    want = (ce * w).sum((1, 2)) / (H * W)
    torch.testing.assert_close(got, want, rtol=2e-6, atol=1e-6)
    gw = torch.rand(B)
    (gx,) = torch.autograd.grad((got * gw).sum(), x)
    (gx_want,) = torch.autograd.grad((want * gw).sum(), x)
    torch.testing.assert_close(gx, gx_want, rtol=1e-5, atol=float(gw.max() * w.max()) / (H * W) * 4e-7 + 1e-30)


@settings(deadline=None, max_examples=60)
@given(shape=shapes, seed=st.integers(0, 2**16), dtype=st.sampled_from([torch.uint8, torch.int32, torch.int64]),
       mode=st.sampled_from(MODES), density=st.sampled_from([0.0, 0.3, 1.0]))
def test_loss_mask_kernel_equals_generic_path(shape, seed, dtype, mode, density):
    B, H, W, K, _ = shape
    g = torch.Generator().manual_seed(seed)
    v = (torch.randint(1, K, (B, H, W), generator=g) * (torch.rand(B, H, W, generator=g) < density)).to(dtype)
    got = ops.loss_mask(v, mode)
    want = ops._masks(v, mode) if mode != "none" else torch.ones(B, H, W)
    assert torch.equal(got, want)


def test_loss_mask_negative_values_take_the_generic_path():
    v = torch.tensor([[[-2, 0, 3], [3, 3, -2]]], dtype=torch.int64)
    assert torch.equal(ops.loss_mask(v, "by_class_no_bg"), ops._masks(v, "by_class_no_bg"))


def test_kernel_results_do_not_depend_on_threads():
    out, te, tc, ts = batch(7, 2, 61, 67, 6, 9, torch.uint8, 0.3)
    args = (out["energy"], out["classes"], out["sizes"], te, tc, ts, "fg_bg_balanced", "by_class_no_bg", "mask_bg",
            "l2")
    before = torch.get_num_threads()
    try:
        res = []
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            res.append((ops.dwd_loss(*args), ops.dwd_loss_backward(torch.ones(2, 3), *args)))
    finally:
        torch.set_num_threads(before)
    for loss, grads in res[1:]:
        assert torch.equal(loss, res[0][0])
        assert all(torch.equal(a, b) for a, b in zip(grads, res[0][1]))


def test_kernel_bad_target_raises_named_error():
    out, te, tc, ts = batch(3, 1, 9, 10, 4, 5, torch.int32, 0.5)
    tc[0, 2, 3] = 7  # weighted (by_class weights every value) and not a channel of the 5 class logits
    with pytest.raises(ValueError, match=r"target values must be in \[0, 5\)"):
        ops.dwd_loss(out["energy"], out["classes"], out["sizes"], te, tc, ts, "none", "by_class", "mask_bg", "l2")
    with pytest.raises(ValueError, match=r"target values must be in \[0, 5\)"):
        ops.masked_cross_entropy(out["classes"], tc, torch.ones(1, 9, 10))


def test_kernel_nan_logits_give_nan_loss():
    out, te, tc, ts = batch(5, 1, 8, 9, 4, 5, torch.uint8, 1.0)
    out["energy"][0, 2, 3, 4] = float("nan")
    loss = ops.dwd_loss(out["energy"], out["classes"], out["sizes"], te, tc, ts, "none", "none", "none", "l2")
    assert torch.isnan(loss[0, 0]) and not torch.isnan(loss[0, 1:]).any()


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64])
def test_kernel_tables_for_values_beyond_1024(dtype):
    """Values of 1024 and more take the kernels' wide histogram (masks, and the class loss with many classes)."""
    g = torch.Generator().manual_seed(3)
    v = (torch.randint(0, 1500, (2, 7, 9), generator=g) * (torch.rand(2, 7, 9, generator=g) < 0.5)).to(dtype)
    v[0, 0, 0] = 1499
    for mode in MODES:
        assert torch.equal(ops.loss_mask(v, mode), ops._masks(v, mode) if mode != "none" else torch.ones(2, 7, 9))
    x = torch.randn(2, 1500, 7, 9, generator=g)
    out = {"energy": torch.randn(2, 4, 7, 9, generator=g), "classes": x, "sizes": torch.rand(2, 2, 7, 9, generator=g)}
    te = (v != 0).to(torch.uint8) * 3
    args = (out["energy"], out["classes"], out["sizes"], te, v, torch.rand(2, 2, 7, 9), "none", "by_class_no_bg",
            "mask_bg", "l2")
    assert ops._fast_loss_args(*args) is not None
    got = ops.dwd_loss(*args)
    with pytest.MonkeyPatch.context() as mp:
        generic(mp)
        want = ops.dwd_loss(*args)
    torch.testing.assert_close(got, want, rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("em", ["fg_bg_balanced", "none"])
def test_kernel_dense_energy_path(em, monkeypatch):
    """Masks that weight every pixel of a uint8 energy map take the kernels' unstaged dense path: several
    units of parallel work, a partial last group, logits far outside exp's range in some groups (the
    shifted recomputation), and a target that is not a channel."""
    out, te, tc, ts = batch(11, 2, 131, 127, 7, 5, torch.uint8, 0.3)
    out["energy"][0, :, 40:43, 8:50] += 200.0  # above exp's range: those groups are recomputed shifted
    out["energy"][1, :, 90, 100:120] -= 150.0  # below it
    args = (out["energy"], out["classes"], out["sizes"], te, tc, ts, em, "by_class_no_bg", "mask_bg", "l2")
    got = ops.dwd_loss(*args)
    with pytest.MonkeyPatch.context() as mp:
        generic(mp)
        want = ops.dwd_loss(*args)
    torch.testing.assert_close(got, want, rtol=2e-6, atol=1e-6)
    te[1, 130, 126] = 7  # the last pixel (in the partial group): not one of the 7 energy channels
    with pytest.raises(ValueError, match=r"target values must be in \[0, 7\)"):
        ops.dwd_loss(*args)
    te[1, 130, 126] = 0
    te[0, 77, 3] = 9  # inside the dense groups
    with pytest.raises(ValueError, match=r"target values must be in \[0, 7\)"):
        ops.dwd_loss(*args)

