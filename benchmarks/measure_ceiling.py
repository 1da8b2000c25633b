"""The ceiling of DWD's targets: ground-truth boxes encoded, then decoded with the default decoder.

For a fixed set of engraved pages (the three bundled pieces, and random music with seeds 0-14 in the five SMuFL
fonts), the boxes are encoded by :func:`dwd_fast.encode` and the targets decoded by
:func:`dwd_fast.decode` with the options of the torch ``Decoder``'s defaults. Detections are matched to
the ground truth greedily per class at IoU 0.5 (``dwd_fast._bench.evaluate.match``). Prints markdown
tables of per-class recall and precision (classes with at least ``--min-count`` instances, and all classes
together) for the defaults and the former ones (``marker="oval", min_marker=0, overlap="max"``).

Usage::

    PYTHONPATH=. python benchmarks/measure_ceiling.py [--pages 18] [--cache /tmp/dwd_ceiling] [--min-count 50]

Engraving a page takes 1-2 s; pages are cached as npz under ``--cache``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

import dwd_fast
from dwd_fast._bench.evaluate import match
from dwd_fast.data import FONTS, PIECES, engraved_classes, engraved_page

# The torch Decoder's defaults, as the decode op passes them to dwd_fast.decode.
from dwd_fast.torch.decoder import Decoder  # noqa: E402


def page_specs(n):
    """(music, seed, font) of the first ``n`` pages of the fixed set: the bundled pieces, then random music."""
    specs = [(p, 0, FONTS[i % len(FONTS)]) for i, p in enumerate(PIECES)]
    specs += [("random", s, FONTS[s % len(FONTS)]) for s in range(max(0, n - len(specs)))]
    return specs[:n]


def load_page(music, seed, font, cache):
    fn = os.path.join(cache, f"{music}_{seed}_{font}.npz") if cache else None
    if fn and os.path.exists(fn):
        d = np.load(fn)
        return d["boxes"], d["labels"], tuple(int(v) for v in d["shape"])
    p = engraved_page(music, seed=seed, font=font)
    if fn:
        os.makedirs(cache, exist_ok=True)
        tmp = fn + ".tmp.npz"
        np.savez(tmp, boxes=p.boxes, labels=p.labels, shape=np.array(p.image.shape))
        os.replace(tmp, fn)
    return p.boxes, p.labels, p.image.shape


def decoder_options(decoder=None):
    """The keyword arguments of dwd_fast.decode that a torch Decoder uses."""
    d = Decoder() if decoder is None else decoder
    return dict(cutoff=d.cutoff, min_size=d.min_size, grow_to=d.grow_to, seeds=d.seeds, size_reduce=d.size_reduce)


def ceiling(pages, encode_options, decode_options, stride=1):
    """Per class: (instances, matched ground truth, detections, true positives), summed over pages. With
    ``stride`` > 1 the targets are drawn on the strided grid and the decoded boxes multiplied by it (the
    torch Decoder's ``stride``)."""
    stats = {}
    for boxes, labels, shape in pages:
        t = dwd_fast.encode(boxes, labels, shape, strides=(stride,), **encode_options)
        det = dwd_fast.decode(t.energy, t.classes, t.sizes, **decode_options)
        tp, used = match(det.boxes * stride, det.labels, det.scores, boxes, labels, iou=0.5)
        for c in np.union1d(np.unique(labels), np.unique(det.labels)):
            s = stats.setdefault(int(c), np.zeros(4, np.int64))
            g, d = labels == c, det.labels == c
            s += [g.sum(), used[g].sum(), d.sum(), tp[d].sum()]
    return stats


def table(stats, min_count):
    names = engraved_classes()
    rows = ["| class | instances | recall | precision |", "|---|---:|---:|---:|"]
    tot = np.zeros(4, np.int64)
    worst_r, worst_p = 1.0, 1.0
    for c, (n, m, d, tp) in sorted(stats.items(), key=lambda kv: -kv[1][0]):
        tot += (n, m, d, tp)
        if n >= min_count:
            r, p = m / max(n, 1), tp / max(d, 1)
            worst_r, worst_p = min(worst_r, r), min(worst_p, p)
            rows.append(f"| {names[c] if 0 <= c < len(names) else c} | {n} | {r:.3f} | {p:.3f} |")
    n, m, d, tp = tot
    rows.append(f"| **all classes** | {n} | {m / max(n, 1):.3f} | {tp / max(d, 1):.3f} |")
    return "\n".join(rows), (worst_r, worst_p, m / max(n, 1), tp / max(d, 1))


OLD = dict(marker="oval", min_marker=0.0, overlap="max")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pages", type=int, default=18)
    ap.add_argument("--cache", default="/tmp/dwd_ceiling")
    ap.add_argument("--min-count", type=int, default=50)
    ap.add_argument("--min-marker", type=float, default=None, help="override encode's min_marker")
    ap.add_argument("--overlap", default=None, help="override encode's overlap")
    ap.add_argument("--size", type=float, default=None, help="override encode's size")
    ap.add_argument("--marker", default=None, help="override encode's marker")
    ap.add_argument("--stride", type=int, default=1, help="output stride of the targets (default 1)")
    ap.add_argument("--no-old", action="store_true", help="skip the old defaults' table")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    pages = [load_page(*spec, args.cache) for spec in page_specs(args.pages)]
    print(f"{len(pages)} pages ({', '.join(f'{m}/{s}/{f}' for m, s, f in page_specs(args.pages))}), "
          f"{sum(len(b) for b, _, _ in pages)} objects; loaded in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    dec = decoder_options()
    new = {}
    for k in ("min_marker", "overlap", "size", "marker"):
        v = getattr(args, k)
        if v is not None:
            new[k] = v
    configs = [("new defaults" + (f" with {new}" if new else ""), new)]
    if not args.no_old:
        configs.append(("former defaults (marker='oval', min_marker=0, overlap='max')", OLD))
    print(f"decode options (the torch Decoder's defaults): {dec}; stride {args.stride}\n")
    for title, opts in configs:
        text, (wr, wp, r, p) = table(ceiling(pages, opts, dec, args.stride), args.min_count)
        print(f"### {title}\n\n{text}\n\nworst class recall {wr:.3f}, worst class precision {wp:.3f} "
              f"(classes with >= {args.min_count} instances)\n")


if __name__ == "__main__":
    main()
