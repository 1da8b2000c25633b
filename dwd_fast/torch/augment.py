"""Training-time augmentation: rare symbols pasted into the page margins, inside a DataLoader."""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from ..data.rare import RareSymbolBank, paste_rare_symbols

__all__ = ["PasteRareSymbols"]


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
        if not isinstance(target, dict) or "boxes" not in target or "labels" not in target:
            raise TypeError("target must be a dict with 'boxes' and 'labels'")
        if self.seed is None:
            seed = int(torch.randint(0, 2**62, (1,)).item())
        else:
            seed = np.random.SeedSequence([int(self.seed), self._calls])
        self._calls += 1
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
