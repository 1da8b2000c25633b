"""The DWD loss: energy and class cross-entropy, box-size regression, the original's masks and task weights."""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

from . import ops

__all__ = ["DWDLoss"]

TASKS = ("energy", "class", "size")


def _mask_mode(value, name):
    mode = "none" if value is None else value
    if mode not in ops.LOSS_MASKS:
        raise ValueError(f"{name} must be None or one of {ops.LOSS_MASKS[1:]}, got {value!r}")
    return mode


class DWDLoss(nn.Module):
    """The loss DWD trained with (research §3), over the whole batch.

    Per image b of H x W pixels, with the weights ``m`` of the task's mask mode computed from that image's
    targets (:func:`dwd_fast.torch.ops.loss_mask`; the original's ``minibatch.py`` masks):

    - energy: ``sum_p m_e(p) * CE(energy_logits[:, p], level(p)) / (H W)`` (softmax cross-entropy against the
      one-hot level, as ``tf.nn.softmax_cross_entropy_with_logits``);
    - class: the same with the class logits and the class map;
    - size: ``sum_{p, c} m_s(p) * l(sizes[c, p] - target[c, p]) / (2 H W)``, ``l`` = square (``"l2"``, the
      original's ``mean_squared_error``) or absolute value (``"l1"``); when the outputs hold ``"log_sizes"``
      (a head with ``size_encoding="log"``) the same with ``log_sizes`` against ``log(max(target, 1/4))``.

    Each task loss is the mean over the images (``batch="all"``), or image 0 alone (``batch="first"``: the
    original's ``loss_components[i][0]``, offered for comparisons only).

    Masks are computed from the energy level map (energy), the class map (class) and the larger of the
    two size channels (size; its foreground is the energy's, where :class:`TargetEncoder` writes the sizes,
    so the foreground-only modes read the energy map). Modes: ``None`` (ones), ``"mask_bg"``, ``"mask_zeros"``,
    ``"fg_bg_balanced"``,
    ``"by_class"``, ``"by_class_no_bg"``; defaults are the original's 2020 configuration.

    Task weighting: ``total = sum_i s_i * loss_i`` with ``s_i = factors_i`` (``running_mean=None``) or, as the
    original's combined training, ``s_i = factors_i / max(mean of the last running_mean values of loss_i,
    1e-6)``: the history holds ``running_mean`` values per task, starts as ones, and after each forward in
    training mode the step's (detached, batch-reduced) task losses are pushed into it, so the scales of a step
    come from the previous steps only and carry no gradient. The history is a buffer (saved with the state
    dict; under DistributedDataParallel it is broadcast from rank 0 like any buffer of the wrapped model).

    :meth:`forward` ``(outputs, targets)`` takes the head's dict (``"energy"`` (B, K, h, w), ``"classes"``
    (B, C, h, w), ``"sizes"`` (B, 2, h, w)) and :class:`TargetEncoder`'s dict, and returns
    ``{"loss_energy", "loss_class", "loss_size", "loss"}`` (``"loss"`` the weighted total), scalar tensors.
    """

    def __init__(self, *, energy_mask: Optional[str] = "fg_bg_balanced", class_mask: Optional[str] = "by_class_no_bg",
                 size_mask: Optional[str] = "mask_bg", size_loss: str = "l2",
                 factors: Sequence[float] = (2.0, 1.0, 1.0), running_mean: Optional[int] = 5, batch: str = "all"):
        super().__init__()
        self.energy_mask = _mask_mode(energy_mask, "energy_mask")
        self.class_mask = _mask_mode(class_mask, "class_mask")
        self.size_mask = _mask_mode(size_mask, "size_mask")
        if size_loss not in ("l1", "l2"):
            raise ValueError(f"size_loss must be 'l1' or 'l2', got {size_loss!r}")
        self.size_loss = size_loss
        f = [float(v) for v in factors]
        if len(f) != 3 or not all(v >= 0 and v == v and v != float("inf") for v in f):
            raise ValueError(f"factors must be three finite non-negative numbers (energy, class, size), "
                             f"got {factors!r}")
        if running_mean is not None and (isinstance(running_mean, bool) or not isinstance(running_mean, int)
                                         or running_mean < 1):
            raise ValueError(f"running_mean must be None or a positive integer, got {running_mean!r}")
        if batch not in ("all", "first"):
            raise ValueError(f"batch must be 'all' or 'first', got {batch!r}")
        self.running_mean, self.batch = running_mean, batch
        self.register_buffer("factors", torch.tensor(f, dtype=torch.float32))
        self.register_buffer("history", torch.ones(3, running_mean or 1, dtype=torch.float32))

    def extra_repr(self):
        return (f"energy_mask={self.energy_mask!r}, class_mask={self.class_mask!r}, size_mask={self.size_mask!r}, "
                f"size_loss={self.size_loss!r}, running_mean={self.running_mean}, batch={self.batch!r}")

    def scales(self) -> torch.Tensor:
        """The task weights ``s`` the next training forward uses: (3,) (energy, class, size)."""
        if self.running_mean is None:
            return self.factors
        return self.factors / self.history.mean(1).clamp_min(1e-6)

    def masks(self, targets: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The (energy, class, size) loss weights of a batch of targets, float32 (B, h, w) each."""
        # the foreground of the size targets is the energy's (TargetEncoder writes sizes exactly there, and
        # they are positive): the modes that only need the foreground read the smaller energy map
        fg_only = self.size_mask in ("none", "mask_bg", "mask_zeros", "fg_bg_balanced")
        return (ops.loss_mask(targets["energy"], self.energy_mask), ops.loss_mask(targets["classes"], self.class_mask),
                ops.loss_mask(targets["energy"] if fg_only else targets["sizes"].amax(1), self.size_mask))

    def forward(self, outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        for d, name, keys in ((outputs, "outputs", ("energy", "classes", "sizes")),
                              (targets, "targets", ("energy", "classes", "sizes"))):
            if not isinstance(d, dict) or any(k not in d for k in keys):
                raise TypeError(f"{name} must be a dict with keys {keys}")
        e, c, s = outputs["energy"], outputs["classes"], outputs["sizes"]
        te, tc, ts = targets["energy"], targets["classes"], targets["sizes"]
        if e.dim() != 4:
            raise ValueError(f"outputs['energy'] must be (B, K, H, W), got shape {tuple(e.shape)}")
        B, _, H, W = e.shape
        for name, t, want in (("outputs['classes']", c, (B, None, H, W)), ("outputs['sizes']", s, (B, 2, H, W)),
                              ("targets['energy']", te, (B, H, W)), ("targets['classes']", tc, (B, H, W)),
                              ("targets['sizes']", ts, (B, 2, H, W))):
            if t.dim() != len(want) or any(w is not None and a != w for a, w in zip(t.shape, want)):
                shown = tuple("C" if w is None else w for w in want)
                raise ValueError(f"{name} must have shape {shown} to match outputs['energy'] {tuple(e.shape)}, "
                                 f"got {tuple(t.shape)}")
        if self.batch == "first":
            e, c, s, te, tc, ts = e[:1], c[:1], s[:1], te[:1], tc[:1], ts[:1]

        if "log_sizes" in outputs:  # the log encoding: the loss in log pixels (background targets are masked)
            s = outputs["log_sizes"][:1] if self.batch == "first" else outputs["log_sizes"]
            if tuple(s.shape) != tuple(ts.shape):
                raise ValueError(f"outputs['log_sizes'] must have shape {tuple(ts.shape)}, got {tuple(s.shape)}")
            ts = torch.log(ts.clamp_min(0.25))
        losses = ops.dwd_loss(e, c, s, te, tc, ts, self.energy_mask, self.class_mask, self.size_mask,
                              self.size_loss).mean(0)
        loss_e, loss_c, loss_s = losses.unbind()
        scale = self.scales().to(losses.dtype)
        total = (losses * scale).sum()
        if self.training and self.running_mean is not None:
            with torch.no_grad():
                self.history.copy_(torch.cat([self.history[:, 1:], losses.detach()[:, None]], 1))
        return {"loss_energy": loss_e, "loss_class": loss_c, "loss_size": loss_s, "loss": total}
