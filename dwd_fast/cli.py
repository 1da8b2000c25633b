"""The ``dwd-fast`` command: ``demo``, ``bench``, ``info``, ``make-dataset``, ``eval``, ``detect``."""

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


def _progress(msg):
    print(msg, file=sys.stderr, flush=True)


def _check_device(device):
    """None if ``device`` can run the ops, else the message saying why not."""
    if device == "cpu":
        return None
    import dwd_fast

    cu = dwd_fast.info()["cuda"]
    if not cu.get("usable"):
        return f"--device cuda: CUDA is not usable here: {cu.get('error') or 'no usable GPU'} (see `dwd-fast info`)"
    try:
        import torch  # noqa: F401
    except ImportError:
        return "--device cuda: the CUDA path takes PyTorch CUDA tensors here; install torch with CUDA"
    return None


def _reference_demo(args):
    """The demo on the synthetic reference page (when verovio is missing, or with --reference)."""
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
    from ._threads import one_thread

    ours = _median_ms(one_thread(lambda: dwd_fast.decode(page.energy, page.classes, page.sizes, cutoff=args.cutoff,
                                                         min_size=args.min_size)), args.repeat)
    floor = _median_ms(lambda: page.energy > args.cutoff, args.repeat)
    print(f"\ndwd_fast.decode: {ours:.2f} ms (median of {args.repeat}, 1 thread; one numpy `energy > cutoff` "
          f"pass: {floor:.2f} ms)")
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


def demo(args):
    """Engraved page -> encode -> simulated network outputs -> decode -> overlay PNG, precision / recall,
    time against the scikit-image pipeline."""
    import os

    import dwd_fast

    err = _check_device(args.device)
    if err:
        print(err, file=sys.stderr)
        return 2
    if args.reference:
        return _reference_demo(args)
    try:
        import verovio  # noqa: F401
        import resvg_py  # noqa: F401
        from PIL import Image  # noqa: F401
    except ImportError as e:
        print(f"the engraved-page demo needs verovio, resvg-py and pillow ({e.name} is missing): "
              "pip install 'dwd-fast[demo]'. Falling back to the synthetic reference page.\n", file=sys.stderr)
        return _reference_demo(args)
    from ._bench.evaluate import overlay, precision_recall
    from .data import box_targets, engraved_page, simulate_outputs

    what = f"random music (seed {args.seed})" if args.music == "random" else args.music
    _progress(f"engraving {what} in {args.font} with Verovio and rendering it at 1894 x 2668 px ...")
    t0 = time.perf_counter()
    page = engraved_page(args.music, font=args.font, seed=args.seed)
    t_page = time.perf_counter() - t0
    n = len(page.boxes)
    kinds = len(set(page.labels.tolist()))
    print(f"dwd_fast {dwd_fast.__version__} demo: an engraved page of {what} ({args.font}), {page.image.shape[1]} x "
          f"{page.image.shape[0]} px, {n} objects of {kinds} classes (engraved in {t_page:.1f} s)")
    model_path = getattr(args, "model", None)
    if model_path is None and not args.simulated:
        from ._detect import default_model_path

        model_path = default_model_path() if _has_torch() else None
    if model_path is not None:
        return _model_demo(args, page, model_path, what)
    _progress("encoding training targets and simulating network outputs (blur, noise, missed and merged objects) ...")
    t0 = time.perf_counter()
    targets, objects = box_targets(page.boxes, page.labels, page.image.shape, levels=16)
    t_enc = _median_ms(lambda: dwd_fast.encode(page.boxes, page.labels, page.image.shape, levels=16), 5)
    out = simulate_outputs(targets, seed=args.seed, objects=objects)
    print(f"encode: {t_enc:.1f} ms for the page's targets; simulated outputs: {len(out.missed)} objects missed, "
          f"{len(out.merged)} fattened into their neighbours, {len(out.misclassified)} misclassified "
          f"({time.perf_counter() - t0:.1f} s)")
    kw = dict(cutoff=args.cutoff, min_size=args.min_size, levels=16)
    maps = (out.energy, out.classes, out.sizes)
    run = lambda: dwd_fast.decode(*maps, **kw)  # noqa: E731
    if args.device == "cuda":  # decode on the GPU from torch CUDA tensors; results read back to evaluate
        import torch

        maps = tuple(torch.from_numpy(np.ascontiguousarray(a)).cuda() for a in maps)
        run = lambda: (dwd_fast.decode(*maps, **kw), torch.cuda.synchronize())[0]  # noqa: E731
        d = run()
        for f in ("boxes", "labels", "scores", "centers", "areas", "class_scores"):
            setattr(d, f, getattr(d, f).cpu().numpy())
    det = d if args.device == "cuda" else run()
    p, r, tp, _ = precision_recall(det.boxes, det.labels, det.scores, page.boxes, page.labels, iou=0.5)
    ev = dwd_fast.evaluate([det], [{"boxes": page.boxes, "labels": page.labels}], protocol="coco")
    print(f"decode (cutoff {args.cutoff}, min_size {args.min_size}): {len(det)} detections, precision {p:.3f}, "
          f"recall {r:.3f} at IoU 0.5 (class-aware); COCO mAP@0.5 {ev.map50:.3f}, mAP {ev.map:.3f}")
    if args.device == "cpu":  # the ratio is thread-matched: dwd_fast on 1 thread, scikit-image is single-threaded
        from ._threads import one_thread

        ours = _median_ms(one_thread(run), args.repeat)
        multi = _median_ms(run, args.repeat)
        line = (f"dwd_fast.decode ({args.device}): {ours:.2f} ms (median of {args.repeat}, 1 thread; "
                f"{multi:.2f} ms on the default {dwd_fast.get_num_threads()} threads)")
    else:
        ours = _median_ms(run, args.repeat)
        line = f"dwd_fast.decode ({args.device}): {ours:.2f} ms (median of {args.repeat})"
    sk = _skimage_pipeline()
    if sk is None:
        print(line + "; scikit-image is not installed (pip install 'dwd-fast[demo]') to compare with its pipeline")
    else:
        _progress("timing the same decoder written with scikit-image (label + regionprops) ...")
        ref = sk(out.energy, out.classes, out.sizes, args.cutoff, args.min_size)
        same = len(ref) == len(det) and np.allclose(np.array([b[:4] for b in ref], np.float32).reshape(-1, 4),
                                                    det.boxes, atol=1e-3)
        theirs = _median_ms(lambda: sk(out.energy, out.classes, out.sizes, args.cutoff, args.min_size),
                            max(3, args.repeat // 10))
        print(f"{line}; scikit-image label + regionprops: {theirs:.1f} ms -> dwd_fast is {theirs / ours:.0f}x "
              f"faster, {'same' if same else 'DIFFERENT'} boxes")
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "dwd_fast_demo.png")
    overlay(page.image, page.boxes, det.boxes, tp, path=path, scale=args.scale)
    print(f"overlay: {path} (page; ground truth green; detections magenta, orange where they match nothing)")
    _demo_dataset(args, page, what)
    return 0


def _demo_dataset(args, page, what):
    """``demo --dataset DIR``: the demo's page written as a one-page DeepScoresV2 dataset."""
    if getattr(args, "dataset", None):
        from .data.deepscores import from_engraved, write_deepscores

        _progress("writing the page as a one-page DeepScoresV2 dataset ...")
        ds_page = from_engraved(page, image_id=1, filename="dwd_fast_demo_page.png")
        js = write_deepscores([ds_page], args.dataset, "test", info={"description": f"dwd-fast demo page: {what}, "
                                                                                     f"{args.font}"})
        print(f"DeepScores dataset: {js} ({ds_page.n} annotations in DeepScoresV2's classes; images/, segmentation/)")


def _has_torch():
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _demo_ground_truth(page, class_names):
    """(gt boxes, gt labels, det label -> comparable label, how) for the demo page and a model's classes:
    DeepScoresV2 category ids when the model's classes are DeepScores categories, the engraved classes when
    they are those, else class-agnostic."""
    from ._detect import category_ids

    lut, _, mapping = category_ids(class_names)
    if mapping == "deepscores":
        from .data.deepscores import from_engraved

        ds = from_engraved(page, image_id=1, segmentation=False)
        return ds.boxes, ds.category_ids, (lambda lab: lut[lab]), "DeepScoresV2 categories"
    if class_names and tuple(class_names) == tuple(page.class_names):
        return page.boxes, page.labels, (lambda lab: lab), "engraved classes"
    return page.boxes, np.zeros(len(page.boxes), np.int64), (lambda lab: np.zeros_like(lab)), "class-agnostic"


def _model_demo(args, page, model_path, what):
    """The demo page through a real model (``--model``, or the packaged default model)."""
    import os

    import torch

    import dwd_fast

    from ._bench.evaluate import precision_recall
    from ._draw import overlay
    from .torch import DeepWatershedDetector
    from .torch.infer import decode_kwargs, decode_outputs, predict_outputs, _decoder_options

    try:
        model = DeepWatershedDetector.load(model_path).to(args.device).eval()
    except (OSError, ValueError) as e:
        print(f"dwd-fast demo: {e}", file=sys.stderr)
        return 2
    opts = _decoder_options(model, None, None)
    _progress(f"running the page through the model {model_path} (tiled) ...")
    t0 = time.perf_counter()
    out = predict_outputs(model, page.image, device=args.device, cutoff=opts["cutoff"], grow_to=opts["grow_to"],
                          seeds=opts["seeds"])
    if args.device == "cuda":
        torch.cuda.synchronize()
    t1 = time.perf_counter()
    det = decode_outputs(out, **decode_kwargs(opts))
    t2 = time.perf_counter()
    keep = det.labels > 0
    gt_boxes, gt_labels, to_gt, how = _demo_ground_truth(page, model.class_names)
    boxes, labels, scores = det.boxes[keep], to_gt(det.labels[keep]), det.scores[keep]
    p, r, tp, _ = precision_recall(boxes, labels, scores, gt_boxes, gt_labels, iou=0.5)
    ev = dwd_fast.evaluate([{"boxes": boxes, "labels": labels, "scores": scores}],
                           [{"boxes": gt_boxes, "labels": gt_labels}], protocol="coco")
    print(f"model {os.path.basename(model_path)}: network {t1 - t0:.2f} s, decode {t2 - t1:.3f} s ({args.device}); "
          f"{int(keep.sum())} detections, precision {p:.3f}, recall {r:.3f} at IoU 0.5 ({how}); COCO mAP@0.5 "
          f"{ev.map50:.3f}, mAP {ev.map:.3f}")
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "dwd_fast_demo.png")
    overlay(page.image, gt_boxes, boxes, tp, path=path, scale=args.scale)
    print(f"overlay: {path} (page; ground truth green; detections magenta, orange where they match nothing)")
    _demo_dataset(args, page, what)
    return 0


def bench(args):
    """Every op against its references; table, JSON, plot."""
    from ._bench import runner

    err = _check_device(args.device)
    if err:
        print(err, file=sys.stderr)
        return 2
    if args.device == "cuda":  # CUDA-event medians and pages/s per batch size (bench_gpu)
        from ._bench_gpu import bench_gpu, format_results

        results = bench_gpu((1, 8) if args.quick else (1, 8, 32))
        print(format_results(results))
        if args.json:
            from ._files import atomic_write

            atomic_write(args.json, lambda f: json.dump({"device": "cuda", "results": results}, f, indent=1,
                                                        default=str))
            print(f"\nJSON: {args.json}")
        return 0
    try:
        data = runner.run(quick=args.quick, pages=args.pages, only=args.only, progress=_progress)
    except ValueError as e:
        print(f"dwd-fast bench: {e}", file=sys.stderr)
        return 2
    except ImportError as e:
        print(f"dwd-fast bench: {e}", file=sys.stderr)
        return 2
    print()
    runner.report(data)
    if args.json:
        runner.write_json(data, args.json)
        print(f"\nJSON: {args.json}")
    if args.plot:
        runner.plot(data["results"], args.plot)
        print(f"plot: {args.plot}")
    return 0


def detect_cmd(args):
    """``dwd-fast detect``: pages through a model, tiled; detections files and overlays."""
    try:
        import torch  # noqa: F401
    except ImportError:
        print("dwd-fast detect needs PyTorch: pip install 'dwd-fast[torch]'", file=sys.stderr)
        return 2
    from ._detect import run

    try:
        return run(args)
    except (OSError, ValueError, TypeError) as e:
        print(f"dwd-fast detect: {e}", file=sys.stderr)
        return 2


def _tile_arg(text):
    try:
        parts = [int(v) for v in text.lower().replace("x", ",").split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or ROWSxCOLUMNS, got {text!r}") from None
    if len(parts) not in (1, 2) or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer or ROWSxCOLUMNS, got {text!r}")
    return parts[0] if len(parts) == 1 else tuple(parts)


def info(args):
    import dwd_fast

    d = dwd_fast.info()
    d["python"] = sys.version.split()[0]
    d["machine"] = platform.machine()
    print(json.dumps(d, indent=2, default=str))
    return 0


def make_dataset_cmd(args):
    """``dwd-fast make-dataset``: engraved pages -> a DeepScoresV2-format dataset."""
    from .data.deepscores import make_dataset

    fonts = [f.strip() for f in args.fonts.split(",") if f.strip()] if args.fonts else None
    t = time.perf_counter()
    try:
        r = make_dataset(args.out, args.pages, fonts=fonts, seed=args.seed, test_share=args.test_share, jobs=args.jobs,
                         measures=args.measures, segmentation=not args.no_segmentation, progress=not args.quiet)
    except (ValueError, ImportError) as e:
        print(f"dwd-fast make-dataset: {e}", file=sys.stderr)
        return 2
    dt = time.perf_counter() - t
    rate = f", {r['written'] / dt:.2f} pages/s" if r["written"] else ""
    print(f"{args.out}: {args.pages} pages ({r['written']} engraved, {r['kept']} kept{rate}), "
          f"{r['annotations']} annotations\n  {r['train']}\n  {r['test']}")
    return 0


def train_cmd(args):
    """``dwd-fast train``: a DeepScores-format dataset -> a trained detector in a run folder."""
    try:
        from .torch.train import DEFAULTS, train
    except ImportError as e:
        print(f"dwd-fast train: needs PyTorch ({e})", file=sys.stderr)
        return 2
    cfg = {}
    for k in DEFAULTS:
        v = getattr(args, k, None)
        if v is not None:
            cfg[k] = v
    try:
        if args.widths:
            cfg["widths"] = [int(w) for w in args.widths.split(",") if w.strip()]
        if args.model_config:
            with open(args.model_config) as f:
                cfg["model"] = json.load(f)
        r = train(args.dataset, args.out, resume=args.resume, progress=not args.quiet, **cfg)
    except (OSError, ValueError, TypeError) as e:
        print(f"dwd-fast train: {e}", file=sys.stderr)
        return 2
    if r:
        print(f"{args.out}: mAP@0.5 {r['map50']}, mAP {r['map']} on {r['pages']} test pages")
    else:
        print(f"{args.out}: trained (no test pages evaluated)")
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(prog="dwd-fast", description="Fast Deep Watershed Detector post-processing")
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("demo", help="engraved page -> encode -> simulated outputs -> decode, overlay PNG and timings")
    d.add_argument("--out", default=".", help="directory of the overlay PNG (default: current directory)")
    d.add_argument("--font", default="Bravura", help="SMuFL font: Bravura, Gootville, Leipzig, Leland, Petaluma")
    d.add_argument("--music", default="random",
                   help="'random' (default), a bundled piece (chorale, toccata, reel), or a file Verovio reads")
    d.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--cutoff", type=float, default=6)
    d.add_argument("--min-size", type=int, default=2)
    d.add_argument("--repeat", type=int, default=30, help="timing repeats")
    d.add_argument("--scale", type=float, default=0.5, help="scale of the overlay picture (default 0.5)")
    d.add_argument("--reference", action="store_true", help="decode the synthetic reference page instead")
    d.add_argument("--objects", type=int, default=250, help="objects on the reference page (with --reference)")
    d.add_argument("--show", type=int, default=10, help="detections to print (with --reference)")
    d.add_argument("--dataset", metavar="DIR", help="also write the page as a one-page DeepScoresV2 dataset in DIR")
    d.add_argument("--model", help="run the page through this model file (default: the packaged default model when "
                                   "this install has one, else simulated network outputs)")
    d.add_argument("--simulated", action="store_true",
                   help="simulated network outputs even when a default model is packaged")
    d.set_defaults(func=demo)
    b = sub.add_parser("bench", help="every op against its references (scikit-image, OpenCV, cc3d, the original)")
    b.add_argument("--quick", action="store_true", help="fewer pages and rounds (well under a minute)")
    b.add_argument("--json", help="write the results to this JSON file")
    b.add_argument("--plot", help="write a PNG of time against objects per page")
    b.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    b.add_argument("--only", help="comma-separated ops (prefixes or globs): decode, label, watershed, ...")
    b.add_argument("--pages", help="comma-separated pages: reference object counts and engraved[:seed|piece[:font]] "
                                   "(default 250,2000,engraved with --quick)")
    b.set_defaults(func=bench)
    m = sub.add_parser("make-dataset", help="engrave pages into a DeepScoresV2-format dataset (images + JSON)")
    m.add_argument("out", help="output folder (images/, segmentation/, deepscores_train.json, deepscores_test.json)")
    m.add_argument("--pages", type=int, required=True, help="number of pages")
    m.add_argument("--fonts", help="comma-separated SMuFL fonts (default: all five)")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--test-share", type=float, default=0.2, help="share of pages in the test split (default 0.2)")
    m.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    m.add_argument("--measures", type=int, default=40, help="measures of random music per page (default 40)")
    m.add_argument("--no-segmentation", action="store_true", help="do not write segmentation/*_seg.png")
    m.add_argument("--quiet", action="store_true", help="no progress bar")
    m.set_defaults(func=make_dataset_cmd)
    t = sub.add_parser("train", help="train a Deep Watershed Detector on a DeepScores-format dataset (needs PyTorch)")
    t.add_argument("dataset", help="folder with deepscores_train.json (and deepscores_test.json), or a train JSON")
    t.add_argument("--out", required=True, help="run folder: last.pt, best.pt, metrics.jsonl, curve.png, config.json")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from last.pt")
    t.add_argument("--steps", type=int, help="optimizer steps (default 2000)")
    t.add_argument("--batch", type=int, help="crops per step, over all processes (default 4)")
    t.add_argument("--crop", type=int, help="crop side in px (default 256)")
    t.add_argument("--lr", type=float, help="peak learning rate of AdamW (default 2e-3)")
    t.add_argument("--size-lr", type=float, help="the size head's learning rate as a multiple of --lr (default 10)")
    t.add_argument("--weight-decay", type=float, help="AdamW weight decay (default 1e-4)")
    t.add_argument("--warmup", type=int, help="linear warm-up steps before the cosine decay (default 100)")
    t.add_argument("--clip", type=float, help="gradient norm clipping, 0 = off (default 1.0)")
    t.add_argument("--seed", type=int, help="seed of the model and the crops (default 0)")
    t.add_argument("--eval-every", type=int, help="evaluate every N steps, 0 = at the end only (default 500)")
    t.add_argument("--eval-pages", type=int, help="test pages evaluated, the first ones (default 2)")
    t.add_argument("--eval-crop", type=int,
                   help="evaluate a window this large of each page, 0 = whole page (default 1024)")
    t.add_argument("--checkpoint-every", type=int, help="write last.pt every N steps (default 250)")
    t.add_argument("--log-every", type=int, help="metrics line every N steps (default 10)")
    t.add_argument("--device", help="auto (default), cpu, cuda, cuda:N")
    t.add_argument("--workers", type=int, help="DataLoader worker processes (default 0)")
    t.add_argument("--widths", help="UNet channels per stage, comma-separated (default 8,16,32,64,128)")
    t.add_argument("--levels", type=int, help="energy levels (default 20)")
    t.add_argument("--sizes", choices=["linear", "log"], help="the size channels regress log pixels (log, default: "
                   "a relative size loss) or pixels (linear, as the original DWD)")
    t.add_argument("--threads", type=int, help="PyTorch CPU threads (default: PyTorch's)")
    t.add_argument("--amp", choices=["auto", "none", "bf16", "fp16"], help="mixed precision (auto: bf16/fp16 on CUDA)")
    t.add_argument("--degrade", type=float, help="probability of the scan degradation per crop (default 0.8)")
    t.add_argument("--paste-rare", type=int, help="rare symbols pasted per crop, 0 = off (default 2)")
    t.add_argument("--cache-mb", type=int, help="decoded pages kept per process, MiB (default 1024)")
    t.add_argument("--model-config", help="a JSON file: the detector configuration instead of the default")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=train_cmd)
    i = sub.add_parser("info", help="what was built and what is usable")
    i.set_defaults(func=info)
    e = sub.add_parser("eval", help="score a detections file (COCO results or DeepScores proposals) against ground truth")
    e.add_argument("detections", help="COCO results JSON or the DeepScoresV2 toolkit's proposals JSON")
    e.add_argument("ground_truth", help="DeepScoresV2 JSON or COCO ground-truth JSON")
    e.add_argument("--protocol", default="coco", choices=["coco", "deepscores"])
    e.add_argument("--corrected", action="store_true",
                   help="deepscores: match highest score first (default: as the toolkit, lowest first)")
    e.add_argument("--max-dets", type=int, default=None, help="coco: detections per image and class (default: all)")
    e.add_argument("--annotation-set", default="deepscores", help="DeepScoresV2: the annotation set")
    e.add_argument("--plot", help="write precision-recall curves (IoU 0.5) to this PNG")
    e.set_defaults(func=eval_cmd)
    t = sub.add_parser("detect", help="pages through a detector (tiled, bounded memory): COCO results, DeepScores "
                                      "proposals, overlay PNGs")
    t.add_argument("images", nargs="+", help="page images (PNG, JPEG, ...; grey or colour)")
    t.add_argument("--model", help="a model file (DeepWatershedDetector.save, `dwd-fast train`); default: the "
                                   "packaged default model")
    t.add_argument("--out", default="detections", help="output folder (default: ./detections)")
    t.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    t.add_argument("--batch", type=int, default=1, help="tiles per forward pass (default 1)")
    t.add_argument("--tile", type=_tile_arg, default=None,
                   help="largest tile, N or ROWSxCOLUMNS input pixels (default 1664x2048: a DeepScores page in "
                        "2 tiles)")
    t.add_argument("--overlap", type=int, default=None,
                   help="context around each tile's own pixels (default: the backbone's receptive radius, so that "
                        "tiled outputs equal untiled ones)")
    t.add_argument("--threads", type=int, default=None, help="CPU threads (torch and dwd_fast)")
    t.add_argument("--cutoff", type=float, default=None, help="decoding cut-off (default: the model's decoder's)")
    t.add_argument("--dataset", metavar="JSON",
                   help="take image ids from this DeepScores / COCO JSON's images (by file name); default 1..N in the "
                        "order given")
    t.add_argument("--scale", type=float, default=0.5, help="scale of the overlay PNGs (default 0.5)")
    t.add_argument("--no-overlay", action="store_true", help="write no overlay PNGs")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=detect_cmd)
    args = p.parse_args(argv)
    return args.func(args)


def _read_coco_gt(doc, path):
    """Pages (dicts) and the label space of a COCO ground-truth document (bbox x, y, w, h)."""
    try:
        cats = sorted(doc["categories"], key=lambda c: int(c["id"]))
        cat_ids = [int(c["id"]) for c in cats]
        lut = {c: i + 1 for i, c in enumerate(cat_ids)}
        per = {int(im["id"]): ([], []) for im in doc["images"]}
        for n, a in enumerate(doc["annotations"]):
            if a.get("iscrowd", 0):
                raise ValueError(f"annotation {n}: crowd annotations are not supported")
            if int(a["image_id"]) not in per:
                raise ValueError(f"annotation {n}: image_id {a['image_id']} is not in images")
            if int(a["category_id"]) not in lut:
                raise ValueError(f"annotation {n}: category_id {a['category_id']} is not in categories")
            x, y, w, h = (float(v) for v in a["bbox"])
            per[int(a["image_id"])][0].append([x, y, x + w, y + h])
            per[int(a["image_id"])][1].append(lut[int(a["category_id"])])
    except (KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a COCO ground-truth file ({type(e).__name__}: {e})") from None
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    pages = [{"image_id": i, "boxes": np.asarray(b, np.float64).reshape(-1, 4), "labels": np.asarray(c, np.int64)}
             for i, (b, c) in sorted(per.items())]
    names = ["background"] + [str(c.get("name", c["id"])) for c in cats]
    return {"pages": pages, "class_names": names}, np.array([-1] + cat_ids, np.int64)


def _read_ground_truth(path, annotation_set):
    """(ground truth for evaluate, label -> category id) of a DeepScoresV2 or COCO JSON file."""
    with open(path) as f:
        doc = json.load(f)
    if isinstance(doc, dict) and "annotation_sets" in doc:
        try:
            from dwd_fast.data.deepscores import read_deepscores
        except ImportError as e:
            raise ValueError(f"{path}: a DeepScoresV2 file, but dwd_fast.data.deepscores is not available ({e})") from None
        import inspect

        kw = {"check_images": False} if "check_images" in inspect.signature(read_deepscores).parameters else {}
        ds = read_deepscores(path, annotation_set, **kw)
        return ds, np.asarray(ds.category_ids)
    if isinstance(doc, dict) and {"images", "annotations", "categories"} <= set(doc):
        return _read_coco_gt(doc, path)
    raise ValueError(f"{path}: neither a DeepScoresV2 file (annotation_sets, ...) nor COCO ground truth "
                     "(images, annotations, categories)")


def eval_cmd(args):
    import dwd_fast

    try:
        gt, cat_ids = _read_ground_truth(args.ground_truth, args.annotation_set)
        dets = dwd_fast.read_detections(args.detections, category_ids=cat_ids)
        r = dwd_fast.evaluate(dets, gt, protocol=args.protocol, max_dets=args.max_dets,
                              faithful=not args.corrected)
    except (OSError, ValueError, TypeError) as e:
        print(f"dwd-fast eval: {e}", file=sys.stderr)
        return 2
    print(r.table())
    if args.plot:
        r.plot(args.plot)
        print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
