"""Training data for DWD: a compact label map and a dataset of crops sampled near a page's content."""

from __future__ import annotations

import collections
import threading
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from .backbone import image_to_tensor

__all__ = ["LabelMap", "CropDataset", "PageCache", "Compose", "collate"]


class LabelMap:
    """A compact label space: the classes a training split uses, numbered 1..K (0 the background).

    Parameters
    ----------
    source_labels : sequence of int
        The dataset label (e.g. a :class:`~dwd_fast.data.deepscores.DeepScoresDataset` label, 1..C) of each
        compact class 1..K, in order; all distinct and > 0.
    names : sequence of str
        ``K + 1`` names, ``names[0]`` the background's.

    ``map(labels)`` gives the compact ids of dataset labels (0 for labels outside the map); ``unmap(ids)``
    the dataset labels of compact ids. ``to_json()`` / ``from_json()`` round-trip it as JSON values.
    """

    def __init__(self, source_labels: Sequence[int], names: Sequence[str]):
        src = [int(v) for v in source_labels]
        if any(v <= 0 for v in src) or len(set(src)) != len(src):
            raise ValueError(f"source_labels must be distinct positive integers, got {list(source_labels)!r}")
        names = [str(n) for n in names]
        if len(names) != len(src) + 1:
            raise ValueError(f"names must have one entry per class plus the background ({len(src) + 1}), "
                             f"got {len(names)}")
        self.source_labels = np.asarray(src, np.int64)
        self.names = names
        self._lut = np.zeros((max(src) + 1) if src else 1, np.int64)
        self._lut[self.source_labels] = np.arange(1, len(src) + 1)

    @classmethod
    def from_dataset(cls, dataset) -> "LabelMap":
        """The labels present in ``dataset`` (pages with ``.labels``, and ``.class_names``), sorted by label."""
        present = set()
        for p in dataset.pages:
            present.update(np.unique(np.asarray(p.labels, np.int64)).tolist())
        present.discard(0)
        src = sorted(present)
        names = list(getattr(dataset, "class_names", None) or [])
        if names and src and max(src) >= len(names):
            raise ValueError(f"dataset labels go up to {max(src)} but it names only {len(names)} classes")
        return cls(src, ["background"] + [names[v] if names else str(v) for v in src])

    @property
    def num_classes(self) -> int:
        """Classes including the background (K + 1): the detector's ``num_classes``."""
        return len(self.names)

    def map(self, labels) -> np.ndarray:
        """Compact ids of dataset labels; 0 for a label the map does not hold."""
        lab = np.asarray(labels, np.int64)
        out = np.zeros(lab.shape, np.int64)
        ok = (lab > 0) & (lab < self._lut.shape[0])
        out[ok] = self._lut[lab[ok]]
        return out

    def unmap(self, ids) -> np.ndarray:
        """Dataset labels of compact ids 1..K (0 stays 0)."""
        ids = np.asarray(ids, np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= self.num_classes):
            raise ValueError(f"ids must be in [0, {self.num_classes}), got {ids.min()}..{ids.max()}")
        return np.concatenate([[0], self.source_labels])[ids]

    def to_json(self) -> dict:
        return {"source_labels": self.source_labels.tolist(), "names": list(self.names)}

    @classmethod
    def from_json(cls, d) -> "LabelMap":
        if not isinstance(d, dict) or "source_labels" not in d or "names" not in d:
            raise ValueError(f"a label map is a dict with 'source_labels' and 'names', got {d!r}")
        return cls(d["source_labels"], d["names"])

    def __eq__(self, other):
        return (isinstance(other, LabelMap) and self.names == other.names
                and np.array_equal(self.source_labels, other.source_labels))

    def __repr__(self):
        return f"LabelMap({len(self.names) - 1} classes: {self.names[1:6]}{'...' if len(self.names) > 6 else ''})"


class PageCache:
    """A bounded least-recently-used cache of decoded page images (uint8), per process.

    ``get(page)`` returns ``page.load_image()``, decoded once while it stays among the pages most recently
    used whose images fit in ``max_bytes`` (pages are 2668 x 1894 uint8, about 5 MB each)."""

    def __init__(self, max_bytes: int = 1 << 30):
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
            raise ValueError(f"max_bytes must be a non-negative integer, got {max_bytes!r}")
        self.max_bytes = max_bytes
        self._d: "collections.OrderedDict[object, np.ndarray]" = collections.OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, page) -> np.ndarray:
        key = (page.image_id, page.path)
        with self._lock:
            img = self._d.get(key)
            if img is not None:
                self._d.move_to_end(key)
                self.hits += 1
                return img
        img = page.load_image()
        with self._lock:
            self.misses += 1
            if img.nbytes <= self.max_bytes and key not in self._d:
                self._d[key] = img
                self._bytes += img.nbytes
                while self._bytes > self.max_bytes:
                    _, old = self._d.popitem(last=False)
                    self._bytes -= old.nbytes
        return img

    def __getstate__(self):  # DataLoader workers start with an empty cache of their own
        return {"max_bytes": self.max_bytes}

    def __setstate__(self, state):
        self.__init__(state["max_bytes"])


def _clip_boxes(boxes, x0, y0, w, h, min_keep):
    """Boxes shifted into a crop at (x0, y0) of w x h, clipped, and the mask of those kept (a clipped box keeps
    at least ``min_keep`` of its area, and a positive extent)."""
    b = boxes.astype(np.float32) - np.array([x0, y0, x0, y0], np.float32)
    c = b.copy()
    c[:, [0, 2]] = c[:, [0, 2]].clip(0, w)
    c[:, [1, 3]] = c[:, [1, 3]].clip(0, h)
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    carea = (c[:, 2] - c[:, 0]).clip(0) * (c[:, 3] - c[:, 1]).clip(0)
    keep = (c[:, 2] > c[:, 0]) & (c[:, 3] > c[:, 1]) & (carea >= min_keep * np.maximum(area, 1e-6))
    return c, keep


class CropDataset(torch.utils.data.Dataset):
    """Square crops of dataset pages, sampled near content, as ``(image, target)`` training pairs.

    Item ``i`` is drawn with ``numpy.random.default_rng((seed, epoch, i))``: a page (uniformly among pages
    with annotations), an annotation of it (uniformly), and a crop of ``crop`` x ``crop`` px centred on that
    annotation's centre moved by up to ``jitter * crop / 2`` px each way, then shifted inside the page. Boxes
    are clipped to the crop; those keeping less than ``min_keep`` of their area are dropped. The same
    ``(seed, epoch, i)`` gives the same item in any process, so DataLoader workers and DDP ranks agree.

    Parameters
    ----------
    dataset : DeepScoresDataset or object with ``.pages``
        Pages with ``.boxes`` (N, 4) xyxy, ``.labels`` (N,) and ``.load_image()`` (uint8 grey, 255 = paper).
    label_map : LabelMap, optional
        Maps the pages' labels to compact ids (boxes of labels outside the map are dropped). Default: the
        map of ``dataset`` itself.
    crop : int
        Side of the crops in pixels (pages smaller than that give crops padded with paper).
    length : int
        ``len()`` of the dataset (crops per epoch); default 1000 per page.
    seed, epoch : int
        The stream of crops (:meth:`set_epoch` changes the epoch).
    jitter : float
        How far from the annotation's centre the crop's centre may be, as a share of half the crop.
    min_keep : float
        The share of its area a clipped box must keep (default 0.5).
    transform : callable, optional
        ``(image (1, crop, crop) float32, target) -> (image, target)``, e.g. :class:`ScanDegradation` or
        :class:`PasteRareSymbols`; run with PyTorch's global generator seeded from ``(seed, epoch, i)``
        (inside ``torch.random.fork_rng``), so transforms that draw from it are reproducible too.
    cache_bytes : int
        Bound on the decoded pages kept per process (:class:`PageCache`); default 1 GiB.

    ``dataset[i]`` -> ``(image (1, crop, crop) float32 in [0, 1], {"boxes": (n, 4) float32, "labels": (n,)
    int64})``.
    """

    def __init__(self, dataset, label_map: Optional[LabelMap] = None, *, crop: int = 256, length: Optional[int] = None,
                 seed: int = 0, epoch: int = 0, jitter: float = 1.0, min_keep: float = 0.5,
                 transform: Optional[Callable] = None, cache_bytes: int = 1 << 30):
        if isinstance(crop, bool) or not isinstance(crop, int) or crop < 8:
            raise ValueError(f"crop must be an integer >= 8, got {crop!r}")
        if not 0 <= float(jitter) <= 1:
            raise ValueError(f"jitter must be in [0, 1], got {jitter!r}")
        if not 0 <= float(min_keep) <= 1:
            raise ValueError(f"min_keep must be in [0, 1], got {min_keep!r}")
        pages = list(getattr(dataset, "pages", dataset))
        self.label_map = label_map if label_map is not None else LabelMap.from_dataset(dataset)
        self.pages = pages
        self._ids = [self.label_map.map(p.labels) for p in pages]
        self._usable = np.array([i for i, ids in enumerate(self._ids) if (ids > 0).any()], np.int64)
        if self._usable.size == 0:
            raise ValueError("no page has an annotation of a class in the label map")
        self.crop, self.seed, self.epoch = crop, int(seed), int(epoch)
        self.length = 1000 * len(pages) if length is None else int(length)
        self.jitter, self.min_keep, self.transform = float(jitter), float(min_keep), transform
        self.cache = PageCache(cache_bytes)

    def __len__(self):
        return self.length

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def window(self, i: int):
        """(page index, x0, y0) of item ``i``: the crop is ``[y0, y0 + crop) x [x0, x0 + crop)`` of the page."""
        rng = np.random.default_rng([self.seed, self.epoch, int(i)])
        pi = int(self._usable[rng.integers(self._usable.size)])
        p, ids = self.pages[pi], self._ids[pi]
        cand = np.flatnonzero(ids > 0)
        b = np.asarray(p.boxes, np.float64)[cand[rng.integers(cand.size)]]
        half = self.crop / 2
        cx = (b[0] + b[2]) / 2 + rng.uniform(-1, 1) * self.jitter * half
        cy = (b[1] + b[3]) / 2 + rng.uniform(-1, 1) * self.jitter * half
        x0 = int(np.clip(np.floor(cx - half), 0, max(0, p.width - self.crop)))
        y0 = int(np.clip(np.floor(cy - half), 0, max(0, p.height - self.crop)))
        return pi, x0, y0, int(rng.integers(2**62))

    def __getitem__(self, i):
        if not -self.length <= int(i) < self.length:
            raise IndexError(f"index {i} out of range for {self.length} crops")
        pi, x0, y0, tseed = self.window(int(i) % self.length)
        p = self.pages[pi]
        page = self.cache.get(p)
        c = self.crop
        win = page[y0:y0 + c, x0:x0 + c]
        if win.shape != (c, c):  # a page smaller than the crop: pad with paper
            full = np.full((c, c), 255, np.uint8)
            full[:win.shape[0], :win.shape[1]] = win
            win = full
        image = image_to_tensor(np.array(win))  # a writable copy (cached pages are read-only)
        ids = self._ids[pi]
        boxes, keep = _clip_boxes(np.asarray(p.boxes, np.float32).reshape(-1, 4), x0, y0, c, c, self.min_keep)
        keep &= ids > 0
        target = {"boxes": torch.from_numpy(np.ascontiguousarray(boxes[keep])),
                  "labels": torch.from_numpy(ids[keep].copy())}
        if self.transform is not None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(tseed)
                image, target = self.transform(image, target)
        return image, target


def collate(batch):
    """DataLoader collate for :class:`CropDataset`: ``(images (B, 1, H, W), [targets])``."""
    return torch.stack([b[0] for b in batch]), [b[1] for b in batch]


class Compose:
    """Transforms ``(image, target) -> (image, target)`` applied in order."""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, image, target):
        for t in self.transforms:
            image, target = t(image, target)
        return image, target

    def __repr__(self):
        return f"Compose({self.transforms!r})"

