"""The DWD prediction head: energy, class and box-size maps from a feature map."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["DWDHead"]


def _positive_int(value, name, minimum=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


class DWDHead(nn.Module):
    """Three 1x1 convolutions on a feature map, as the original DWD's heads (research §3).

    Parameters
    ----------
    in_channels : int
        Channels of the feature map.
    num_classes : int
        Class channels, background (class 0) included, as torchvision's detectors count them.
    levels : int
        Energy levels K (the original's ``MAX_ENERGY``, 20).
    upsample : bool
        Upsample the outputs bilinearly to the size passed to :meth:`forward` (the original upsampled
        its last RefineNet map to the input size). A 1x1 convolution commutes with bilinear
        interpolation (both are linear and the interpolation weights sum to 1), so the head upsamples
        whichever of the features or the outputs has fewer channels; the result is the same.
    size_encoding : str
        How the size channels hold a box size: ``"linear"`` (pixels, the original's) or ``"log"`` (natural
        logarithm of pixels; ``"sizes"`` is then ``exp`` of the channels, clamped to [e^-8, e^12]). The log
        encoding makes the size loss relative: a stem 6 px wide instead of 1.6 costs as much as a brace
        375 px tall instead of 100, where the linear loss barely sees the stem.

    Returns (from :meth:`forward`)
    ------------------------------
    dict with ``"energy"`` (B, K, H, W) energy-level logits, ``"classes"`` (B, C, H, W) class logits and
    ``"sizes"`` (B, 2, H, W) box (height, width) in pixels of the output grid; with ``size_encoding="log"``
    also ``"log_sizes"``, the raw channels the loss compares with the logarithm of the target sizes.
    """

    SIZE_ENCODINGS = ("linear", "log")

    def __init__(self, in_channels: int, num_classes: int, levels: int = 20, upsample: bool = False,
                 size_encoding: str = "linear"):
        super().__init__()
        self.in_channels = _positive_int(in_channels, "in_channels")
        self.num_classes = _positive_int(num_classes, "num_classes", 2)
        self.levels = _positive_int(levels, "levels", 2)
        if levels > 255:
            raise ValueError(f"levels must be at most 255 (decode reads at most 255 levels), got {levels}")
        self.upsample = bool(upsample)
        if size_encoding not in self.SIZE_ENCODINGS:
            raise ValueError(f"size_encoding must be one of {self.SIZE_ENCODINGS}, got {size_encoding!r}")
        self.size_encoding = size_encoding
        self.energy = nn.Conv2d(in_channels, levels, 1)
        self.classes = nn.Conv2d(in_channels, num_classes, 1)
        self.sizes = nn.Conv2d(in_channels, 2, 1)

    def forward(self, features: torch.Tensor, size: Optional[tuple[int, int]] = None) -> dict[str, torch.Tensor]:
        if not isinstance(features, torch.Tensor) or features.dim() != 4 or features.shape[1] != self.in_channels:
            shape = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
            raise ValueError(f"features must be a (B, {self.in_channels}, H, W) tensor, got {shape}")
        up = self.upsample and size is not None and tuple(features.shape[-2:]) != tuple(size)
        if self.upsample and size is None:
            raise ValueError("DWDHead(upsample=True) needs the output size: head(features, size=(H, W))")
        out_channels = self.levels + self.num_classes + 2
        if up and self.in_channels <= out_channels:
            features = F.interpolate(features, size=tuple(size), mode="bilinear", align_corners=False)
            up = False
        out = {"energy": self.energy(features), "classes": self.classes(features), "sizes": self.sizes(features)}
        if up:
            out = {k: F.interpolate(v, size=tuple(size), mode="bilinear", align_corners=False) for k, v in out.items()}
        if self.size_encoding == "log":
            out["log_sizes"] = out["sizes"]
            out["sizes"] = torch.exp(out["sizes"].clamp(-8.0, 12.0))
        return out
