"""The UNet backbone, DeepWatershedDetector.from_config / save / load."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from dwd_fast.torch import DeepWatershedDetector, UNet, image_to_tensor, make_backbone  # noqa: E402

CFG = {"backbone": {"name": "unet", "in_channels": 1, "widths": [4, 8, 8]}, "num_classes": 4, "levels": 8}


@pytest.mark.parametrize("hw", [(32, 32), (37, 50), (1, 9)])
def test_unet_full_resolution_any_size(hw):
    torch.manual_seed(0)
    m = UNet(1, (4, 8, 8, 16))
    y = m(torch.rand(2, 1, *hw))
    assert y.shape == (2, m.out_channels, *hw) and m.out_channels == 12
    assert torch.isfinite(y).all()


def test_unet_padding_is_a_crop_of_the_padded_input():
    # the result for an odd size equals the result for the input padded (replicate) to a multiple of 8, cropped
    torch.manual_seed(1)
    m = UNet(1, (4, 8, 8, 8)).eval()
    x = torch.rand(1, 1, 21, 30)
    xp = torch.nn.functional.pad(x, (0, 2, 0, 3), mode="replicate")
    with torch.no_grad():
        assert torch.allclose(m(x), m(xp)[..., :21, :30], atol=1e-6)


def test_unet_bad_arguments():
    with pytest.raises(ValueError, match="widths"):
        UNet(1, ())
    with pytest.raises(ValueError, match="dilations"):
        UNet(1, (4, 8), dilations=(1,))
    with pytest.raises(ValueError, match="x must be"):
        UNet(1, (4, 8))(torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match="unknown backbone"):
        make_backbone({"name": "resnet"})


def test_save_load_roundtrip(tmp_path):
    torch.manual_seed(2)
    names = ["background", "a", "b", "c"]
    sizes = np.array([[0, 0], [10, 5], [3, 20], [7, 7]], np.float32)
    m = DeepWatershedDetector.from_config(CFG, class_names=names, class_sizes=sizes)
    m.train()
    targets = [{"boxes": torch.tensor([[4.0, 4, 20, 12]]), "labels": torch.tensor([2])}]
    m(torch.rand(1, 1, 24, 32), targets)["loss"].backward()  # the loss history buffer moves
    p = tmp_path / "model.pt"
    m.save(p, steps=7, note="x")
    m2 = DeepWatershedDetector.load(p)
    assert not m2.training and m2.meta == {"steps": 7, "note": "x"} and m2.class_names == names
    assert np.array_equal(m2.class_sizes.sizes, sizes) and m2.config == m.config
    assert np.array_equal(m2.class_sizes.counts, [1, 1, 1, 1])
    for (k, a), (k2, b) in zip(m.state_dict().items(), m2.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    m.eval()
    x = torch.rand(2, 1, 24, 32)
    with torch.no_grad():
        a, b = m.forward_outputs(x)[0], m2.forward_outputs(x)[0]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]  # no temporary left behind


def test_save_load_class_size_table(tmp_path):
    import dwd_fast

    boxes = np.array([[0, 0, 10, 4], [5, 5, 15, 9], [0, 0, 3, 30], [1, 1, 4, 41]], np.float32)
    table = dwd_fast.class_size_table(boxes, np.array([1, 1, 3, 3]), 4)
    m = DeepWatershedDetector.from_config(CFG, class_sizes=table)
    m.save(tmp_path / "m.pt")
    t2 = DeepWatershedDetector.load(tmp_path / "m.pt").class_sizes
    for f in ("sizes", "counts", "spread"):
        assert np.array_equal(getattr(t2, f), getattr(table, f), equal_nan=True)
    assert t2.stat == table.stat and np.isnan(t2.sizes[2]).all()


def test_decoder_uses_the_detectors_size_table(tmp_path):
    import dwd_fast

    boxes = np.array([[0, 0, 10, 4], [5, 5, 15, 9], [0, 0, 3, 30], [1, 1, 4, 41]], np.float32)
    table = dwd_fast.class_size_table(boxes, np.array([1, 1, 3, 3]), 4)
    cfg = dict(CFG, decoder={"size_mode": "blend"})
    m = DeepWatershedDetector.from_config(cfg, class_sizes=table)
    assert np.allclose(m.decoder.class_sizes.numpy(), table.sizes, equal_nan=True)
    m.save(tmp_path / "m.pt")
    m2 = DeepWatershedDetector.load(tmp_path / "m.pt")
    assert m2.decoder.size_mode == "blend"
    assert np.allclose(m2.decoder.class_sizes.numpy(), table.sizes, equal_nan=True)
    with pytest.raises(ValueError, match="class_sizes"):
        DeepWatershedDetector.from_config(cfg)


def test_save_load_errors(tmp_path):
    m = DeepWatershedDetector(UNet(1, (4, 8)), 12, 3)
    with pytest.raises(ValueError, match="from_config"):
        m.save(tmp_path / "m.pt")
    with pytest.raises(ValueError, match="class_names"):
        DeepWatershedDetector.from_config(CFG, class_names=["a"])
    with pytest.raises(ValueError, match="class_sizes"):
        DeepWatershedDetector.from_config(CFG, class_sizes=np.zeros((3, 2)))
    with pytest.raises(ValueError, match="config"):
        DeepWatershedDetector.from_config({"num_classes": 3})
    m = DeepWatershedDetector.from_config(CFG)
    with pytest.raises(TypeError, match="meta"):
        m.save(tmp_path / "m.pt", bad=object())
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a dwd-fast model"):
        DeepWatershedDetector.load(tmp_path / "junk.pt")
    torch.save({"format": "other"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a dwd-fast model"):
        DeepWatershedDetector.load(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError):
        DeepWatershedDetector.load(tmp_path / "missing.pt")


def test_image_to_tensor():
    g = np.array([[0, 255], [51, 102]], np.uint8)
    t = image_to_tensor(g)
    assert t.shape == (1, 2, 2) and t.dtype == torch.float32
    assert torch.allclose(t[0], torch.from_numpy(g / 255.0).float())
    rgb = np.stack([g, g, g], -1)
    assert torch.allclose(image_to_tensor(rgb), t, atol=1e-6)
    assert torch.equal(image_to_tensor(torch.from_numpy(g)), t)
    with pytest.raises(ValueError, match="finite"):
        image_to_tensor(np.array([[np.nan]], np.float32))
    with pytest.raises(TypeError, match="uint8 or float"):
        image_to_tensor(np.zeros((2, 2), np.int64))
    with pytest.raises(ValueError, match="shape"):
        image_to_tensor(np.zeros((2, 2, 2), np.uint8))


def test_unet_is_local_so_tiles_equal_the_whole():
    # a channel norm (no statistics over pixels or the batch): the output of a tile aligned to the stride
    # grid equals the whole image's away from the tile's cut edges, and a batch item does not see the others
    torch.manual_seed(3)
    m = UNet(1, (4, 8, 8)).eval()
    x = torch.rand(2, 1, 128, 160)
    with torch.no_grad():
        whole = m(x)
        tile = m(x[:, :, 32:128, 64:160])
        alone = m(x[1:])
    assert torch.allclose(tile[:, :, 56:, 56:], whole[:, :, 88:, 120:], atol=1e-5)  # receptive radius ~45
    assert torch.allclose(alone, whole[1:], atol=1e-5)


# ------------------------------------------------------------------------------------- size encodings

def test_log_size_encoding_head_and_loss():
    """The log encoding: "sizes" are exp of the raw channels (clamped), and the size loss is the linear one
    on (log_sizes, log(max(target, 1/4))), restated here in numpy with the "mask_bg" weights."""
    from dwd_fast.torch import DWDLoss
    from dwd_fast.torch.heads import DWDHead

    torch.manual_seed(0)
    head = DWDHead(6, 3, levels=4, size_encoding="log")
    out = head(torch.randn(2, 6, 9, 11) * 50)  # raw channels far outside the clamp
    assert set(out) == {"energy", "classes", "sizes", "log_sizes"}
    assert torch.equal(out["sizes"], torch.exp(out["log_sizes"].clamp(-8, 12)))
    assert torch.isfinite(out["sizes"]).all() and (out["sizes"] > 0).all()
    assert "log_sizes" not in DWDHead(6, 3, levels=4)(torch.randn(1, 6, 5, 5))
    with pytest.raises(ValueError, match="size_encoding"):
        DWDHead(6, 3, size_encoding="sqrt")

    rng = np.random.default_rng(1)
    B, H, W = 2, 7, 8
    te = torch.from_numpy(rng.integers(0, 4, (B, H, W))).to(torch.int32)
    ts = torch.from_numpy(np.where(te.numpy()[:, None] > 0, rng.uniform(0.1, 90, (B, 2, H, W)), 0)).float()
    outs = {"energy": torch.randn(B, 4, H, W), "classes": torch.randn(B, 3, H, W),
            "log_sizes": torch.randn(B, 2, H, W), "sizes": torch.zeros(B, 2, H, W)}
    tg = {"energy": te, "classes": te.clamp(max=2), "sizes": ts}
    got = DWDLoss(running_mean=None)(outs, tg)["loss_size"].item()
    fg = te.numpy() > 0
    want = []
    for b in range(B):
        m = fg[b] / (fg[b].sum() + 1.0)
        d = outs["log_sizes"][b].numpy() - np.log(np.maximum(ts[b].numpy(), 0.25))
        want.append((m[None] * d ** 2).sum() / (2 * H * W))
    assert got == pytest.approx(np.mean(want), rel=1e-5)


def test_log_size_encoding_model_roundtrip(tmp_path):
    cfg = dict(CFG, size_encoding="log")
    torch.manual_seed(3)
    m = DeepWatershedDetector.from_config(cfg, class_names=["background", "a", "b", "c"])
    assert m.head.size_encoding == "log"
    m.train()
    targets = [{"boxes": torch.tensor([[4.0, 4, 20, 12]]), "labels": torch.tensor([2])}]
    loss = m(torch.rand(1, 1, 24, 32), targets)
    assert torch.isfinite(loss["loss_size"]) and loss["loss_size"] > 0
    m.save(tmp_path / "m.pt")
    m2 = DeepWatershedDetector.load(tmp_path / "m.pt")
    assert m2.head.size_encoding == "log" and m2.config["size_encoding"] == "log"
    m.eval()
    x = torch.rand(1, 1, 24, 32)
    with torch.no_grad():
        a, b = m.forward_outputs(x)[0], m2.forward_outputs(x)[0]
    assert set(a) == set(b) == {"energy", "classes", "sizes", "log_sizes"}
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="size_encoding"):
        DeepWatershedDetector.from_config(dict(CFG, size_encoding="cube"))
