"""Every data-parallel (GPU) algorithm, run by the host executor, equals the cpu backend on an engraved
page of real music (Verovio + resvg) and the simulated network outputs for it: label, region_stats,
decode (cutoff seeds, growth, peak seeds), watershed, peak_local_max and encode."""

import numpy as np
import pytest

import dwd_fast

pytest.importorskip("verovio")
pytest.importorskip("resvg_py")

from dwd_fast.data import box_targets, engraved_page, simulate_outputs  # noqa: E402
from tests.test_decode import assert_same_detections  # noqa: E402
from tests.test_region_stats import _assert_stats_equal  # noqa: E402

ORDERS = ("forward", "reversed", "shuffled")


@pytest.fixture(scope="module")
def engraved():
    page = engraved_page("random", seed=11, measures=12, width=947)
    t, objects = box_targets(page.boxes, page.labels, page.image.shape, levels=16)
    return page, simulate_outputs(t, seed=2, objects=objects)


def test_label_and_region_stats(engraved):
    _, out = engraved
    fg = out.energy > 7
    cpu = dwd_fast.label(fg, connectivity=2)
    assert cpu.max() > 50
    for order in ORDERS:
        np.testing.assert_array_equal(dwd_fast.label(fg, connectivity=2, backend="host", order=order, seed=4), cpu)
    classes = out.classes.argmax(0).astype(np.uint8) if out.classes.ndim == 3 else out.classes
    want = dwd_fast.region_stats(cpu, image=out.energy, classes=classes)
    _assert_stats_equal(dwd_fast.region_stats(cpu, image=out.energy, classes=classes, backend="host",
                                              order="shuffled", seed=4), want)


@pytest.mark.parametrize("kw", [dict(cutoff=7), dict(cutoff=7, grow_to=2), dict(cutoff=6, seeds="peaks", grow_to=3)])
def test_decode(engraved, kw):
    _, out = engraved
    cpu = dwd_fast.decode(out.energy, out.classes, out.sizes, levels=16, return_label_map=True, **kw)
    assert len(cpu) > 50
    for order in ORDERS:
        assert_same_detections(dwd_fast.decode(out.energy, out.classes, out.sizes, levels=16, return_label_map=True,
                                               backend="host", order=order, seed=3, **kw), cpu)


@pytest.mark.parametrize("conn", [1, 2])
def test_watershed(engraved, conn):
    _, out = engraved
    e = out.energy.astype(np.int16)
    markers = dwd_fast.label(e >= 8)
    mask = e >= 2
    cpu = dwd_fast.watershed(-e, markers, mask=mask, connectivity=conn)
    assert len(np.unique(cpu)) > 50
    for order in ORDERS:
        np.testing.assert_array_equal(dwd_fast.watershed(-e, markers, mask=mask, connectivity=conn, backend="host",
                                                         order=order, seed=9), cpu)


def test_peak_local_max(engraved):
    _, out = engraved
    cpu = dwd_fast.peak_local_max(out.energy, min_distance=3, threshold_abs=8)
    assert len(cpu) > 50
    for order in ORDERS:
        np.testing.assert_array_equal(dwd_fast.peak_local_max(out.energy, min_distance=3, threshold_abs=8,
                                                              backend="host", order=order, seed=2), cpu)


def test_encode(engraved):
    page, _ = engraved
    cpu = dwd_fast.encode(page.boxes, page.labels, page.image.shape, levels=16)
    for order in ORDERS:
        host = dwd_fast.encode(page.boxes, page.labels, page.image.shape, levels=16, backend="host", order=order,
                               seed=6)
        for name in ("energy", "classes", "sizes"):
            np.testing.assert_array_equal(getattr(host, name), getattr(cpu, name), err_msg=name)


def test_encode_compact(engraved):
    """The compact layout (uint8 classes, float16 sizes) of the engraved page: the wide maps converted, bit for bit,
    from the cpu painter (fresh and into dirty buffers) and from the host-executed algorithm in every order."""
    page, _ = engraved
    shape = page.image.shape
    wide = dwd_fast.encode(page.boxes, page.labels, shape, levels=16)
    want = (wide.energy, wide.classes.astype(np.uint8), wide.sizes.astype(np.float16).view(np.uint16))
    assert wide.classes.max() <= 255
    buf = (np.full(shape, 3, np.uint8), np.full(shape, 3, np.uint8), np.full((2,) + shape, 3, np.float16))
    runs = [dwd_fast.encode(page.boxes, page.labels, shape, levels=16, layout="compact"),
            dwd_fast.encode(page.boxes, page.labels, shape, levels=16, layout="compact", out=buf)]
    runs += [dwd_fast.encode(page.boxes, page.labels, shape, levels=16, layout="compact", backend="host",
                             order=order, seed=6) for order in ORDERS]
    for t in runs:
        assert t.classes.dtype == np.uint8 and t.sizes.dtype == np.float16
        for name, got, w in zip(("energy", "classes", "sizes"), (t.energy, t.classes, t.sizes.view(np.uint16)),
                                want):
            np.testing.assert_array_equal(got, w, err_msg=name)
