"""Connected-component labelling: ``dwd_fast.label`` against the libraries users label with today.

One group per page (``label n=...``): every implementation labels the same bool mask
``energy >= 8`` with 8-connectivity and returns a full int32 label image; the floor is one numpy
``energy > 7`` pass. Each result is checked against scikit-image: labels identical where the
implementation gives scikit-image's numbering (raster order of each component's first pixel), the
same partition otherwise: OpenCV's default Spaghetti / BBDT number by 2x2 blocks, and cc3d 4.1
numbers a few components out of raster order on these pages.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from conftest import FLOOR, floor_call, load_page, record
from references import skimage_label


# Each implementation: a factory that imports what it needs (skipping when it is not installed) and
# returns ``run(page) -> (function, args)``; plus the numbering it promises ("raster" or "partition").
def _dwd_fast():
    import dwd_fast

    return lambda p: (functools.partial(dwd_fast.label, connectivity=2), (p.mask,))


def _skimage():
    pytest.importorskip("skimage")
    return lambda p: (skimage_label, (p.mask,))


def _scipy():
    ndi = pytest.importorskip("scipy.ndimage")
    eight = np.ones((3, 3), bool)
    return lambda p: (functools.partial(ndi.label, structure=eight), (p.mask,))


def _cv2(kind):
    cv2 = pytest.importorskip("cv2")
    call = {
        "SAUF": lambda m: cv2.connectedComponentsWithAlgorithm(m, 8, cv2.CV_32S, cv2.CCL_SAUF),
        "default": lambda m: cv2.connectedComponents(m, connectivity=8),
        "stats": lambda m: cv2.connectedComponentsWithStats(m, connectivity=8),
    }[kind]
    return lambda p: (call, (p.mask.view(np.uint8),))  # OpenCV wants uint8: a free view of the mask


def _cc3d():
    cc3d = pytest.importorskip("cc3d")
    return lambda p: (functools.partial(cc3d.connected_components, connectivity=8), (p.mask,))


def _floor():
    return floor_call


LABELLERS = {
    "dwd_fast": (_dwd_fast, "raster"),
    "skimage.measure.label": (_skimage, "raster"),
    "scipy.ndimage.label": (_scipy, "raster"),
    "cv2.connectedComponents SAUF": (lambda: _cv2("SAUF"), "raster"),
    "cv2.connectedComponents default": (lambda: _cv2("default"), "partition"),
    "cv2.connectedComponentsWithStats": (lambda: _cv2("stats"), "partition"),
    "cc3d.connected_components": (_cc3d, "partition"),
    FLOOR: (_floor, None),
}


@functools.lru_cache(maxsize=None)
def _expected(n):
    """scikit-image's labels of the page's mask (the contract of ``dwd_fast.label``)."""
    return skimage_label(load_page(n).mask)


def _labels_of(result):
    """The label image in an implementation's result (OpenCV and scipy return tuples)."""
    if isinstance(result, tuple):
        return next(x for x in result if isinstance(x, np.ndarray) and x.ndim == 2)
    return result


def _check(labels, n, numbering):
    """Whether ``labels`` is scikit-image's labelling (``raster``) or a renumbering of it (``partition``)."""
    want = _expected(n)
    labels = np.asarray(labels)
    if labels.shape != want.shape:
        return False
    if numbering == "raster":
        return bool(np.array_equal(labels, want))
    fg = want > 0
    if not np.array_equal(labels > 0, fg):
        return False
    a, b = want[fg], labels[fg]
    image_of = np.zeros(int(a.max(initial=0)) + 1, np.int64)
    image_of[a] = b
    return bool(np.array_equal(image_of[a], b) and np.unique(image_of[1:]).size == image_of.size - 1)


@pytest.mark.parametrize("implementation", list(LABELLERS))
def test_label(benchmark, page, implementation):
    factory, numbering = LABELLERS[implementation]
    fn, args = factory()(page)
    benchmark.group = f"label n={page.n}"
    record(benchmark, implementation, page, connectivity=8)
    result = benchmark(fn, *args)
    if numbering is not None:
        ok = _check(_labels_of(result), page.n, numbering)
        benchmark.extra_info["correct"] = ok
        assert ok, f"{implementation} labels differ from skimage.measure.label ({numbering})"
