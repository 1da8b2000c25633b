"""The classic nuclei pipeline on a 2048 x 2048 image, dwd_fast.skimage against scikit-image 0.26, one
thread each (issue 20): random overlapping disks -> label -> distance transform -> peak_local_max ->
watershed -> regionprops_table. The reference side is scikit-image and, for the distance transform,
SciPy's ``ndimage.distance_transform_edt`` (scikit-image has none); ours is dwd_fast.skimage (its
``ndimage.distance_transform_edt`` for that step).

Each step takes the same inputs on both sides (the reference's outputs of the previous step), and every
output is checked equal to the reference's before timing. Repeats interleave the two sides; medians and
p95 of the repeats.

    python benchmarks/bench_skimage_pipeline.py [--repeats 7] [--size 2048] [--nuclei 1500]
"""

import argparse
import time

import numpy as np
from scipy import ndimage as ndi
import skimage.feature
import skimage.measure
import skimage.segmentation

import dwd_fast
from dwd_fast.skimage import feature, measure, ndimage, segmentation

PROPS = ("label", "area", "bbox", "centroid", "intensity_mean", "intensity_min", "intensity_max")


def nuclei(size, n, seed=0):
    """A binary image of n overlapping disks (radii 6..18 px) and a smooth intensity image."""
    rng = np.random.default_rng(seed)
    img = np.zeros((size, size), bool)
    yy, xx = np.ogrid[:size, :size]
    for r0, c0, rad in zip(rng.integers(0, size, n), rng.integers(0, size, n), rng.integers(6, 19, n)):
        r1, r2, c1, c2 = max(r0 - rad, 0), min(r0 + rad + 1, size), max(c0 - rad, 0), min(c0 + rad + 1, size)
        img[r1:r2, c1:c2] |= (yy[r1:r2] - r0) ** 2 + (xx[:, c1:c2] - c0) ** 2 <= rad * rad
    intensity = (ndi.gaussian_filter(rng.random((size, size)), 3) * 1000).astype(np.float32)
    return img, intensity


def steps(binary, intensity):
    """(name, scikit-image call, dwd_fast call) per step; each step's inputs come from the reference."""
    objects = skimage.measure.label(binary)
    distance = ndi.distance_transform_edt(binary)
    coords = skimage.feature.peak_local_max(distance, footprint=np.ones((3, 3)), labels=objects, min_distance=5)
    markers = np.zeros(binary.shape, np.int32)
    markers[tuple(coords.T)] = np.arange(1, len(coords) + 1)
    cells = skimage.segmentation.watershed(-distance, markers, mask=binary)
    return [
        ("label", lambda: skimage.measure.label(binary), lambda: measure.label(binary)),
        ("distance transform (SciPy's)", lambda: ndi.distance_transform_edt(binary),
         lambda: ndimage.distance_transform_edt(binary)),
        ("peak_local_max", lambda: skimage.feature.peak_local_max(distance, footprint=np.ones((3, 3)), labels=objects,
                                                                  min_distance=5),
         lambda: feature.peak_local_max(distance, footprint=np.ones((3, 3)), labels=objects, min_distance=5)),
        ("watershed", lambda: skimage.segmentation.watershed(-distance, markers, mask=binary),
         lambda: segmentation.watershed(-distance, markers, mask=binary)),
        ("regionprops_table", lambda: skimage.measure.regionprops_table(cells, intensity, PROPS),
         lambda: measure.regionprops_table(cells, intensity, PROPS)),
    ], len(coords), int(objects.max())


def same(a, b):
    if isinstance(a, dict):
        return list(a) == list(b) and all(a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]) for k in a)
    return a.dtype == b.dtype and np.array_equal(a, b)


def timed(f):
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--nuclei", type=int, default=1500)
    a = ap.parse_args()
    dwd_fast.set_num_threads(1)
    binary, intensity = nuclei(a.size, a.nuclei)
    table, n_peaks, n_objects = steps(binary, intensity)
    for name, ref, ours in table:
        assert same(ref(), ours()), f"{name}: outputs differ"
    times = {name: ([], []) for name, _, _ in table}
    for _ in range(a.repeats):
        for name, ref, ours in table:
            times[name][0].append(timed(ref))
            times[name][1].append(timed(ours))
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {a.size}x{a.size}, {a.nuclei} disks "
          f"({n_objects} objects, {n_peaks} peaks), 1 thread each, {a.repeats} interleaved repeats, outputs equal")
    print("| step | scikit-image median (p95) ms | dwd_fast.skimage median (p95) ms | ratio |")
    print("|---|---|---|---|")
    tot_ref = np.zeros(a.repeats)
    tot_ours = np.zeros(a.repeats)
    for name, _, _ in table:
        r, o = np.array(times[name][0]) * 1e3, np.array(times[name][1]) * 1e3
        tot_ref += r
        tot_ours += o
        print(f"| {name} | {np.median(r):.1f} ({np.percentile(r, 95):.1f}) | {np.median(o):.1f} "
              f"({np.percentile(o, 95):.1f}) | {np.median(r) / np.median(o):.1f}x |")
    print(f"| **pipeline** | {np.median(tot_ref):.1f} ({np.percentile(tot_ref, 95):.1f}) | {np.median(tot_ours):.1f} "
          f"({np.percentile(tot_ours, 95):.1f}) | {np.median(tot_ref) / np.median(tot_ours):.1f}x |")


if __name__ == "__main__":
    main()
