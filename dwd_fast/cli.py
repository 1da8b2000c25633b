"""The ``dwd-fast`` command: ``demo``, ``info``."""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time

import numpy as np


def _median_ms(fn, repeat):
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1e3)


def _skimage_pipeline():
    """The scikit-image pipeline a user writes without dwd_fast, or None if scikit-image is missing."""
    try:
        from skimage.measure import label, regionprops
    except ImportError:
        return None

    def run(energy, classes, sizes, cutoff, min_size):
        lab = label(energy > cutoff, connectivity=2)
        boxes = []
        for r in regionprops(lab):
            if r.num_pixels < min_size:
                continue
            sl, m = r.slice, r.image
            cls = np.bincount(classes[sl][m]).argmax()
            h, w = sizes[0][sl][m].max(), sizes[1][sl][m].max()
            cy, cx = r.centroid
            boxes.append((cx + 0.5 - w / 2, cy + 0.5 - h / 2, cx + 0.5 + w / 2, cy + 0.5 + h / 2, cls))
        return boxes

    return run


def demo(args):
    import dwd_fast

    from .data import reference_page

    print(f"dwd_fast {dwd_fast.__version__}: decoding the reference page (2668 x 1894, {args.objects} objects, "
          f"16 energy levels), cutoff {args.cutoff}, min_size {args.min_size}")
    page = reference_page(args.objects, seed=args.seed)
    det = dwd_fast.decode(page.energy, page.classes, page.sizes, cutoff=args.cutoff, min_size=args.min_size,
                          levels=16)
    print(f"\n{len(det)} detections; the first {min(args.show, len(det))}:")
    print(f"{'#':>4} {'x1':>8} {'y1':>8} {'x2':>8} {'y2':>8} {'class':>5} {'score':>6} {'pixels':>6}")
    for i in range(min(args.show, len(det))):
        x1, y1, x2, y2 = det.boxes[i]
        print(f"{i:>4} {x1:8.1f} {y1:8.1f} {x2:8.1f} {y2:8.1f} {det.labels[i]:>5} {det.scores[i]:6.3f} "
              f"{det.areas[i]:>6}")
    ours = _median_ms(lambda: dwd_fast.decode(page.energy, page.classes, page.sizes, cutoff=args.cutoff,
                                              min_size=args.min_size), args.repeat)
    floor = _median_ms(lambda: page.energy > args.cutoff, args.repeat)
    print(f"\ndwd_fast.decode: {ours:.2f} ms (median of {args.repeat}; one numpy `energy > cutoff` pass: "
          f"{floor:.2f} ms)")
    sk = _skimage_pipeline()
    if sk is None:
        print("scikit-image is not installed: install dwd-fast[demo] to compare with its pipeline")
        return 0
    ref = sk(page.energy, page.classes, page.sizes, args.cutoff, args.min_size)
    same = len(ref) == len(det) and np.allclose(np.array([b[:4] for b in ref], np.float32), det.boxes, atol=1e-3) \
        and all(int(b[4]) == int(l) for b, l in zip(ref, det.labels))
    theirs = _median_ms(lambda: sk(page.energy, page.classes, page.sizes, args.cutoff, args.min_size),
                        max(3, args.repeat // 10))
    print(f"scikit-image label + regionprops: {theirs:.1f} ms -> dwd_fast is {theirs / ours:.0f}x faster, "
          f"{'same' if same else 'DIFFERENT'} boxes and classes")
    return 0 if same else 1


def info(args):
    import dwd_fast

    d = dwd_fast.info()
    d["python"] = sys.version.split()[0]
    d["machine"] = platform.machine()
    print(json.dumps(d, indent=2, default=str))
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(prog="dwd-fast", description="Fast Deep Watershed Detector post-processing")
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("demo", help="decode the reference page and compare with scikit-image")
    d.add_argument("--objects", type=int, default=250, help="objects on the page (default 250)")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--cutoff", type=float, default=7)
    d.add_argument("--min-size", type=int, default=4)
    d.add_argument("--show", type=int, default=10, help="detections to print")
    d.add_argument("--repeat", type=int, default=50, help="timing repeats")
    d.set_defaults(func=demo)
    i = sub.add_parser("info", help="what was built and what is usable")
    i.set_defaults(func=info)
    args = p.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
