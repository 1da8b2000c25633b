"""Network-like DWD outputs simulated from training targets, for demos and benchmarks."""

from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

from .. import _arrays

__all__ = ["simulate_outputs", "SimulatedOutputs", "box_targets"]


class SimulatedOutputs(NamedTuple):
    """What a trained DWD network might output for one page.

    energy : (H, W) uint8
        Energy levels 0..K-1 (the argmax of ``energy_logits``).
    classes : (H, W) int32
        Class ids (the argmax of ``class_logits``); 0 on the background.
    sizes : (2, H, W) float32
        Predicted (height, width); 0 on the background.
    energy_logits : (K, H, W) float16 or float32, or None
        With ``logits=True``.
    class_logits : (C, H, W) float16 or float32, or None
        With ``logits=True`` and ``num_classes`` given.
    objects : int
        Objects found in the targets (one per marker apex).
    missed, merged, misclassified : (n,) int64
        Ids - 1 of the objects dropped, fattened into
        their neighbours, and given a wrong class.
    """

    energy: np.ndarray
    classes: np.ndarray
    sizes: np.ndarray
    energy_logits: Optional[np.ndarray]
    class_logits: Optional[np.ndarray]
    objects: int
    missed: np.ndarray
    merged: np.ndarray
    misclassified: np.ndarray


def _gaussian_blur(a, sigma):
    """Separable Gaussian blur of a float32 2-D array (edges replicated)."""
    if sigma <= 0:
        return a
    r = max(1, int(np.ceil(3 * sigma)))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k = (k / k.sum()).astype(np.float32)
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (r, r)
        p = np.pad(a, pad, mode="edge")
        out = np.zeros_like(a)
        n = a.shape[axis]
        for i, w in enumerate(k):
            out += w * (p[i:i + n] if axis == 0 else p[:, i:i + n])
        a = out
    return a


def _dilate(a, r):
    """Grey dilation of a 2-D array by a (2r+1) x (2r+1) square (max filter), edges ignored."""
    out = a.copy()
    for _ in range(r):
        nxt = out.copy()
        np.maximum(nxt[1:], out[:-1], out=nxt[1:])
        np.maximum(nxt[:-1], out[1:], out=nxt[:-1])
        np.maximum(nxt[:, 1:], nxt[:, :-1].copy(), out=nxt[:, 1:])
        np.maximum(nxt[:, :-1], nxt[:, 1:].copy(), out=nxt[:, :-1])
        out = nxt
    return out


def _fraction(v, name):
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(v).__name__}")
    if not (_arrays.is_finite(v) and 0 <= v <= 1):
        raise ValueError(f"{name} must be a fraction in [0, 1], got {v!r}")
    return float(v)


def _nonneg(v, name):
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(v).__name__}")
    if not (_arrays.is_finite(v) and v >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
    return float(v)


def box_targets(boxes, labels, shape, *, levels=16, min_marker=6.0, **encode_options):
    """Training targets of boxes whose markers are at least ``min_marker`` pixels across, and the map of
    which object each target pixel belongs to.

    Thin objects (stems, ledger lines, barlines: 1-3 px) get no marker pixel from a marker of 0.8 x
    their box; here the box is widened (about its centre) to ``min_marker`` pixels for drawing the
    marker only (:func:`dwd_fast.encode`'s ``min_marker = size * min_marker``): the class and size maps
    keep each object's real class and ``(height, width)``. Unless ``encode_options`` say otherwise, the
    markers are encode's former defaults, ``marker="oval", overlap="max"`` (the demo's figures).

    Returns
    -------
    (Targets, objects) where ``objects`` (H, W) int32 holds the index + 1 of the box that owns each
    target pixel (0 on the background): pass it to :func:`simulate_outputs`.
    """
    from ..encode import Targets, encode

    b = _arrays.to_host(boxes, "boxes").array
    if b.dtype.kind not in "biuf":
        raise TypeError(f"boxes must hold numbers, got dtype {b.dtype}")
    if b.size % 4:
        raise ValueError(f"boxes must be (N, 4) boxes (x1, y1, x2, y2), got shape {b.shape}")
    b = b.astype(np.float64).reshape(-1, 4)
    lab = _arrays.to_host(labels, "labels").array
    if lab.dtype.kind not in "biu":
        raise TypeError(f"labels must be integer class ids, got dtype {lab.dtype}")
    lab = lab.reshape(-1)
    if lab.shape[0] != b.shape[0]:
        raise ValueError(f"labels must have one class per box ({b.shape[0]} in boxes), got shape {np.shape(labels)}")
    min_marker = _nonneg(min_marker, "min_marker")
    if min_marker > 2048:
        raise ValueError(f"min_marker must be at most 2048 px (markers are limited to 2048 px across), "
                         f"got {min_marker!r}")
    # A box widened to min_marker draws a marker of size * min_marker: encode's min_marker, which grows
    # the drawn marker only (a fixed (rows, cols) marker size does not depend on the box: nothing to grow).
    size = encode_options.get("size", 0.8)
    frac = float(size) if np.ndim(size) == 0 else 0.0
    n = b.shape[0]
    t = encode(b, np.arange(1, n + 1, dtype=np.int32), shape, levels=levels,
               **{"marker": "oval", "overlap": "max", "min_marker": min_marker * frac, **encode_options})
    objects = np.asarray(t.classes)
    cls = np.concatenate([[0], lab]).astype(np.int32)
    hw = np.zeros((2, n + 1), np.float32)
    hw[0, 1:] = b[:, 3] - b[:, 1]
    hw[1, 1:] = b[:, 2] - b[:, 0]
    return Targets(t.energy, cls[objects], hw[:, objects], stride=t.stride, levels=t.levels), objects


def simulate_outputs(targets, *, seed, objects=None, blur=1.0, noise=0.35, miss=0.02, merge=0.02, merge_radius=3,
                     class_error=0.03, size_noise=0.08, amplitude=(0.75, 1.1), logits=False, num_classes=None,
                     dtype=np.float16, size_bias=0.0):
    """Simulate what a trained DWD network outputs for a page, from the page's training targets.

    Objects are given by ``objects`` (see :func:`box_targets`), or are the 8-connected components of
    the targets' markers (touching markers then count as one object). Then, with ``rng =
    numpy.random.default_rng(seed)``: a fraction ``miss`` of the objects is dropped; a fraction
    ``merge`` is fattened by ``merge_radius`` pixels (grey dilation), which fuses it with close
    neighbours as an over-confident network does; every object's energy is scaled by a factor drawn
    from ``amplitude``; the energy is blurred (Gaussian, ``blur`` pixels) and Gaussian noise of
    ``noise`` levels is added everywhere (background speckle included), then quantized to the targets'
    levels. Each pixel of the result's energy > 0 belongs to the nearest kept object (canonical
    watershed over the energy); it takes that object's class -- a random other class of the page for a
    fraction ``class_error`` of the objects -- and its box size times a per-object factor
    ``exp(N(0, size_noise))`` per side.

    ``size_bias`` models the smoothing bias of a convolutional size regression (the DWD authors'
    diagnosis: small boxes over-estimated, large ones under-estimated): each object's true side ``s``
    (height and width separately) becomes ``(1 - size_bias) * s + size_bias * m`` before the noise
    factor, where ``m`` is the mean of that side over the page's objects (those with target pixels). 0 (default) is no bias, 1
    gives every object the page's mean size. It draws nothing random: the other outputs of a seed do
    not depend on it.

    Parameters
    ----------
    targets : dwd_fast.Targets
        Output of :func:`dwd_fast.encode` for one page (2-D maps, numpy).
    objects : (H, W) integer array, optional
        Object id (1..n) of each target pixel, e.g. the second output of :func:`box_targets`.
    seed : int
        Everything random comes from ``numpy.random.default_rng(seed)``: the same seed gives the same
        outputs.
    logits : bool
        Also return ``energy_logits`` (K, H, W) (``-((k - c) / 0.6)**2 / 2`` around ``c``, each pixel's
        continuous energy drawn 20% towards its level; their argmax is ``energy``) and, with ``num_classes``, ``class_logits``
        (C, H, W), in ``dtype`` (float16 by default: a K = 20 page of 2668 x 1894 is 200 MB).
    size_bias : float in [0, 1]
        Smoothing bias of the predicted sizes (see above); 0 by default.

    Returns
    -------
    SimulatedOutputs

    Examples
    --------
    >>> import dwd_fast
    >>> page = dwd_fast.data.reference_page(50)
    >>> t = dwd_fast.encode(page.boxes, page.labels, page.energy.shape, levels=16)
    >>> out = dwd_fast.data.simulate_outputs(t, seed=0)
    >>> out.energy.shape == t.energy.shape and out.energy.dtype.name == "uint8"
    True
    """
    from ..encode import Targets
    from ..label import label
    from ..region_stats import region_stats
    from ..watershed import watershed

    if not isinstance(targets, Targets):
        raise TypeError(f"targets must be dwd_fast.Targets (the output of dwd_fast.encode), got {type(targets).__name__}")
    e0 = np.asarray(targets.energy)
    if e0.ndim != 2:
        raise ValueError(f"targets must be one page (2-D maps), got energy of shape {e0.shape}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an integer, got {type(seed).__name__}")
    blur, noise, size_noise = _nonneg(blur, "blur"), _nonneg(noise, "noise"), _nonneg(size_noise, "size_noise")
    if size_noise > 10:  # sizes are scaled by exp(N(0, size_noise)): float32 overflows near exp(88)
        raise ValueError(f"size_noise must be at most 10, got {size_noise!r}")
    if blur > max(e0.shape):
        raise ValueError(f"blur must be at most the page's longer side ({max(e0.shape)} px), got {blur!r}")
    size_bias = _fraction(size_bias, "size_bias")
    miss, merge, class_error = _fraction(miss, "miss"), _fraction(merge, "merge"), _fraction(class_error, "class_error")
    merge_radius = _arrays.check_nonneg_int(merge_radius, "merge_radius", maximum=max(e0.shape))
    try:
        a_lo, a_hi = (float(v) for v in amplitude)
    except (TypeError, ValueError):
        raise TypeError(f"amplitude must be a (low, high) pair, got {amplitude!r}") from None
    if not (0 < a_lo <= a_hi):
        raise ValueError(f"amplitude must be a (low, high) pair with 0 < low <= high, got {amplitude!r}")
    if num_classes is not None:  # class logits are (num_classes, H, W)
        num_classes = _arrays.check_nonneg_int(num_classes, "num_classes", maximum=2**16, minimum=1)
    K = int(targets.levels)
    H, W = e0.shape
    rng = np.random.default_rng(_arrays.check_seed(seed))

    # Objects: given, or the 8-connected components of the targets' markers.
    if objects is None:
        lab = label(e0 > 0, connectivity=2)
    else:
        lab = np.asarray(objects)
        if lab.shape != e0.shape or lab.dtype.kind not in "iu":
            raise ValueError(f"objects must be an integer (H, W) map of object ids matching targets "
                             f"{e0.shape}, got {lab.dtype} {lab.shape}")
        lab = np.where(e0 > 0, lab, 0).astype(np.int32)
    n = int(lab.max(initial=0))
    st = region_stats(lab, classes=np.asarray(targets.classes))
    cls = np.zeros(n + 1, np.int64)
    hw = np.zeros((2, n + 1), np.float32)
    cls[1:] = np.maximum(st.vote, 0)
    sz = np.asarray(targets.sizes)
    for k in range(2):
        hw[k, 1:] = np.maximum(region_stats(lab, image=sz[k]).image_max, 0)
    if size_bias > 0 and n:
        present = np.asarray(st.area) > 0
        if present.any():
            mean = hw[:, 1:][:, present].mean(axis=1, keepdims=True)
            hw[:, 1:] = (1 - size_bias) * hw[:, 1:] + size_bias * mean
    missed = np.flatnonzero(rng.random(n) < miss)
    merged = np.flatnonzero(rng.random(n) < merge)
    wrong = np.flatnonzero(rng.random(n) < class_error)
    amp = np.concatenate([[0.0], rng.uniform(a_lo, a_hi, n)]).astype(np.float32)
    scale = np.exp(rng.normal(0.0, size_noise, (2, n + 1))).astype(np.float32)
    keep = np.ones(n + 1, bool)
    keep[missed + 1] = False
    keep[0] = False

    e = e0.astype(np.float32) * amp[lab]
    e[~keep[lab]] = 0
    if merged.size and merge_radius > 0:
        fat = np.zeros(n + 1, bool)
        fat[merged + 1] = True
        fat &= keep
        e = np.maximum(e, _dilate(np.where(fat[lab], e, 0).astype(np.float32), int(merge_radius)))
    e = _gaussian_blur(e, blur)
    if noise > 0:
        e += rng.normal(0.0, noise, e.shape).astype(np.float32)
    energy = np.clip(np.rint(e), 0, K - 1).astype(np.uint8)

    # Ownership: the nearest kept object over the energy (canonical watershed).
    markers = np.where(keep[lab] & (energy > 0), lab, 0).astype(np.int32)
    owner = watershed(-energy.astype(np.int16), markers, mask=energy > 0)
    present = np.unique(cls[1:]) if n else np.array([1])
    if wrong.size:
        alt = present[rng.integers(0, present.size, wrong.size)]
        same = alt == cls[wrong + 1]
        alt[same] = present[(np.searchsorted(present, alt[same]) + 1) % present.size] if present.size > 1 else alt[same] + 1
        cls[wrong + 1] = alt
    classes = cls[owner].astype(np.int32)
    sizes = (hw * scale)[:, owner]
    sizes[:, owner == 0] = 0

    energy_logits = class_logits = None
    if logits:
        k = np.arange(K, dtype=np.float32)[:, None, None]
        # centred a little closer to the chosen level than e, so that rounding to float16 keeps the argmax
        c = energy + np.float32(0.8) * (np.clip(e, 0, K - 1) - energy)
        energy_logits = (-0.5 * ((k - c[None]) / 0.6) ** 2).astype(dtype)
        if num_classes is not None:
            C = int(num_classes)
            if classes.max(initial=0) >= C:
                raise ValueError(f"num_classes ({C}) must exceed the largest class id ({int(classes.max())})")
            class_logits = np.clip(rng.normal(0.0, 0.5, (C, H, W)), -1.5, 1.5).astype(dtype)  # margin 4 > 2 x 1.5
            class_logits[classes, np.arange(H)[:, None], np.arange(W)[None, :]] += dtype(4.0)
    return SimulatedOutputs(energy, classes, sizes, energy_logits, class_logits, n, missed, merged, wrong)
