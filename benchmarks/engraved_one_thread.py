"""Issue 17's engraved-page figures, thread-matched: ``python benchmarks/engraved_one_thread.py``.

dwd_fast on one thread (``dwd_fast.set_num_threads(1)``) against single-threaded scikit-image, in the same
process, the two interleaved round by round (this machine is shared and noisy), warm, medians and 95th
percentiles over all rounds:

- ``watershed`` canonical against ``skimage.segmentation.watershed`` on the demo's engraved page
  (``dwd_fast.data.engraved_page("random", seed=0)``, its ``box_targets`` and ``simulate_outputs``): image ``-energy``
  (int16), markers ``label(energy >= 8)``, mask ``energy >= 2``, as ``dwd-fast bench`` runs it;
- ``decode(grow_to=1)`` against scikit-image's label + watershed + regionprops pipeline
  (``dwd_fast._bench.references.skimage_decode_grow``) on the same page;
- ``decode`` (cutoff seeds) against label + regionprops (``skimage_decode``) on
  ``dwd_fast.data.reference_page(250)``.

Each row says how the two outputs were compared ("checked"). Takes about a minute; ``--rounds N``
sets the number of interleaved rounds.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

_ROOT = Path(__file__).resolve().parents[1]
if (_ROOT / "dwd_fast" / "__init__.py").exists():  # the checkout this script belongs to, built in place
    sys.path.insert(0, str(_ROOT))
import dwd_fast  # noqa: E402
from dwd_fast._bench import references as R  # noqa: E402


def _pages():
    from dwd_fast.data import box_targets, engraved_page, reference_page, simulate_outputs

    p = engraved_page("random", seed=0)  # the demo's page (`dwd-fast demo`'s defaults)
    t, objects = box_targets(p.boxes, p.labels, p.image.shape, levels=16)
    out = simulate_outputs(t, seed=0, objects=objects)
    return (out.energy, out.classes, out.sizes), reference_page(250, seed=0)


def _box_match(ours, ref):
    """Fraction of the reference's boxes that one of ours matches with IoU >= 0.99 (same class)."""
    a, b = np.asarray(ours.boxes, np.float64), np.asarray(ref["boxes"], np.float64)
    if len(b) == 0:
        return 1.0 if len(a) == 0 else 0.0
    if len(a) == 0:
        return 0.0
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    iou = inter / np.maximum(area(a)[:, None] + area(b)[None, :] - inter, 1e-12)
    same = np.asarray(ours.labels)[:, None] == np.asarray(ref["labels"])[None, :]
    return float(np.mean(np.any((iou >= 0.99) & same, axis=0)))


def cases():
    from skimage.segmentation import watershed as sk_watershed

    (E, C, S), rp = _pages()
    e16 = E.astype(np.int16)
    img, markers, mask = -e16, dwd_fast.label(e16 >= 8), e16 >= 2

    def ws_check(o, r):
        return f"{100 * float(np.mean((o == r)[mask])):.2f}% of masked pixels equal skimage's"

    def dec_check(o, r):
        return f"{len(o.boxes)} vs {len(r['boxes'])} objects, {100 * _box_match(o, r):.1f}% of skimage's boxes " \
               f"matched (IoU >= 0.99, same class)"

    return [
        ("watershed canonical (engraved)", lambda: dwd_fast.watershed(img, markers, mask=mask),
         "skimage watershed", lambda: sk_watershed(img, markers, mask=mask), ws_check),
        ("decode grow_to=1 (engraved)", lambda: dwd_fast.decode(E, C, S, cutoff=7, min_size=4, grow_to=1),
         "skimage label+watershed+regionprops",
         lambda: R.skimage_decode_grow(E, C, S, cutoff=7, min_size=4, grow_to=1), dec_check),
        ("decode (reference n=250)", lambda: dwd_fast.decode(rp.energy, rp.classes, rp.sizes, cutoff=7, min_size=4),
         "skimage label+regionprops",
         lambda: R.skimage_decode(rp.energy, rp.classes, rp.sizes, cutoff=7, min_size=4), dec_check),
    ]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=8, help="interleaved rounds (default 8)")
    args = ap.parse_args(argv)
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"dwd_fast {dwd_fast.__version__} ({Path(dwd_fast.__file__).parent}), {stamp}, dwd_fast on 1 thread, "
          f"references single-threaded, load average {os.getloadavg()[0]:.1f}")
    print("| op | ours 1-thr median / p95 ms | reference | reference median / p95 ms | ratio (medians) | checked |")
    print("|---|---|---|---|---|---|")
    before = dwd_fast.get_num_threads()
    dwd_fast.set_num_threads(1)
    try:
        for name, ours, ref_name, ref, check in cases():
            o, r = ours(), ref()  # warm, and compared
            note = check(o, r)
            t_o, t_r = [], []
            # ours is ~30-100x faster: many of its calls per reference call, interleaved
            n_in = 20
            for _ in range(args.rounds):
                for _ in range(n_in):
                    t0 = time.perf_counter()
                    ours()
                    t_o.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                ref()
                t_r.append(time.perf_counter() - t0)
            mo, po = np.median(t_o) * 1e3, np.percentile(t_o, 95) * 1e3
            mr, pr = np.median(t_r) * 1e3, np.percentile(t_r, 95) * 1e3
            print(f"| {name} | {mo:.2f} / {po:.2f} | {ref_name} | {mr:.1f} / {pr:.1f} | {mr / mo:.1f}x | {note} |",
                  flush=True)
    finally:
        dwd_fast.set_num_threads(before)


if __name__ == "__main__":
    main()
