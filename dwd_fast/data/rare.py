"""Oversampling rare symbols by pasting them into the page margins: DWD's remedy for class imbalance.

The DWD authors ("DeepScores and Deep Watershed Detection: current state and open issues", §III.A)
augment every page of a training batch with 12 crops of rare symbols, 130 x 80 pixels each, put in
the margin at the top of the page, so that the network sees every class within about ten
iterations. :class:`RareSymbolBank` collects the symbols and their class frequencies from training
pages; :func:`paste_rare_symbols` does the pasting (``dwd_fast.torch.PasteRareSymbols`` inside a
DataLoader).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["RareSymbolBank", "paste_rare_symbols", "PastedPage"]


def _page_parts(p, i):
    """(image, boxes, labels) of a page given as an EngravedPage-like object or a tuple."""
    if hasattr(p, "image") and hasattr(p, "boxes") and hasattr(p, "labels"):
        image, boxes, labels = p.image, p.boxes, p.labels
    elif isinstance(p, (tuple, list)) and len(p) == 3:
        image, boxes, labels = p
    else:
        raise TypeError(f"pages[{i}] must have .image, .boxes and .labels (an EngravedPage) or be an "
                        f"(image, boxes, labels) tuple, got {type(p).__name__}")
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 2:
        raise ValueError(f"pages[{i}] image must be a grey uint8 (H, W) page (255 = paper), got "
                         f"{image.dtype} of shape {image.shape}")
    boxes, labels = _boxes_labels(boxes, labels, f"pages[{i}] ")
    return image, boxes, labels


def _boxes_labels(boxes, labels, where=""):
    b = np.asarray(boxes)
    lab = np.asarray(labels)
    if b.dtype.kind not in "iuf" or b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"{where}boxes must be a numeric (N, 4) array (x1, y1, x2, y2), got {b.dtype} {b.shape}")
    if lab.dtype.kind not in "iu" or lab.ndim != 1 or lab.shape[0] != b.shape[0]:
        raise ValueError(f"{where}labels must be an integer (N,) array with one label per box ({b.shape[0]}), "
                         f"got {lab.dtype} {lab.shape}")
    if not np.isfinite(b).all() or (b[:, 2] < b[:, 0]).any() or (b[:, 3] < b[:, 1]).any():
        raise ValueError(f"{where}boxes must be finite with x2 >= x1 and y2 >= y1")
    if lab.size and lab.min() < 0:
        raise ValueError(f"{where}labels must be non-negative class ids")
    return b, lab


class RareSymbolBank:
    """Symbols cut out of training pages, and the class frequencies of those pages.

    Attributes
    ----------
    patches : list of (h, w) uint8
        Each symbol's box rounded out to whole pixels and padded by ``pad`` pixels (clipped to the page),
        as it is on its page: the symbol's ink and whatever else lies in that rectangle (staff lines,
        the edge of a neighbour).
    boxes : (M, 4) float32
        Each symbol's box in its patch's coordinates.
    labels : (M,) int64
    counts : (C,) int64
        Boxes of each class on the pages (every box, banked or not): the frequencies sampling uses.

    Build it with :meth:`from_pages`. At most ``max_per_class`` patches are kept per class (the first
    ones, in page and box order) and only symbols whose patch is at most ``max_size`` (width, height).
    """

    def __init__(self, patches, boxes, labels, counts):
        self.patches = list(patches)
        self.boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        self.labels = np.asarray(labels, np.int64).reshape(-1)
        self.counts = np.asarray(counts, np.int64).reshape(-1)
        if not (len(self.patches) == self.boxes.shape[0] == self.labels.shape[0]):
            raise ValueError("patches, boxes and labels must have one entry per symbol")
        if self.labels.size and self.labels.max() >= self.counts.shape[0]:
            raise ValueError("counts must have a row for every label")
        self._hw = np.array([p.shape for p in self.patches], np.int64).reshape(-1, 2)

    def __len__(self):
        return len(self.patches)

    def __repr__(self):
        return (f"RareSymbolBank({len(self)} symbols of {len(np.unique(self.labels))} classes, "
                f"{int(self.counts.sum())} boxes counted)")

    @classmethod
    def from_pages(cls, pages, *, num_classes=None, pad=2, max_per_class=32, max_size=(130, 80)):
        """Collect symbols and class frequencies from pages.

        Parameters
        ----------
        pages : iterable
            :class:`~dwd_fast.data.EngravedPage` objects, or ``(image, boxes, labels)`` tuples with a grey
            uint8 ``(H, W)`` image (255 = paper), ``(N, 4)`` xyxy boxes and ``(N,)`` class ids.
        num_classes : int, optional
            Length of ``counts`` (default: largest label + 1).
        pad : int
            Pixels of context around each box (default 2).
        max_per_class : int
            Patches kept per class (default 32): the first ones met.
        max_size : (width, height)
            Largest patch kept (default 130 x 80, the paper's crop); larger symbols are counted, not kept.
        """
        if isinstance(pad, bool) or int(pad) != pad or pad < 0:
            raise ValueError(f"pad must be a non-negative integer, got {pad!r}")
        if isinstance(max_per_class, bool) or int(max_per_class) != max_per_class or max_per_class < 1:
            raise ValueError(f"max_per_class must be a positive integer, got {max_per_class!r}")
        mw, mh = _pair(max_size, "max_size")
        patches, boxes, labels, counts = [], [], [], []
        kept = {}
        for i, p in enumerate(pages):
            image, b, lab = _page_parts(p, i)
            H, W = image.shape
            counts.append(lab)
            for (x1, y1, x2, y2), c in zip(b.astype(np.float64), lab):
                c = int(c)
                if kept.get(c, 0) >= max_per_class:
                    continue
                r0, r1 = max(0, int(np.floor(y1)) - pad), min(H, int(np.ceil(y2)) + pad)
                c0, c1 = max(0, int(np.floor(x1)) - pad), min(W, int(np.ceil(x2)) + pad)
                if r1 <= r0 or c1 <= c0 or c1 - c0 > mw or r1 - r0 > mh:
                    continue
                patches.append(image[r0:r1, c0:c1].copy())
                boxes.append((x1 - c0, y1 - r0, x2 - c0, y2 - r0))
                labels.append(c)
                kept[c] = kept.get(c, 0) + 1
        all_labels = np.concatenate(counts) if counts else np.zeros(0, np.int64)
        C = int(all_labels.max(initial=-1)) + 1
        if num_classes is not None:
            if isinstance(num_classes, bool) or int(num_classes) != num_classes or num_classes < C:
                raise ValueError(f"num_classes must be an integer > the largest label ({C - 1}), got {num_classes!r}")
            C = int(num_classes)
        return cls(patches, boxes, labels, np.bincount(all_labels.astype(np.int64), minlength=C))

    def probabilities(self, crop=(130, 80)):
        """(C,) probability of each class being drawn for one pasted slot of size ``crop`` (width, height).

        The classes that can be drawn are those with at least one patch that fits the crop; class ``c``
        among them is drawn with probability ``(1 / counts[c]) / sum_k (1 / counts[k])``: inversely
        proportional to its frequency on the bank's pages. Other classes have probability 0.
        """
        cw, ch = _pair(crop, "crop")
        fits = (self._hw[:, 0] <= ch) & (self._hw[:, 1] <= cw)
        drawable = np.zeros(self.counts.shape[0], bool)
        drawable[self.labels[fits]] = True
        w = np.where(drawable, 1.0 / np.maximum(self.counts, 1), 0.0)
        s = w.sum()
        return w / s if s > 0 else w


def _pair(v, name):
    try:
        a, b = (int(x) for x in v)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a (width, height) pair of integers, got {v!r}") from None
    if a < 1 or b < 1:
        raise ValueError(f"{name} must be a (width, height) pair of positive integers, got {v!r}")
    return a, b


class PastedPage(NamedTuple):
    """Output of :func:`paste_rare_symbols`.

    image : the augmented page (a new array, same shape and dtype)
    boxes : (N + pasted, 4) float32, the original boxes first (unchanged), then the pasted symbols'
    labels : (N + pasted,) int64, likewise
    pasted : number of symbols pasted
    skipped : number of draws for which no free slot was left in the region
    """

    image: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    pasted: int
    skipped: int


def _region(region, boxes, H, W, gap):
    if isinstance(region, str):
        if region == "page":
            return 0, 0, W, H
        if region == "top":
            top = H if boxes.shape[0] == 0 else int(np.floor(boxes[:, 1].min())) - gap
            return 0, 0, W, max(0, min(H, top))
        raise ValueError(f"region must be 'top', 'page' or an (x1, y1, x2, y2) rectangle, got {region!r}")
    try:
        x1, y1, x2, y2 = (int(v) for v in region)
    except (TypeError, ValueError):
        raise TypeError(f"region must be 'top', 'page' or an (x1, y1, x2, y2) rectangle, got {region!r}") from None
    x1, y1, x2, y2 = max(0, x1), max(0, y1), min(W, x2), min(H, y2)
    return x1, y1, max(x1, x2), max(y1, y2)


def paste_rare_symbols(image, boxes, labels, bank, *, n=12, crop=(130, 80), region="top", gap=2, seed):
    """Paste ``n`` symbols of rare classes into free space of a page (DWD's class-balancing augmentation).

    Draws, with ``rng = numpy.random.default_rng(seed)``, ``n`` classes independently with the
    probabilities of :meth:`RareSymbolBank.probabilities` (inversely proportional to the class
    frequencies, among the classes with a patch that fits ``crop``), and for each a patch of that class
    uniformly among its patches that fit. Each goes into a ``crop`` slot (width, height; the paper's 130 x
    80: twelve fit side by side in the top margin of a DeepScores page) at the first free position in
    raster order (topmost, then leftmost) inside ``region``, centred in the slot. A slot is free when it
    overlaps no existing box and no earlier slot, each grown by ``gap`` pixels; when no free slot is
    left the draw is skipped (and counted). The patch is composited as ink on paper (the darker pixel
    wins), so nothing existing is erased.

    Parameters
    ----------
    image : (H, W) or (H, W, C) numpy array
        uint8 (255 = paper), or float in [0, 1] (patches are divided by 255).
    boxes, labels : (N, 4) xyxy and (N,) class ids of the page's symbols.
    bank : RareSymbolBank
    n : int
        Symbols to draw (default 12).
    crop : (width, height)
        Slot size in pixels (default (130, 80)).
    region : "top", "page" or (x1, y1, x2, y2)
        Where slots go: ``"top"`` (default) the rows above the page's first box less ``gap`` (the top
        margin; the whole page if it has no box), ``"page"`` anywhere, or an explicit rectangle.
    gap : int
        Free pixels kept around existing boxes and between slots (default 2).
    seed : int or numpy.random.Generator
        The same seed gives the same output.

    Returns
    -------
    PastedPage
        ``(image, boxes, labels, pasted, skipped)``: a new image; the original boxes and labels first,
        unchanged, then one per pasted symbol.
    """
    if not isinstance(bank, RareSymbolBank):
        raise TypeError(f"bank must be a RareSymbolBank, got {type(bank).__name__}")
    img = np.asarray(image)
    if img.ndim not in (2, 3) or not (img.dtype == np.uint8 or img.dtype.kind == "f"):
        raise ValueError(f"image must be a uint8 or float (H, W) or (H, W, C) array, got {img.dtype} {img.shape}")
    b, lab = _boxes_labels(boxes, labels)
    if isinstance(n, bool) or int(n) != n or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    if isinstance(gap, bool) or int(gap) != gap or gap < 0:
        raise ValueError(f"gap must be a non-negative integer, got {gap!r}")
    cw, ch = _pair(crop, "crop")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    H, W = img.shape[:2]
    out = img.copy()
    out_boxes = [b.astype(np.float32)]
    out_labels = [lab.astype(np.int64)]
    p = bank.probabilities((cw, ch))
    n = int(n)
    if n == 0 or p.sum() == 0:
        return PastedPage(out, out_boxes[0], out_labels[0], 0, n)
    classes = rng.choice(p.shape[0], size=n, p=p)
    fits = (bank._hw[:, 0] <= ch) & (bank._hw[:, 1] <= cw)

    # free[y, x]: the slot with top-left (x, y) (region coordinates) touches no grown box
    rx1, ry1, rx2, ry2 = _region(region, b, H, W, gap)
    rh, rw = ry2 - ry1, rx2 - rx1
    if rh >= ch and rw >= cw:
        occ = np.zeros((rh, rw), np.int32)
        bb = b.astype(np.float64)
        near = ((bb[:, 2] + gap > rx1) & (bb[:, 0] - gap < rx2) & (bb[:, 3] + gap > ry1) & (bb[:, 1] - gap < ry2))
        for x1, y1, x2, y2 in bb[near]:
            r0 = max(0, int(np.floor(y1)) - gap - ry1)
            r1 = min(rh, int(np.ceil(y2)) + gap - ry1)
            c0 = max(0, int(np.floor(x1)) - gap - rx1)
            c1 = min(rw, int(np.ceil(x2)) + gap - rx1)
            if r1 > r0 and c1 > c0:
                occ[r0:r1, c0:c1] = 1
        sat = np.zeros((rh + 1, rw + 1), np.int64)
        sat[1:, 1:] = occ.cumsum(0).cumsum(1)
        free = (sat[ch:, cw:] - sat[:-ch, cw:] - sat[ch:, :-cw] + sat[:-ch, :-cw]) == 0
    else:
        free = np.zeros((0, 0), bool)
    pasted = 0
    for c in classes:
        choices = np.flatnonzero(fits & (bank.labels == c))
        k = int(choices[rng.integers(0, choices.size)])
        if not free.any():
            continue
        pos = int(np.argmax(free))  # first True in raster order
        y, x = divmod(pos, free.shape[1])
        # slots that would come within gap of this one are no longer free
        free[max(0, y - ch - gap + 1):y + ch + gap, max(0, x - cw - gap + 1):x + cw + gap] = False
        patch = bank.patches[k]
        ph, pw = patch.shape
        oy, ox = ry1 + y + (ch - ph) // 2, rx1 + x + (cw - pw) // 2
        src = patch if out.dtype == np.uint8 else (patch / np.float32(255)).astype(out.dtype)
        if out.ndim == 3:
            src = src[:, :, None]
        win = out[oy:oy + ph, ox:ox + pw]
        np.minimum(win, src, out=win)
        bx = bank.boxes[k]
        out_boxes.append(np.array([[bx[0] + ox, bx[1] + oy, bx[2] + ox, bx[3] + oy]], np.float32))
        out_labels.append(np.array([c], np.int64))
        pasted += 1
    return PastedPage(out, np.concatenate(out_boxes), np.concatenate(out_labels), pasted, n - pasted)
