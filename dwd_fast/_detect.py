"""``dwd-fast detect``: pages -> detections files (COCO results, DeepScores proposals) and overlay PNGs.

Sharded by ``torchrun``: with ``WORLD_SIZE`` > 1 each rank takes every ``WORLD_SIZE``-th image, writes its
pages' detections to a part file, and rank 0 merges the parts into the output files after a barrier.
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np

DEFAULT_MODEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch", "models", "default.pt")
PARTS = ".detect-parts"


def default_model_path():
    """The packaged default model file, or None when this install has none."""
    return DEFAULT_MODEL if os.path.isfile(DEFAULT_MODEL) else None


def category_ids(class_names):
    """(label -> category id array, categories list, "deepscores" | "labels").

    When every class name but the background's (label 0) is a DeepScoresV2 category name (annotation set
    ``deepscores``), labels map to those category ids; otherwise (or without names) category id = label.
    Entry 0 (the background) is -1 when mapped."""
    from .data.deepscores import deepscores_categories

    if class_names:
        by_name = {n: i for i, n, _ in deepscores_categories()}
        if len(class_names) > 1 and all(n in by_name for n in class_names[1:]):
            lut = np.array([-1] + [by_name[n] for n in class_names[1:]], np.int64)
            cats = [{"id": int(lut[i]), "name": n} for i, n in enumerate(class_names) if i > 0]
            return lut, cats, "deepscores"
    n = len(class_names) if class_names else 0
    names = class_names or []
    cats = [{"id": i, "name": names[i] if i < len(names) else str(i)} for i in range(1, max(n, 1))]
    return None, cats, "labels"


def image_ids_of(paths, dataset):
    """Image ids of ``paths``: 1..N in the order given, or from a DeepScores / COCO JSON's ``images``
    (matched by file name)."""
    if dataset is None:
        return list(range(1, len(paths) + 1))
    with open(dataset) as f:
        doc = json.load(f)
    try:
        by_name = {os.path.basename(im.get("filename", im.get("file_name"))): int(im["id"]) for im in doc["images"]}
    except (KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"--dataset {dataset}: no images list with ids and file names ({e})") from None
    ids = []
    for p in paths:
        name = os.path.basename(p)
        if name not in by_name:
            raise ValueError(f"--dataset {dataset}: image {name!r} is not listed in it")
        ids.append(by_name[name])
    return ids


def read_image(path):
    """A page image as a (H, W) uint8 array (grey; colour converted, alpha over white)."""
    from PIL import Image

    with Image.open(path) as im:
        if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
            im = im.convert("RGBA")
            bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
            im = Image.alpha_composite(bg, im)
        return np.array(im.convert("L"))


def _dist():
    """(rank, world size) from torchrun's environment."""
    def env_int(k, default):
        v = os.environ.get(k, "")
        try:
            return int(v) if v else default
        except ValueError:
            raise ValueError(f"environment variable {k}={v!r} is not an integer") from None

    rank, world = env_int("RANK", 0), env_int("WORLD_SIZE", 1)
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"RANK={rank} / WORLD_SIZE={world}: need 0 <= RANK < WORLD_SIZE")
    return rank, world


def _barrier(world):
    if world == 1:
        return
    import torch.distributed as dist

    if not dist.is_initialized():
        if "MASTER_ADDR" not in os.environ:
            raise ValueError("WORLD_SIZE > 1 but no MASTER_ADDR: run several processes with torchrun")
        dist.init_process_group("gloo")
    dist.barrier()


def run(args):
    import torch

    import dwd_fast
    from ._draw import overlay
    from ._files import atomic_write
    from .torch import DeepWatershedDetector
    from .torch.infer import predict_outputs, decode_outputs, decode_kwargs, _decoder_options

    rank, world = _dist()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: torch sees no CUDA device here")
    device = torch.device(args.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)) % torch.cuda.device_count())
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
        dwd_fast.set_num_threads(args.threads)
    if args.batch < 1:
        raise ValueError(f"--batch must be >= 1, got {args.batch}")
    path = args.model or default_model_path()
    if path is None:
        raise ValueError(f"no model given and this install has no packaged default model ({DEFAULT_MODEL} does not "
                         "exist yet): pass --model PATH, a file written by DeepWatershedDetector.save or "
                         "`dwd-fast train`")
    for p in args.images:
        if not os.path.isfile(p):
            raise ValueError(f"no image file {p!r}")
    ids = image_ids_of(args.images, args.dataset)
    if len(set(ids)) != len(ids):
        raise ValueError("two images have the same image id (the same file given twice?)")
    model = DeepWatershedDetector.load(path, map_location="cpu").to(device).eval()
    lut, cats, mapping = category_ids(model.class_names)
    tile = args.tile if args.tile is not None else (1664, 2048)
    opts = _decoder_options(model, args.cutoff, None)
    os.makedirs(args.out, exist_ok=True)
    mine = list(range(rank, len(args.images), world))
    pages, t_net, t_dec = [], 0.0, 0.0
    bar = None
    if not args.quiet:
        from tqdm import tqdm

        bar = tqdm(total=len(mine), unit="page", desc="detect" if world == 1 else f"detect[{rank}/{world}]",
                   file=sys.stderr)
    for i in mine:
        img = read_image(args.images[i])
        t0 = time.perf_counter()
        out = predict_outputs(model, img, tile=tile, overlap=args.overlap, batch=args.batch, device=device,
                              cutoff=opts["cutoff"], grow_to=opts["grow_to"])
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t1 = time.perf_counter()
        det = decode_outputs(out, **decode_kwargs(opts))
        t2 = time.perf_counter()
        t_net, t_dec = t_net + t1 - t0, t_dec + t2 - t1
        keep = det.labels > 0  # the background class is no category
        page = {"image_id": ids[i], "file": args.images[i], "boxes": det.boxes[keep].tolist(),
                "labels": det.labels[keep].tolist(), "scores": det.scores[keep].tolist(),
                "network_s": t1 - t0, "decode_s": t2 - t1}
        pages.append(page)
        if not args.no_overlay:
            stem = os.path.splitext(os.path.basename(args.images[i]))[0]
            overlay(img, np.zeros((0, 4)), det.boxes[keep], path=os.path.join(args.out, f"{stem}_overlay.png"),
                    scale=args.scale)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(dets=len(page["labels"]), net=f"{t1 - t0:.1f}s")
    if bar is not None:
        bar.close()
    if world > 1:
        part_dir = os.path.join(args.out, PARTS)
        os.makedirs(part_dir, exist_ok=True)
        atomic_write(os.path.join(part_dir, f"part-{rank}.json"), lambda f: json.dump(pages, f))
        _barrier(world)
        if rank == 0:
            pages = []
            for r in range(world):
                with open(os.path.join(part_dir, f"part-{r}.json")) as f:
                    pages.extend(json.load(f))
    if rank == 0:
        pages.sort(key=lambda p: p["image_id"])
        dets = [{"boxes": np.asarray(p["boxes"], np.float32).reshape(-1, 4),
                 "labels": np.asarray(p["labels"], np.int64), "scores": np.asarray(p["scores"], np.float32)}
                for p in pages]
        pids = [p["image_id"] for p in pages]
        coco = os.path.join(args.out, "detections_coco.json")
        ds = os.path.join(args.out, "detections_deepscores.json")
        dwd_fast.write_detections(coco, dets, pids, format="coco", category_ids=lut)
        dwd_fast.write_detections(ds, dets, pids, format="deepscores", category_ids=lut)
        index = {"model": os.path.abspath(path), "category_ids": mapping, "categories": cats,
                 "images": [{"id": p["image_id"], "file": p["file"], "detections": len(p["labels"]),
                             "network_s": round(p["network_s"], 3), "decode_s": round(p["decode_s"], 4)}
                            for p in pages]}
        atomic_write(os.path.join(args.out, "detect_index.json"), lambda f: json.dump(index, f, indent=1))
        if world > 1:
            for r in range(world):
                os.remove(os.path.join(args.out, PARTS, f"part-{r}.json"))
            os.rmdir(os.path.join(args.out, PARTS))
        n = sum(len(p["labels"]) for p in pages)
        net = sum(p["network_s"] for p in pages)
        dec = sum(p["decode_s"] for p in pages)
        k = max(1, len(pages))
        how = "DeepScoresV2 category ids" if mapping == "deepscores" else "category id = label"
        print(f"{len(pages)} pages, {n} detections ({how}); "
              f"per page: network {net / k:.2f} s, decode {dec / k:.3f} s"
              + (f" (rank 0: {len(mine)} pages)" if world > 1 else ""))
        print(f"  {coco}\n  {ds}\n  {os.path.join(args.out, 'detect_index.json')}"
              + ("" if args.no_overlay else f"\n  {os.path.join(args.out, '<name>_overlay.png')}"))
    if world > 1:
        _barrier(world)  # the parts are gone before any rank exits
        import torch.distributed as dist

        dist.destroy_process_group()
    return 0
