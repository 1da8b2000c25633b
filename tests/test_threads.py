"""dwd_fast.set_num_threads: the count is kept, bad counts are refused, and results do not depend on it."""

import numpy as np
import pytest

import dwd_fast


@pytest.fixture
def restore_threads():
    yield
    dwd_fast.set_num_threads(0)


def test_set_and_get(restore_threads):
    dwd_fast.set_num_threads(0)
    default = dwd_fast.get_num_threads()
    assert default >= 1
    dwd_fast.set_num_threads(3)
    assert dwd_fast.get_num_threads() == 3
    dwd_fast.set_num_threads(np.int64(1))
    assert dwd_fast.get_num_threads() == 1
    dwd_fast.set_num_threads(0)
    assert dwd_fast.get_num_threads() == default


@pytest.mark.parametrize("bad, exc", [(-1, ValueError), (1.5, TypeError), ("2", TypeError)])
def test_bad_counts(bad, exc, restore_threads):
    with pytest.raises(exc, match="threads"):
        dwd_fast.set_num_threads(bad)


def test_results_do_not_depend_on_the_count(page2000, restore_threads):
    E = page2000.energy
    img, markers, mask = -E.astype(np.int16), dwd_fast.label(E >= 8), E >= 2
    out = {}
    for n in (1, 2, 3):
        dwd_fast.set_num_threads(n)
        d = dwd_fast.decode(E, page2000.classes, page2000.sizes, cutoff=7, min_size=4, grow_to=1)
        out[n] = (dwd_fast.label(E > 3), dwd_fast.watershed(img, markers, mask=mask),
                  dwd_fast.watershed(img, markers, mask=mask, method="skimage"), d.boxes, d.labels, d.scores)
    for n in (2, 3):
        for a, b in zip(out[1], out[n]):
            np.testing.assert_array_equal(a, b)
