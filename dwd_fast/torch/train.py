"""Training a Deep Watershed Detector on a DeepScores-format dataset: :func:`train` and ``dwd-fast train``.

A run folder holds ``last.pt`` (the model, loadable by :meth:`DeepWatershedDetector.load`, plus the optimizer,
schedule, step and RNG state for ``resume``), ``best.pt`` (the model at the best evaluation mAP@0.5),
``metrics.jsonl`` (one JSON object per line: training losses every ``log_every`` steps, evaluations),
``curve.png`` (the training curve) and ``config.json`` (the run's settings). See docs/training.md.
"""

from __future__ import annotations

import io
import json
import math
import os
import sys
import time
from typing import Any, Callable, Optional

import numpy as np
import torch
from torch import nn

from .augment import PasteRareSymbols, ScanDegradation
from .data import Compose, CropDataset, LabelMap, collate
from .model import FORMAT, DeepWatershedDetector

__all__ = ["train", "predict_page", "eval_items", "evaluate_model", "DEFAULTS", "default_model_config",
           "read_run_metrics"]

DEFAULTS: dict[str, Any] = dict(
    steps=2000, batch=4, crop=256, lr=2e-3, size_lr=10.0, weight_decay=1e-4, warmup=100, min_lr=0.02, clip=1.0, seed=0,
    eval_every=500, eval_pages=2, eval_crop=1024, checkpoint_every=250, log_every=10, device="auto", workers=0,
    widths=(8, 16, 32, 64, 128), levels=20, threads=None, amp="auto", degrade=0.8, paste_rare=2,
    cache_mb=1024, model=None, stop_at=0, sizes="log",
)


def default_model_config(num_classes: int, *, widths=(8, 16, 32, 64, 128), levels: int = 20,
                         sizes: str = "log") -> dict:
    """The detector configuration :func:`train` uses: a :class:`UNet` of ``widths``, full-resolution outputs,
    the target encoding that every symbol can be decoded from (box markers, smallest on top, at least 6 px;
    written out in full), the loss's defaults, and a decoder that blends regressed box sizes with the
    detector's class-size table (``size_mode="blend"``). ``sizes``: the head's size encoding, ``"log"``
    (log pixels: the best of the encodings compared on held-out pages, README) or ``"linear"``."""
    # every setting written out, so that a model file says how it was trained whatever later defaults become
    encoder = {"marker": "box", "size": 0.8, "profile": "linear", "overlap": "smallest", "min_marker": 6.0,
               "drop_invalid": True}
    decoder: dict[str, Any] = {"cutoff": 7, "min_size": 4, "size_mode": "blend"}  # the detector's class sizes
    return {"backbone": {"name": "unet", "in_channels": 1, "widths": [int(w) for w in widths]},
            "num_classes": int(num_classes), "levels": int(levels), "upsample": False, "size_encoding": str(sizes),
            "encoder": encoder, "loss": {}, "decoder": decoder}


# ---------------------------------------------------------------------------------------------------------------
# prediction and evaluation
# ---------------------------------------------------------------------------------------------------------------

@torch.no_grad()
def predict_page(model: DeepWatershedDetector, image: np.ndarray) -> dict:
    """The detections of a whole page: the model in eval mode on ``image`` (uint8 grey, 255 = paper), tiled
    with bounded memory (:func:`dwd_fast.torch.infer.detect_image`: the same detections as the page in one
    piece).

    The default ``predict`` of :func:`train` and :func:`evaluate_model`; any ``predict(model, image) ->
    dict(boxes, labels, scores)`` can replace it."""
    from .infer import detect_image

    was = model.training
    model.eval()
    try:
        return detect_image(model, np.array(image)).as_dict()  # a copy: decoded images may be read-only
    finally:
        model.train(was)


def eval_items(pages, label_map: LabelMap, crop: int = 0) -> list[dict]:
    """Evaluation items of test pages: ``{"image": uint8, "boxes": (n, 4), "labels": (n,) compact, "unmapped": int}``.

    ``crop`` 0: the whole page. Else the ``crop`` x ``crop`` window centred on the median centre of the page's
    boxes (moved inside the page), boxes clipped to it and those keeping less than half their area left out
    (as :class:`CropDataset` does): a page's worth of symbols at a fraction of the cost of a whole page."""
    from .data import _clip_boxes

    items = []
    for p in pages:
        img = p.load_image()
        ids = label_map.map(p.labels)
        boxes = np.asarray(p.boxes, np.float32).reshape(-1, 4)
        item = {"image": img, "unmapped": int((ids == 0).sum()), "image_id": int(p.image_id)}
        if crop and (img.shape[0] > crop or img.shape[1] > crop):
            H, W = img.shape
            h, w = min(crop, H), min(crop, W)
            if len(boxes):
                cx, cy = np.median((boxes[:, 0] + boxes[:, 2]) / 2), np.median((boxes[:, 1] + boxes[:, 3]) / 2)
            else:
                cx, cy = W / 2, H / 2
            x0 = int(np.clip(round(cx - w / 2), 0, W - w))
            y0 = int(np.clip(round(cy - h / 2), 0, H - h))
            item["image"] = np.array(img[y0:y0 + h, x0:x0 + w])
            boxes, keep = _clip_boxes(boxes, x0, y0, w, h, 0.5)
            item["unmapped"] = int(((ids == 0) & keep).sum())
            ids = np.where(keep, ids, 0)
        item["boxes"] = boxes[ids > 0].astype(np.float64)
        item["labels"] = ids[ids > 0]
        items.append(item)
    return items


def evaluate_model(model: DeepWatershedDetector, items, label_map: LabelMap, *,
                   predict: Optional[Callable] = None) -> dict:
    """COCO mAP, mAP@0.5, mAP@0.75, mAR and per-class AP@0.5 (:func:`dwd_fast.evaluate`) of ``model`` on
    :func:`eval_items` (ground truths of classes outside ``label_map`` are left out, counted in
    ``"gt_unmapped"``)."""
    import dwd_fast

    predict = predict or predict_page
    dets = []
    t = time.perf_counter()
    for it in items:
        d = predict(model, it["image"])
        dets.append({k: (v.numpy() if isinstance(v, torch.Tensor) else np.asarray(v)) for k, v in d.items()})
    gts = [{"boxes": it["boxes"], "labels": it["labels"]} for it in items]
    r = dwd_fast.evaluate(dets, gts, class_names=label_map.names[1:])

    def num(v):
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else round(float(v), 5)

    per = {n: num(a) for n, a, g in zip(label_map.names[1:], r.ap50, r.num_gt) if g > 0}
    return {"map": num(r.map), "map50": num(r.map50), "map75": num(r.map75), "mar": num(r.mar),
            "pages": len(gts), "gt": int(sum(len(g["labels"]) for g in gts)),
            "detections": int(sum(len(d["labels"]) for d in dets)),
            "gt_unmapped": int(sum(it["unmapped"] for it in items)),
            "seconds": round(time.perf_counter() - t, 2), "ap50_per_class": per}


# ---------------------------------------------------------------------------------------------------------------
# the training step
# ---------------------------------------------------------------------------------------------------------------

class _Step(nn.Module):
    """The network under autocast, the loss in float32 (what DDP wraps)."""

    def __init__(self, model: DeepWatershedDetector, amp_dtype: Optional[torch.dtype]):
        super().__init__()
        self.model = model
        self.amp_dtype = amp_dtype

    def forward(self, images, targets):
        m = self.model
        if self.amp_dtype is not None:
            with torch.autocast(device_type=images.device.type, dtype=self.amp_dtype):
                out, stride = m.forward_outputs(images)
            out = {k: v.float() for k, v in out.items()}
        else:
            out, stride = m.forward_outputs(images)
        t = m.encoder(targets, tuple(images.shape[-2:]), device=images.device, stride=stride)
        return m.loss(out, t)


class _Sampler(torch.utils.data.Sampler):
    """Indices of the global stream of crops for one rank: step s takes global items s*B .. s*B+B-1, rank r of
    R the r-th contiguous share of them."""

    def __init__(self, start_step, steps, batch, rank, world):
        self.start, self.steps, self.batch, self.rank, self.world = start_step, steps, batch, rank, world
        self.local = batch // world

    def __iter__(self):
        for s in range(self.start, self.steps):
            base = s * self.batch + self.rank * self.local
            yield from range(base, base + self.local)

    def __len__(self):
        return max(0, self.steps - self.start) * self.local


def _lr_lambda(warmup, steps, min_lr):
    def f(step):
        if step < warmup:
            return (step + 1) / warmup
        t = min(1.0, (step - warmup) / max(1, steps - warmup))
        return min_lr + (1 - min_lr) * 0.5 * (1 + math.cos(math.pi * t))
    return f


def _resolve_paths(dataset):
    """(train JSON, test JSON or None) of a dataset folder or a train JSON file."""
    d = os.fspath(dataset)
    if os.path.isdir(d):
        tr, te = os.path.join(d, "deepscores_train.json"), os.path.join(d, "deepscores_test.json")
        if not os.path.isfile(tr):
            raise FileNotFoundError(f"{d}: no deepscores_train.json (make one with dwd-fast make-dataset)")
        return tr, te if os.path.isfile(te) else None
    if os.path.isfile(d):
        te = os.path.join(os.path.dirname(d), "deepscores_test.json")
        return d, te if os.path.isfile(te) and os.path.abspath(te) != os.path.abspath(d) else None
    raise FileNotFoundError(f"no dataset at {d!r} (a folder with deepscores_train.json, or that file)")


def _write_checkpoint(model: DeepWatershedDetector, path: str, meta: dict, train_state: Optional[dict]) -> None:
    """``path``: the model file :meth:`DeepWatershedDetector.save` writes, plus the training state (a
    ``"train_state"`` entry, ignored by :meth:`~DeepWatershedDetector.load`), written whole."""
    from .._files import atomic_write_bytes

    if train_state is None:
        model.save(path, **meta)
        return
    tmp = f"{path}.model-{os.getpid()}.tmp"
    try:
        model.save(tmp, **meta)  # the model's own format, whatever its version
        payload = torch.load(tmp, map_location="cpu", weights_only=True)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    payload["train_state"] = train_state
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(path, buf.getvalue())


def _to_cpu(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def read_run_metrics(run_dir) -> list[dict]:
    """The records of ``run_dir/metrics.jsonl``."""
    path = os.path.join(os.fspath(run_dir), "metrics.jsonl")
    if not os.path.isfile(path):
        return []
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                try:
                    out.append(json.loads(line))
                except ValueError:  # a line cut by a crash
                    pass
    return out


def _plot_curve(records, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    from .._files import atomic_write_bytes

    tr = [r for r in records if "loss_energy" in r]
    ev = [r for r in records if "eval" in r and r["eval"].get("map50") is not None]
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    for key, name in (("loss_energy", "energy"), ("loss_class", "class"), ("loss_size", "size")):
        ax[0].plot([r["step"] for r in tr], [max(r[key], 1e-8) for r in tr], label=name, lw=1)
    ax[0].set_yscale("log")
    ax[0].set_xlabel("step")
    ax[0].set_title("task losses (unweighted)")
    ax[0].legend()
    for key, name in (("map50", "mAP@0.5"), ("map", "mAP@[.5:.95]")):
        ax[1].plot([r["step"] for r in ev], [r["eval"][key] or 0 for r in ev], "o-", label=name)
    ax[1].set_xlabel("step")
    ax[1].set_title("evaluation (held-out pages)")
    ax[1].legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return True


def _check_int(v, name, lo=0):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
    return int(v)


# ---------------------------------------------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------------------------------------------

def train(dataset, out_dir, *, resume: bool = False, predict: Optional[Callable] = None, progress: bool = True,
          **config) -> dict:
    """Train a Deep Watershed Detector on a DeepScores-format dataset; write the run into ``out_dir``.

    Parameters
    ----------
    dataset : str or path-like
        A folder with ``deepscores_train.json`` (and ``deepscores_test.json``, for evaluation), as
        ``dwd-fast make-dataset`` writes, or a train JSON file.
    out_dir : str or path-like
        The run folder (created): ``last.pt``, ``best.pt``, ``metrics.jsonl``, ``curve.png``, ``config.json``.
    resume : bool
        Continue the run in ``out_dir`` from ``last.pt`` (its settings; ``steps`` may be raised). The result is
        the same, bit for bit on the CPU, as the run not interrupted.
    predict : callable, optional
        ``predict(model, image uint8) -> dict(boxes, labels, scores)`` for evaluation (default
        :func:`predict_page`: the whole page, tiled).
    progress : bool
        A tqdm progress bar (rank 0) with each task's raw loss and crops per second.
    **config
        Settings (defaults in :data:`DEFAULTS`): ``steps`` (optimizer steps), ``batch`` (crops per step, the
        global batch over all processes), ``crop`` (px), ``lr`` (AdamW's peak), ``size_lr`` (the size head's
        learning rate, a multiple of ``lr``; its bias starts at the median training box), ``weight_decay``, ``warmup``
        (linear warm-up steps, then a cosine down to ``min_lr`` x ``lr``), ``clip`` (gradient norm; 0 = none),
        ``seed``, ``eval_every`` (steps; 0 = only at the end), ``eval_pages`` (the first pages of the test
        split), ``eval_crop`` (px: evaluate a window of each page this large, centred on its content, 0 = the
        whole page; :func:`eval_items`), ``checkpoint_every``, ``log_every``, ``device`` ("auto", "cpu",
        "cuda", "cuda:1"), ``workers`` (DataLoader processes), ``widths`` (UNet stages), ``levels``,
        ``threads`` (torch CPU threads),
        ``amp`` ("auto": bf16 (else fp16) on CUDA, none on CPU; "none"; "bf16"; "fp16"), ``degrade``
        (probability of :class:`ScanDegradation` per crop), ``paste_rare`` (rare symbols pasted per crop by
        :class:`PasteRareSymbols`; 0 = off), ``cache_mb`` (decoded pages kept per process), ``stop_at``
        (stop after this step with a checkpoint, as if interrupted, the schedule still spanning ``steps``;
        0 = run to the end), ``sizes`` (the size encoding of the default model: ``"log"`` log pixels, the default, or
        ``"linear"`` pixels; :class:`DWDHead`), ``model`` (a full
        detector configuration instead of the default one, ``num_classes`` filled in).

    Under ``torchrun`` (``WORLD_SIZE`` > 1) each process takes its share of every batch (gloo on CPU, NCCL on
    CUDA); rank 0 alone writes files and evaluates. Returns the last evaluation (a dict), or ``{}``.
    """
    import torch.distributed as dist

    out_dir = os.fspath(out_dir)
    unknown = sorted(set(config) - set(DEFAULTS))
    if unknown:
        raise TypeError(f"train() got unknown settings {unknown}; known: {sorted(DEFAULTS)}")
    last_path = os.path.join(out_dir, "last.pt")
    state = None
    if resume:
        if not os.path.isfile(last_path):
            raise FileNotFoundError(f"--resume: no {last_path}")
        state = torch.load(last_path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or state.get("format") != FORMAT or "train_state" not in state:
            raise ValueError(f"{last_path} is not a dwd-fast training checkpoint")
        saved = state["meta"]["train_config"]
        cfg = dict(DEFAULTS)
        cfg["sizes"] = "linear"  # runs from before the setting existed regressed pixels
        cfg.update(saved)
        for k, v in config.items():  # only these may change on resume (they do not change the result)
            if k in ("steps", "eval_every", "eval_pages", "eval_crop", "checkpoint_every", "log_every", "workers",
                     "device", "threads", "cache_mb", "stop_at"):
                cfg[k] = v
            elif json.loads(json.dumps(v)) != cfg.get(k):
                raise ValueError(f"--resume: {k}={v!r} differs from the run's {cfg.get(k)!r}")
    else:
        cfg = dict(DEFAULTS)
        cfg.update(config)
    for k in ("steps", "batch", "crop", "warmup", "eval_every", "eval_pages", "eval_crop", "checkpoint_every",
              "workers",              "seed", "cache_mb", "paste_rare", "stop_at"):
        cfg[k] = _check_int(cfg[k], k)
    cfg["log_every"] = _check_int(cfg["log_every"], "log_every", 1)
    if cfg["batch"] < 1 or cfg["crop"] < 16 or cfg["steps"] < 1:
        raise ValueError("steps and batch must be >= 1 and crop >= 16")
    for k in ("lr", "size_lr", "weight_decay", "min_lr", "clip", "degrade"):
        cfg[k] = float(cfg[k])
        if not (cfg[k] >= 0 and math.isfinite(cfg[k])):
            raise ValueError(f"{k} must be a finite number >= 0, got {cfg[k]!r}")
    if cfg["degrade"] > 1:
        raise ValueError(f"degrade is a probability, got {cfg['degrade']}")
    cfg["widths"] = [int(w) for w in cfg["widths"]]
    if cfg["sizes"] not in ("linear", "log"):
        raise ValueError(f"sizes must be 'linear' or 'log', got {cfg['sizes']!r}")

    # processes and device
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev_name = cfg["device"]
    if dev_name == "auto":
        dev_name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(dev_name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device cuda: CUDA is not available")
        if device.index is None:
            device = torch.device("cuda", local_rank if world > 1 else torch.cuda.current_device())
        torch.cuda.set_device(device)
    distributed = world > 1
    if distributed and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if cfg["batch"] % world:
        raise ValueError(f"batch ({cfg['batch']}) must be a multiple of the number of processes ({world})")
    if cfg["threads"]:
        torch.set_num_threads(int(cfg["threads"]))
    amp = cfg["amp"]
    amp_dtype = None
    if amp not in ("auto", "none", "bf16", "fp16"):
        raise ValueError(f"amp must be 'auto', 'none', 'bf16' or 'fp16', got {amp!r}")
    if device.type == "cuda" and amp != "none":
        if amp == "fp16" or (amp == "auto" and not torch.cuda.is_bf16_supported()):
            amp_dtype = torch.float16
        else:
            amp_dtype = torch.bfloat16
    elif amp in ("bf16", "fp16"):
        amp_dtype = torch.bfloat16 if amp == "bf16" else None  # fp16 autocast on the CPU is not worth it
    is_main = rank == 0

    # data
    from ..data.deepscores import read_deepscores
    import dwd_fast

    train_json, test_json = _resolve_paths(dataset)
    ds = read_deepscores(train_json, check_images=False)
    test_pages = []
    if test_json is not None and cfg["eval_pages"] > 0 and is_main:
        test_pages = read_deepscores(test_json, check_images=False).pages[:cfg["eval_pages"]]
    if state is not None:
        label_map = LabelMap.from_json(state["meta"]["label_map"])
    else:
        label_map = LabelMap.from_dataset(ds)
    test_items = eval_items(test_pages, label_map, cfg["eval_crop"])
    ids = [label_map.map(p.labels) for p in ds.pages]
    table = dwd_fast.class_size_table(
        [np.asarray(p.boxes, np.float64).reshape(-1, 4)[i > 0] for p, i in zip(ds.pages, ids)],
        [i[i > 0] for i in ids], label_map.num_classes)
    transforms = []
    if cfg["paste_rare"] > 0:
        from ..data.rare import RareSymbolBank

        cache_pages = [(p.load_image(), np.asarray(p.boxes)[i > 0], i[i > 0]) for p, i in zip(ds.pages, ids)]
        bank = RareSymbolBank.from_pages(cache_pages, num_classes=label_map.num_classes, max_size=(64, 48))
        del cache_pages
        transforms.append(PasteRareSymbols(bank, n=cfg["paste_rare"], crop=(64, 48), region="page"))
    if cfg["degrade"] > 0:
        transforms.append(ScanDegradation(p=cfg["degrade"]))
    crops = CropDataset(ds, label_map, crop=cfg["crop"], length=cfg["steps"] * cfg["batch"], seed=cfg["seed"],
                        transform=Compose(transforms) if transforms else None, cache_bytes=cfg["cache_mb"] << 20)

    # model, optimizer, schedule
    torch.manual_seed(cfg["seed"])
    if state is not None:
        model_cfg = state["config"]
    elif cfg["model"] is not None:
        model_cfg = dict(cfg["model"])
        model_cfg["num_classes"] = label_map.num_classes
    else:
        model_cfg = default_model_config(label_map.num_classes, widths=cfg["widths"], levels=cfg["levels"],
                                         sizes=cfg["sizes"])
    # the class-size table of the training boxes (compact labels; NaN row for the background)
    model = DeepWatershedDetector.from_config(model_cfg, class_names=label_map.names, class_sizes=table)
    if state is not None:
        model.load_state_dict(state["state_dict"])
    else:
        # the size head starts at the training boxes' median (height, width): the regressed sizes are tens to
        # hundreds of pixels, and AdamW moves a bias by about lr per step, so from 0 they would take thousands
        # of steps to reach the right scale (and every box would stay too small to count at IoU 0.5)
        allb = np.concatenate([np.asarray(p.boxes, np.float64).reshape(-1, 4)[i > 0]
                               for p, i in zip(ds.pages, ids)])
        sizes_head = getattr(getattr(model, "head", None), "sizes", None)
        if len(allb) and isinstance(sizes_head, nn.Conv2d) and sizes_head.bias is not None:
            med = torch.tensor([np.median(allb[:, 3] - allb[:, 1]), np.median(allb[:, 2] - allb[:, 0])])
            if getattr(model.head, "size_encoding", "linear") == "log":
                med = torch.log(med.clamp_min(0.25))
            with torch.no_grad():
                sizes_head.bias.copy_(med)
    model.to(device).train()
    groups: dict[tuple, list] = {}
    for n, p in model.named_parameters():  # weight decay on weights only; the size head at size_lr x lr
        groups.setdefault((n.startswith("head.sizes."), p.dim() > 1), []).append(p)
    opt = torch.optim.AdamW([{"params": ps, "weight_decay": cfg["weight_decay"] if dec else 0.0,
                              "lr": cfg["lr"] * (cfg["size_lr"] if size else 1.0)}
                             for (size, dec), ps in sorted(groups.items())], lr=cfg["lr"])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg["warmup"], cfg["steps"], cfg["min_lr"]))
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    step = 0
    best = -1.0
    if state is not None:
        ts = state["train_state"]
        opt.load_state_dict(ts["optimizer"])
        sched.load_state_dict(ts["scheduler"])
        if ts.get("scaler"):
            scaler.load_state_dict(ts["scaler"])
        step, best = int(ts["step"]), float(ts["best"])
        torch.set_rng_state(ts["torch_rng"])
        # a longer run: the schedule follows the new number of steps
        sched.lr_lambdas[0] = _lr_lambda(cfg["warmup"], cfg["steps"], cfg["min_lr"])
    stepper = _Step(model, amp_dtype)
    net = stepper
    if distributed:
        net = nn.parallel.DistributedDataParallel(stepper, device_ids=[device.index] if device.type == "cuda" else None)

    # files
    metrics_path = os.path.join(out_dir, "metrics.jsonl")
    from .._files import atomic_write_bytes

    if is_main:
        os.makedirs(out_dir, exist_ok=True)
        keep = [r for r in read_run_metrics(out_dir) if r.get("step", 0) <= step] if state is not None else []
        atomic_write_bytes(metrics_path, "".join(json.dumps(r) + "\n" for r in keep).encode())
        run_info = {"dataset": os.path.abspath(train_json), "test": test_json and os.path.abspath(test_json),
                    "train_config": json.loads(json.dumps(cfg)), "model": model_cfg, "world_size": world,
                    "device": str(device), "amp": str(amp_dtype), "label_map": label_map.to_json(),
                    "torch": torch.__version__}
        atomic_write_bytes(os.path.join(out_dir, "config.json"), json.dumps(run_info, indent=1).encode())
    records = read_run_metrics(out_dir) if is_main else []

    def checkpoint(path, with_state):
        meta = {"step": step, "train_config": json.loads(json.dumps(cfg)), "label_map": label_map.to_json(),
                "dataset": os.path.abspath(train_json), "best_map50": best if best >= 0 else None}
        ts = None
        if with_state:
            ts = {"optimizer": _to_cpu(opt.state_dict()), "scheduler": sched.state_dict(),
                  "scaler": scaler.state_dict() if scaler.is_enabled() else None, "step": step, "best": best,
                  "torch_rng": torch.get_rng_state()}
        _write_checkpoint(model, path, meta, ts)

    def log(rec):
        records.append(rec)
        with open(metrics_path, "a") as f:
            f.write(json.dumps(rec) + "\n")

    def run_eval():
        nonlocal best
        if not test_items:
            return {}
        r = evaluate_model(model, test_items, label_map, predict=predict)
        log({"step": step, "time": time.time(), "eval": r})
        if r["map50"] is not None and r["map50"] > best:
            best = r["map50"]
            checkpoint(os.path.join(out_dir, "best.pt"), False)
        return r

    loader = torch.utils.data.DataLoader(
        crops, batch_size=cfg["batch"] // world, sampler=_Sampler(step, cfg["steps"], cfg["batch"], rank, world),
        num_workers=cfg["workers"], collate_fn=collate, persistent_workers=False,
        pin_memory=device.type == "cuda", prefetch_factor=4 if cfg["workers"] else None)
    bar = None
    if progress and is_main:
        try:
            from tqdm import tqdm

            bar = tqdm(total=cfg["steps"], initial=step, desc="train", dynamic_ncols=True, file=sys.stderr)
        except ImportError:
            bar = None
    last_eval: dict = {}
    t_last, n_last = time.perf_counter(), 0
    acc = torch.zeros(3, dtype=torch.float64)
    acc_n = 0
    for images, targets in loader:
        images = images.to(device, non_blocking=True)
        targets = [{k: v.to(device, non_blocking=True) for k, v in t.items()} for t in targets]
        losses = net(images, targets)
        opt.zero_grad(set_to_none=True)
        scaler.scale(losses["loss"]).backward()
        if cfg["clip"] > 0:
            scaler.unscale_(opt)
            gnorm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["clip"]))
        else:
            gnorm = float("nan")
        scaler.step(opt)
        scaler.update()
        sched.step()
        task = torch.stack([losses["loss_energy"], losses["loss_class"], losses["loss_size"]]).detach()
        if distributed:  # the global batch's task losses, on every rank: logs and the loss balancing agree
            dist.all_reduce(task)
            task /= world
        if model.loss.running_mean is not None:
            with torch.no_grad():
                model.loss.history[:, -1] = task.to(model.loss.history.dtype)
        step += 1
        acc += task.double().cpu()
        acc_n += 1
        n_last += cfg["batch"]
        if is_main and (step % cfg["log_every"] == 0 or step == cfg["steps"]):
            now = time.perf_counter()
            mean = (acc / acc_n).tolist()
            rate = n_last / max(now - t_last, 1e-9)
            rec = {"step": step, "time": time.time(), "lr": sched.get_last_lr()[0], "loss_energy": mean[0],
                   "loss_class": mean[1], "loss_size": mean[2], "grad_norm": gnorm, "crops_per_s": rate}
            if not math.isfinite(sum(mean)):
                raise FloatingPointError(f"step {step}: a task loss is not finite ({mean}); lower --lr")
            log(rec)
            if bar is not None:
                bar.set_postfix_str(f"E {mean[0]:.3g} C {mean[1]:.3g} S {mean[2]:.3g} | {rate:.1f} crops/s "
                                    f"lr {rec['lr']:.2g}", refresh=False)
            acc.zero_()
            acc_n = 0
            t_last, n_last = now, 0
        if bar is not None:
            bar.update(1)
        evaluate_now = (cfg["eval_every"] and step % cfg["eval_every"] == 0) or step == cfg["steps"]
        if is_main and evaluate_now:
            last_eval = run_eval()
            if bar is not None and last_eval:
                bar.write(f"step {step}: mAP@0.5 {last_eval['map50']}, mAP {last_eval['map']} "
                          f"({last_eval['pages']} pages, {last_eval['seconds']} s)")
            t_last, n_last = time.perf_counter(), 0
        if is_main and (step == cfg["steps"] or (cfg["checkpoint_every"] and step % cfg["checkpoint_every"] == 0)):
            checkpoint(last_path, True)
            _plot_curve(records, os.path.join(out_dir, "curve.png"))
        if distributed and evaluate_now:
            dist.barrier()
        if cfg["stop_at"] and step >= cfg["stop_at"] and step < cfg["steps"]:
            if is_main:
                checkpoint(last_path, True)
                _plot_curve(records, os.path.join(out_dir, "curve.png"))
            break
    if bar is not None:
        bar.close()
    if distributed:
        dist.barrier()
    return last_eval
