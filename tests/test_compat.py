"""compat.perform_dws: identical output (values, order, Python types) to the re-statement of the original."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dwd_fast.compat import perform_dws
from tests.reference import dwd_original as orig


@st.composite
def dwd_maps(draw, max_side=40):
    """Energy made of overlapping blobs of levels 0..19 (fused objects, cores, fringes)."""
    H = draw(st.integers(2, max_side))
    W = draw(st.integers(2, max_side))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    E = np.zeros((H, W), np.int64)
    for _ in range(draw(st.integers(0, 12))):
        y, x = rng.integers(0, H), rng.integers(0, W)
        ry, rx = rng.integers(1, 8, 2)
        yy, xx = np.ogrid[:H, :W]
        d = np.sqrt(((yy - y) / ry) ** 2 + ((xx - x) / rx) ** 2)
        E = np.maximum(E, np.clip(np.round((1 - d) * 19), 0, 19).astype(np.int64))
    if draw(st.booleans()):
        E = np.where(rng.random((H, W)) < 0.05, rng.integers(0, 20, (H, W)), E)  # speckle
    classes = rng.integers(0, draw(st.sampled_from([1, 3, 50])), (H, W))
    bbox = (rng.random((H, W, 2)) * 30 - 2).astype(np.float32)
    shape_form = draw(st.sampled_from(["batch", "plain"]))
    if shape_form == "batch":  # what the detector passes: argmax (1, H, W) and a (1, H, W, 2) box map
        return E[None], classes[None], bbox[None]
    return E, classes, bbox


def assert_same(got, want):
    assert got == want
    assert [type(x) for b in got for x in b] == [type(x) for b in want for x in b]


@given(m=dwd_maps(), cutoff=st.integers(-1, 19), min_size=st.integers(0, 10))
def test_2018(m, cutoff, min_size):
    assert_same(perform_dws(*m, cutoff, min_size, variant="2018"), orig.perform_dws_2018(*m, cutoff, min_size))


@given(m=dwd_maps(), cutoffs=st.lists(st.integers(-1, 19), min_size=1, max_size=3), min_size=st.integers(0, 10))
def test_2020(m, cutoffs, min_size):
    got = perform_dws(*m, cutoffs, min_size, variant="2020")
    assert_same(got, orig.perform_dws_2020(*m, cutoffs, min_size))


@given(m=dwd_maps(), cutoff=st.integers(0, 19), fatten=st.integers(0, 10), min_size=st.integers(0, 10))
def test_2019_fatten(m, cutoff, fatten, min_size):
    d = {"stamp_energy": m[0]}
    got = perform_dws(d, cutoff, min_size, None, fatten, variant="2019-fatten")
    assert_same(got, orig.perform_dws_2019_fatten(d, cutoff, min_size, fatten))


def test_defaults_and_keywords(page250):
    E = page250.energy.astype(np.int64)[None]
    C = page250.classes[None]
    B = np.moveaxis(page250.sizes, 0, -1)[None]
    assert_same(perform_dws(E, C, B), orig.perform_dws_2020(E, C, B))
    assert_same(perform_dws(E, C, B, cutoff=[7, 1], min_ccoponent_size=8),
                orig.perform_dws_2020(E, C, B, [7, 1], 8))
    assert_same(perform_dws(E, C, B, 1, 4, variant="2018"), orig.perform_dws_2018(E, C, B, 1, 4))
    d = {"stamp_energy": E}
    assert_same(perform_dws(d, 7, 10, variant="2019-fatten"), orig.perform_dws_2019_fatten(d, 7, 10))


def test_signed_energy_negative_cutoff_2020():
    rng = np.random.default_rng(1)
    E = rng.integers(-3, 3, (12, 9))
    C = rng.integers(0, 4, (12, 9))
    B = rng.random((12, 9, 2)).astype(np.float32) * 9
    for cuts in ([-1], [2, -2], [-2, 0]):
        assert_same(perform_dws(E, C, B, cuts, 0), orig.perform_dws_2020(E, C, B, cuts, 0))


def test_2019_fatten_dict_quirks():
    E = np.zeros((6, 6), np.int64)
    E[1:4, 1:4] = 9
    assert perform_dws({"stamp_energy": E, "stamp_bbox": E}, 7, 0, variant="2019-fatten") == []
    with pytest.raises(UnboundLocalError):
        perform_dws({"stamp_energy": E, "stamp_class": E}, 7, 0, variant="2019-fatten")


@pytest.mark.parametrize("args, exc, msg", [
    ((np.zeros((4, 4)), np.zeros((4, 4), int), np.zeros((4, 4, 3))), ValueError, r"bbox_map must squeeze to \(H, W, 2\)"),
    ((np.zeros((4, 4)), np.zeros((4, 5), int), np.zeros((4, 4, 2))), ValueError, "must match dws_energy"),
    ((np.zeros((4, 4)), np.zeros((4, 4)), np.zeros((4, 4, 2))), TypeError, "class_map must hold integer"),
    ((np.zeros((1, 4)), np.zeros((1, 4), int), np.zeros((1, 4, 2))), ValueError, "1-pixel side"),
    ((np.full((4, 4), np.nan), np.zeros((4, 4), int), np.zeros((4, 4, 2))), ValueError, "dws_energy contains NaN"),
])
def test_bad_input(args, exc, msg):
    with pytest.raises(exc, match=msg):
        perform_dws(*args, [7, 1], 0)


def test_negative_class_ids_rejected():
    E = np.full((4, 4), 9)
    with pytest.raises(ValueError, match="non-negative"):
        perform_dws(E, np.full((4, 4), -1), np.zeros((4, 4, 2)), [7, 1], 0)


def test_unknown_variant():
    with pytest.raises(ValueError, match="variant must be one of"):
        perform_dws(None, variant="2017")
