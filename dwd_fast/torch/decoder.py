"""Network outputs -> detections in torchvision's format, via :func:`dwd_fast.decode`."""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from . import ops

__all__ = ["Decoder"]


class Decoder(nn.Module):
    """Decode the head's outputs into ``list[dict(boxes, labels, scores)]``, one dict per image.

    Parameters
    ----------
    cutoff, min_size, grow_to, seeds, size_reduce :
        As :func:`dwd_fast.decode` (energy and class maps are logits: the energy is reduced by argmax, the
        class of an object is the argmax of its mean class probability, the score is the mean probability
        of the levels above the cut-off).
    stride : int
        Output stride: boxes (found on the output grid) are multiplied by it to be in input pixels.
    size_mode, class_confidence, class_spread :
        As :func:`dwd_fast.decode`: where box sizes come from (``"regress"``, ``"class"``, ``"blend"``).
    class_sizes : ClassSizeTable or (C, 2) array / tensor, optional
        ``(height, width)`` per class **in input pixels** (:func:`dwd_fast.class_size_table` of the training
        boxes); divided by the stride for decoding on the output grid. Needed by ``"class"`` / ``"blend"``.
    connectivity : {1, 2}
        4- (1) or 8-connected (2, default) components of the energy above the cut-off, as
        :func:`dwd_fast.decode`.

    ``boxes`` (N, 4) float32 ``(x1, y1, x2, y2)``, ``labels`` (N,) int64, ``scores`` (N,) float32, on the
    outputs' device.
    """

    def __init__(self, *, cutoff: float = 7, min_size: int = 4, grow_to: Optional[float] = None,
                 seeds: str = "cutoff", size_reduce: str = "max", stride: int = 1, size_mode: str = "regress",
                 class_sizes=None, class_confidence: float = 0.5, class_spread: float = 0.15,
                 connectivity: int = 2):
        super().__init__()
        from ..class_sizes import ClassSizeTable, check_size_mode

        if connectivity not in (1, 2) or isinstance(connectivity, bool):
            raise ValueError(f"connectivity must be 1 or 2, got {connectivity!r}")
        if isinstance(class_sizes, torch.Tensor):
            class_sizes = class_sizes.detach().cpu().double().numpy()
        check_size_mode(size_mode, class_sizes, class_confidence, class_spread)
        spread = None
        if class_sizes is not None:
            import numpy as np

            if isinstance(class_sizes, ClassSizeTable):
                spread = torch.as_tensor(np.asarray(class_sizes.spread, np.float64))
            from ..class_sizes import _check_table

            sizes_np, _ = _check_table(class_sizes)
            class_sizes = torch.as_tensor(sizes_np)
        self.size_mode = size_mode
        self.class_confidence, self.class_spread = float(class_confidence), float(class_spread)
        self.class_sizes, self.class_spread_table, self.connectivity = class_sizes, spread, int(connectivity)
        if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
            raise ValueError(f"stride must be a positive integer, got {stride!r}")
        if seeds not in ("cutoff", "peaks"):
            raise ValueError(f"seeds must be 'cutoff' or 'peaks', got {seeds!r}")
        if size_reduce not in ("max", "mean", "median"):
            raise ValueError(f"size_reduce must be 'max', 'mean' or 'median', got {size_reduce!r}")
        if isinstance(min_size, bool) or not isinstance(min_size, int) or min_size < 0:
            raise ValueError(f"min_size must be a non-negative integer, got {min_size!r}")
        if grow_to is not None and grow_to > cutoff:
            raise ValueError(f"grow_to must be <= cutoff ({cutoff}), got {grow_to!r}")
        self.cutoff, self.min_size, self.grow_to = float(cutoff), min_size, grow_to
        self.seeds, self.size_reduce, self.stride = seeds, size_reduce, stride

    def extra_repr(self):
        return (f"cutoff={self.cutoff}, min_size={self.min_size}, grow_to={self.grow_to}, seeds={self.seeds!r}, "
                f"stride={self.stride}, size_mode={self.size_mode!r}, connectivity={self.connectivity}")

    @torch.no_grad()
    def forward(self, outputs: dict[str, torch.Tensor], stride: Optional[int] = None) -> list[dict[str, torch.Tensor]]:
        if not isinstance(outputs, dict) or any(k not in outputs for k in ("energy", "classes", "sizes")):
            raise TypeError("outputs must be a dict with keys 'energy', 'classes' and 'sizes'")
        for k in ("energy", "classes", "sizes"):
            if not isinstance(outputs[k], torch.Tensor):
                raise TypeError(f"outputs[{k!r}] must be a torch.Tensor, got {type(outputs[k]).__name__}")
        st = self.stride if stride is None else stride
        cs = None if self.class_sizes is None else self.class_sizes / st
        boxes, labels, scores, counts = ops.decode(
            outputs["energy"], outputs["classes"], outputs["sizes"], self.cutoff, self.min_size, st,
            None if self.grow_to is None else float(self.grow_to), self.seeds, self.size_reduce, self.size_mode,
            cs, self.class_spread_table, self.class_confidence, self.class_spread, self.connectivity)
        n = counts.tolist()
        return [{"boxes": b, "labels": lab, "scores": sc}
                for b, lab, sc in zip(boxes.split(n), labels.split(n), scores.split(n))]
