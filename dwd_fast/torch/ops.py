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
``dwd_fast::dwd_loss`` (+ ``dwd_loss_backward``)
    The three task losses of DWD per image (the two ops above and the size regression, fused image by
    image so that no batch-sized mask or temporary is allocated), with an autograd formula.
``dwd_fast::decode``
    Network outputs -> concatenated boxes, labels and scores with per-image counts, via
    :func:`dwd_fast.decode` (output length is data-dependent: the fake kernel uses a dynamic size).

The implementations run the CPU extension on CPU tensors and pass CUDA tensors to ``dwd_fast.encode`` /
``decode`` unchanged (they run there once the GPU backend is available; nothing is copied to the host).
"""

from __future__ import annotations

import re
from typing import Optional, Sequence

import torch
from torch import Tensor

import dwd_fast

__all__ = ["encode_targets", "loss_mask", "masked_cross_entropy", "dwd_loss", "decode", "LOSS_MASKS"]

LOSS_MASKS = ("none", "mask_bg", "mask_zeros", "fg_bg_balanced", "by_class", "by_class_no_bg")
_SPARSE_BELOW = 0.25  # masked_cross_entropy: use only the weighted pixels when they are fewer than this share
_LABEL_DTYPES = (torch.uint8, torch.int32, torch.int64)


# --------------------------------------------------------------------------------------------------
# The CPU kernels (csrc/cpu/loss.cpp): float32 logits and uint8 / int32 / int64 maps on the CPU take
# them; anything else (float64, CUDA tensors, value maps with negative entries) the torch code below.
# --------------------------------------------------------------------------------------------------

_FAST_OK, _FAST_BAD_TARGET = 0, 2  # status 1: a value the tables do not cover (use the torch code)


def _np(t):
    """A zero-copy numpy view of a CPU tensor (made contiguous first)."""
    return t.detach().contiguous().numpy()


def _fast_labels(*maps):
    return all(m.device.type == "cpu" and m.dtype in _LABEL_DTYPES and m.numel() > 0 for m in maps)


def _fast_float(*tensors):
    return all(t.device.type == "cpu" and t.dtype == torch.float32 and t.numel() > 0 for t in tensors)


def _cpu():
    return dwd_fast._ext.cpu_ext()


# --------------------------------------------------------------------------------------------------
# encode_targets
# --------------------------------------------------------------------------------------------------

def _grid(height, width, stride):
    return -(-height // stride), -(-width // stride)


def check_boxes_labels(boxes, labels, bname="boxes", lname="labels"):
    """Raise TypeError / ValueError naming the argument unless boxes is a float (N, 4) tensor and
    labels an integer (N,) tensor."""
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{bname} must be (N, 4) (x1, y1, x2, y2), got shape {tuple(boxes.shape)}")
    if not boxes.is_floating_point():
        raise TypeError(f"{bname} must be a float tensor, got dtype {boxes.dtype}")
    if labels.dim() != 1 or labels.shape[0] != boxes.shape[0]:
        raise ValueError(f"{lname} must be (N,) with one label per box ({boxes.shape[0]}), "
                         f"got shape {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(f"{lname} must be an integer tensor, got dtype {labels.dtype}")


def _check_encode_args(boxes, labels, counts, height, width, stride, levels, num_classes):
    check_boxes_labels(boxes, labels)
    if counts.dim() != 1 or counts.dtype != torch.int64 or counts.device.type != "cpu":
        raise ValueError(f"counts must be a 1-D int64 CPU tensor, got {counts.dtype} {tuple(counts.shape)} "
                         f"on {counts.device}")
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
                   num_classes: int, drop_invalid: bool, min_marker: float = 0.0) -> tuple[Tensor, Tensor, Tensor]:
    """Training targets of a batch: ``(energy (B, h, w) uint8, classes (B, h, w) int32, sizes (B, 2, h, w)
    float32)`` (the dtypes :func:`dwd_fast.encode` writes) on the device of ``boxes``, with
    ``(h, w) = (ceil(height / stride), ceil(width / stride))``.

    ``boxes`` (N, 4) float are the boxes of all images concatenated, ``labels`` (N,) their classes and
    ``counts`` (B,) int64 (CPU) how many belong to each image. ``size`` is ``[fraction]`` or ``[rows, cols]``.
    With ``drop_invalid``, boxes of zero or negative extent and boxes entirely outside the image are
    dropped (the original's ``crop_boxes``); otherwise they raise ``ValueError``. ``num_classes > 0``
    requires every label to be below it. ``min_marker``: see :func:`dwd_fast.encode`.
    """
    _check_encode_args(boxes, labels, counts, height, width, stride, levels, num_classes)
    n_total = int(counts.sum())
    if bool((counts < 0).any()) or n_total != boxes.shape[0]:
        raise ValueError(f"counts must be non-negative and sum to the number of boxes ({boxes.shape[0]}), "
                         f"got {counts.tolist()}")
    if labels.numel() and (int(labels.min()) < 0 or (num_classes > 0 and int(labels.max()) >= num_classes)):
        raise ValueError(f"labels must be class ids in [0, {num_classes if num_classes > 0 else 'inf'}), got values "
                         f"in [{int(labels.min())}, {int(labels.max())}] (num_classes = {num_classes})")
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
    try:
        t = dwd_fast.encode(box_list, lab_list, (height, width), levels=levels, marker=marker, size=sz,
                            profile=profile, overlap=overlap, strides=(stride,), min_marker=min_marker)
    except ValueError as e:  # name the image as the caller knows it: targets[k]['boxes']
        raise ValueError(re.sub(r"\b(boxes|labels)\[(\d+)\]", r"targets[\2]['\1']", str(e))) from None
    dev = boxes.device
    return (t.energy.to(device=dev, dtype=torch.uint8), t.classes.to(device=dev, dtype=torch.int32),
            t.sizes.to(device=dev, dtype=torch.float32))


@encode_targets.register_fake
def _(boxes, labels, counts, height, width, stride, levels, marker, size, profile, overlap, num_classes, drop_invalid,
      min_marker=0.0):
    _check_encode_args(boxes, labels, counts, height, width, stride, levels, num_classes)
    B = counts.shape[0]
    h, w = _grid(height, width, stride)
    return (boxes.new_empty((B, h, w), dtype=torch.uint8), boxes.new_empty((B, h, w), dtype=torch.int32),
            boxes.new_empty((B, 2, h, w), dtype=torch.float32))


# --------------------------------------------------------------------------------------------------
# loss_mask
# --------------------------------------------------------------------------------------------------

def _check_mask_args(values, mode):
    if values.dim() != 3:
        raise ValueError(f"values must be (B, H, W), got shape {tuple(values.shape)}")
    if mode not in LOSS_MASKS:
        raise ValueError(f"mode must be one of {LOSS_MASKS}, got {mode!r}")


def _mask_float(v, mode):
    """by_class / by_class_no_bg of one (H, W) map of arbitrary (float or negative) values."""
    uniq, inverse, counts = torch.unique(v.reshape(-1), return_inverse=True, return_counts=True)
    table = v.numel() / counts.to(torch.float64)
    if mode == "by_class_no_bg":
        table[0] = uniq[0].to(torch.float64)
    return table[inverse].reshape(v.shape).to(torch.float32)


def _masks(values, mode):
    """The original's masks of a batch (B, H, W): per-image counts in float64, float32 weights."""
    B, H, W = values.shape
    N = H * W
    if mode in ("mask_bg", "mask_zeros", "fg_bg_balanced"):
        out = torch.empty((B, H, W), dtype=torch.float32, device=values.device)
        for b in range(B):  # image by image: small temporaries
            fg = values[b] != 0
            nfg = int(fg.sum())
            if mode == "fg_bg_balanced":
                w_fg = N / nfg if nfg else 0.0
                w_bg = N / (N - nfg) if nfg < N else 0.0
                torch.where(fg, torch.tensor(w_fg, dtype=torch.float32, device=fg.device),
                            torch.tensor(w_bg, dtype=torch.float32, device=fg.device), out=out[b])
            else:
                w = 1.0 / (nfg + 1) * ((H + 1) if mode == "mask_zeros" else 1)
                torch.mul(fg, torch.tensor(w, dtype=torch.float32, device=fg.device), out=out[b])
        return out
    # by_class / by_class_no_bg: each value v gets N / N_v; "no_bg" keeps the smallest value's own value
    if values.is_floating_point() or bool((values < 0).any()):
        return torch.stack([_mask_float(values[b], mode) for b in range(B)])
    out = torch.empty((B, H, W), dtype=torch.float32, device=values.device)
    for b in range(B):
        v = values[b].reshape(-1)
        if v.dtype not in (torch.int32, torch.int64):
            v = v.to(torch.int32)
        counts = torch.bincount(v)
        table = N / counts.to(torch.float64)
        if mode == "by_class_no_bg":
            first = torch.argmax((counts > 0).to(torch.int8))
            table[first] = first.to(torch.float64)
        torch.index_select(table.to(torch.float32), 0, v, out=out[b].view(-1))
    return out


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
    if _fast_labels(values):
        out = torch.empty(values.shape, dtype=torch.float32)
        if _cpu().loss_mask(_np(values), LOSS_MASKS.index(mode), out.numpy(), torch.get_num_threads()) == _FAST_OK:
            return out
    return _masks(values, mode)


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
    if target.dtype not in (torch.uint8, torch.int32, torch.int64):
        raise TypeError(f"target must be a uint8, int32 or int64 tensor, got dtype {target.dtype}")
    if tuple(weight.shape) != (B, H, W):
        raise ValueError(f"weight must be (B, H, W) = {(B, H, W)} to match logits, got shape {tuple(weight.shape)}")
    if not weight.is_floating_point():
        raise TypeError(f"weight must be a float tensor, got dtype {weight.dtype}")


_CHUNK = 1 << 15  # pixels per step of the dense path (keeps temporaries small and in cache)


def _select(x, t, w):
    """(x (C, P), t (P,), w (P,), index or None): only the weighted pixels when they are few.

    ``x`` (C, HW), ``t`` (HW,), ``w`` (HW,) are one image's logits, targets and weights."""
    nz = w != 0
    if int(nz.sum()) < _SPARSE_BELOW * w.numel():
        idx = torch.nonzero(nz).squeeze(1)
        return x.index_select(1, idx), t.index_select(0, idx), w.index_select(0, idx), idx
    return x, t, w, None


def _check_target_range(t, w, C):
    """Targets of weighted pixels must index a channel (one min/max pass unless something is out of range)."""
    if t.numel() == 0:
        return
    lo, hi = torch.aminmax(t)
    if int(lo) >= 0 and int(hi) < C:
        return
    t = t[w != 0]
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= C):
        raise ValueError(f"target values must be in [0, {C}) (the logits' channels), got values in "
                         f"[{int(t.min())}, {int(t.max())}]")


def _raise_bad_targets(status, checks):
    """After the CPU kernel reported a weighted pixel whose target is not a channel: the error, from the
    checks (target, weight, channels) that ``checks()`` yields."""
    if status == _FAST_BAD_TARGET:
        for t, w, C in checks():
            _check_target_range(t.reshape(-1), w.reshape(-1), C)
        raise AssertionError("the CPU loss kernel reported a bad target the check does not see")


def _ce_image(x, t, w):
    """sum_p w_p * (logsumexp(x[:, p]) - x[t_p, p]) of one image (x (C, HW), t (HW,), w (HW,))."""
    C = x.shape[0]
    xs, ts, ws, _ = _select(x, t, w.to(x.dtype))
    _check_target_range(ts, ws, C)
    total = x.new_zeros((), dtype=torch.float64)
    for s in range(0, ts.numel(), _CHUNK):
        xc, tc, wc = xs[:, s:s + _CHUNK], ts[s:s + _CHUNK].to(torch.int64).clamp(0, C - 1), ws[s:s + _CHUNK]
        total += (wc * (torch.logsumexp(xc, 0) - xc.gather(0, tc[None])[0])).sum(dtype=torch.float64)
    return total


def _ce_image_grad(out, g, x, t, w):
    """Write g * w_p * (softmax(x[:, p]) - onehot(t_p)) into ``out`` (C, HW), zero where w_p = 0."""
    C = x.shape[0]
    xs, ts, ws, idx = _select(x, t, w.to(x.dtype))
    dense = out if idx is None else None
    parts = []
    for s in range(0, ts.numel(), _CHUNK):
        xc, tc, wc = xs[:, s:s + _CHUNK], ts[s:s + _CHUNK].to(torch.int64).clamp(0, C - 1), ws[s:s + _CHUNK]
        p = torch.softmax(xc, 0)
        p.scatter_add_(0, tc[None], torch.full_like(p[:1], -1.0))
        p.mul_((wc * g)[None])
        if dense is not None:
            dense[:, s:s + _CHUNK] = p
        else:
            parts.append(p)
    if idx is not None and parts:  # the other pixels of out stay zero (the caller zero-initializes it)
        out.index_copy_(1, idx, torch.cat(parts, 1))


@torch.library.custom_op("dwd_fast::masked_cross_entropy", mutates_args=())
def masked_cross_entropy(logits: Tensor, target: Tensor, weight: Tensor) -> Tensor:
    """Per image b: ``sum over pixels p of weight[b, p] * CE(logits[b, :, p], target[b, p]) / (H W)``, (B,).

    CE is the softmax cross-entropy ``logsumexp(x) - x[t]`` (as ``tf.nn.softmax_cross_entropy_with_logits``
    with a one-hot label). Pixels of weight 0 do not contribute; their targets are not read.
    """
    _check_ce_args(logits, target, weight)
    B, C, H, W = logits.shape
    if _fast_float(logits) and _fast_labels(target) and weight.device.type == "cpu":
        status, sums = _cpu().masked_ce(_np(logits), _np(target), _np(weight.to(torch.float32)),
                                        torch.get_num_threads())
        if status == _FAST_OK:
            return torch.from_numpy(sums).to(logits.dtype)
        _raise_bad_targets(status, lambda: [(target, weight, C)])
    out = logits.new_zeros((B,))
    for b in range(B):
        out[b] = _ce_image(logits[b].reshape(C, -1), target[b].reshape(-1), weight[b].reshape(-1)) / (H * W)
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
    if _fast_float(logits, grad) and _fast_labels(target) and weight.device.type == "cpu":
        out = torch.empty((B, C, H, W), dtype=torch.float32)
        status = _cpu().masked_ce_backward(_np(grad), _np(logits), _np(target), _np(weight.to(torch.float32)),
                                           out.numpy(), torch.get_num_threads())
        if status == _FAST_OK:
            return out
        _raise_bad_targets(status, lambda: [(target, weight, C)])
    out = torch.zeros((B, C, H, W), dtype=logits.dtype, device=logits.device)
    for b in range(B):
        _ce_image_grad(out[b].view(C, -1), grad[b] / (H * W), logits[b].reshape(C, -1), target[b].reshape(-1),
                       weight[b].reshape(-1))
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
# dwd_loss: the three task losses of a batch, image by image (masks never materialized for the batch)
# --------------------------------------------------------------------------------------------------

_FG_ONLY = ("none", "mask_bg", "mask_zeros", "fg_bg_balanced")


def _check_loss_args(energy, classes, sizes, t_energy, t_classes, t_sizes, energy_mask, class_mask, size_mask,
                     size_loss):
    _check_ce_args(energy, t_energy, t_energy.new_empty(t_energy.shape, dtype=torch.float32))
    _check_ce_args(classes, t_classes, t_classes.new_empty(t_classes.shape, dtype=torch.float32))
    B, _, H, W = energy.shape
    if tuple(classes.shape[::2]) != (B, H) or classes.shape[3] != W:
        raise ValueError(f"classes must be (B, C, H, W) matching energy {tuple(energy.shape)}, "
                         f"got {tuple(classes.shape)}")
    for name, t in (("sizes", sizes), ("t_sizes", t_sizes)):
        if tuple(t.shape) != (B, 2, H, W) or not t.is_floating_point():
            raise ValueError(f"{name} must be float (B, 2, H, W) = {(B, 2, H, W)}, got {t.dtype} {tuple(t.shape)}")
    for name, mode in (("energy_mask", energy_mask), ("class_mask", class_mask), ("size_mask", size_mask)):
        if mode not in LOSS_MASKS:
            raise ValueError(f"{name} must be one of {LOSS_MASKS}, got {mode!r}")
    if size_loss not in ("l1", "l2"):
        raise ValueError(f"size_loss must be 'l1' or 'l2', got {size_loss!r}")


def _image_masks(b, t_energy, t_classes, t_sizes, energy_mask, class_mask, size_mask):
    """The three (HW,) weight vectors of image b, None for mode "none" (the size foreground is the energy's)."""
    def one(values, mode):
        return None if mode == "none" else _masks(values, mode).reshape(-1)
    size_values = t_energy[b:b + 1] if size_mask in _FG_ONLY else t_sizes[b:b + 1].amax(1)
    return one(t_energy[b:b + 1], energy_mask), one(t_classes[b:b + 1], class_mask), one(size_values, size_mask)


def _select_sizes(s, ts, w):
    """(s, ts, w, index or None) of one image's (2, HW) size maps: only the weighted pixels when they are few."""
    if w is None:
        return s, ts, None, None
    nz = w != 0
    if int(nz.sum()) < _SPARSE_BELOW * w.numel():
        idx = torch.nonzero(nz).squeeze(1)
        return s.index_select(1, idx), ts.index_select(1, idx), w.index_select(0, idx), idx
    return s, ts, w, None


def _fast_loss_args(energy, classes, sizes, t_energy, t_classes, t_sizes, energy_mask, class_mask, size_mask,
                    size_loss, grad=None):
    """The CPU kernel's arguments (numpy views, mode numbers, l1), or None when the tensors are not all
    CPU float32 / integer maps, or the size mask is not read from the energy map."""
    if size_mask not in _FG_ONLY or not _fast_float(energy, classes, sizes, t_sizes) \
            or not _fast_labels(t_energy, t_classes) or (grad is not None and not _fast_float(grad)):
        return None
    return [_np(t) for t in (energy, classes, sizes, t_energy, t_classes, t_sizes)] + \
        [LOSS_MASKS.index(m) for m in (energy_mask, class_mask, size_mask)] + [size_loss == "l1"]


def _ones(n, like):
    return torch.ones(n, dtype=like.dtype, device=like.device)


@torch.library.custom_op("dwd_fast::dwd_loss", mutates_args=())
def dwd_loss(energy: Tensor, classes: Tensor, sizes: Tensor, t_energy: Tensor, t_classes: Tensor, t_sizes: Tensor,
             energy_mask: str, class_mask: str, size_mask: str, size_loss: str) -> Tensor:
    """DWD's three task losses per image, (B, 3) in the dtype of ``energy``: energy and class masked cross-entropy (as
    :func:`masked_cross_entropy` with the weights of :func:`loss_mask`) and the masked size regression
    ``sum_{c, p} m(p) l(sizes[c, p] - t_sizes[c, p]) / (2 H W)``, ``l`` = square (``"l2"``) or abs (``"l1"``).

    The same numbers as composing those ops, computed image by image (no batch-sized temporaries). The
    size mask of a foreground-only mode (``"none"``, ``"mask_bg"``, ``"mask_zeros"``, ``"fg_bg_balanced"``)
    is computed from ``t_energy``, whose foreground is that of the size targets :class:`TargetEncoder` writes.
    """
    _check_loss_args(energy, classes, sizes, t_energy, t_classes, t_sizes, energy_mask, class_mask, size_mask,
                     size_loss)
    B, K, H, W = energy.shape
    C, HW = classes.shape[1], H * W
    fast = _fast_loss_args(energy, classes, sizes, t_energy, t_classes, t_sizes, energy_mask, class_mask, size_mask,
                           size_loss)
    if fast is not None:
        status, res = _cpu().dwd_loss(*fast, torch.get_num_threads())
        if status == _FAST_OK:
            return torch.from_numpy(res).to(energy.dtype)
        _raise_bad_targets(status, lambda: [(v, loss_mask(v, m), n) for v, m, n in
                                            ((t_energy, energy_mask, K), (t_classes, class_mask, C))])
    out = torch.zeros((B, 3), dtype=torch.float64, device=energy.device)
    for b in range(B):
        w_e, w_c, w_s = _image_masks(b, t_energy, t_classes, t_sizes, energy_mask, class_mask, size_mask)
        out[b, 0] = _ce_image(energy[b].reshape(K, -1), t_energy[b].reshape(-1),
                              _ones(HW, energy) if w_e is None else w_e) / HW
        out[b, 1] = _ce_image(classes[b].reshape(C, -1), t_classes[b].reshape(-1),
                              _ones(HW, classes) if w_c is None else w_c) / HW
        s, ts, w_s, _ = _select_sizes(sizes[b].reshape(2, -1), t_sizes[b].reshape(2, -1), w_s)
        d = s - ts.to(s.dtype)
        per = d.abs() if size_loss == "l1" else d.square()
        out[b, 2] = (per.sum(0, dtype=torch.float64) if w_s is None else (per * w_s[None]).sum(0, dtype=torch.float64)
                     ).sum() / (2 * HW)
    return out.to(energy.dtype)


@dwd_loss.register_fake
def _(energy, classes, sizes, t_energy, t_classes, t_sizes, energy_mask, class_mask, size_mask, size_loss):
    _check_loss_args(energy, classes, sizes, t_energy, t_classes, t_sizes, energy_mask, class_mask, size_mask,
                     size_loss)
    return energy.new_empty((energy.shape[0], 3))


@torch.library.custom_op("dwd_fast::dwd_loss_backward", mutates_args=())
def dwd_loss_backward(grad: Tensor, energy: Tensor, classes: Tensor, sizes: Tensor, t_energy: Tensor,
                      t_classes: Tensor, t_sizes: Tensor, energy_mask: str, class_mask: str, size_mask: str,
                      size_loss: str) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients of :func:`dwd_loss` (``grad`` (B, 3)) with respect to ``energy``, ``classes`` and ``sizes``."""
    _check_loss_args(energy, classes, sizes, t_energy, t_classes, t_sizes, energy_mask, class_mask, size_mask,
                     size_loss)
    B, K, H, W = energy.shape
    C, HW = classes.shape[1], H * W
    fast = _fast_loss_args(energy, classes, sizes, t_energy, t_classes, t_sizes, energy_mask, class_mask, size_mask,
                           size_loss, grad)
    if fast is not None:
        g_e, g_c, g_s = (torch.empty(t.shape, dtype=torch.float32) for t in (energy, classes, sizes))
        status = _cpu().dwd_loss_backward(_np(grad), *fast, g_e.numpy(), g_c.numpy(), g_s.numpy(),
                                          torch.get_num_threads())
        if status == _FAST_OK:
            return g_e, g_c, g_s
        _raise_bad_targets(status, lambda: [(v, loss_mask(v, m), n) for v, m, n in
                                            ((t_energy, energy_mask, K), (t_classes, class_mask, C))])
    g_e = torch.zeros(energy.shape, dtype=energy.dtype, device=energy.device)
    g_c = torch.zeros(classes.shape, dtype=classes.dtype, device=classes.device)
    g_s = torch.zeros(sizes.shape, dtype=sizes.dtype, device=sizes.device)
    for b in range(B):
        w_e, w_c, w_s = _image_masks(b, t_energy, t_classes, t_sizes, energy_mask, class_mask, size_mask)
        _ce_image_grad(g_e[b].view(K, -1), grad[b, 0] / HW, energy[b].reshape(K, -1), t_energy[b].reshape(-1),
                       _ones(HW, energy) if w_e is None else w_e)
        _ce_image_grad(g_c[b].view(C, -1), grad[b, 1] / HW, classes[b].reshape(C, -1), t_classes[b].reshape(-1),
                       _ones(HW, classes) if w_c is None else w_c)
        s, ts, w_s, idx = _select_sizes(sizes[b].reshape(2, -1), t_sizes[b].reshape(2, -1), w_s)
        d = s - ts.to(s.dtype)
        g = (torch.sign(d) if size_loss == "l1" else 2 * d) * (grad[b, 2] / (2 * HW))
        if w_s is not None:
            g = g * w_s[None]
        gb = g_s[b].view(2, -1)
        if idx is None:
            gb.copy_(g)
        else:
            gb.index_copy_(1, idx, g.to(gb.dtype))
    return g_e, g_c, g_s


@dwd_loss_backward.register_fake
def _(grad, energy, classes, sizes, t_energy, t_classes, t_sizes, energy_mask, class_mask, size_mask, size_loss):
    _check_loss_args(energy, classes, sizes, t_energy, t_classes, t_sizes, energy_mask, class_mask, size_mask,
                     size_loss)
    return torch.empty_like(energy), torch.empty_like(classes), torch.empty_like(sizes)


def _loss_setup_context(ctx, inputs, output):
    ctx.save_for_backward(*inputs[:6])
    ctx.modes = inputs[6:]


def _loss_backward(ctx, grad):
    g_e, g_c, g_s = dwd_loss_backward(grad, *ctx.saved_tensors, *ctx.modes)
    return (g_e, g_c, g_s) + (None,) * 7


dwd_loss.register_autograd(_loss_backward, setup_context=_loss_setup_context)


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
           grow_to: Optional[float], seeds: str, size_reduce: str, size_mode: str = "regress",
           class_sizes: Optional[Tensor] = None, class_spread_table: Optional[Tensor] = None,
           class_confidence: float = 0.5, class_spread: float = 0.15,
           connectivity: int = 2) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Detections of a batch of network outputs, concatenated: ``(boxes (N, 4) float32, labels (N,) int64,
    scores (N,) float32, counts (B,) int64)``; boxes in input pixels (grid boxes times ``stride``).

    ``energy`` (B, K, H, W) and ``classes`` (B, C, H, W) are logits, ``sizes`` (B, 2, H, W) the predicted
    (height, width) in grid pixels; see :func:`dwd_fast.decode` for the rest. ``class_sizes`` (C, 2) is a
    class-size table's ``sizes`` (grid pixels, NaN rows for unseen classes) and ``class_spread_table`` its
    ``spread`` (or None: spread 0), for ``size_mode`` ``"class"`` / ``"blend"``.
    """
    _check_decode_args(energy, classes, sizes, stride)
    table = _class_table(class_sizes, class_spread_table)
    dets = dwd_fast.decode(energy.detach().contiguous(), classes.detach().contiguous(),
                           sizes.detach().float().contiguous(), cutoff=cutoff, min_size=min_size,
                           grow_to=grow_to, seeds=seeds, size_reduce=size_reduce, size_mode=size_mode,
                           class_sizes=table, class_confidence=class_confidence, class_spread=class_spread,
                           connectivity=connectivity)
    dev = energy.device
    boxes = torch.cat([d.boxes.reshape(-1, 4) for d in dets]).to(device=dev, dtype=torch.float32) * stride
    labels = torch.cat([d.labels.reshape(-1) for d in dets]).to(device=dev, dtype=torch.int64)
    scores = torch.cat([d.scores.reshape(-1) for d in dets]).to(device=dev, dtype=torch.float32)
    counts = torch.tensor([len(d) for d in dets], dtype=torch.int64, device=dev)
    return boxes, labels, scores, counts


def _class_table(class_sizes, spread):
    """A ClassSizeTable (or None) of the decode op's tensor arguments."""
    if class_sizes is None:
        if spread is not None:
            raise ValueError("class_spread_table needs class_sizes")
        return None
    from ..class_sizes import ClassSizeTable

    s = class_sizes.detach().cpu().double().numpy()
    if s.ndim != 2 or s.shape[1] != 2:
        raise ValueError(f"class_sizes must be (C, 2) (height, width) per class, got shape {tuple(s.shape)}")
    if spread is None:
        return s
    sp = spread.detach().cpu().double().numpy()
    if sp.shape != s.shape:
        raise ValueError(f"class_spread_table must have the shape of class_sizes {tuple(s.shape)}, "
                         f"got {tuple(sp.shape)}")
    import numpy as np

    return ClassSizeTable(sizes=s, counts=np.where(np.isnan(s[:, 0]), 0, 1).astype(np.int64), spread=sp,
                          stat="median")


@decode.register_fake
def _(energy, classes, sizes, cutoff, min_size, stride, grow_to, seeds, size_reduce, size_mode="regress",
      class_sizes=None, class_spread_table=None, class_confidence=0.5, class_spread=0.15, connectivity=2):
    _check_decode_args(energy, classes, sizes, stride)
    n = torch.library.get_ctx().new_dynamic_size()
    return (energy.new_empty((n, 4), dtype=torch.float32), energy.new_empty((n,), dtype=torch.int64),
            energy.new_empty((n,), dtype=torch.float32), energy.new_empty((energy.shape[0],), dtype=torch.int64))
