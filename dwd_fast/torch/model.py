"""A Deep Watershed Detector on any backbone, with torchvision's detector interface."""

from __future__ import annotations

import io
import json
import os
from typing import Any, Optional, Sequence

import numpy as np
import torch
from torch import nn

from .backbone import make_backbone
from .decoder import Decoder
from .heads import DWDHead
from .loss import DWDLoss
from .targets import TargetEncoder

__all__ = ["DeepWatershedDetector", "output_stride"]

FORMAT = "dwd-fast-detector"
VERSION = 1


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


def _size_table(class_sizes, num_classes):
    """A ClassSizeTable (or None) from a table, a (C, 2) array, or the dict :meth:`save` writes."""
    from ..class_sizes import ClassSizeTable

    if class_sizes is None or isinstance(class_sizes, ClassSizeTable):
        t = class_sizes
    elif isinstance(class_sizes, dict):
        try:
            t = ClassSizeTable(np.asarray(class_sizes["sizes"], np.float64),
                               np.asarray(class_sizes["counts"], np.int64),
                               np.asarray(class_sizes["spread"], np.float64), str(class_sizes["stat"]))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"class_sizes: not a class-size table ({e})") from None
    else:
        a = np.asarray(class_sizes.cpu() if isinstance(class_sizes, torch.Tensor) else class_sizes, np.float64)
        if a.ndim != 2 or a.shape[1] != 2:
            raise ValueError(f"class_sizes must be ({num_classes}, 2) (height, width) per class, got {a.shape}")
        seen = ~np.isnan(a).any(1)
        t = ClassSizeTable(a, seen.astype(np.int64), np.where(seen[:, None], np.zeros_like(a), np.nan), "median")
    if t is not None and (t.sizes.shape != (num_classes, 2) or t.counts.shape != (num_classes,)
                          or t.spread.shape != (num_classes, 2)):
        raise ValueError(f"class_sizes must be ({num_classes}, 2) (height, width) per class, got "
                         f"{t.sizes.shape}")
    return t


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
    class_names : sequence of str, optional
        A name per class (``num_classes`` of them, class 0 the background), kept with the model.
    class_sizes : ClassSizeTable or (num_classes, 2) array, optional
        Per-class (height, width) box sizes of the training boxes (:func:`dwd_fast.class_size_table`), kept
        with the model (``.class_sizes``, a :class:`~dwd_fast.ClassSizeTable`) for the decoder's size modes.
    size_encoding : str
        ``"linear"`` (the size channels regress pixels, as the original) or ``"log"`` (they regress log
        pixels: a relative size loss); :class:`DWDHead`'s. The outputs' ``"sizes"`` are pixels either way.

    A detector built by :meth:`from_config` can be saved with its configuration, class names and size table
    (:meth:`save`) and rebuilt from the file alone (:meth:`load`).
    """

    def __init__(self, backbone: nn.Module, in_channels: int, num_classes: int, *, levels: int = 20,
                 upsample: bool = True, encoder: Optional[Any] = None, loss: Optional[Any] = None,
                 decoder: Optional[Any] = None, class_names: Optional[Sequence[str]] = None,
                 class_sizes: Optional[Any] = None, size_encoding: str = "linear"):
        super().__init__()
        if not isinstance(backbone, nn.Module):
            raise TypeError(f"backbone must be an nn.Module, got {type(backbone).__name__}")
        self.config: Optional[dict] = None
        self.num_classes = num_classes
        if class_names is not None:
            class_names = [str(n) for n in class_names]
            if len(class_names) != num_classes:
                raise ValueError(f"class_names must have num_classes ({num_classes}) names, got {len(class_names)}")
        self.class_names = class_names
        self.class_sizes = _size_table(class_sizes, num_classes)
        self.backbone = backbone
        self.head = DWDHead(in_channels, num_classes, levels, upsample=upsample, size_encoding=size_encoding)
        self.encoder = encoder if isinstance(encoder, TargetEncoder) else TargetEncoder(
            levels, num_classes, **(encoder or {}))
        if self.encoder.levels != levels:
            raise ValueError(f"encoder.levels ({self.encoder.levels}) must equal levels ({levels})")
        self.loss = loss if isinstance(loss, DWDLoss) else DWDLoss(**(loss or {}))
        if not isinstance(decoder, Decoder):
            decoder = dict(decoder or {})
            if decoder.get("size_mode", "regress") != "regress" and decoder.get("class_sizes") is None:
                if self.class_sizes is None:
                    raise ValueError(f"decoder size_mode {decoder['size_mode']!r} needs the detector's "
                                     f"class_sizes (dwd_fast.class_size_table of the training boxes)")
                decoder["class_sizes"] = self.class_sizes  # the detector's own table
            decoder = Decoder(**decoder)
        self.decoder = decoder

    @classmethod
    def from_config(cls, config: dict, *, class_names: Optional[Sequence[str]] = None,
                    class_sizes: Optional[Any] = None) -> "DeepWatershedDetector":
        """A detector from a configuration dict: ``{"backbone": {"name": "unet", ...}, "num_classes": C,
        "levels": 20, "upsample": False, "size_encoding": "linear", "encoder": {...}, "loss": {...},
        "decoder": {...}}`` (JSON values;
        the backbone's keys are :func:`~dwd_fast.torch.backbone.make_backbone`'s)."""
        if not isinstance(config, dict):
            raise TypeError(f"config must be a dict, got {type(config).__name__}")
        known = {"backbone", "num_classes", "levels", "upsample", "size_encoding", "encoder", "loss", "decoder"}
        unknown = sorted(set(config) - known)
        if unknown or "backbone" not in config or "num_classes" not in config:
            raise ValueError(f"config needs 'backbone' and 'num_classes' and takes only {sorted(known)}; "
                             f"got {sorted(config)}")
        config = json.loads(json.dumps(config))  # a private, JSON-clean copy
        backbone = make_backbone(config["backbone"])
        model = cls(backbone, backbone.out_channels, config["num_classes"], levels=config.get("levels", 20),
                    upsample=config.get("upsample", False), encoder=config.get("encoder"),
                    loss=config.get("loss"), decoder=config.get("decoder"), class_names=class_names,
                    class_sizes=class_sizes, size_encoding=config.get("size_encoding", "linear"))
        model.config = config
        return model

    def save(self, path, **meta) -> None:
        """Write the model (configuration, weights, class names, class sizes and ``meta``, JSON values) to
        ``path`` in one piece (a temporary file renamed over ``path``). Only a model built by
        :meth:`from_config` can be saved (a custom backbone cannot be rebuilt from a file)."""
        from .._files import atomic_write_bytes

        if self.config is None:
            raise ValueError("only a detector built by DeepWatershedDetector.from_config can be saved; save "
                             "a custom model's state_dict() yourself")
        try:
            meta = json.loads(json.dumps(meta))
        except (TypeError, ValueError) as e:
            raise TypeError(f"meta must hold JSON values only: {e}") from None
        payload = {
            "format": FORMAT, "version": VERSION, "config": self.config, "class_names": self.class_names,
            "class_sizes": None if self.class_sizes is None else {
                "sizes": self.class_sizes.sizes.tolist(), "counts": self.class_sizes.counts.tolist(),
                "spread": self.class_sizes.spread.tolist(), "stat": self.class_sizes.stat},
            "state_dict": {k: v.detach().cpu() for k, v in self.state_dict().items()}, "meta": meta,
        }
        buf = io.BytesIO()
        torch.save(payload, buf)
        atomic_write_bytes(path, buf.getvalue())

    @staticmethod
    def read_file(path, map_location="cpu") -> dict:
        """The contents of a file written by :meth:`save` (checked), without building the model."""
        if not isinstance(path, (str, bytes, os.PathLike)):
            raise TypeError(f"path must be a file path, got {type(path).__name__}")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no model file at {os.fspath(path)!r}")
        try:
            payload = torch.load(path, map_location=map_location, weights_only=True)
        except Exception as e:  # a truncated or foreign file
            raise ValueError(f"{os.fspath(path)!r} is not a dwd-fast model file: {e}") from None
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise ValueError(f"{os.fspath(path)!r} is not a dwd-fast model file (no {FORMAT!r} format tag)")
        if payload.get("version") != VERSION:
            raise ValueError(f"{os.fspath(path)!r} has model file version {payload.get('version')!r}; this "
                             f"dwd_fast reads version {VERSION}")
        return payload

    @classmethod
    def load(cls, path, map_location="cpu") -> "DeepWatershedDetector":
        """A detector saved by :meth:`save`, in eval mode, its ``meta`` in ``.meta``."""
        payload = cls.read_file(path, map_location)
        model = cls.from_config(payload["config"], class_names=payload.get("class_names"),
                                class_sizes=payload.get("class_sizes"))
        model.load_state_dict(payload["state_dict"])
        model.meta = payload.get("meta") or {}
        return model.to(map_location if isinstance(map_location, (str, torch.device)) else "cpu").eval()

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
