"""Training targets on the device, from torchvision-style targets."""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import nn

from . import ops

__all__ = ["TargetEncoder"]

_MARKERS = ("oval", "box", "hull")
_PROFILES = ("linear", "quadratic", "root")
_OVERLAPS = ("max", "nearest", "last", "smallest")


class TargetEncoder(nn.Module):
    """torchvision-style targets -> batched DWD target tensors, built on the device by :func:`dwd_fast.encode`.

    Parameters
    ----------
    levels : int
        Energy levels K.
    num_classes : int, optional
        If given, every label must be below it (class 0 is the background, as in torchvision).
    marker, size, profile, overlap, min_marker :
        As :func:`dwd_fast.encode` (``profile`` must be a name here), with its defaults ``marker="box"``,
        ``overlap="smallest"`` and ``min_marker=6`` (px of the output grid): thin and small objects (stems,
        ledger lines through noteheads, dots) keep a marker a network can predict and the default
        :class:`Decoder` finds (``benchmarks/measure_ceiling.py``, docs/encode.md). ``marker="oval",
        overlap="max", min_marker=0`` is the former behaviour.
    stride : int
        Output stride of the predictions: targets are ``ceil(H / stride) x ceil(W / stride)`` and sizes are
        in pixels of that grid.
    drop_invalid : bool
        Drop boxes of zero or negative extent and boxes entirely outside the image (what the original's
        data loader did after cropping) instead of raising ``ValueError``.

    :meth:`forward` ``(targets, image_size, device=None, stride=None)`` takes a list of dicts with ``"boxes"``
    (N, 4) ``(x1, y1, x2, y2)`` and ``"labels"`` (N,) per image and returns a dict: ``"energy"`` (B, h, w)
    uint8 levels, ``"classes"`` (B, h, w) int32 class ids (0 where the energy is 0), ``"sizes"`` (B, 2, h, w)
    float32 box (height, width), written where the energy is non-zero (compact dtypes, as
    :func:`dwd_fast.encode` writes them; ``.long()`` them for torch's own ``cross_entropy``). The boxes are
    moved to ``device`` (default: theirs) and encoded there; on a CUDA device nothing goes through the host.
    ``stride`` overrides the encoder's stride for one call.
    """

    def __init__(self, levels: int = 20, num_classes: Optional[int] = None, *, marker: str = "box",
                 size: Union[float, Sequence[float]] = 0.8, profile: str = "linear", overlap: str = "smallest",
                 stride: int = 1, drop_invalid: bool = False, min_marker: float = 6.0):
        super().__init__()
        if isinstance(levels, bool) or not isinstance(levels, int) or not 2 <= levels <= 255:
            raise ValueError(f"levels must be an integer in [2, 255], got {levels!r}")
        if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, int)
                                        or not 1 <= num_classes < 2**31):
            raise ValueError(f"num_classes must be a positive integer or None, got {num_classes!r}")
        if marker not in _MARKERS:
            raise ValueError(f"marker must be one of {_MARKERS}, got {marker!r}")
        if profile not in _PROFILES:
            raise ValueError(f"profile must be one of {_PROFILES}, got {profile!r}")
        if overlap not in _OVERLAPS:
            raise ValueError(f"overlap must be one of {_OVERLAPS}, got {overlap!r}")
        if isinstance(stride, bool) or not isinstance(stride, int) or not 1 <= stride < 2**31:
            raise ValueError(f"stride must be a positive integer (below 2^31), got {stride!r}")
        sz = [float(size)] if isinstance(size, (int, float)) else [float(v) for v in size]
        if len(sz) not in (1, 2) or not all(v > 0 and v == v and v != float("inf") for v in sz):
            raise ValueError(f"size must be a fraction > 0 or a (rows, cols) pair of positive sizes, got {size!r}")
        from ..encode import _check_min_marker

        mr, mc = _check_min_marker(min_marker)
        if mr != mc:
            raise ValueError(f"min_marker must be one number here, got {min_marker!r}")
        self.min_marker = mr
        self.levels, self.num_classes, self.marker, self.size = levels, num_classes, marker, sz
        self.profile, self.overlap, self.stride, self.drop_invalid = profile, overlap, stride, bool(drop_invalid)

    def extra_repr(self):
        return (f"levels={self.levels}, num_classes={self.num_classes}, marker={self.marker!r}, size={self.size}, "
                f"profile={self.profile!r}, overlap={self.overlap!r}, stride={self.stride}, "
                f"min_marker={self.min_marker}")

    def forward(self, targets: list[dict[str, torch.Tensor]], image_size: tuple[int, int],
                device: Optional[torch.device] = None, stride: Optional[int] = None) -> dict[str, torch.Tensor]:
        if not isinstance(targets, (list, tuple)) or len(targets) == 0:
            raise TypeError(f"targets must be a non-empty list of dicts with 'boxes' and 'labels', "
                            f"got {type(targets).__name__}")
        boxes, labels = [], []
        for i, t in enumerate(targets):
            if not isinstance(t, dict) or "boxes" not in t or "labels" not in t:
                raise TypeError(f"targets[{i}] must be a dict with 'boxes' and 'labels'")
            b, lab = t["boxes"], t["labels"]
            if not isinstance(b, torch.Tensor) or not isinstance(lab, torch.Tensor):
                raise TypeError(f"targets[{i}]['boxes'] and ['labels'] must be tensors, got "
                                f"{type(b).__name__} and {type(lab).__name__}")
            ops.check_boxes_labels(b, lab, f"targets[{i}]['boxes']", f"targets[{i}]['labels']")
            boxes.append(b)
            labels.append(lab)
        if isinstance(image_size, (str, bytes)) or not hasattr(image_size, "__len__") or len(image_size) != 2:
            raise ValueError(f"image_size must be (H, W), got {image_size!r}")
        from .._arrays import check_nonneg_int

        H, W = (check_nonneg_int(v, "image_size") for v in image_size)
        dev = boxes[0].device if device is None else torch.device(device)
        counts = torch.tensor([b.shape[0] for b in boxes], dtype=torch.int64)
        cat_boxes = torch.cat([b.to(device=dev, dtype=torch.float32) for b in boxes])
        cat_labels = torch.cat([lab.to(device=dev, dtype=torch.int64) for lab in labels])
        energy, classes, sizes = ops.encode_targets(
            cat_boxes, cat_labels, counts, H, W, self.stride if stride is None else int(stride), self.levels,
            self.marker, self.size, self.profile, self.overlap, self.num_classes or 0, self.drop_invalid,
            self.min_marker)
        return {"energy": energy, "classes": classes, "sizes": sizes}
