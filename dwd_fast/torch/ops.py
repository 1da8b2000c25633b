"""dwd_fast's ops as PyTorch custom operators (namespace ``dwd_fast``).

Registered with :func:`torch.library.custom_op`, each with a fake kernel (shapes only, never data), so
that ``torch.compile`` traces through them without graph breaks and ``torch.library.opcheck``
validates them:

``dwd_fast::encode_targets``
    Boxes of a batch (concatenated, with per-image counts) -> energy, class and size targets, via
    :func:`dwd_fast.encode`.
``dwd_fast::loss_mask``
    Per-image loss weights of the original DWD (``minibatch.py``'s balance masks).
``dwd_fast::masked_cross_entropy`` (+ ``masked_cross_entropy_backward``)
    Per-image ``mean over pixels of weight * softmax cross-entropy``, with an autograd formula;
    pixels of weight 0 are skipped (sparse path) when they are the majority.
``dwd_fast::decode``
    Network outputs -> concatenated boxes, labels and scores with per-image counts, via
    :func:`dwd_fast.decode` (output length is data-dependent: the fake kernel uses a dynamic size).

The implementations run the CPU extension on CPU tensors and pass CUDA tensors to ``dwd_fast.encode`` /
``decode`` unchanged (they run there once the GPU backend is available; nothing is copied to the host).
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor

import dwd_fast

__all__ = ["encode_targets", "loss_mask", "masked_cross_entropy", "decode", "LOSS_MASKS"]

LOSS_MASKS = ("none", "mask_bg", "mask_zeros", "fg_bg_balanced", "by_class", "by_class_no_bg")
_SPARSE_BELOW = 0.25  # masked_cross_entropy: use only the weighted pixels when they are fewer than this share


# --------------------------------------------------------------------------------------------------
# encode_targets
# --------------------------------------------------------------------------------------------------

def _grid(height, width, stride):
    return -(-height // stride), -(-width // stride)


def _check_encode_args(boxes, labels, counts, height, width, stride, levels, num_classes):
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must be (N, 4) (x1, y1, x2, y2), got shape {tuple(boxes.shape)}")
    if not boxes.is_floating_point():
        raise TypeError(f"boxes must be a float tensor, got dtype {boxes.dtype}")
    if labels.dim() != 1 or labels.shape[0] != boxes.shape[0]:
        raise ValueError(f"labels must be (N,) with one label per box ({boxes.shape[0]}), got shape {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(f"labels must be an integer tensor, got dtype {labels.dtype}")
    if counts.dim() != 1 or counts.dtype != torch.int64 or counts.device.type != "cpu":
        raise ValueError(f"counts must be a 1-D int64 CPU tensor, got {counts.dtype} {tuple(counts.shape)} on {counts.device}")
    if counts.shape[0] == 0:
        raise ValueError("counts must have one entry per image, got an empty batch")
    if height <= 0 or width <= 0 or stride <= 0:
        raise ValueError(f"height, width and stride must be positive, got {height}, {width}, {stride}")
    if not 2 <= levels <= 256:
        raise ValueError(f"levels must be in [2, 256], got {levels}")
    if num_classes < 0:
        raise ValueError(f"num_classes must be >= 0 (0: unchecked), got {num_classes}")


@torch.library.custom_op("dwd_fast::encode_targets", mutates_args=())
def encode_targets(boxes: Tensor, labels: Tensor, counts: Tensor, height: int, width: int, stride: int,
                   levels: int, marker: str, size: Sequence[float], profile: str, overlap: str,
                   num_classes: int, drop_invalid: bool) -> tuple[Tensor, Tensor, Tensor]:
    """Training targets of a batch: ``(energy (B, h, w) int64, classes (B, h, w) int64, sizes (B, 2, h, w)
    float32)`` on the device of ``boxes``, ``(h, w) = (ceil(height / stride), ceil(width / stride))``.

    ``boxes`` (N, 4) float are the boxes of all images concatenated, ``labels`` (N,) their classes and
    ``counts`` (B,) int64 (CPU) how many belong to each image. ``size`` is ``[fraction]`` or ``[rows, cols]``.
    With ``drop_invalid``, boxes of zero or negative extent and boxes entirely outside the image are
    dropped (the original's ``crop_boxes``); otherwise they raise ``ValueError``. ``num_classes > 0``
    requires every label to be below it.
    """
    _check_encode_args(boxes, labels, counts, height, width, stride, levels, num_classes)
    n_total = int(counts.sum())
    if bool((counts < 0).any()) or n_total != boxes.shape[0]:
        raise ValueError(f"counts must be non-negative and sum to the number of boxes ({boxes.shape[0]}), "
                         f"got {counts.tolist()}")
    if labels.numel() and (int(labels.min()) < 0 or (num_classes > 0 and int(labels.max()) >= num_classes)):
        raise ValueError(f"labels must be class ids in [0, {num_classes if num_classes > 0 else 'inf'}), got values "
                         f"in [{int(labels.min())}, {int(labels.max())}]")
    if len(size) not in (1, 2):
        raise ValueError(f"size must be [fraction] or [rows, cols], got {list(size)}")
    b = boxes.detach()
    if b.dtype != torch.float32 and b.dtype != torch.float64:
        b = b.float()
    lab = labels.to(torch.int32)
    if drop_invalid:
        x1, y1, x2, y2 = b.unbind(1)
        keep = (x2 > x1) & (y2 > y1) & (x2 > 0) & (y2 > 0) & (x1 < width) & (y1 < height)
        keep = keep | ~torch.isfinite(b).all(1)  # NaN / inf still raise
        kept = torch.zeros(counts.shape[0] + 1, dtype=torch.int64)
        image = torch.repeat_interleave(torch.arange(counts.shape[0]), counts).to(b.device)
        kept[1:] = torch.bincount(image[keep], minlength=counts.shape[0]).cpu().cumsum(0)
        b, lab = b[keep], lab[keep]
        bounds = kept.tolist()
    else:
        bounds = [0] + counts.cumsum(0).tolist()
    box_list = [b[bounds[i]:bounds[i + 1]] for i in range(len(bounds) - 1)]
    lab_list = [lab[bounds[i]:bounds[i + 1]] for i in range(len(bounds) - 1)]
    sz = float(size[0]) if len(size) == 1 else (float(size[0]), float(size[1]))
    t = dwd_fast.encode(box_list, lab_list, (height, width), levels=levels, marker=marker, size=sz,
                        profile=profile, overlap=overlap, strides=(stride,))
    dev = boxes.device
    return (t.energy.to(device=dev, dtype=torch.int64), t.classes.to(device=dev, dtype=torch.int64),
            t.sizes.to(device=dev, dtype=torch.float32))


@encode_targets.register_fake
def _(boxes, labels, counts, height, width, stride, levels, marker, size, profile, overlap, num_classes, drop_invalid):
    _check_encode_args(boxes, labels, counts, height, width, stride, levels, num_classes)
    B = counts.shape[0]
    h, w = _grid(height, width, stride)
    return (boxes.new_empty((B, h, w), dtype=torch.int64), boxes.new_empty((B, h, w), dtype=torch.int64),
            boxes.new_empty((B, 2, h, w), dtype=torch.float32))


# --------------------------------------------------------------------------------------------------
# loss_mask
# --------------------------------------------------------------------------------------------------

def _check_mask_args(values, mode):
    if values.dim() != 3:
        raise ValueError(f"values must be (B, H, W), got shape {tuple(values.shape)}")
    if mode not in LOSS_MASKS:
        raise ValueError(f"mode must be one of {LOSS_MASKS}, got {mode!r}")


def _mask_one(v, mode):
    """The original's mask of one (H, W) target value map (float64 arithmetic, float32 result)."""
    H = v.shape[0]
    N = v.numel()
    if mode in ("mask_bg", "mask_zeros", "fg_bg_balanced"):
        fg = v != 0
        nfg = int(fg.sum())
        if mode == "fg_bg_balanced":
            w_fg = N / nfg if nfg else 0.0
            w_bg = N / (N - nfg) if nfg < N else 0.0
            return torch.where(fg, w_fg, w_bg).to(torch.float32)
        w = 1.0 / (nfg + 1) * ((H + 1) if mode == "mask_zeros" else 1)
        return fg.to(torch.float32) * w
    # by_class / by_class_no_bg: each value v gets N / N_v; "no_bg" keeps the smallest value's own value
    flat = v.reshape(-1)
    if not flat.is_floating_point() and bool((flat >= 0).all()):
        counts = torch.bincount(flat.to(torch.int64))
        present = torch.nonzero(counts).squeeze(1)
        table = torch.zeros(counts.shape[0], dtype=torch.float64, device=v.device)
        table[present] = N / counts[present].to(torch.float64)
        if mode == "by_class_no_bg":
            table[present[0]] = float(present[0])
        out = table[flat.to(torch.int64)]
    else:
        uniq, inverse, counts = torch.unique(flat, return_inverse=True, return_counts=True)
        table = N / counts.to(torch.float64)
        if mode == "by_class_no_bg":
            table[0] = uniq[0].to(torch.float64)
        out = table[inverse]
    return out.reshape(v.shape).to(torch.float32)


@torch.library.custom_op("dwd_fast::loss_mask", mutates_args=())
def loss_mask(values: Tensor, mode: str) -> Tensor:
    """The original DWD's loss weights, per image: ``values`` (B, H, W) -> float32 (B, H, W).

    ``values`` is what the original derived the mask from: the target level map (energy), the class
    map, or the size map's maximum over its two channels. Modes (``minibatch.py``, research §2.10), per
    image of N pixels: ``"none"`` ones; ``"mask_bg"`` 1 / (foreground pixels + 1) on the foreground
    (value != 0), 0 elsewhere; ``"mask_zeros"`` (2018) that times (H + 1); ``"fg_bg_balanced"``
    N / (pixels of its kind) for foreground and background; ``"by_class"`` N / N_v for each value v;
    ``"by_class_no_bg"`` the same except that the smallest value present keeps its own value as weight
    (0 for the background; the lowest class's id on a crop without background, as the original).
    """
    _check_mask_args(values, mode)
    if mode == "none":
        return torch.ones(values.shape, dtype=torch.float32, device=values.device)
    if values.numel() == 0:
        return torch.zeros(values.shape, dtype=torch.float32, device=values.device)
    return torch.stack([_mask_one(values[b], mode) for b in range(values.shape[0])])


@loss_mask.register_fake
def _(values, mode):
    _check_mask_args(values, mode)
    return values.new_empty(values.shape, dtype=torch.float32)


# --------------------------------------------------------------------------------------------------
# masked_cross_entropy
# --------------------------------------------------------------------------------------------------

def _check_ce_args(logits, target, weight):
    if logits.dim() != 4:
        raise ValueError(f"logits must be (B, C, H, W), got shape {tuple(logits.shape)}")
    if not logits.is_floating_point():
        raise TypeError(f"logits must be a float tensor, got dtype {logits.dtype}")
    B, C, H, W = logits.shape
    if C < 1:
        raise ValueError("logits need at least one channel")
    if tuple(target.shape) != (B, H, W):
        raise ValueError(f"target must be (B, H, W) = {(B, H, W)} to match logits, got shape {tuple(target.shape)}")
    if target.dtype != torch.int64:
        raise TypeError(f"target must be an int64 tensor, got dtype {target.dtype}")
    if tuple(weight.shape) != (B, H, W):
        raise ValueError(f"weight must be (B, H, W) = {(B, H, W)} to match logits, got shape {tuple(weight.shape)}")
    if not weight.is_floating_point():
        raise TypeError(f"weight must be a float tensor, got dtype {weight.dtype}")


def _pixels(logits, target, weight, b):
    """(x (C, P), t (P,), w (P,), index or None) of image b: only the weighted pixels when they are few."""
    C = logits.shape[1]
    x = logits[b].reshape(C, -1)
    t = target[b].reshape(-1)
    w = weight[b].reshape(-1).to(logits.dtype)
    nz = w != 0
    if int(nz.sum()) < _SPARSE_BELOW * w.numel():
        idx = torch.nonzero(nz).squeeze(1)
        return x[:, idx], t[idx], w[idx], idx
    return x, t, w, None


def _check_target_range(t, C):
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= C):
        raise ValueError(f"target values must be in [0, {C}) (the logits' channels), got values in "
                         f"[{int(t.min())}, {int(t.max())}]")


@torch.library.custom_op("dwd_fast::masked_cross_entropy", mutates_args=())
def masked_cross_entropy(logits: Tensor, target: Tensor, weight: Tensor) -> Tensor:
    """Per image b: ``sum over pixels p of weight[b, p] * CE(logits[b, :, p], target[b, p]) / (H W)``, (B,).

    CE is the softmax cross-entropy ``logsumexp(x) - x[t]`` (as ``tf.nn.softmax_cross_entropy_with_logits``
    with a one-hot label). Pixels of weight 0 do not contribute; their targets are not read.
    """
    _check_ce_args(logits, target, weight)
    B, C, H, W = logits.shape
    out = logits.new_zeros((B,))
    for b in range(B):
        x, t, w, _ = _pixels(logits.detach(), target, weight, b)
        _check_target_range(t[w != 0], C)
        if t.numel() == 0:
            continue
        tc = t.clamp(0, C - 1)
        lse = torch.logsumexp(x, 0)
        picked = x.gather(0, tc[None])[0]
        out[b] = (w * (lse - picked)).sum() / (H * W)
    return out


@masked_cross_entropy.register_fake
def _(logits, target, weight):
    _check_ce_args(logits, target, weight)
    return logits.new_empty((logits.shape[0],))


@torch.library.custom_op("dwd_fast::masked_cross_entropy_backward", mutates_args=())
def masked_cross_entropy_backward(grad: Tensor, logits: Tensor, target: Tensor, weight: Tensor) -> Tensor:
    """Gradient of :func:`masked_cross_entropy` with respect to ``logits``:
    ``grad[b] * weight[b, p] * (softmax(logits[b, :, p]) - onehot(target[b, p])) / (H W)``."""
    _check_ce_args(logits, target, weight)
    B, C, H, W = logits.shape
    out = torch.zeros_like(logits, memory_format=torch.contiguous_format)
    for b in range(B):
        x, t, w, idx = _pixels(logits.detach(), target, weight, b)
        if t.numel() == 0:
            continue
        p = torch.softmax(x, 0)
        tc = t.clamp(0, C - 1)
        p.scatter_add_(0, tc[None], torch.full_like(p[:1], -1.0))
        p.mul_((w * (grad[b] / (H * W)))[None])
        ob = out[b].view(C, -1)
        if idx is None:
            ob.copy_(p)
        else:
            ob[:, idx] = p
    return out


@masked_cross_entropy_backward.register_fake
def _(grad, logits, target, weight):
    _check_ce_args(logits, target, weight)
    return torch.empty_like(logits, memory_format=torch.contiguous_format)


def _ce_setup_context(ctx, inputs, output):
    logits, target, weight = inputs
    ctx.save_for_backward(logits, target, weight)


def _ce_backward(ctx, grad):
    logits, target, weight = ctx.saved_tensors
    return masked_cross_entropy_backward(grad, logits, target, weight), None, None


masked_cross_entropy.register_autograd(_ce_backward, setup_context=_ce_setup_context)


# --------------------------------------------------------------------------------------------------
# decode
# --------------------------------------------------------------------------------------------------

def _check_decode_args(energy, classes, sizes, stride):
    if energy.dim() != 4 or not energy.is_floating_point():
        raise ValueError(f"energy must be float logits (B, K, H, W), got {energy.dtype} of shape {tuple(energy.shape)}")
    B, K, H, W = energy.shape
    if classes.dim() != 4 or tuple(classes.shape[::2]) != (B, H) or classes.shape[3] != W \
            or not classes.is_floating_point():
        raise ValueError(f"classes must be float logits (B, C, H, W) matching energy {tuple(energy.shape)}, "
                         f"got {classes.dtype} of shape {tuple(classes.shape)}")
    if tuple(sizes.shape) != (B, 2, H, W) or not sizes.is_floating_point():
        raise ValueError(f"sizes must be float (B, 2, H, W) = {(B, 2, H, W)}, got {sizes.dtype} of shape "
                         f"{tuple(sizes.shape)}")
    if stride <= 0:
        raise ValueError(f"stride must be positive, got {stride}")


@torch.library.custom_op("dwd_fast::decode", mutates_args=())
def decode(energy: Tensor, classes: Tensor, sizes: Tensor, cutoff: float, min_size: int, stride: int,
           grow_to: Optional[float], seeds: str, size_reduce: str) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Detections of a batch of network outputs, concatenated: ``(boxes (N, 4) float32, labels (N,) int64,
    scores (N,) float32, counts (B,) int64)``; boxes in input pixels (grid boxes times ``stride``).

    ``energy`` (B, K, H, W) and ``classes`` (B, C, H, W) are logits, ``sizes`` (B, 2, H, W) the predicted
    (height, width) in grid pixels; see :func:`dwd_fast.decode` for the rest.
    """
    _check_decode_args(energy, classes, sizes, stride)
    dets = dwd_fast.decode(energy.detach().contiguous(), classes.detach().contiguous(),
                           sizes.detach().float().contiguous(), cutoff=cutoff, min_size=min_size,
                           grow_to=grow_to, seeds=seeds, size_reduce=size_reduce)
    dev = energy.device
    boxes = torch.cat([d.boxes.reshape(-1, 4) for d in dets]).to(device=dev, dtype=torch.float32) * stride
    labels = torch.cat([d.labels.reshape(-1) for d in dets]).to(device=dev, dtype=torch.int64)
    scores = torch.cat([d.scores.reshape(-1) for d in dets]).to(device=dev, dtype=torch.float32)
    counts = torch.tensor([len(d) for d in dets], dtype=torch.int64, device=dev)
    return boxes, labels, scores, counts


@decode.register_fake
def _(energy, classes, sizes, cutoff, min_size, stride, grow_to, seeds, size_reduce):
    _check_decode_args(energy, classes, sizes, stride)
    n = torch.library.get_ctx().new_dynamic_size()
    return (energy.new_empty((n, 4), dtype=torch.float32), energy.new_empty((n,), dtype=torch.int64),
            energy.new_empty((n,), dtype=torch.float32), energy.new_empty((energy.shape[0],), dtype=torch.int64))
