"""dwd_fast.torch: targets against dwd_fast.encode, masks against compat.loss_mask and the original's
re-statement, the loss against a plain re-computation with torch's own cross-entropy, the decoder
against dwd_fast.decode, the custom ops with opcheck / gradcheck, torch.compile without graph breaks,
and bad input."""

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
F = torch.nn.functional

import dwd_fast  # noqa: E402
from dwd_fast.torch import (DeepWatershedDetector, Decoder, DWDHead, DWDLoss, TargetEncoder,  # noqa: E402
                            ops, output_stride)
from tests.reference import dwd_targets  # noqa: E402

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(autouse=True)
def _seed():
    state = torch.random.get_rng_state()
    torch.manual_seed(0)
    yield
    torch.random.set_rng_state(state)


def random_targets(rng, B, H, W, n_max=6, num_classes=5):
    out = []
    for _ in range(B):
        n = int(rng.integers(0, n_max + 1))
        x1 = rng.uniform(-3, W - 2, n)
        y1 = rng.uniform(-3, H - 2, n)
        w = rng.uniform(1.5, 14, n)
        h = rng.uniform(1.5, 14, n)
        boxes = np.stack([x1, y1, np.maximum(x1 + w, 0.5), np.maximum(y1 + h, 0.5)], 1).astype(np.float32)
        labels = rng.integers(1, num_classes, n)
        out.append({"boxes": torch.from_numpy(boxes.reshape(-1, 4)), "labels": torch.from_numpy(labels)})
    return out


def test_import_dwd_fast_does_not_import_torch():
    code = "import sys, dwd_fast; dwd_fast.encode; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------------------------------
# TargetEncoder / encode_targets
# --------------------------------------------------------------------------------------------------

@given(seed=st.integers(0, 2**32 - 1), B=st.integers(1, 4), stride=st.sampled_from([1, 2, 3]),
       overlap=st.sampled_from(["max", "nearest", "last", "smallest"]), marker=st.sampled_from(["oval", "box", "hull"]))
def test_targets_equal_encode(seed, B, stride, overlap, marker):
    rng = np.random.default_rng(seed)
    H, W = int(rng.integers(8, 30)), int(rng.integers(8, 30))
    targets = random_targets(rng, B, H, W)
    enc = TargetEncoder(levels=9, num_classes=5, marker=marker, overlap=overlap, stride=stride)
    t = enc(targets, (H, W))
    want = dwd_fast.encode([d["boxes"].numpy() for d in targets], [d["labels"].numpy() for d in targets], (H, W),
                           levels=9, marker=marker, overlap=overlap, strides=(stride,), min_marker=enc.min_marker)
    assert t["energy"].dtype == torch.uint8 and t["classes"].dtype == torch.int32 and t["sizes"].dtype == torch.float32
    assert t["energy"].shape == (B, -(-H // stride), -(-W // stride))
    np.testing.assert_array_equal(t["energy"].numpy(), want.energy)
    np.testing.assert_array_equal(t["classes"].numpy(), want.classes)
    np.testing.assert_array_equal(t["sizes"].numpy(), want.sizes)
    # DWDLoss reads the size targets' foreground from the energy: they must coincide
    assert torch.equal(t["sizes"].amax(1) > 0, t["energy"] > 0)


TARGET_DEFAULTS = {"min_marker": TargetEncoder().min_marker, "overlap": TargetEncoder().overlap}


def test_targets_fixed_size_and_profile():
    rng = np.random.default_rng(3)
    targets = random_targets(rng, 2, 20, 24)
    t = TargetEncoder(levels=12, size=(5, 7), profile="quadratic")(targets, (20, 24))
    want = dwd_fast.encode([d["boxes"] for d in targets], [d["labels"] for d in targets], (20, 24), levels=12,
                           size=(5.0, 7.0), profile="quadratic", **TARGET_DEFAULTS)
    assert torch.equal(t["energy"], want.energy) and torch.equal(t["sizes"], want.sizes)


def test_targets_drop_invalid_equals_filtering_by_hand():
    boxes = torch.tensor([[2.0, 2.0, 9.0, 8.0], [5.0, 5.0, 5.0, 9.0], [30.0, 1.0, 40.0, 6.0], [-9.0, 3.0, -1.0, 7.0],
                          [10.0, 10.0, 18.0, 17.0]])
    labels = torch.tensor([1, 2, 3, 4, 2])
    targets = [{"boxes": boxes, "labels": labels}, {"boxes": boxes[2:3], "labels": labels[2:3]}]
    with pytest.raises(ValueError, match=r"targets\[0\]\['boxes'\]: box 1 is degenerate"):
        TargetEncoder(levels=6)(targets, (20, 25))
    t = TargetEncoder(levels=6, drop_invalid=True)(targets, (20, 25))
    keep = [0, 4]
    want = dwd_fast.encode(boxes[keep], labels[keep], (20, 25), levels=6, **TARGET_DEFAULTS)
    assert torch.equal(t["energy"][0], want.energy) and torch.equal(t["classes"][0], want.classes)
    assert int(t["energy"][1].count_nonzero()) == 0


def test_targets_device_argument_and_empty_images():
    targets = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}] * 2
    t = TargetEncoder(levels=4)(targets, (5, 6), device="cpu")
    assert t["energy"].shape == (2, 5, 6) and int(t["energy"].abs().sum()) == 0 and t["energy"].device.type == "cpu"


I64 = torch.int64


@pytest.mark.parametrize("targets, err, match", [
    ([], TypeError, "non-empty list"),
    ([{"boxes": torch.zeros(1, 4)}], TypeError, r"targets\[0\] must be a dict"),
    ([{"boxes": np.zeros((1, 4)), "labels": torch.zeros(1, dtype=torch.int64)}], TypeError, "must be tensors"),
    ([{"boxes": torch.zeros(1, 5), "labels": torch.zeros(1, dtype=I64)}], ValueError, r"\['boxes'\] must be \(N, 4\)"),
    ([{"boxes": torch.zeros(1, 4, dtype=I64), "labels": torch.zeros(1, dtype=I64)}], TypeError, "float"),
    ([{"boxes": torch.tensor([[1.0, 1, 4, 4]]), "labels": torch.zeros(2, dtype=I64)}], ValueError, "one label per box"),
    ([{"boxes": torch.tensor([[1.0, 1, 4, 4]]), "labels": torch.ones(1)}], TypeError, "integer"),
    ([{"boxes": torch.tensor([[1.0, 1, 4, 4]]), "labels": torch.tensor([7])}], ValueError,
     r"labels must be class ids in \[0, 5\)"),
    ([{"boxes": torch.tensor([[1.0, 1, 4, 4]]), "labels": torch.tensor([-1])}], ValueError, "labels must be class ids"),
    ([{"boxes": torch.tensor([[float("nan"), 1, 4, 4]]), "labels": torch.tensor([1])}], ValueError, "not finite"),
])
def test_targets_bad_input(targets, err, match):
    with pytest.raises(err, match=match):
        TargetEncoder(levels=4, num_classes=5, drop_invalid=True)(targets, (10, 10))


@pytest.mark.parametrize("kwargs, match", [({"levels": 1}, "levels"), ({"marker": "star"}, "marker"),
                                           ({"profile": "cubic"}, "profile"), ({"overlap": "min"}, "overlap"),
                                           ({"stride": 0}, "stride"), ({"size": -1.0}, "size"),
                                           ({"num_classes": 0}, "num_classes")])
def test_target_encoder_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TargetEncoder(**kwargs)


# --------------------------------------------------------------------------------------------------
# loss_mask: against compat.loss_mask (the original's masks, float64) and the test re-statement
# --------------------------------------------------------------------------------------------------

MASK_MODES = ["mask_bg", "mask_zeros", "fg_bg_balanced", "by_class", "by_class_no_bg"]


@given(seed=st.integers(0, 2**32 - 1), mode=st.sampled_from(MASK_MODES + [None]), lowest=st.integers(0, 2),
       kind=st.sampled_from(["softmax", "reg"]), dtype=st.sampled_from([np.int64, np.int32, np.uint8]))
def test_loss_mask_equals_original(seed, mode, lowest, kind, dtype):
    rng = np.random.default_rng(seed)
    B, H, W, C = 2, int(rng.integers(1, 9)), int(rng.integers(1, 9)), 6
    values = rng.integers(lowest, C, (B, H, W)) * (rng.random((B, H, W)) < rng.random())
    if kind == "reg":
        gt = np.stack([values * 1.5, values * 0.5], -1).astype(np.float32)  # size maps: amax over (h, w)
        got = ops.loss_mask(torch.from_numpy(gt.max(-1)), mode or "none")
    else:
        gt = np.eye(C)[values]  # one-hot, as the original's target maps
        got = ops.loss_mask(torch.from_numpy(values.astype(dtype)), mode or "none")
    assert got.dtype == torch.float32 and got.shape == (B, H, W)
    for b in range(B):
        want = dwd_fast.compat.loss_mask(gt[b][None], mode, loss=kind)[:, :, 0]
        oracle = dwd_targets.loss_mask(gt[b][None], mode, loss=kind)[:, :, 0]
        np.testing.assert_array_equal(want, oracle)
        np.testing.assert_allclose(got[b].numpy(), want, rtol=1e-6)


def test_loss_mask_bad_input():
    with pytest.raises(ValueError, match="mode must be one of"):
        ops.loss_mask(torch.zeros(1, 2, 2, dtype=torch.int64), "by_object")
    with pytest.raises(ValueError, match=r"values must be \(B, H, W\)"):
        ops.loss_mask(torch.zeros(2, 2, dtype=torch.int64), "mask_bg")


# --------------------------------------------------------------------------------------------------
# masked_cross_entropy: against F.cross_entropy, dense and sparse, values and gradients
# --------------------------------------------------------------------------------------------------

def plain_masked_ce(logits, target, weight):
    """Reference: torch's own per-pixel cross-entropy times the weight, mean over pixels, per image."""
    ce = F.cross_entropy(logits, target, reduction="none")
    return (ce * weight).flatten(1).mean(1)


@pytest.mark.parametrize("density", [0.0, 0.05, 0.2, 0.6, 1.0])
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8])
def test_masked_cross_entropy_equals_plain(density, dtype):
    B, C, H, W = 3, 7, 13, 17
    logits = (torch.randn(B, C, H, W) * 3).requires_grad_()
    target = torch.randint(0, C, (B, H, W))
    weight = torch.rand(B, H, W) * (torch.rand(B, H, W) < density)
    got = ops.masked_cross_entropy(logits, target.to(dtype), weight)
    ref_logits = logits.detach().clone().requires_grad_()
    want = plain_masked_ce(ref_logits, target, weight)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    g = torch.randn(B)
    (got * g).sum().backward()
    (want * g).sum().backward()
    torch.testing.assert_close(logits.grad, ref_logits.grad, rtol=1e-5, atol=1e-7)


def test_masked_cross_entropy_ignores_targets_of_zero_weight():
    logits = torch.randn(1, 3, 4, 4)
    target = torch.full((1, 4, 4), 99)
    target[0, 1, 1] = 2
    weight = torch.zeros(1, 4, 4)
    weight[0, 1, 1] = 1.0
    got = ops.masked_cross_entropy(logits, target, weight)
    want = (torch.logsumexp(logits[0, :, 1, 1], 0) - logits[0, 2, 1, 1]) / 16
    torch.testing.assert_close(got[0], want)
    weight[0, 0, 0] = 1.0
    with pytest.raises(ValueError, match=r"target values must be in \[0, 3\)"):
        ops.masked_cross_entropy(logits, target, weight)


@pytest.mark.parametrize("density", [0.1, 1.0])
def test_masked_cross_entropy_gradcheck(density):
    x = torch.randn(2, 4, 5, 6, dtype=torch.float64, requires_grad=True)
    t = torch.randint(0, 4, (2, 5, 6))
    w = torch.rand(2, 5, 6, dtype=torch.float64) * (torch.rand(2, 5, 6) < density)
    assert torch.autograd.gradcheck(lambda x: ops.masked_cross_entropy(x, t, w), (x,))


@pytest.mark.parametrize("args, err, match", [
    ((torch.randn(2, 3, 4), torch.zeros(2, 4, dtype=torch.int64), torch.ones(2, 4)), ValueError, "logits must be"),
    ((torch.randn(1, 3, 4, 4), torch.zeros(1, 4, 5, dtype=I64), torch.ones(1, 4, 4)), ValueError, "target must be"),
    ((torch.randn(1, 3, 4, 4), torch.zeros(1, 4, 4), torch.ones(1, 4, 4)), TypeError, "uint8, int32 or int64"),
    ((torch.randn(1, 3, 4, 4), torch.zeros(1, 4, 4, dtype=I64), torch.ones(1, 4)), ValueError, "weight must be"),
    ((torch.zeros(1, 3, 4, 4, dtype=torch.int64), torch.zeros(1, 4, 4, dtype=torch.int64), torch.ones(1, 4, 4)),
     TypeError, "float"),
])
def test_masked_cross_entropy_bad_input(args, err, match):
    with pytest.raises(err, match=match):
        ops.masked_cross_entropy(*args)


# --------------------------------------------------------------------------------------------------
# DWDLoss: against a plain re-computation with numpy masks (compat.loss_mask) and F.cross_entropy
# --------------------------------------------------------------------------------------------------

def make_batch(B=3, H=24, W=28, levels=8, num_classes=5, seed=0):
    rng = np.random.default_rng(seed)
    targets = random_targets(rng, B, H, W, n_max=5, num_classes=num_classes)
    t = TargetEncoder(levels, num_classes)(targets, (H, W))
    outputs = {"energy": torch.randn(B, levels, H, W, requires_grad=True),
               "classes": torch.randn(B, num_classes, H, W, requires_grad=True),
               "sizes": (torch.rand(B, 2, H, W) * 10).requires_grad_()}
    return outputs, t


def plain_dwd_loss(outputs, t, energy_mask, class_mask, size_mask, size_loss, images):
    """The loss of DWDLoss's docstring, per image, with the original's numpy masks."""
    levels, C = outputs["energy"].shape[1], outputs["classes"].shape[1]
    parts = []
    for b in images:
        e_gt = np.eye(levels)[t["energy"][b].numpy()][None]
        c_gt = np.eye(C)[t["classes"][b].numpy()][None]
        s_gt = np.moveaxis(t["sizes"][b].numpy(), 0, -1)[None]
        m_e = torch.from_numpy(dwd_fast.compat.loss_mask(e_gt, energy_mask, "softmax")[:, :, 0]).float()
        m_c = torch.from_numpy(dwd_fast.compat.loss_mask(c_gt, class_mask, "softmax")[:, :, 0]).float()
        m_s = torch.from_numpy(dwd_fast.compat.loss_mask(s_gt, size_mask, "reg")[:, :, 0]).float()
        le = (F.cross_entropy(outputs["energy"][b:b + 1], t["energy"][b:b + 1].long(), reduction="none")[0]
              * m_e).mean()
        lc = (F.cross_entropy(outputs["classes"][b:b + 1], t["classes"][b:b + 1].long(), reduction="none")[0]
              * m_c).mean()
        d = outputs["sizes"][b] - t["sizes"][b]
        ls = ((d.abs() if size_loss == "l1" else d.square()) * m_s).mean()
        parts.append(torch.stack([le, lc, ls]))
    return torch.stack(parts).mean(0)


@pytest.mark.parametrize("energy_mask, class_mask, size_mask, size_loss", [
    ("fg_bg_balanced", "by_class_no_bg", "mask_bg", "l2"),
    (None, "by_class", "fg_bg_balanced", "l1"),
    ("by_class", "mask_bg", "mask_zeros", "l2"),
    ("by_class_no_bg", None, None, "l1"),
])
@pytest.mark.parametrize("batch", ["all", "first"])
def test_dwd_loss_equals_plain(energy_mask, class_mask, size_mask, size_loss, batch):
    outputs, t = make_batch()
    fn = DWDLoss(energy_mask=energy_mask, class_mask=class_mask, size_mask=size_mask, size_loss=size_loss,
                 factors=(2.0, 0.5, 3.0), running_mean=None, batch=batch)
    got = fn(outputs, t)
    ref = {k: v.detach().clone().requires_grad_() for k, v in outputs.items()}
    want = plain_dwd_loss(ref, t, energy_mask, class_mask, size_mask, size_loss,
                          range(3) if batch == "all" else [0])
    torch.testing.assert_close(torch.stack([got["loss_energy"], got["loss_class"], got["loss_size"]]), want,
                               rtol=1e-5, atol=1e-7)
    total = (want * torch.tensor([2.0, 0.5, 3.0])).sum()
    torch.testing.assert_close(got["loss"], total, rtol=1e-5, atol=1e-7)
    got["loss"].backward()
    total.backward()
    for k in outputs:
        torch.testing.assert_close(outputs[k].grad, ref[k].grad, rtol=1e-4, atol=1e-8)
    if batch == "first":
        assert all(int(outputs[k].grad[1:].count_nonzero()) == 0 for k in outputs)


@pytest.mark.parametrize("chunk", [64, 1 << 15])
def test_dwd_loss_chunked_and_sparse_paths_equal_plain(monkeypatch, chunk):
    """Small chunks (several per image, a partial last one) give the same values and gradients."""
    monkeypatch.setattr(ops, "_CHUNK", chunk)
    for modes in (("fg_bg_balanced", "by_class_no_bg", "mask_bg", "l1"), (None, None, None, "l2")):
        outputs, t = make_batch(seed=4)
        fn = DWDLoss(energy_mask=modes[0], class_mask=modes[1], size_mask=modes[2], size_loss=modes[3],
                     running_mean=None)
        got = fn(outputs, t)
        ref = {k: v.detach().clone().requires_grad_() for k, v in outputs.items()}
        want = plain_dwd_loss(ref, t, *modes, range(3))
        torch.testing.assert_close(torch.stack([got["loss_energy"], got["loss_class"], got["loss_size"]]), want,
                                   rtol=1e-5, atol=1e-7)
        got["loss"].backward()
        (want * torch.tensor([2.0, 1.0, 1.0])).sum().backward()
        for k in outputs:
            torch.testing.assert_close(outputs[k].grad, ref[k].grad, rtol=1e-4, atol=1e-8)


@pytest.mark.parametrize("modes", [("fg_bg_balanced", "by_class_no_bg", "mask_bg", "l2"),
                                   ("none", "by_class", "by_class_no_bg", "l1")])
def test_dwd_loss_op_gradcheck_and_opcheck(modes):
    outputs, t = make_batch(B=2, H=5, W=6, levels=3, num_classes=3, seed=2)
    assert int(t["energy"].count_nonzero()) > 0
    x = {k: v.detach().double().requires_grad_() for k, v in outputs.items()}
    x["sizes"] = (x["sizes"].detach() + 0.25).requires_grad_()  # away from the kink of |d| at 0
    args = (t["energy"], t["classes"], t["sizes"].double(), *modes)
    assert torch.autograd.gradcheck(lambda e, c, s: ops.dwd_loss(e, c, s, *args),
                                    (x["energy"], x["classes"], x["sizes"]))
    torch.library.opcheck(ops.dwd_loss, (outputs["energy"], outputs["classes"], outputs["sizes"], t["energy"],
                                         t["classes"], t["sizes"], *modes), test_utils=OPCHECK_TESTS)


def test_dwd_loss_running_mean_rule():
    """s_i = factor_i / max(mean of the last L task losses, 1e-6); history starts at ones, updated after
    each training forward, not in eval mode."""
    L = 3
    fn = DWDLoss(factors=(2.0, 1.0, 4.0), running_mean=L)
    history = [[1.0] * L for _ in range(3)]
    for step in range(6):
        outputs, t = make_batch(seed=step)
        if step == 4:
            fn.eval()
        got = fn(outputs, t)
        losses = [float(got[k].detach()) for k in ("loss_energy", "loss_class", "loss_size")]
        scales = [f / max(np.mean(h[-L:]), 1e-6) for f, h in zip((2.0, 1.0, 4.0), history)]
        assert float(got["loss"].detach()) == pytest.approx(sum(s * v for s, v in zip(scales, losses)), rel=1e-5)
        if fn.training:
            for h, v in zip(history, losses):
                h.append(v)
        np.testing.assert_allclose(fn.history.numpy(), np.array([h[-L:] for h in history]), rtol=1e-6)
    # the scales carry no gradient: d loss / d logits = s * d loss_i / d logits
    fn.train()
    outputs, t = make_batch(seed=9)
    s = fn.scales().clone()
    got = fn(outputs, t)
    got["loss"].backward()
    ref = outputs["sizes"].detach().clone().requires_grad_()
    (DWDLoss(factors=(0.0, 0.0, float(s[2])), running_mean=None)(dict(outputs, sizes=ref), t)["loss"]).backward()
    torch.testing.assert_close(outputs["sizes"].grad, ref.grad)


def test_dwd_loss_state_dict_round_trip():
    fn = DWDLoss(running_mean=4)
    fn(*make_batch())
    other = DWDLoss(running_mean=4)
    other.load_state_dict(fn.state_dict())
    assert torch.equal(other.history, fn.history) and not torch.equal(other.history, torch.ones(3, 4))


@pytest.mark.parametrize("kwargs, match", [({"energy_mask": "by_object"}, "energy_mask"),
                                           ({"size_loss": "huber"}, "size_loss"),
                                           ({"factors": (1.0, 2.0)}, "factors"), ({"running_mean": 0}, "running_mean"),
                                           ({"batch": "last"}, "batch")])
def test_dwd_loss_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DWDLoss(**kwargs)


def test_dwd_loss_bad_shapes():
    outputs, t = make_batch()
    with pytest.raises(ValueError, match=r"targets\['energy'\] must have shape"):
        DWDLoss()(outputs, dict(t, energy=t["energy"][:, :-1]))
    with pytest.raises(ValueError, match=r"outputs\['sizes'\] must have shape"):
        DWDLoss()(dict(outputs, sizes=outputs["sizes"][:, :1]), t)
    with pytest.raises(TypeError, match="outputs must be a dict"):
        DWDLoss()(outputs["energy"], t)
    with pytest.raises(ValueError, match=r"target values must be in \[0, 5\)"):  # more levels in targets than logits
        DWDLoss()(dict(outputs, energy=outputs["energy"][:, :5]), t)


# --------------------------------------------------------------------------------------------------
# DWDHead
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("in_channels", [3, 40])
def test_head_upsampling_order_does_not_matter(in_channels):
    head = DWDHead(in_channels, num_classes=6, levels=5, upsample=True)
    f = torch.randn(2, in_channels, 7, 9)
    out = head(f, size=(21, 27))
    assert out["energy"].shape == (2, 5, 21, 27) and out["classes"].shape == (2, 6, 21, 27)
    assert out["sizes"].shape == (2, 2, 21, 27)
    # upsample the features first, then the 1x1 convolutions: the same maps
    up = F.interpolate(f, size=(21, 27), mode="bilinear", align_corners=False)
    torch.testing.assert_close(out["energy"], head.energy(up), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out["sizes"], head.sizes(up), rtol=1e-4, atol=1e-5)
    no_up = DWDHead(in_channels, 6, 5)
    no_up.load_state_dict(head.state_dict())
    assert no_up(f)["classes"].shape == (2, 6, 7, 9)


def test_head_bad_input():
    with pytest.raises(ValueError, match="in_channels"):
        DWDHead(0, 3)
    with pytest.raises(ValueError, match="num_classes"):
        DWDHead(4, 1)
    with pytest.raises(ValueError, match=r"features must be a \(B, 4, H, W\)"):
        DWDHead(4, 3)(torch.randn(1, 5, 3, 3))
    with pytest.raises(ValueError, match="needs the output size"):
        DWDHead(4, 3, upsample=True)(torch.randn(1, 4, 3, 3))


# --------------------------------------------------------------------------------------------------
# Decoder: against dwd_fast.decode
# --------------------------------------------------------------------------------------------------

def logits_of(page, K, C, scale=6.0):
    """Logits whose argmax is the page's level / class map."""
    e = torch.from_numpy(page.energy.astype(np.int64))
    c = torch.from_numpy(page.classes.astype(np.int64)).clamp(max=C - 1)
    energy = F.one_hot(e, K).permute(2, 0, 1).float() * scale + torch.randn(K, *e.shape) * 0.1
    classes = F.one_hot(c, C).permute(2, 0, 1).float() * scale + torch.randn(C, *c.shape) * 0.1
    return energy, classes


@pytest.mark.parametrize("stride", [1, 4])
def test_decoder_equals_decode(stride):
    pages = [dwd_fast.data.reference_page(n, seed=s, shape=(90, 120), levels=8) for n, s in ((12, 1), (0, 2), (20, 3))]
    lg = [logits_of(p, 8, 120) for p in pages]
    outputs = {"energy": torch.stack([e for e, _ in lg]), "classes": torch.stack([c for _, c in lg]),
               "sizes": torch.stack([torch.from_numpy(p.sizes) for p in pages])}
    dec = Decoder(cutoff=3, min_size=2, stride=stride)
    got = dec(outputs)
    want = dwd_fast.decode(outputs["energy"], outputs["classes"], outputs["sizes"], cutoff=3, min_size=2)
    assert len(got) == 3 and len(got[1]["boxes"]) == 0 and len(got[2]["boxes"]) > 5
    for g, w in zip(got, want):
        assert set(g) == {"boxes", "labels", "scores"}
        assert g["boxes"].dtype == torch.float32 and g["labels"].dtype == torch.int64
        torch.testing.assert_close(g["boxes"], w.boxes.float() * stride)
        assert torch.equal(g["labels"], w.labels.long()) and torch.equal(g["scores"], w.scores.float())


def test_decoder_bad_input():
    with pytest.raises(TypeError, match="outputs must be a dict"):
        Decoder()(torch.zeros(1, 3, 4, 4))
    with pytest.raises(ValueError, match=r"sizes must be float \(B, 2, H, W\)"):
        Decoder()({"energy": torch.zeros(1, 3, 4, 4), "classes": torch.zeros(1, 3, 4, 4),
                   "sizes": torch.zeros(1, 3, 4, 4)})
    with pytest.raises(ValueError, match="stride"):
        Decoder(stride=0)
    with pytest.raises(ValueError, match="grow_to"):
        Decoder(cutoff=3, grow_to=5)


# --------------------------------------------------------------------------------------------------
# DeepWatershedDetector
# --------------------------------------------------------------------------------------------------

class TinyBackbone(torch.nn.Module):
    def __init__(self, stride=1, channels=6):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, channels, 3, padding=1, stride=stride)

    def forward(self, x):
        return {"0": torch.relu(self.conv(x))}


@pytest.mark.parametrize("stride, upsample", [(1, False), (2, False), (2, True)])
def test_detector_train_and_eval(stride, upsample):
    model = DeepWatershedDetector(TinyBackbone(stride), 6, 5, levels=8, upsample=upsample,
                                  loss={"running_mean": None}, decoder={"cutoff": 2, "min_size": 1})
    images = torch.randn(2, 3, 30, 35)
    targets = random_targets(np.random.default_rng(1), 2, 30, 35)
    losses = model(images, targets)
    assert set(losses) == {"loss_energy", "loss_class", "loss_size", "loss"}
    losses["loss"].backward()
    assert model.head.energy.weight.grad is not None and model.backbone.conv.weight.grad.abs().sum() > 0
    # the same as encoding and the loss by hand at the output stride
    outputs, s = model.forward_outputs(images)
    assert s == (1 if upsample else stride)
    t = TargetEncoder(8, 5, stride=s)(targets, (30, 35))
    want = DWDLoss(running_mean=None)(outputs, t)
    torch.testing.assert_close(model(list(images), targets)["loss"], want["loss"])
    model.eval()
    dets = model(images)
    assert len(dets) == 2 and all(set(d) == {"boxes", "labels", "scores"} for d in dets)
    want = Decoder(cutoff=2, min_size=1, stride=s)(outputs)
    for d, w in zip(dets, want):
        assert torch.equal(d["boxes"], w["boxes"])


def test_detector_bad_input():
    model = DeepWatershedDetector(TinyBackbone(), 6, 5, levels=8)
    with pytest.raises(ValueError, match="needs targets"):
        model(torch.randn(1, 3, 8, 8))
    with pytest.raises(ValueError, match="one dict per image"):
        model(torch.randn(2, 3, 8, 8), [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}])
    with pytest.raises(ValueError, match="one size"):
        model([torch.randn(3, 8, 8), torch.randn(3, 8, 9)])
    with pytest.raises(TypeError, match="backbone"):
        DeepWatershedDetector(lambda x: x, 6, 5)
    with pytest.raises(ValueError, match="encoder.levels"):
        DeepWatershedDetector(TinyBackbone(), 6, 5, levels=8, encoder=TargetEncoder(9))
    with pytest.raises(ValueError, match="integer stride"):
        output_stride((30, 35), (11, 12))
    assert output_stride((30, 35), (15, 18)) == 2 and output_stride((31, 33), (11, 11)) == 3


# --------------------------------------------------------------------------------------------------
# Custom ops: opcheck, torch.compile
# --------------------------------------------------------------------------------------------------

OPCHECK_TESTS = ("test_schema", "test_autograd_registration", "test_faketensor", "test_aot_dispatch_dynamic")


def test_opcheck_encode_targets():
    boxes = torch.tensor([[2.0, 3.0, 12.0, 15.0], [20.0, 5.0, 30.0, 20.0], [1.0, 1.0, 9.0, 9.0]])
    labels = torch.tensor([1, 3, 2])
    for counts, stride, drop in ((torch.tensor([2, 1]), 1, False), (torch.tensor([0, 3, 0]), 3, True)):
        torch.library.opcheck(ops.encode_targets, (boxes, labels, counts, 24, 32, stride, 8, "oval", [0.8], "linear",
                                                   "max", 5, drop), test_utils=OPCHECK_TESTS)


@pytest.mark.parametrize("mode", ["none"] + MASK_MODES)
def test_opcheck_loss_mask(mode):
    torch.library.opcheck(ops.loss_mask, (torch.randint(0, 5, (2, 9, 11)), mode), test_utils=OPCHECK_TESTS)
    torch.library.opcheck(ops.loss_mask, (torch.rand(2, 9, 11) * (torch.rand(2, 9, 11) < 0.3), mode),
                          test_utils=OPCHECK_TESTS)


@pytest.mark.parametrize("density", [0.1, 1.0])
def test_opcheck_masked_cross_entropy(density):
    logits = torch.randn(2, 5, 9, 11, requires_grad=True)
    target = torch.randint(0, 5, (2, 9, 11))
    weight = torch.rand(2, 9, 11) * (torch.rand(2, 9, 11) < density)
    torch.library.opcheck(ops.masked_cross_entropy, (logits, target, weight), test_utils=OPCHECK_TESTS)
    torch.library.opcheck(ops.masked_cross_entropy_backward, (torch.randn(2), logits.detach(), target, weight),
                          test_utils=OPCHECK_TESTS)


def test_opcheck_decode():
    page = dwd_fast.data.reference_page(10, seed=4, shape=(60, 70), levels=8)
    e, c = logits_of(page, 8, 120)
    args = (e[None], c[None], torch.from_numpy(page.sizes)[None], 3.0, 2, 2, None, "cutoff", "max")
    torch.library.opcheck(ops.decode, args, test_utils=OPCHECK_TESTS)
    assert int(ops.decode(*args)[3][0]) > 0


@pytest.mark.parametrize("running_mean", [None, 3])
def test_compile_targets_and_loss_without_graph_breaks(running_mean):
    import torch._dynamo

    head = DWDHead(4, 5, 8)
    encoder = TargetEncoder(8, 5)
    losses = [DWDLoss(running_mean=running_mean) for _ in range(2)]  # compiled, eager

    def step(features, targets, loss):
        return loss(head(features), encoder(targets, (24, 32)))

    features = torch.randn(2, 4, 24, 32)
    targets = random_targets(np.random.default_rng(5), 2, 24, 32)
    explained = torch._dynamo.explain(step)(features, targets, DWDLoss(running_mean=running_mean))
    assert explained.graph_break_count == 0, explained.break_reasons
    assert explained.graph_count == 1
    torch._dynamo.reset()
    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    for _ in range(2):  # the second step uses the history the first one wrote (running_mean)
        got = compiled(features, targets, losses[0])
        want = step(features, targets, losses[1])
        for k in want:
            torch.testing.assert_close(got[k], want[k])
    torch.testing.assert_close(losses[0].history, losses[1].history)
    got["loss"].backward()
    assert head.energy.weight.grad is not None and head.energy.weight.grad.abs().sum() > 0


def test_detector_training_forward_has_no_graph_break():
    import torch._dynamo

    model = DeepWatershedDetector(TinyBackbone(stride=2), 6, 5, levels=8, upsample=False)
    images = torch.randn(2, 3, 24, 32)
    targets = random_targets(np.random.default_rng(6), 2, 24, 32)
    explained = torch._dynamo.explain(model)(images, targets)
    assert explained.graph_break_count == 0, explained.break_reasons


# --------------------------------------------------------------------------------------------------
# CUDA (skipped without a GPU)
# --------------------------------------------------------------------------------------------------

@pytest.mark.cuda
@needs_cuda
def test_cuda_targets_loss_and_decode_equal_cpu():
    outputs, t = make_batch()
    targets = random_targets(np.random.default_rng(7), 3, 24, 28)
    enc = TargetEncoder(8, 5)
    t_cpu = enc(targets, (24, 28))
    t_gpu = enc([{k: v.cuda() for k, v in d.items()} for d in targets], (24, 28))
    assert t_gpu["energy"].is_cuda
    for k in t_cpu:
        assert torch.equal(t_gpu[k].cpu(), t_cpu[k])
    fn = DWDLoss(running_mean=None)
    got = fn({k: v.detach().cuda() for k, v in outputs.items()}, t_gpu)
    want = fn({k: v.detach() for k, v in outputs.items()}, t_cpu)
    torch.testing.assert_close(got["loss"].cpu(), want["loss"], rtol=1e-4, atol=1e-6)
    dets = Decoder(cutoff=2)({k: v.detach().cuda() for k, v in outputs.items()})
    assert all(d["boxes"].is_cuda for d in dets)
