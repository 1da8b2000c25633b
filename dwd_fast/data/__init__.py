"""Pages to run dwd_fast on.

- :func:`reference_page`: the synthetic reference page of the benchmarks (DESIGN.md §5).
- :func:`engraved_page`: real engraved music (Verovio) with one box per symbol (``dwd-fast[pages]``).
- :func:`simulate_outputs`: network-like outputs (energy and class logits, noisy sizes) from targets.
- :class:`RareSymbolBank`, :func:`paste_rare_symbols`: rare symbols pasted into the page margins (class balancing).
- :func:`read_deepscores`, :func:`write_deepscores`, :func:`make_dataset`: DeepScores V2 / v1 in and out.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .engraved import FONTS, PIECES, EngravedPage, engraved_classes, engraved_page, random_music
from .rare import PastedPage, RareSymbolBank, paste_rare_symbols
from .simulate import SimulatedOutputs, box_targets, simulate_outputs
from .deepscores import (DeepScoresDataset, DeepScoresFormatError, DeepScoresPage, deepscores_categories,
                         make_dataset, read_deepscores, read_deepscores_v1, write_deepscores)

__all__ = ["reference_page", "Page", "PAGE_SHAPE", "engraved_page", "EngravedPage", "engraved_classes",
           "random_music", "FONTS", "PIECES", "simulate_outputs", "SimulatedOutputs", "box_targets",
           "RareSymbolBank", "paste_rare_symbols", "PastedPage"]
__all__ += ["read_deepscores", "read_deepscores_v1", "write_deepscores", "make_dataset", "DeepScoresDataset",
            "DeepScoresPage", "DeepScoresFormatError", "deepscores_categories"]

PAGE_SHAPE = (2668, 1894)  # DeepScores page, rows x cols


class Page(NamedTuple):
    """A page of DWD-like maps and its ground truth.

    energy : (H, W) uint8 levels 0..K-1
    classes : (H, W) int32 class ids (0 = background)
    sizes : (2, H, W) float32 object (height, width) where the object's energy was written
    boxes : (n, 4) float32 ``(x1, y1, x2, y2)`` of each object's ellipse (pixel (r, c) covers
        ``[c, c+1) x [r, r+1)``), in drawing order
    labels : (n,) int32 class of each object
    """

    energy: np.ndarray
    classes: np.ndarray
    sizes: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray


def reference_page(n=250, seed=0, *, levels=16, shape=PAGE_SHAPE):
    """The benchmark page of DESIGN.md §5: ``n`` elliptic energy cones on a DeepScores-sized page.

    With ``rng = numpy.random.default_rng(seed)``, draws in this order ``ys = rng.integers(20, H-20, n)``,
    ``xs = rng.integers(20, W-20, n)``, ``hh = rng.integers(6, 40, n)``, ``ww = rng.integers(6, 30, n)``,
    ``cl = rng.integers(1, 120, n)``. Object i covers rows ``[y - hh//2, y + hh//2 + 1)`` and cols
    ``[x - ww//2, x + ww//2 + 1)`` with level ``clip(round((1 - d) * (K-1)), 0, K-1)``,
    ``d = sqrt(((row-y)/(hh/2+1e-6))**2 + ((col-x)/(ww/2+1e-6))**2)``, written where it is greater than
    what is there (with its class and its size ``(hh, ww)``).

    Examples
    --------
    >>> page = reference_page(250)
    >>> page.energy.shape, page.energy.dtype.name, int(page.energy.max())
    ((2668, 1894), 'uint8', 15)

    ``levels`` must be in 2..256 (the energies are uint8), ``n`` a non-negative int, ``shape`` two ints
    above 40; other values raise ``TypeError`` / ``ValueError`` naming the argument.
    """
    from .._arrays import check_nonneg_int, check_seed

    n = check_nonneg_int(n, "n")
    levels = check_nonneg_int(levels, "levels")
    if not 2 <= levels <= 256:  # uint8 energies: levels 0..levels-1
        raise ValueError(f"levels must be in 2..256 (uint8 energy levels), got {levels}")
    if not isinstance(shape, (tuple, list)) or len(shape) != 2:
        raise TypeError(f"shape must be a tuple (H, W) of two ints, got {shape!r}")
    H, W = (check_nonneg_int(v, "shape") for v in shape)
    if H <= 40 or W <= 40:
        raise ValueError(f"shape must be larger than 40 x 40, got {tuple(shape)}")
    if n > H * W:
        raise ValueError(f"n must be at most the page's pixel count ({H * W}), got {n}")
    K = levels
    rng = np.random.default_rng(check_seed(seed))
    ys = rng.integers(20, H - 20, n)
    xs = rng.integers(20, W - 20, n)
    hh = rng.integers(6, 40, n)
    ww = rng.integers(6, 30, n)
    cl = rng.integers(1, 120, n)
    energy = np.zeros((H, W), np.uint8)
    classes = np.zeros((H, W), np.int32)
    sizes = np.zeros((2, H, W), np.float32)
    for y, x, h, w, c in zip(ys, xs, hh, ww, cl):
        r0, r1 = y - h // 2, y + h // 2 + 1
        c0, c1 = x - w // 2, x + w // 2 + 1
        rr = np.arange(r0, r1)[:, None]
        cc = np.arange(c0, c1)[None, :]
        d = np.sqrt(((rr - y) / (h / 2 + 1e-6)) ** 2 + ((cc - x) / (w / 2 + 1e-6)) ** 2)
        lev = np.clip(np.round((1 - d) * (K - 1)), 0, K - 1).astype(np.uint8)
        win = energy[r0:r1, c0:c1]
        m = lev > win
        win[m] = lev[m]
        classes[r0:r1, c0:c1][m] = c
        sizes[0, r0:r1, c0:c1][m] = h
        sizes[1, r0:r1, c0:c1][m] = w
    boxes = np.stack([xs + 0.5 - ww / 2, ys + 0.5 - hh / 2, xs + 0.5 + ww / 2, ys + 0.5 + hh / 2], 1)
    return Page(energy, classes, sizes, boxes.astype(np.float32).reshape(-1, 4), cl.astype(np.int32))
