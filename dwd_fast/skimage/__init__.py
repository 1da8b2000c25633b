"""A scikit-image drop-in for the segmentation pipeline, shaped like ``cucim.skimage``.

``from dwd_fast.skimage.segmentation import watershed`` (and ``measure.label``,
``measure.regionprops_table``, ``feature.peak_local_max``) take scikit-image 0.26's signatures,
defaults, warnings and errors, and return its outputs bit for bit on 2-D inputs (``watershed`` and
``label`` also on n-D ones where noted). See docs/skimage.md for what runs on the fast kernels and what
runs on exact but slower code.
"""

from . import feature, measure, ndimage, segmentation

__all__ = ["feature", "measure", "ndimage", "segmentation"]
