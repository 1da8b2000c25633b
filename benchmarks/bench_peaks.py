"""peak_local_max on the reference page: dwd_fast vs scikit-image (DESIGN.md §5).

Each group ``peak_local_max n={n}`` holds dwd_fast's CPU algorithm, scikit-image's
``peak_local_max(E, min_distance=3, threshold_abs=8)`` and the floor (one numpy pass over the page);
the outputs are checked equal before timing.
"""

from __future__ import annotations

import numpy as np
import pytest

import dwd_fast
from conftest import FLOOR, floor_call, load_page, record

SIZES = (250, 2000)
KW = dict(min_distance=3, threshold_abs=8)


def _skimage(energy):
    from skimage.feature import peak_local_max

    return peak_local_max(energy, **KW)


def _ours(energy):
    return dwd_fast.peak_local_max(energy, **KW)


@pytest.fixture(scope="module", params=SIZES, ids=lambda n: f"n={n}")
def peak_page(request):
    page = load_page(request.param)
    ref = _skimage(page.energy)
    np.testing.assert_array_equal(_ours(page.energy), ref)
    return page


@pytest.mark.parametrize("impl", ["dwd_fast cpu", "skimage", FLOOR])
def test_peak_local_max(benchmark, peak_page, impl):
    benchmark.group = f"peak_local_max n={peak_page.n}"
    record(benchmark, impl, peak_page, options="min_distance=3, threshold_abs=8")
    if impl == FLOOR:
        f, args = floor_call(peak_page)
        benchmark(f, *args)
    elif impl == "skimage":
        benchmark(_skimage, peak_page.energy)
    else:
        out = benchmark(_ours, peak_page.energy)
        assert out.shape[1] == 2
