"""A trained detector on held-out pages: COCO mAP and mAP@0.5 per class with each class's test count, on the
clean pages and on the same pages with the scan degradation applied; detection time per page.

    python benchmarks/measure_detector.py dwd_fast/torch/models/default.pt CORPUS [--pages 10] [--threads 2]
        [--size-modes regress,blend,class]

``CORPUS`` is a DeepScoresV2-format folder (``deepscores_test.json``; e.g. made by ``dwd-fast make-dataset``);
the model's classes are matched to the dataset's by name. Pages are detected whole, tiled
(:func:`dwd_fast.torch.infer.detect_image`). The scan degradation is :class:`dwd_fast.torch.ScanDegradation`
with its defaults, seeded per page, boxes moved with the ink. Prints markdown tables; ``--json`` writes them.
``--size-modes``: the network runs once per page and its outputs are decoded with each of the decoder's size
modes (``regress``: the regressed sizes; ``class``: the class-size table; ``blend``: both, weighted by the class
confidence and the class's spread) — the comparison of size encodings; results keyed ``"clean/blend"`` etc.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("corpus")
    ap.add_argument("--pages", type=int, default=10, help="test pages, the first ones (default 10)")
    ap.add_argument("--threads", type=int, default=0, help="PyTorch and dwd_fast threads (default: theirs)")
    ap.add_argument("--min-count", type=int, default=50, help="classes counted in the headline mean (default 50)")
    ap.add_argument("--no-scan", action="store_true", help="clean pages only")
    ap.add_argument("--size-modes", help="comma-separated decoder size modes to compare (default: the model's own)")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--dets", help="write every condition's detections and ground truths here (.npz), for "
                    "benchmarks/bootstrap_detections.py")
    args = ap.parse_args(argv)

    import torch

    import dwd_fast
    from dwd_fast.data.deepscores import read_deepscores
    from dwd_fast.torch import DeepWatershedDetector, ScanDegradation
    from dwd_fast.torch.data import LabelMap
    from dwd_fast.torch.infer import _decoder_options, decode_kwargs, decode_outputs, predict_outputs
    from dwd_fast.torch.train import eval_items

    if args.threads:
        torch.set_num_threads(args.threads)
        dwd_fast.set_num_threads(args.threads)
    model = DeepWatershedDetector.load(args.model)
    test = os.path.join(args.corpus, "deepscores_test.json") if os.path.isdir(args.corpus) else args.corpus
    ds = read_deepscores(test)
    names = list(model.class_names)
    src = [ds.class_names.index(n) if n in ds.class_names else -1 for n in names[1:]]
    missing = [n for n, s in zip(names[1:], src) if s < 0]
    keep = [i for i, s in enumerate(src) if s >= 0]
    # classes the dataset lacks keep a label no page holds
    free = iter(range(len(ds.class_names) + 1, len(ds.class_names) + 1 + len(names)))
    label_map = LabelMap([s if s >= 0 else next(free) for s in src], names)
    pages = ds.pages[:args.pages]
    items = eval_items(pages, label_map, crop=0)
    print(f"model {args.model}: {model.num_classes - 1} classes ({len(missing)} not in the dataset), "
          f"{sum(p.numel() for p in model.parameters()):,} parameters; meta {json.dumps(model.meta)[:300]}")
    print(f"test pages: {len(items)} of {len(ds.pages)} in {test}; {sum(len(i['labels']) for i in items)} "
          f"annotations ({sum(i['unmapped'] for i in items)} of classes the model lacks, left out); threads "
          f"torch {torch.get_num_threads()}, dwd_fast {dwd_fast.info()['cpu']['threads']}")
    del keep

    base = _decoder_options(model, None, None)
    modes = args.size_modes.split(",") if args.size_modes else [base["size_mode"]]
    table = model.class_sizes
    opts = {}
    for mode in modes:
        o = dict(base, size_mode=mode)
        if mode == "regress":
            o["class_sizes"] = None
        elif o["class_sizes"] is None:
            if table is None:
                sys.exit(f"size mode {mode!r} needs the model's class-size table; it has none")
            o["class_sizes"] = table
        opts[mode] = decode_kwargs(o)
    base_conditions = [("clean", None)] if args.no_scan else [("clean", None), ("scan", ScanDegradation())]
    conditions = [(c if not args.size_modes else f"{c}/{m}", d, m) for c, d in base_conditions for m in modes]
    outs = {}  # (condition, page) -> the network's reduced outputs and the time it took
    results = {}
    saved = {}
    for cond, degrade, mode in conditions:
        if outs and next(iter(outs))[0] != cond.split("/")[0]:
            outs.clear()  # one condition's outputs at a time
        dets, gts, secs = [], [], []
        for k, it in enumerate(items):
            img, boxes = it["image"], it["boxes"]
            if degrade is not None:
                torch.manual_seed(1000 + k)
                t_img, t_tgt = degrade(torch.from_numpy(np.array(img)),
                                       {"boxes": torch.from_numpy(boxes.astype(np.float32)),
                                        "labels": torch.from_numpy(it["labels"])})
                img, boxes = t_img.numpy(), t_tgt["boxes"].numpy().astype(np.float64)
            key = (cond.split("/")[0], k)
            if key not in outs:
                t = time.perf_counter()
                with torch.no_grad():
                    outs[key] = (predict_outputs(model, img, cutoff=base["cutoff"], grow_to=base["grow_to"],
                                                 seeds=base["seeds"]), time.perf_counter() - t)
            t = time.perf_counter()
            d = decode_outputs(outs[key][0], **opts[mode])
            secs.append(outs[key][1] + time.perf_counter() - t)
            dets.append(d.as_dict())
            gts.append({"boxes": boxes, "labels": it["labels"]})
        for k, (d, g) in enumerate(zip(dets, gts)):
            for f in ("boxes", "labels", "scores"):
                saved[f"{cond}|{k}|det_{f}"] = np.asarray(d[f])
            saved[f"{cond}|{k}|gt_boxes"], saved[f"{cond}|{k}|gt_labels"] = g["boxes"], np.asarray(g["labels"])
        r = dwd_fast.evaluate(dets, gts, class_names=names[1:])
        big = r.num_gt >= args.min_count
        results[cond] = {
            "mAP": float(r.map), "mAP50": float(r.map50),
            f"mAP50_classes_ge_{args.min_count}": float(np.mean(r.ap50[big])) if big.any() else None,
            f"mAP_classes_ge_{args.min_count}": float(np.mean(r.ap[big])) if big.any() else None,
            "seconds_per_page_median": float(np.median(secs)),
            "classes": {n: {"AP": float(r.ap[c]), "AP50": float(r.ap50[c]), "recall": float(r.recall[c]),
                            "num_gt": int(r.num_gt[c]), "num_dets": int(r.num_dets[c])}
                        for c, n in enumerate(names[1:]) if r.num_gt[c] or r.num_dets[c]},
        }
        print(f"\n{cond}: COCO mAP {r.map:.3f}, mAP@0.5 {r.map50:.3f} (all {int((r.num_gt > 0).sum())} classes with "
              f"test instances); over the {int(big.sum())} classes with >= {args.min_count} test instances: "
              f"mAP@0.5 {results[cond][f'mAP50_classes_ge_{args.min_count}']:.3f}, "
              f"mAP {results[cond][f'mAP_classes_ge_{args.min_count}']:.3f}; "
              f"detect_image median {np.median(secs):.1f} s a page")

    print("\n| class | test count | " + " | ".join(f"AP@0.5 {c} | AP {c} | recall {c}" for c, _, _ in conditions)
          + " |")
    print("|---|---:|" + "---:|" * (3 * len(conditions)))
    first = results[conditions[0][0]]["classes"]
    for n in sorted(first, key=lambda n: -first[n]["num_gt"]):
        row = [n, str(first[n]["num_gt"])]
        for c, _, _ in conditions:
            v = results[c]["classes"].get(n, {"AP50": float("nan"), "AP": float("nan"), "recall": float("nan")})
            row += [f"{v['AP50']:.3f}", f"{v['AP']:.3f}", f"{v['recall']:.3f}"]
        print("| " + " | ".join(row) + " |")
    if args.dets:
        from dwd_fast._files import atomic_write_bytes

        buf = io.BytesIO()
        np.savez_compressed(buf, class_names=np.array(names[1:]), **saved)
        atomic_write_bytes(args.dets, buf.getvalue())
    if args.json:
        from dwd_fast._files import atomic_write

        atomic_write(args.json, lambda f: json.dump(results, f, indent=1))


if __name__ == "__main__":
    main()
