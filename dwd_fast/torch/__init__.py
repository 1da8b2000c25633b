"""PyTorch training wrapper for the Deep Watershed Detector (needs PyTorch; ``import dwd_fast`` does not).

- :class:`UNet` — a compact full-resolution backbone (:func:`make_backbone` builds one from its config)
- :class:`DWDHead` — energy, class and size heads on any feature map
- :class:`TargetEncoder` — torchvision-style targets -> target tensors, built on the device
- :class:`DWDLoss` — DWD's loss (cross-entropies, size regression, the original's masks and task weights)
- :class:`Decoder` — outputs -> ``list[dict(boxes, labels, scores)]``
- :class:`PasteRareSymbols` — rare symbols pasted into the page margins (a dataset transform)
- :class:`ScanDegradation` — blur, noise, contrast, gamma, small rotation and skew, boxes moved (a transform)
- :class:`LabelMap`, :class:`CropDataset` — a compact label space, and training crops sampled near content
- :func:`train` — the training loop behind ``dwd-fast train`` (:mod:`dwd_fast.torch.train`)
- :class:`DeepWatershedDetector` — all of it on a backbone, with torchvision's detector interface
- :mod:`dwd_fast.torch.ops` — the ``dwd_fast::`` custom operators underneath
"""

from . import ops
from .augment import PasteRareSymbols, ScanDegradation
from .backbone import UNet, image_to_tensor, make_backbone
from .data import CropDataset, LabelMap
from .decoder import Decoder
from .heads import DWDHead
from .loss import DWDLoss
from .model import DeepWatershedDetector, output_stride
from .targets import TargetEncoder
from .train import train

__all__ = ["DWDHead", "TargetEncoder", "DWDLoss", "Decoder", "DeepWatershedDetector", "output_stride", "ops",
           "PasteRareSymbols", "ScanDegradation", "LabelMap", "CropDataset", "train", "UNet", "make_backbone",
           "image_to_tensor"]
