"""Hypothesis strategies shared by the tests: small, tie-heavy 2-D maps."""

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

INT_DTYPES = [np.bool_, np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32, np.uint64, np.int64]


@st.composite
def shapes(draw, max_side=24, wide=False):
    """(H, W) including 1 x N and N x 1; ``wide``: a few rows of 60 to 200 columns (rows that span
    several of the 64-column blocks the row scanners work in)."""
    if wide:
        return (draw(st.integers(1, 5)), draw(st.integers(60, 200)))
    return (draw(st.integers(1, max_side)), draw(st.integers(1, max_side)))


@st.composite
def blob_maps(draw, max_side=24, levels=4, dtype=np.uint8, wide=False):
    """Maps with few distinct values (plateaus, ties) and optionally a non-contiguous / F-order layout."""
    shape = draw(shapes(max_side, wide))
    density = draw(st.sampled_from([0.0, 0.2, 0.5, 0.8, 1.0]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    vals = rng.integers(1, levels, shape) * (rng.random(shape) < density)
    a = vals.astype(dtype)
    layout = draw(st.sampled_from(["c", "f", "strided"]))
    if layout == "f":
        a = np.asfortranarray(a)
    elif layout == "strided":
        big = np.zeros((shape[0], 2 * shape[1]), dtype)
        big[:, ::2] = a
        a = big[:, ::2]
    return a
