"""Training-time augmentation: rare symbols pasted into free space, and scan degradation (blur, noise, contrast,
gamma, rotation and skew with the boxes moved)."""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from ..data.rare import RareSymbolBank, paste_rare_symbols

__all__ = ["PasteRareSymbols", "ScanDegradation"]


def _call_seed(transform, target):
    """Checks a transform's ``target`` and draws the numpy seed of its next call: from PyTorch's global
    generator (``transform.seed`` None) or ``(transform.seed, call number)``."""
    if not isinstance(target, dict) or "boxes" not in target or "labels" not in target:
        raise TypeError("target must be a dict with 'boxes' and 'labels'")
    if transform.seed is None:
        seed = int(torch.randint(0, 2**62, (1,)).item())
    else:
        seed = np.random.SeedSequence([int(transform.seed), transform._calls])
    transform._calls += 1
    return seed


class PasteRareSymbols:
    """A dataset transform ``(image, target) -> (image, target)`` applying
    :func:`dwd_fast.data.paste_rare_symbols` (DWD's oversampling of rare classes).

    ``image`` is a tensor ``(C, H, W)`` or ``(H, W)`` (uint8 with 255 = paper, or float in [0, 1]) or a
    numpy ``(H, W)`` / ``(H, W, C)`` array; ``target`` a dict with ``"boxes"`` (N, 4) xyxy and ``"labels"``
    (N,). The result has the same type, layout, dtype and device; the target is a new dict whose
    ``"boxes"`` and ``"labels"`` have the pasted symbols appended (other keys are kept as they are).

    Parameters
    ----------
    bank : RareSymbolBank
    n, crop, region, gap :
        As :func:`~dwd_fast.data.paste_rare_symbols`.
    seed : int, optional
        ``None`` (default): each call draws its numpy seed from PyTorch's global generator, so
        ``torch.manual_seed`` makes a run reproducible and DataLoader workers (which PyTorch seeds
        differently) paste different symbols. An integer: call ``i`` of this object uses seed
        ``(seed, i)`` (reproducible, but every worker process repeats the same sequence).

    Examples
    --------
    >>> ds = MyPages(transform=PasteRareSymbols(bank, n=12))          # doctest: +SKIP
    """

    def __init__(self, bank: RareSymbolBank, n: int = 12, crop=(130, 80), region="top", gap: int = 2,
                 seed: Optional[int] = None):
        if not isinstance(bank, RareSymbolBank):
            raise TypeError(f"bank must be a dwd_fast.data.RareSymbolBank, got {type(bank).__name__}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise TypeError(f"seed must be an integer or None, got {type(seed).__name__}")
        self.bank, self.n, self.crop, self.region, self.gap, self.seed = bank, n, crop, region, gap, seed
        self._calls = 0

    def __repr__(self):
        return f"PasteRareSymbols({self.bank!r}, n={self.n}, crop={self.crop}, region={self.region!r})"

    def __call__(self, image, target):
        seed = _call_seed(self, target)
        is_tensor = isinstance(image, torch.Tensor)
        if is_tensor:
            if image.dim() not in (2, 3):
                raise ValueError(f"image must be a (C, H, W) or (H, W) tensor, got shape {tuple(image.shape)}")
            arr = image.detach().cpu().numpy()
            if arr.ndim == 3:
                arr = np.moveaxis(arr, 0, -1)  # (H, W, C) view
        else:
            arr = np.asarray(image)
        boxes, labels = target["boxes"], target["labels"]
        tb = isinstance(boxes, torch.Tensor)
        b = boxes.detach().cpu().numpy() if tb else np.asarray(boxes)
        lab = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
        r = paste_rare_symbols(arr, b, lab, self.bank, n=self.n, crop=self.crop, region=self.region, gap=self.gap,
                               seed=np.random.default_rng(seed))
        out = dict(target)
        if tb:
            out["boxes"] = torch.from_numpy(r.boxes).to(device=boxes.device, dtype=boxes.dtype)
        else:
            out["boxes"] = r.boxes.astype(b.dtype, copy=False)
        if isinstance(labels, torch.Tensor):
            out["labels"] = torch.from_numpy(r.labels).to(device=labels.device, dtype=labels.dtype)
        else:
            out["labels"] = r.labels.astype(lab.dtype, copy=False)
        if is_tensor:
            img = r.image if r.image.ndim == 2 else np.moveaxis(r.image, -1, 0)
            return torch.from_numpy(np.ascontiguousarray(img)).to(image.device), out
        return r.image, out


def _range(value, name, lo=None, hi=None):
    """A (min, max) pair from a number (the pair (value, value)) or a pair; checked against [lo, hi]."""
    try:
        a, b = (float(value), float(value)) if isinstance(value, (int, float)) else (float(v) for v in value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number or a (min, max) pair, got {value!r}") from None
    if not (a <= b) or (lo is not None and a < lo) or (hi is not None and b > hi) or not np.isfinite([a, b]).all():
        raise ValueError(f"{name} must be a (min, max) pair with min <= max inside [{lo}, {hi}], got {value!r}")
    return a, b


class ScanDegradation:
    """A rendered page made to look scanned: a dataset transform ``(image, target) -> (image, target)``.

    The DWD authors report that detectors trained on rendered pages fail on scans; this draws, per call,

    - a small rotation (up to ``rotation`` degrees either way) and a horizontal skew (shear, up to ``skew``
      either way) about the image centre, the boxes moved with it (each becomes the box of its transformed
      corners, clipped to the image; boxes keeping less than ``min_keep`` of their moved area are dropped);
      the page outside is paper;
    - ink contrast (ink darkness scaled by a factor in ``contrast``), paper brightness (``paper``) and gamma
      (``gamma``);
    - a Gaussian blur (sigma in ``blur``, px) and Gaussian noise (standard deviation in ``noise``).

    Each range is a ``(min, max)`` pair drawn uniformly (a number means that value). ``p`` is the
    probability of degrading at all (else the pair is returned as it is).

    ``image``: a tensor ``(C, H, W)`` or ``(H, W)``, float in [0, 1] with paper = 1 (:func:`image_to_tensor`'s
    convention) or uint8 (255 = paper); the result has the same shape, dtype and device. ``target``: a dict
    with ``"boxes"`` (N, 4) xyxy and ``"labels"`` (N,) tensors; the result is a new dict (other keys kept;
    per-box keys are not filtered, so give only boxes and labels when boxes may be dropped).

    seed : int, optional
        ``None`` (default): each call draws its seed from PyTorch's global generator (so ``torch.manual_seed``
        and :class:`~dwd_fast.torch.data.CropDataset`'s per-item seeding make it reproducible); an integer:
        call ``i`` uses the seed ``(seed, i)``.
    """

    def __init__(self, *, p: float = 1.0, rotation=1.5, skew=0.03, contrast=(0.6, 1.0), paper=(0.85, 1.0),
                 gamma=(0.7, 1.4), blur=(0.0, 1.0), noise=(0.0, 0.05), min_keep: float = 0.5,
                 seed: Optional[int] = None):
        if not 0 <= float(p) <= 1:
            raise ValueError(f"p must be in [0, 1], got {p!r}")
        r = float(rotation)
        if not 0 <= r <= 45:
            raise ValueError(f"rotation must be in [0, 45] degrees, got {rotation!r}")
        k = float(skew)
        if not 0 <= k <= 0.5:
            raise ValueError(f"skew must be in [0, 0.5], got {skew!r}")
        self.p, self.rotation, self.skew = float(p), r, k
        self.contrast = _range(contrast, "contrast", 0, 1)
        self.paper = _range(paper, "paper", 0, 1)
        self.gamma = _range(gamma, "gamma", 0.05, 20)
        self.blur = _range(blur, "blur", 0, 20)
        self.noise = _range(noise, "noise", 0, 1)
        if not 0 <= float(min_keep) <= 1:
            raise ValueError(f"min_keep must be in [0, 1], got {min_keep!r}")
        self.min_keep = float(min_keep)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise TypeError(f"seed must be an integer or None, got {type(seed).__name__}")
        self.seed = seed
        self._calls = 0

    def __repr__(self):
        return (f"ScanDegradation(p={self.p}, rotation={self.rotation}, skew={self.skew}, contrast={self.contrast}, "
                f"paper={self.paper}, gamma={self.gamma}, blur={self.blur}, noise={self.noise})")

    def draw(self, rng: np.random.Generator) -> dict:
        """The parameters of one degradation."""
        u = lambda r: float(rng.uniform(*r)) if r[1] > r[0] else r[0]  # noqa: E731
        return {"apply": bool(rng.uniform() < self.p), "angle": u((-self.rotation, self.rotation)),
                "skew": u((-self.skew, self.skew)), "contrast": u(self.contrast), "paper": u(self.paper),
                "gamma": u(self.gamma), "blur": u(self.blur), "noise": u(self.noise),
                "noise_seed": int(rng.integers(2**62))}

    @staticmethod
    def matrix(angle_deg: float, skew: float) -> np.ndarray:
        """The 2 x 2 map of (x, y) offsets from the centre: a rotation after a horizontal shear."""
        t = np.deg2rad(angle_deg)
        rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
        return rot @ np.array([[1.0, skew], [0.0, 1.0]])

    @staticmethod
    def move_boxes(boxes: np.ndarray, A: np.ndarray, size, min_keep: float = 0.0):
        """(moved boxes (N, 4) float32, kept mask): each box becomes the box of its corners mapped by
        ``x -> A (x - c) + c`` (c the centre of an image of ``size`` = (H, W)), clipped to the image."""
        H, W = size
        b = np.asarray(boxes, np.float64).reshape(-1, 4)
        c = np.array([W / 2, H / 2])
        corners = np.stack([b[:, [0, 1]], b[:, [2, 1]], b[:, [2, 3]], b[:, [0, 3]]], 1)  # (N, 4, 2)
        moved = (corners - c) @ A.T + c
        lo, hi = moved.min(1), moved.max(1)
        out = np.concatenate([lo, hi], 1)
        area = (out[:, 2] - out[:, 0]) * (out[:, 3] - out[:, 1])
        out[:, [0, 2]] = out[:, [0, 2]].clip(0, W)
        out[:, [1, 3]] = out[:, [1, 3]].clip(0, H)
        carea = (out[:, 2] - out[:, 0]) * (out[:, 3] - out[:, 1])
        keep = (out[:, 2] > out[:, 0]) & (out[:, 3] > out[:, 1]) & (carea >= min_keep * np.maximum(area, 1e-9))
        return out.astype(np.float32), keep

    def __call__(self, image, target):
        if not isinstance(image, torch.Tensor) or image.dim() not in (2, 3):
            raise TypeError(f"image must be a (C, H, W) or (H, W) tensor, got "
                            f"{tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__}")
        if not (image.dtype == torch.uint8 or image.dtype.is_floating_point):
            raise TypeError(f"image must be uint8 or float, got {image.dtype}")
        seed = _call_seed(self, target)
        prm = self.draw(np.random.default_rng(seed))
        if not prm["apply"]:
            return image, dict(target)
        dtype, shape = image.dtype, image.shape
        x = image.to(torch.float32) / (255.0 if dtype == torch.uint8 else 1.0)
        x = x.reshape(1, -1, *shape[-2:])  # (1, C, H, W)
        H, W = shape[-2:]
        A = self.matrix(prm["angle"], prm["skew"])
        out = dict(target)
        if prm["angle"] != 0 or prm["skew"] != 0:
            # output pixel at offset q from the centre reads the input at A^-1 q; in grid_sample's normalized
            # coordinates (x / (W / 2), y / (H / 2), align_corners=False) that is S^-1 A^-1 S
            S = np.diag([W / 2, H / 2])
            theta = np.linalg.inv(S) @ np.linalg.inv(A) @ S
            th = torch.zeros(1, 2, 3, dtype=torch.float32, device=x.device)
            th[0, :, :2] = torch.as_tensor(theta, dtype=torch.float32)
            grid = torch.nn.functional.affine_grid(th, list(x.shape), align_corners=False)
            ink = torch.nn.functional.grid_sample(1 - x, grid, mode="bilinear", padding_mode="zeros",
                                                  align_corners=False)
            x = 1 - ink
            boxes = target["boxes"]
            b = boxes.detach().cpu().numpy() if isinstance(boxes, torch.Tensor) else np.asarray(boxes)
            moved, keep = self.move_boxes(b, A, (H, W), self.min_keep)
            kt = torch.from_numpy(keep)
            if isinstance(boxes, torch.Tensor):
                out["boxes"] = torch.from_numpy(moved[keep]).to(device=boxes.device, dtype=boxes.dtype)
            else:
                out["boxes"] = moved[keep].astype(b.dtype, copy=False)
            lab = target["labels"]
            out["labels"] = lab[kt.to(lab.device)] if isinstance(lab, torch.Tensor) else np.asarray(lab)[keep]
        # photometric: ink contrast, paper brightness, gamma
        x = (1 - prm["contrast"] * (1 - x)).clamp(0, 1) * prm["paper"]
        x = x.clamp_min(0).pow(prm["gamma"])
        s = prm["blur"]
        if s >= 0.3:
            r = int(np.ceil(3 * s))
            t = torch.arange(-r, r + 1, dtype=torch.float32, device=x.device)
            k = torch.exp(-t ** 2 / (2 * s * s))
            k = k / k.sum()
            C = x.shape[1]
            x = torch.nn.functional.pad(x, (r, r, r, r), mode="replicate")
            x = torch.nn.functional.conv2d(x, k.view(1, 1, 1, -1).expand(C, 1, 1, -1), groups=C)
            x = torch.nn.functional.conv2d(x, k.view(1, 1, -1, 1).expand(C, 1, -1, 1), groups=C)
        if prm["noise"] > 0:
            g = torch.Generator(device="cpu").manual_seed(prm["noise_seed"] % (2**63))
            x = x + prm["noise"] * torch.randn(x.shape, generator=g).to(x.device)
        x = x.clamp(0, 1).reshape(shape)
        if dtype == torch.uint8:
            return (x * 255).round().to(torch.uint8), out
        return x.to(dtype), out
