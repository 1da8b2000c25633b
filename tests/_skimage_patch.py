"""pytest plugin (``-p tests._skimage_patch``): points scikit-image's label, regionprops_table,
peak_local_max and watershed (public names and the private modules its tests import from) at
dwd_fast.skimage, before scikit-image's own test modules are imported. Used by test_skimage_suite.py."""

import skimage.feature
import skimage.feature.peak
import skimage.measure
import skimage.measure._label
import skimage.measure._regionprops
import skimage.segmentation
import skimage.segmentation._watershed

from dwd_fast.skimage import feature, measure, segmentation

for mod, name, fn in (
    (skimage.measure, "label", measure.label),
    (skimage.measure._label, "label", measure.label),
    (skimage.measure, "regionprops_table", measure.regionprops_table),
    (skimage.measure._regionprops, "regionprops_table", measure.regionprops_table),
    (skimage.feature, "peak_local_max", feature.peak_local_max),
    (skimage.feature.peak, "peak_local_max", feature.peak_local_max),
    (skimage.segmentation, "watershed", segmentation.watershed),
    (skimage.segmentation._watershed, "watershed", segmentation.watershed),
):
    setattr(mod, name, fn)
