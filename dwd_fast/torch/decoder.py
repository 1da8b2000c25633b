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

    ``boxes`` (N, 4) float32 ``(x1, y1, x2, y2)``, ``labels`` (N,) int64, ``scores`` (N,) float32, on the
    outputs' device.
    """

    def __init__(self, *, cutoff: float = 7, min_size: int = 4, grow_to: Optional[float] = None,
                 seeds: str = "cutoff", size_reduce: str = "max", stride: int = 1):
        super().__init__()
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
                f"stride={self.stride}")

    @torch.no_grad()
    def forward(self, outputs: dict[str, torch.Tensor], stride: Optional[int] = None) -> list[dict[str, torch.Tensor]]:
        if not isinstance(outputs, dict) or any(k not in outputs for k in ("energy", "classes", "sizes")):
            raise TypeError("outputs must be a dict with keys 'energy', 'classes' and 'sizes'")
        for k in ("energy", "classes", "sizes"):
            if not isinstance(outputs[k], torch.Tensor):
                raise TypeError(f"outputs[{k!r}] must be a torch.Tensor, got {type(outputs[k]).__name__}")
        boxes, labels, scores, counts = ops.decode(
            outputs["energy"], outputs["classes"], outputs["sizes"], self.cutoff, self.min_size,
            self.stride if stride is None else stride,
            None if self.grow_to is None else float(self.grow_to), self.seeds, self.size_reduce)
        n = counts.tolist()
        return [{"boxes": b, "labels": lab, "scores": sc}
                for b, lab, sc in zip(boxes.split(n), labels.split(n), scores.split(n))]
