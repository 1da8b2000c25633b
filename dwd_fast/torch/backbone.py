"""Backbones suited to DWD: dense features at full resolution for symbols a few pixels across."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["UNet", "make_backbone", "BACKBONES", "image_to_tensor"]


def _ints(values, name, minimum=1):
    vals = [values] if isinstance(values, int) else list(values)
    if not vals or any(isinstance(v, bool) or not isinstance(v, int) or v < minimum for v in vals):
        raise ValueError(f"{name} must be integers >= {minimum}, got {values!r}")
    return vals


class _ChannelNorm(nn.Module):
    """Layer normalization over the channels of each pixel (with a learned scale and shift).

    Not BatchNorm nor GroupNorm: both normalize over many pixels (the batch, or the whole image), so a
    page cut into tiles would not give the whole page's outputs, and BatchNorm's statistics depend on how a
    batch is split over processes. This one is local: tiled inference equals untiled inference, and
    training gives the same result on one process or several."""

    def __init__(self, channels, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x):
        mean = x.mean(1, keepdim=True)
        var = (x - mean).square().mean(1, keepdim=True)
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight[:, None, None] + self.bias[:, None, None]


def _norm(channels):
    return _ChannelNorm(channels)


class _Block(nn.Module):
    """Two 3x3 convolutions (the second dilated), each followed by a channel normalization and ReLU; residual when the
    channel counts agree."""

    def __init__(self, cin, cout, dilation=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.norm1 = _norm(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=dilation, dilation=dilation, bias=False)
        self.norm2 = _norm(cout)
        self.skip = cin == cout

    def forward(self, x):
        y = F.relu(self.norm1(self.conv1(x)), inplace=True)
        y = self.norm2(self.conv2(y))
        return F.relu(y + x if self.skip else y, inplace=True)


class UNet(nn.Module):
    """A compact U-Net giving features at the input's full resolution.

    Symbols of sheet music are a few pixels across (stems 1-2 px wide, dots 5 px), so the features that the
    DWD head reads must keep full resolution; the widest symbols (beams, barlines, slurs) need a large
    receptive field, which the dilated convolutions of the deeper stages give cheaply.

    Parameters
    ----------
    in_channels : int
        Channels of the input (1 for grey pages).
    widths : sequence of int
        Channels per stage, full resolution first; each later stage halves the resolution.
    dilations : sequence of int, optional
        Dilation of the second convolution of each encoder stage (default 1 for the first stages, 2 and 4
        for the last two). With the defaults the receptive field spans over 250 px, enough for beams and
        barlines; a step of 4 crops of 256 x 256 (forward and backward) takes about 0.5-0.7 s on one CPU core.

    ``forward(x)`` takes ``(B, in_channels, H, W)`` and returns ``(B, out_channels, H, W)``: the last
    full-resolution features concatenated with the half-resolution ones upsampled bilinearly
    (``out_channels = widths[0] + widths[1]``: the full-resolution stage, the costliest, stays narrow while
    the head still reads enough channels to separate many classes). Any ``H, W`` (padded internally to a
    multiple of ``2 ** (len(widths) - 1)`` by replicating the border, and cropped back).
    """

    def __init__(self, in_channels: int = 1, widths: Sequence[int] = (8, 16, 32, 64, 128),
                 dilations: Sequence[int] | None = None):
        super().__init__()
        self.in_channels = _ints(in_channels, "in_channels")[0]
        self.widths = _ints(widths, "widths")
        n = len(self.widths)
        if dilations is None:
            dilations = [1] * max(0, n - 2) + [2, 4][-min(n, 2):] if n >= 2 else [1]
        self.dilations = _ints(dilations, "dilations")
        if len(self.dilations) != n:
            raise ValueError(f"dilations must have one entry per stage ({n}), got {list(dilations)!r}")
        self.out_channels = self.widths[0] + (self.widths[1] if n > 1 else 0)
        self.stem = _Block(self.in_channels, self.widths[0], self.dilations[0])
        self.down = nn.ModuleList()
        for i in range(1, n):
            self.down.append(nn.Sequential(
                nn.Conv2d(self.widths[i - 1], self.widths[i], 3, stride=2, padding=1, bias=False),
                _norm(self.widths[i]), nn.ReLU(inplace=True),
                _Block(self.widths[i], self.widths[i], self.dilations[i])))
        self.up = nn.ModuleList()
        for i in range(n - 1, 0, -1):
            self.up.append(nn.ModuleDict({
                "reduce": nn.Conv2d(self.widths[i], self.widths[i - 1], 1, bias=False),
                "block": _Block(2 * self.widths[i - 1], self.widths[i - 1]),
            }))

    def config(self) -> dict:
        return {"name": "unet", "in_channels": self.in_channels, "widths": list(self.widths),
                "dilations": list(self.dilations)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != self.in_channels:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x must be a (B, {self.in_channels}, H, W) tensor, got {shape}")
        H, W = x.shape[-2:]
        m = 2 ** (len(self.widths) - 1)
        ph, pw = (-H) % m, (-W) % m
        if ph or pw:
            # replicate, not zeros: a page's border is paper, and zeros would read as ink
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        skips = [self.stem(x)]
        for stage in self.down:
            skips.append(stage(skips[-1]))
        y = half = skips.pop()
        for up in self.up:
            skip = skips.pop()
            half = y
            y = F.interpolate(up["reduce"](y), size=skip.shape[-2:], mode="bilinear", align_corners=False)
            y = up["block"](torch.cat([skip, y], 1))
        if self.up:  # the half-resolution features too, upsampled: more channels for the head at little cost
            y = torch.cat([y, F.interpolate(half, size=y.shape[-2:], mode="bilinear", align_corners=False)], 1)
        return y[..., :H, :W] if (ph or pw) else y


BACKBONES = {"unet": UNet}


def make_backbone(spec: dict) -> nn.Module:
    """A backbone from its configuration: ``{"name": "unet", **keyword arguments}`` (see :class:`UNet`)."""
    if not isinstance(spec, dict) or "name" not in spec:
        raise ValueError(f"backbone must be a dict with a 'name' (one of {sorted(BACKBONES)}), got {spec!r}")
    kw = dict(spec)
    name = kw.pop("name")
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; known: {sorted(BACKBONES)}")
    return BACKBONES[name](**kw)


def image_to_tensor(image) -> torch.Tensor:
    """A page image as the detector's input: ``(1, H, W)`` float32 in [0, 1], paper = 1.

    ``image``: a numpy array or tensor, ``(H, W)`` grey or ``(H, W, 3|4)`` colour (converted to grey with
    ITU-R 601 weights), uint8 (0-255) or float in [0, 1].
    """
    t = image if isinstance(image, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(image))
    if t.dtype == torch.bool or not (t.dtype.is_floating_point or t.dtype == torch.uint8):
        raise TypeError(f"image must be uint8 or float, got {t.dtype}")
    scale = 1 / 255.0 if t.dtype == torch.uint8 else 1.0
    if t.dim() == 3 and t.shape[-1] in (3, 4):
        w = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float32, device=t.device)
        t = (t[..., :3].to(torch.float32) * w).sum(-1) * scale
    elif t.dim() == 2:
        t = t.to(torch.float32) * scale
    else:
        raise ValueError(f"image must be (H, W) or (H, W, 3|4), got shape {tuple(t.shape)}")
    if t.dtype.is_floating_point and t.numel() and not bool(torch.isfinite(t).all()):
        raise ValueError("image must hold finite values")
    return t.clamp_(0, 1).unsqueeze(0).contiguous()
