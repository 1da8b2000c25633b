"""The DWD decoder: energy map -> objects -> boxes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from . import _arrays
from ._ext import cpu_ext
from .class_sizes import apply_size_mode, check_size_mode

__all__ = ["decode", "Detections"]

_SIZE_REDUCE = {"max": 0, "mean": 1, "median": 2}


@dataclass
class Detections:
    """Objects found on one page.

    Attributes
    ----------
    boxes : (N, 4) float32
        ``(x1, y1, x2, y2)`` in pixel coordinates where pixel ``(r, c)`` covers ``[c, c+1) x [r, r+1)``
        (torchvision's convention, no +1): a box of predicted size ``(h, w)`` centred on the object's
        centre, or the object's own extent when no size map was given.
    labels : (N,) int64
        Class ids (majority vote of a class-id map, or argmax of the mean class probability of class
        logits); -1 when no classes were given.
    scores : (N,) float32
        Confidence in [0, 1]: the mean probability of the energy levels above the cut-off when energy
        logits are given, else peak level / (levels - 1).
    centers : (N, 2) float64
        Mean ``(row, col)`` of the object's pixels (scikit-image's centroid convention).
    areas : (N,) int64
        Object pixels.
    class_scores : (N,) float32
        Share of the object's pixels that voted for its class, or its mean class probability.
    label_map : (H, W) int32, optional
        Object ids 1..N (row i of the arrays above is object i + 1), with ``return_label_map=True``.
    """

    boxes: Any
    labels: Any
    scores: Any
    centers: Any
    areas: Any
    class_scores: Any
    label_map: Optional[Any] = None

    def __len__(self):
        return int(self.boxes.shape[0])

    def as_dict(self):
        """torchvision's detection format: ``{"boxes", "labels", "scores"}``."""
        return {"boxes": self.boxes, "labels": self.labels, "scores": self.scores}

    def to_coco(self, image_id, category_ids=None):
        """COCO results records: ``[{"image_id", "category_id", "bbox": [x, y, w, h], "score"}]``.

        Parameters
        ----------
        image_id : int
            The page's image id in the dataset.
        category_ids : sequence or mapping, optional
            Label -> the dataset's category id (a dataset's ``category_ids``, indexed by label, entry 0 the
            background); default: the labels themselves.

        Returns
        -------
        list of dict
        """
        from .metrics import to_coco

        return to_coco(self, image_id, category_ids)

    def to_deepscores(self, image_id, category_ids=None):
        """The DeepScoresV2 toolkit's proposal records: ``[{"bbox": [x0, y0, x1, y1], "cat_id", "img_id",
        "score"}]`` (the ``proposals`` of its proposals file; see :func:`dwd_fast.write_detections`).

        Parameters
        ----------
        image_id : int
            The page's image id in the dataset.
        category_ids : sequence or mapping, optional
            Label -> the dataset's category id, as for :meth:`to_coco`.

        Returns
        -------
        list of dict
        """
        from .metrics import to_deepscores

        return to_deepscores(self, image_id, category_ids, oriented=False)


def _split_energy(e):
    """(batched, is_logits, 4-D view (B, K|1, H, W)) for an energy array."""
    if e.dtype.kind in "biu":
        _arrays.check_ndim(e, "energy", (2, 3), "2-D (H, W) or 3-D (B, H, W) for an integer level map")
        return e.ndim == 3, False, (e[None, None] if e.ndim == 2 else e[:, None])
    _arrays.check_ndim(e, "energy", (2, 3, 4),
                       "2-D (H, W), 3-D (K, H, W) logits or 4-D (B, K, H, W) logits for a float map")
    if e.ndim == 2:
        return False, False, e[None, None]
    return e.ndim == 4, True, (e[None] if e.ndim == 3 else e)


_ORDERS = {"forward": 0, "reversed": 1, "shuffled": 2}
_OUT_FIELDS = (("boxes", (4,), "float32"), ("labels", (), "int64"), ("scores", (), "float32"),
               ("class_scores", (), "float32"), ("centers", (2,), "float64"), ("areas", (), "int64"))


def _size_records(d, sized):
    """Applies ``sized`` to a Detections' per-object records in place. On CUDA those few numbers per
    object are read to the host and the new boxes written back to the device."""
    fields = ("boxes", "centers", "labels", "class_scores")
    dev = _arrays.Device.of(d.boxes)
    if dev.is_cuda:
        rec = {f: dev.download(getattr(d, f)) for f in fields}
        d.boxes = dev.upload(np.ascontiguousarray(sized(rec)["boxes"]))[0]
    else:
        d.boxes = sized({f: getattr(d, f) for f in fields})["boxes"]


def _decode_exec(backend, e4, c4, s4, opts, return_label_map, order, seed, stats):
    """The data-parallel decoder (csrc/dwd/decode.h), one launch sequence per page, on the host executor
    (numpy arrays) or CUDA (torch / CuPy arrays, the caller's current stream)."""
    dev = _arrays.Device.of(e4)
    B, _, H, W = (int(v) for v in e4.shape)
    lm, lm_ptr = dev.empty((B, H, W), "int32") if return_label_map else (None, 0)
    if backend == "cuda":
        from ._ext import cuda_ext

        run = cuda_ext().decode
        where = (dev.index if dev.index is not None else -1, dev.stream())
    else:
        run = cpu_ext().decode_host
        where = (_ORDERS[order], _arrays.check_nonneg_int(seed, "seed", 2**64 - 1))
    dets = []
    for b in range(B):
        outs = {}

        def alloc(n):
            ptrs = []
            for name, shape, dt in _OUT_FIELDS:
                arr, ptr = dev.empty((n,) + shape, dt)
                outs[name] = arr
                ptrs.append(ptr)
            return tuple(ptrs)

        label_map = None if lm is None else (lm_ptr + 4 * b * H * W, H, W)
        _, counts = run(_arrays.view(e4[b], "energy", planes=True),
                        None if c4 is None else _arrays.view(c4[b], "classes", planes=True),
                        None if s4 is None else _arrays.view(s4[b], "sizes", planes=True),
                        *opts, label_map, alloc, *where)
        if stats is not None:
            for k, v in counts.items():
                stats[k] = stats.get(k, 0) + v if k != "workspace_bytes" else max(stats.get(k, 0), v)
        dets.append(Detections(**outs, label_map=None if lm is None else lm[b]))
    return dets


def _kind(x):
    dt = _arrays.dtype_name(x)
    return "b" if dt == "bool" else ("f" if dt.startswith("float") else ("u" if dt.startswith("uint") else "i"))


def _prepare_cuda(energy, classes, sizes):
    """Shape / dtype checks of CUDA inputs (metadata only; NaN is checked in the kernels): 4-D views."""
    for name, x in (("energy", energy), ("classes", classes), ("sizes", sizes)):
        if x is not None and _arrays.dtype_name(x) not in _arrays._DTYPE_NAMES:
            raise TypeError(f"{name} has unsupported dtype {_arrays.dtype_name(x)}")
    e = energy
    logits = _kind(e) == "f" and e.ndim >= 3
    if _kind(e) != "f":
        _arrays.check_ndim(e, "energy", (2, 3), "2-D (H, W) or 3-D (B, H, W) for an integer level map")
        batched, e4 = e.ndim == 3, (e[None, None] if e.ndim == 2 else e[:, None])
    else:
        _arrays.check_ndim(e, "energy", (2, 3, 4),
                           "2-D (H, W), 3-D (K, H, W) logits or 4-D (B, K, H, W) logits for a float map")
        batched = e.ndim == 4
        e4 = e[None, None] if e.ndim == 2 else (e[None] if e.ndim == 3 else e)
    B, K, H, W = (int(v) for v in e4.shape)
    if B * K * H * W == 0:
        raise ValueError(f"energy is empty (shape {tuple(e4.shape)})")
    if logits and K > 255:
        raise ValueError(f"energy logits may have at most 255 levels, got {K}")
    c4, class_logits = None, False
    if classes is not None:
        c = classes
        class_logits = _kind(c) == "f"
        if class_logits:
            c4 = c if c.ndim == 4 else (c[None] if c.ndim == 3 else None)
            ok = c4 is not None and tuple(c4.shape)[0] == B and tuple(c4.shape)[2:] == (H, W) and \
                (c.ndim == 4) == batched
        else:
            c4 = c[:, None] if (batched and c.ndim == 3) else (c[None, None] if c.ndim == 2 else None)
            ok = c4 is not None and tuple(c4.shape) == (B, 1, H, W)
        if not ok:
            raise ValueError(f"classes of shape {tuple(c.shape)} do not match energy {tuple(e.shape)}")
    s4 = None
    if sizes is not None:
        s4 = sizes if batched else (sizes[None] if sizes.ndim == 3 else None)
        if s4 is None or s4.ndim != 4 or tuple(s4.shape) != (B, 2, H, W):
            raise ValueError(f"sizes must be {'(B, 2, H, W)' if batched else '(2, H, W)'} (height, width) matching "
                             f"energy {tuple(e.shape)}, got shape {tuple(sizes.shape)}")
    return batched, logits, e4, c4, class_logits, s4


def decode(energy, classes=None, sizes=None, *, cutoff=7, min_size=4, seeds="cutoff", grow_to=None,
           reduce_over="core", min_distance=1, connectivity=2, size_reduce="max", levels=None,
           return_label_map=False, backend="auto", order="forward", seed=0, size_mode="regress", class_sizes=None,
           class_confidence=0.5, class_spread=0.15, _stats=None):
    """Decode DWD network outputs into detections.

    Seeds are the connected components (8-connected by default) of ``energy > cutoff`` with at
    least ``min_size`` pixels, in the raster order of their first pixel. With ``grow_to=t`` each seed
    grows by the canonical watershed (:func:`dwd_fast.watershed`) over ``-energy`` inside
    ``energy > t``: a low-energy region shared by several seeds is split between them (fused
    neighbours such as chords and accidentals come apart), and the components of ``energy > t``
    that hold no seed become objects of their own, numbered after the seeded ones (if they have at
    least ``min_size`` pixels). An object's *core* is its part above the cut-off (its whole region if
    it has none). For each object: its centre is the mean of its pixels, its class the majority of
    ``classes`` over its pixels (or the argmax of the mean class probability), its size the
    ``size_reduce`` of ``sizes`` over its pixels — all over the core, or over the grown region with
    ``reduce_over="region"`` — its box that size around the centre (or the region's extent without
    ``sizes``), and its score in [0, 1] from the energy.

    Parameters
    ----------
    energy : array
        Integer level map ``(H, W)`` or batch ``(B, H, W)``; or float logits ``(K, H, W)`` / ``(B, K, H,
        W)``, reduced by argmax inside the kernel; or a float energy map ``(H, W)`` thresholded as is.
        float16 maps (here and in ``classes`` / ``sizes``) are read as float32. Non-finite values: NaN
        is rejected everywhere, and so is +-inf in logits (energy or class) and in the sizes read for
        an object (``ValueError`` naming the argument); a float energy map is only thresholded, so
        +-inf there are ordinary levels. Sizes so large that a box overflows float32 are rejected too.
    classes : array, optional
        Class ids ``(H, W)`` (non-negative integers) or class logits ``(C, H, W)``; batched with a
        leading B like ``energy``.
    sizes : array, optional
        ``(2, H, W)`` box sizes (height, width) per pixel; batched ``(B, 2, H, W)``. Without it the
        box is the object's extent.
    cutoff : float, optional
        Energy level a pixel must exceed to belong to an object (default 7).
    min_size : int, optional
        Smallest seed (or, with peak seeds, object), in pixels (default 4).
    seeds : {"cutoff", "peaks"}, optional
        ``"cutoff"``: components of ``energy > cutoff``. ``"peaks"``: the local maxima of the level map
        above the cut-off (:func:`dwd_fast.peak_local_max` with ``min_distance``, no border
        exclusion), each extended to its plateau, peaks on one plateau merged; they are always grown
        (``grow_to`` defaults to ``cutoff``), so the components of ``energy > cutoff`` are split between
        their peaks.
    grow_to : float, optional
        Energy level, at most ``cutoff``, down to which seeds grow (see above). Default: no growth.
    reduce_over : {"core", "region"}, optional
        Pixels over which centre, class, size and score are computed (default ``"core"``).
    min_distance : int, optional
        Peak spacing for ``seeds="peaks"`` (default 1).
    connectivity : {1, 2}, optional
        4- (1) or 8-connected (2, default, as the original DWD) components.
    size_reduce : {"max", "mean", "median"}, optional
        How the size map is reduced over an object (default ``"max"``, the original's).
    levels : int, optional
        Number of energy levels, for the score of a level map (peak / (levels - 1)). Defaults to K for
        logits and to 20 (the original DWD's) for level maps.
    return_label_map : bool, optional
        Also return the ``(H, W)`` int32 map of object ids in ``Detections.label_map``.
    backend : {"auto", "cpu", "cuda", "host"}, optional
        ``"auto"`` follows the inputs: torch CUDA tensors / CuPy arrays run the data-parallel decoder
        (``csrc/dwd/decode.h``) on their device and the caller's current stream, and the results come
        back on that device; host arrays run on the CPU. ``"host"`` runs the data-parallel decoder on
        the CPU in ``order`` (``"forward"``, ``"reversed"``, ``"shuffled"`` with ``seed``), to verify it
        without a GPU. The data-parallel decoder supports both kinds of seeds; its results equal the
        cpu backend's (with logits on CUDA, scores may differ in the last bits: the device's ``exp``).
    size_mode : {"regress", "class", "blend"}, optional
        Where each box's size comes from, applied per object after the kernel (so identically on every
        backend). ``"regress"`` (default): the size map, read as ``size_reduce`` says. ``"class"``: the
        cached size of the object's class, ``class_sizes[label]`` (DWD's remedy for its smooth size
        regression); objects whose class is out of the table's range or was never seen (NaN row) keep
        the regressed size. ``"blend"``: per side (height, width), the cached size when the class was
        seen, the object's ``class_scores >= class_confidence`` and the class's relative spread on that
        side is ``<= class_spread`` (a :class:`ClassSizeTable` has one; a plain array counts as spread
        0), else the regressed size. Replaced sides are centred on the object's centre. Needs
        ``classes``.
    class_sizes : ClassSizeTable or (C, 2) array, optional
        ``(height, width)`` per class id, from :func:`dwd_fast.class_size_table`; NaN rows for classes
        never seen, other values finite and > 0. With class logits, C must be at least their channels.
    class_confidence : float, optional
        ``size_mode="blend"``: smallest class score trusted (default 0.5).
    class_spread : float, optional
        ``size_mode="blend"``: largest relative spread of a class's side for its cached size to be used
        (default 0.15).

    Returns
    -------
    Detections, or a list of Detections for batched input.

    Examples
    --------
    >>> import dwd_fast
    >>> page = dwd_fast.data.reference_page(250)
    >>> det = dwd_fast.decode(page.energy, page.classes, page.sizes, cutoff=7)
    >>> det.as_dict()["boxes"].shape[1]
    4
    """
    backend = _arrays.resolve_backend(backend, energy, classes, sizes, names=("energy", "classes", "sizes"),
                                      op="decode")
    if backend == "host" and order not in _ORDERS:
        raise ValueError(f"order must be one of {sorted(_ORDERS)}, got {order!r}")
    if backend == "cuda":
        he = None
        energy, classes, sizes = (_half_to_single_cuda(x) for x in (energy, classes, sizes))
        batched, logits, e4, c4, class_logits, s4 = _prepare_cuda(energy, classes, sizes)
    else:
        he, (batched, logits, e4, c4, class_logits, s4) = _prepare_host(energy, classes, sizes)
    K = int(e4.shape[1])
    _check_options(cutoff, min_size, connectivity, size_reduce, seeds, reduce_over, grow_to, min_distance)
    if seeds == "peaks" and grow_to is None:
        grow_to = cutoff
    if levels is None:
        levels = K if logits else 20
    levels = _arrays.check_nonneg_int(levels, "levels", minimum=2)
    table = check_size_mode(size_mode, class_sizes, class_confidence, class_spread)
    if table is not None:
        if c4 is None:
            raise ValueError(f"size_mode={size_mode!r} needs classes (the class of each object picks its size)")
        if class_logits and c4.shape[1] > table[0].shape[0]:
            raise ValueError(f"class_sizes has {table[0].shape[0]} rows, fewer than the {c4.shape[1]} channels "
                             f"of the class logits")

    def sized(det):  # the size mode, on one page's per-object records (numpy)
        return apply_size_mode(det, size_mode, table, class_confidence=class_confidence, class_spread=class_spread)

    if backend in ("host", "cuda"):
        opts = (float(cutoff), int(min_size), int(connectivity), _SIZE_REDUCE[size_reduce], int(levels),
                bool(logits), bool(class_logits), None if grow_to is None else float(grow_to),
                reduce_over == "region", seeds == "peaks", int(min_distance))
        e_in = _arrays.kernel_view(e4) if backend == "host" else e4
        dets = _decode_exec(backend, e_in, c4, s4, opts, return_label_map, order, seed, _stats)
        if table is not None:
            for d in dets:
                _size_records(d, sized)
        _check_boxes_finite(dets)
        if backend == "host":
            for d in dets:
                for f in ("boxes", "labels", "scores", "centers", "areas", "class_scores", "label_map"):
                    if getattr(d, f) is not None:
                        setattr(d, f, _arrays.wrap(getattr(d, f), he))
        return dets if batched else dets[0]
    label_map = np.empty((e4.shape[0], e4.shape[2], e4.shape[3]), np.int32) if return_label_map else None
    try:
        raw = cpu_ext().decode(_arrays.kernel_view(e4), c4, s4, float(cutoff), int(min_size), int(connectivity),
                               _SIZE_REDUCE[size_reduce], int(levels), bool(logits), bool(class_logits),
                               None if grow_to is None else float(grow_to), reduce_over == "region",
                               seeds == "peaks", int(min_distance), label_map)
    except ValueError as e:  # the class vote's id limit: name the argument
        if str(e).startswith("class id"):
            raise ValueError(f"classes holds {e}") from None
        raise
    dets = []
    for b, r in enumerate(raw):
        w = {k: _arrays.wrap(v, he) for k, v in sized(r).items()}
        if label_map is not None:
            w["label_map"] = _arrays.wrap(label_map[b], he)
        dets.append(Detections(**w))
    _check_boxes_finite(dets)
    return dets if batched else dets[0]


def _half_to_single(a):
    """float16 maps (network outputs, :func:`dwd_fast.data.simulate_outputs`) as float32: exact, and the
    kernels then see one of their float dtypes."""
    return a.astype(np.float32) if a.dtype == np.float16 else a


def _half_to_single_cuda(x):
    if x is None or _arrays.dtype_name(x) != "float16":
        return x
    return x.float() if _arrays._library(x) == "torch" else x.astype("float32")


def _check_boxes_finite(dets):
    """Boxes are float32: sizes beyond its range would give infinite boxes. Raises naming the argument."""
    for d in dets:
        b = d.boxes
        lib = _arrays._library(b)
        if lib == "torch":
            import torch

            ok = bool(torch.isfinite(b).all().item())
        elif lib == "cupy":
            import cupy

            ok = bool(cupy.isfinite(b).all().item())
        else:
            ok = bool(np.isfinite(b).all())
        if not ok:
            raise ValueError("sizes holds values too large for float32 boxes (a box coordinate overflows)")


def _prepare_host(energy, classes, sizes):
    """Host validation: (HostArray of energy, (batched, logits, e4, c4, class_logits, s4))."""
    he = _arrays.to_host(energy, "energy")
    e = _half_to_single(he.array)
    _arrays.check_dtype(e, "energy")
    batched, logits, e4 = _split_energy(e)
    _arrays.check_nonempty(e4, "energy")
    B, K, H, W = e4.shape
    if logits and K > 255:
        raise ValueError(f"energy logits may have at most 255 levels, got {K}")

    c4 = None
    class_logits = False
    if classes is not None:
        c = _half_to_single(_arrays.to_host(classes, "classes").array)
        _arrays.check_dtype(c, "classes")
        class_logits = c.dtype.kind == "f"
        if class_logits:
            want = (B, c.shape[-3] if c.ndim >= 3 else -1, H, W)
            c4 = c if c.ndim == 4 else (c[None] if c.ndim == 3 else None)
            what = "(B, C, H, W)" if batched else "(C, H, W)"
        else:
            c4 = c[:, None] if (batched and c.ndim == 3) else (c[None, None] if c.ndim == 2 else None)
            want = (B, 1, H, W)
            what = "(B, H, W)" if batched else "(H, W)"
        if c4 is None or c4.shape != want or (c.ndim == 4) != (batched and class_logits):
            raise ValueError(f"classes must be {'logits' if class_logits else 'class ids'} of shape {what} "
                             f"matching energy {tuple(e.shape)}, got shape {tuple(c.shape)}")
        if c4.shape[1] == 0:
            raise ValueError("classes logits have no class channel")
        if c4.dtype == np.bool_:
            c4 = c4.view(np.uint8)
        if not c4.dtype.isnative:
            c4 = c4.astype(c4.dtype.newbyteorder("="))

    s4 = None
    if sizes is not None:
        s = _half_to_single(_arrays.to_host(sizes, "sizes").array)
        _arrays.check_dtype(s, "sizes")
        s4 = s if batched else (s[None] if s.ndim == 3 else None)
        what = "(B, 2, H, W)" if batched else "(2, H, W)"
        if s4 is None or s4.ndim != 4 or s4.shape != (B, 2, H, W):
            raise ValueError(f"sizes must be {what} (height, width) matching energy {tuple(e.shape)}, "
                             f"got shape {tuple(s.shape)}")
        if s4.dtype.kind != "f":
            s4 = s4.astype(np.float32)
        elif not s4.dtype.isnative:
            s4 = s4.astype(s4.dtype.newbyteorder("="))

    return he, (batched, logits, e4, c4, class_logits, s4)


def _check_options(cutoff, min_size, connectivity, size_reduce, seeds, reduce_over, grow_to, min_distance):
    _arrays.check_number(cutoff, "cutoff", finite=True)
    _arrays.check_nonneg_int(min_size, "min_size")
    _arrays.check_connectivity(connectivity)
    if size_reduce not in _SIZE_REDUCE:
        raise ValueError(f"size_reduce must be one of {sorted(_SIZE_REDUCE)}, got {size_reduce!r}")
    if seeds not in ("cutoff", "peaks"):
        raise ValueError(f"seeds must be 'cutoff' or 'peaks', got {seeds!r}")
    if reduce_over not in ("core", "region"):
        raise ValueError(f"reduce_over must be 'core' or 'region', got {reduce_over!r}")
    if seeds == "peaks" and grow_to is None:
        grow_to = cutoff
    if grow_to is not None:
        if isinstance(grow_to, (bool, np.bool_)) or not isinstance(grow_to, (int, float, np.integer, np.floating)):
            raise TypeError(f"grow_to must be a number, got {type(grow_to).__name__}")
        if not _arrays.is_finite(grow_to) or grow_to > cutoff:
            raise ValueError(f"grow_to must be a finite level <= cutoff ({cutoff}), got {grow_to!r}")
    _arrays.check_nonneg_int(min_distance, "min_distance", minimum=1)

