"""A Deep Watershed Detector on any backbone, with torchvision's detector interface."""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import nn

from .decoder import Decoder
from .heads import DWDHead
from .loss import DWDLoss
from .targets import TargetEncoder

__all__ = ["DeepWatershedDetector", "output_stride"]


def output_stride(image_size, output_size):
    """The integer stride s with ``ceil(H / s), ceil(W / s)`` = the output size, else ``ValueError``."""
    (H, W), (h, w) = (int(v) for v in image_size), (int(v) for v in output_size)
    if h <= 0 or w <= 0:
        raise ValueError(f"the head's output is empty: {(h, w)}")
    for s in {max(1, round(H / h)), max(1, -(-H // h)), max(1, H // h)}:
        if -(-H // s) == h and -(-W // s) == w:
            return s
    raise ValueError(f"the head's output {(h, w)} is not the input {(H, W)} divided by an integer stride "
                     f"(ceil(H / s), ceil(W / s)); use DWDHead(upsample=True) or pad the input")


class DeepWatershedDetector(nn.Module):
    """DWD on a backbone: ``model(images, targets)`` returns the loss dict in training mode (``"loss"`` the
    total), ``model(images)`` returns ``list[dict(boxes, labels, scores)]`` in eval mode, like torchvision's
    detectors.

    Parameters
    ----------
    backbone : nn.Module
        Maps images (B, 3, H, W) to a feature map (B, in_channels, h, w) (or a dict / list of them: the
        last one is used). ``h, w`` must be the input divided by an integer stride (rounded up) unless the
        head upsamples.
    in_channels : int
        Channels of the backbone's feature map.
    num_classes : int
        Classes including the background (class 0).
    levels : int
        Energy levels.
    upsample : bool
        Upsample the head's outputs to the input size (the original DWD did); else targets are built at the
        output stride and boxes are scaled back by it.
    encoder, loss, decoder : dict or module, optional
        Keyword arguments for (or instances of) :class:`TargetEncoder`, :class:`DWDLoss`, :class:`Decoder`.
    """

    def __init__(self, backbone: nn.Module, in_channels: int, num_classes: int, *, levels: int = 20,
                 upsample: bool = True, encoder: Optional[Any] = None, loss: Optional[Any] = None,
                 decoder: Optional[Any] = None):
        super().__init__()
        if not isinstance(backbone, nn.Module):
            raise TypeError(f"backbone must be an nn.Module, got {type(backbone).__name__}")
        self.backbone = backbone
        self.head = DWDHead(in_channels, num_classes, levels, upsample=upsample)
        self.encoder = encoder if isinstance(encoder, TargetEncoder) else TargetEncoder(
            levels, num_classes, **(encoder or {}))
        if self.encoder.levels != levels:
            raise ValueError(f"encoder.levels ({self.encoder.levels}) must equal levels ({levels})")
        self.loss = loss if isinstance(loss, DWDLoss) else DWDLoss(**(loss or {}))
        self.decoder = decoder if isinstance(decoder, Decoder) else Decoder(**(decoder or {}))

    @staticmethod
    def _images(images):
        if isinstance(images, (list, tuple)):
            if not images or not all(isinstance(im, torch.Tensor) and im.dim() == 3 for im in images):
                raise TypeError("images must be a (B, C, H, W) tensor or a non-empty list of (C, H, W) tensors")
            if len({tuple(im.shape) for im in images}) != 1:
                shapes = sorted({tuple(im.shape) for im in images})
                raise ValueError(f"images of a batch must have one size, got {shapes}")
            images = torch.stack(list(images))
        if not isinstance(images, torch.Tensor) or images.dim() != 4:
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise ValueError(f"images must be a (B, C, H, W) tensor or a list of (C, H, W) tensors, got {shape}")
        return images

    def forward_outputs(self, images: torch.Tensor) -> tuple[dict[str, torch.Tensor], int]:
        """The head's outputs and their stride."""
        images = self._images(images)
        feats = self.backbone(images)
        if isinstance(feats, dict):
            feats = list(feats.values())[-1]
        elif isinstance(feats, (list, tuple)):
            feats = feats[-1]
        size = tuple(images.shape[-2:])
        out = self.head(feats, size=size)
        return out, output_stride(size, out["energy"].shape[-2:])

    def forward(self, images, targets: Optional[list[dict[str, torch.Tensor]]] = None):
        images = self._images(images)
        outputs, stride = self.forward_outputs(images)
        if self.training:
            if targets is None:
                raise ValueError("in training mode the model needs targets: model(images, targets)")
            if len(targets) != images.shape[0]:
                raise ValueError(f"targets must have one dict per image ({images.shape[0]}), got {len(targets)}")
            t = self.encoder(targets, tuple(images.shape[-2:]), device=outputs["energy"].device, stride=stride)
            return self.loss(outputs, t)
        return self.decoder(outputs, stride=stride)
