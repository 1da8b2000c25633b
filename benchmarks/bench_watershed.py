"""Marker watershed on the reference page: dwd_fast (canonical and scikit-image-exact) vs scikit-image.

Each group ``watershed n={n}`` (n = 250, 2000) floods ``image = -E`` from ``markers = label(E >= 8)``
inside ``mask = E >= 2`` (4-connected, scikit-image's default): dwd_fast's canonical method, its
``method="skimage"`` (checked bit-identical before timing), each with all of dwd_fast's threads and
with one ("(1 thread)"), ``skimage.segmentation.watershed`` (one thread) and the numpy floor.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from conftest import FLOOR, floor_call, load_page, record

import dwd_fast
from dwd_fast._threads import one_thread

SIZES = (250, 2000)


@functools.lru_cache(maxsize=None)
def _inputs(n):
    page = load_page(n)
    E = page.energy.astype(np.int16)
    return page, -E, dwd_fast.label(E >= 8), E >= 2


def _skimage(img, markers, mask):
    from skimage.segmentation import watershed

    return watershed(img, markers, mask=mask)


IMPLS = {
    "dwd_fast canonical": lambda i, m, k: dwd_fast.watershed(i, m, mask=k),
    "dwd_fast canonical (1 thread)": one_thread(lambda i, m, k: dwd_fast.watershed(i, m, mask=k)),
    "dwd_fast method=skimage": lambda i, m, k: dwd_fast.watershed(i, m, mask=k, method="skimage"),
    "dwd_fast method=skimage (1 thread)": one_thread(lambda i, m, k: dwd_fast.watershed(i, m, mask=k,
                                                                                        method="skimage")),
    "skimage": _skimage,
}


@pytest.fixture(scope="module", params=SIZES, ids=lambda n: f"n={n}")
def ws_inputs(request):
    pytest.importorskip("skimage")
    page, img, markers, mask = _inputs(request.param)
    ref = _skimage(img, markers, mask)
    np.testing.assert_array_equal(IMPLS["dwd_fast method=skimage"](img, markers, mask), ref)
    agree = (IMPLS["dwd_fast canonical"](img, markers, mask) == ref)[mask].mean()
    return page, img, markers, mask, float(agree)


@pytest.mark.parametrize("impl", list(IMPLS) + [FLOOR])
def test_watershed(benchmark, ws_inputs, impl):
    page, img, markers, mask, agree = ws_inputs
    benchmark.group = f"watershed n={page.n}"
    record(benchmark, impl, page, masked_px=int(mask.sum()), canonical_skimage_agreement=agree)
    if impl == FLOOR:
        f, args = floor_call(page)
        benchmark(f, *args)
    elif impl == "skimage":
        benchmark.pedantic(IMPLS[impl], args=(img, markers, mask), rounds=5, iterations=1)
    else:
        benchmark(IMPLS[impl], img, markers, mask)
