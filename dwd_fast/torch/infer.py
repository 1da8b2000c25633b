"""Whole pages through a detector: tiled inference with bounded memory, stitched before decoding.

A DeepScores page (2668 x 1894 px) through the UNet backbone in one piece holds the head's outputs for
every pixel (20 energy + ~60 class logits + 2 sizes, float32: ~1.7 GB) and the backbone's activations at
full resolution. :func:`predict_outputs` runs the page in tiles whose origins lie on the backbone's grid
(so that a tile computes exactly what the whole page computes, away from its cut edges), takes every
output pixel from the tile where it lies farthest from a cut edge, and keeps only what decoding reads:

- the energy level map (argmax of the energy logits, uint8),
- the size map (2, H, W) float32,
- for the pixels that can belong to an object (level above the lowest decoding threshold) only: the
  probability of the levels above the cut-off and the class logits.

:func:`decode_outputs` decodes that reduced form exactly as :func:`dwd_fast.decode` decodes the full
logits (same objects, boxes and classes; scores and class scores equal to rounding), and
:func:`detect_image` does both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from .backbone import UNet, image_to_tensor

__all__ = ["PageOutputs", "predict_outputs", "decode_outputs", "detect_image", "receptive_radius",
           "tile_layout", "backbone_grid"]


def backbone_grid(backbone) -> int:
    """The multiple of the input size a backbone pads to internally (``2 ** (stages - 1)`` for
    :class:`UNet`, else 1): tile origins on this grid see the page's own padding and pooling grid."""
    if isinstance(backbone, UNet):
        return 2 ** (len(backbone.widths) - 1)
    return int(getattr(backbone, "grid", 1))


def receptive_radius(backbone) -> int:
    """An upper bound of the backbone's receptive radius in input pixels: an output pixel depends only on
    the input within this (Chebyshev) distance. Known for :class:`UNet`; other backbones may define a
    ``receptive_radius`` attribute, else ``ValueError`` (pass ``overlap=`` yourself).

    For :class:`UNet` the bound sums, stage by stage at the stage's scale ``s``: the 3x3 convolutions of each
    block (``s`` and ``dilation * s``), the stride-2 convolution (``s / 2``), and on the way up the
    bilinear upsampling (one coarse pixel, ``2 s``) and the two 3x3 convolutions of the decoder block. The
    default widths give 195 px; the measured radius (the farthest pixel whose output a change of one input
    pixel changes at all) is 188 px (docs/detect.md).
    """
    if isinstance(backbone, UNet):
        n, d = len(backbone.widths), backbone.dilations
        r = 1 + d[0]  # stem
        for i in range(1, n):
            s = 2 ** i
            r += s // 2 + s + d[i] * s  # stride-2 conv, block conv1, block conv2 (dilated)
        for i in range(n - 1, 0, -1):
            r += 2 ** i + 2 * 2 ** (i - 1)  # bilinear upsampling from scale 2^i, the two convs of the block
        if n > 1:
            r += 2  # the half-resolution features upsampled for the head
        return r
    r = getattr(backbone, "receptive_radius", None)
    if r is None:
        raise ValueError(f"the receptive radius of a {type(backbone).__name__} backbone is unknown: pass overlap= "
                         "(in input pixels, at least the radius for tiled outputs to equal untiled ones)")
    return int(r() if callable(r) else r)


def _ceil_to(v, g):
    return -(-v // g) * g


def _floor_to(v, g):
    return (v // g) * g


def _axis_tiles(n, tile, overlap, grid):
    """Tiles ``[(start, stop)]`` along one axis of ``n`` pixels: starts on ``grid``, consecutive tiles
    overlapping by at least ``2 * overlap``, as few tiles as fit in ``tile`` pixels (the last one may be up
    to ``grid - 1`` longer), all of one length but the last."""
    if n <= tile:
        return [(0, n)]
    if tile < 2 * overlap + 2 * grid:
        raise ValueError(f"tile ({tile}) must be at least 2 * overlap + 2 * grid ({2 * overlap + 2 * grid}) px")
    for k in range(2, n + 1):
        length = _ceil_to(-(-(n + (k - 1) * 2 * overlap) // k), grid)
        if length > tile:
            continue
        starts = [_floor_to(round(i * (n - length) / (k - 1)), grid) for i in range(k)]
        tiles = [(s, min(s + length, n)) for s in starts[:-1]] + [(starts[-1], n)]
        if all(b0 - a1 >= 2 * overlap for (a0, b0), (a1, b1) in zip(tiles, tiles[1:])) and tiles[0][0] == 0:
            return tiles
        break
    # rounding the starts to the grid cost overlap: tiles of the largest length, each as far on as it may go
    length, tiles, s = _floor_to(tile, grid), [], 0
    while s + length < n:
        tiles.append((s, s + length))
        s = _floor_to(s + length - 2 * overlap, grid)
    return tiles + [(s, n)]


def _axis_owners(n_out, tiles_out):
    """Per axis: each tile's owned range ``[lo, hi)`` of output pixels (each pixel owned by the tile where it
    is farthest from a cut edge, the first such tile on ties) and the smallest such distance."""
    x = np.arange(n_out)
    dist = np.full((len(tiles_out), n_out), -1, np.int64)
    for t, (a, b) in enumerate(tiles_out):
        inside = (x >= a) & (x < b)
        left = x - a if a > 0 else np.full(n_out, n_out)
        right = b - 1 - x if b < n_out else np.full(n_out, n_out)
        dist[t, inside] = np.minimum(left, right)[inside]
    owner = dist.argmax(0)
    ranges = []
    for t in range(len(tiles_out)):
        idx = np.flatnonzero(owner == t)
        ranges.append((int(idx[0]), int(idx[-1]) + 1) if idx.size else (0, 0))
    return ranges, int(dist.max(0).min())


def tile_layout(height, width, *, tile=(1664, 2048), overlap=208, grid=16, stride=1):
    """The tiles of a page: a list of ``(y0, y1, x0, x1, oy0, oy1, ox0, ox1)``: the tile's input rows and
    columns, and the output rows and columns (on the stride-``stride`` output grid) that the tile gives.

    Along each axis tiles start on ``lcm(grid, stride)``, overlap by at least ``2 * overlap`` px, and are
    as few as fit in ``tile`` (an int, or ``(rows, columns)``); every output pixel comes from the tile where
    it lies farthest from a cut edge (at least ``overlap`` px away: checked).
    """
    th, tw = (tile, tile) if isinstance(tile, (int, np.integer)) else tuple(tile)
    for v, name in ((th, "tile"), (tw, "tile"), (overlap, "overlap"), (grid, "grid"), (stride, "stride"),
                    (height, "height"), (width, "width")):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < (0 if name == "overlap" else 1):
            raise ValueError(f"{name} must be a positive integer{' or 0' if name == 'overlap' else ''}, got {v!r}")
    g = math.lcm(int(grid), int(stride))
    axes = []
    for n, t in ((int(height), int(th)), (int(width), int(tw))):
        tiles = _axis_tiles(n, t, _ceil_to(int(overlap), int(stride)), g)  # whole output pixels of context
        n_out = -(-n // stride)
        tiles_out = [(a // stride, -(-b // stride)) for a, b in tiles]
        owned, margin = _axis_owners(n_out, tiles_out)
        if len(tiles) > 1 and margin < -(-overlap // stride):  # pragma: no cover - a layout defect
            raise AssertionError(f"tile layout leaves a pixel {margin} output px from a cut edge (< overlap)")
        axes.append((tiles, owned))
    (ty, oy), (tx, ox) = axes
    return [(y0, y1, x0, x1, oy0, oy1, ox0, ox1)
            for (y0, y1), (oy0, oy1) in zip(ty, oy) for (x0, x1), (ox0, ox1) in zip(tx, ox)
            if oy1 > oy0 and ox1 > ox0]


@dataclass
class PageOutputs:
    """A page's head outputs, stitched from tiles and reduced to what decoding reads.

    With the decoder's default seeds (components of ``level > cutoff``, no growth: ``mode="components"``)
    the kept pixels are grouped into pieces (connected components of a band of one tile), each wholly
    inside one object or none; per piece the sums of the class probabilities and of the probability of the
    levels above the cut-off are kept (memory: C float64 per piece, a few thousand pieces on a page of
    music). With ``grow_to`` or peak seeds (``mode="pixels"``) an object's core is known only per pixel, so
    the class logits of every kept pixel are kept (memory: C float32 per pixel above the threshold).

    Attributes
    ----------
    level : (h, w) uint8
        Energy level per output pixel (argmax of the energy logits, first maximum).
    sizes : (2, h, w) float32
        Box (height, width) per output pixel, in output pixels.
    mode : {"components", "pixels"}
    piece : (h, w) int32 or None
        ``"components"``: the piece id (1..m) of each pixel above the cut-off, else 0.
    piece_pixels : (m,) int64, piece_above : (m,) float64, piece_classes : (m, C) float64
        ``"components"``: per piece, its pixel count and the sums over its pixels of the probability of the
        levels above the cut-off and of the class probabilities (softmax of the class logits).
    index : (n,) int64, above : (n,) float64, class_logits : (n, C) float32
        ``"pixels"``: the flat indices of the pixels above ``threshold``, and at those pixels the
        probability of the levels above the cut-off and the class logits.
    stride : int
        Output stride (boxes on the output grid are multiplied by it).
    levels, num_classes : int
    cutoff, threshold : float
        The decoding cut-off, and the level above which pixels were kept (``min(cutoff, grow_to)``).
    """

    level: np.ndarray
    sizes: np.ndarray
    mode: str
    stride: int
    levels: int
    num_classes: int
    cutoff: float
    threshold: float
    piece: Optional[np.ndarray] = None
    piece_pixels: Optional[np.ndarray] = None
    piece_above: Optional[np.ndarray] = None
    piece_classes: Optional[np.ndarray] = None
    index: Optional[np.ndarray] = None
    above: Optional[np.ndarray] = None
    class_logits: Optional[np.ndarray] = None

    @property
    def nbytes(self) -> int:
        """Bytes held by the arrays."""
        return sum(int(a.nbytes) for a in (self.level, self.sizes, self.piece, self.piece_pixels, self.piece_above,
                                           self.piece_classes, self.index, self.above, self.class_logits)
                   if a is not None)


def _decoder_options(model, cutoff, grow_to):
    dec = getattr(model, "decoder", None)
    opts = {"cutoff": float(getattr(dec, "cutoff", 7.0)), "min_size": getattr(dec, "min_size", 4),
            "grow_to": getattr(dec, "grow_to", None), "seeds": getattr(dec, "seeds", "cutoff"),
            "size_reduce": getattr(dec, "size_reduce", "max"), "size_mode": getattr(dec, "size_mode", "regress"),
            "class_confidence": getattr(dec, "class_confidence", 0.5),
            "class_spread": getattr(dec, "class_spread", 0.15), "class_sizes": None}
    if opts["size_mode"] != "regress":  # the decoder's table (input pixels), with its spread for "blend"
        from ..class_sizes import ClassSizeTable

        sizes = dec.class_sizes.numpy()
        spread = getattr(dec, "class_spread_table", None)
        opts["class_sizes"] = sizes if spread is None else ClassSizeTable(
            sizes, (~np.isnan(sizes).any(1)).astype(np.int64), spread.numpy(), "median")
    if cutoff is not None:
        opts["cutoff"] = float(cutoff)
    if grow_to is not None:
        opts["grow_to"] = float(grow_to)
    return opts


def decode_kwargs(opts):
    """:func:`decode_outputs`'s keywords among a model's decoder options (all but the cut-off, which
    :func:`predict_outputs` takes)."""
    return {k: v for k, v in opts.items() if k != "cutoff"}


def _as_input(model, image, device):
    if isinstance(image, torch.Tensor) and image.dim() == 3 and image.is_floating_point():
        x = image
    elif isinstance(image, np.ndarray):
        x = image_to_tensor(image if image.flags.writeable else image.copy())
    elif isinstance(image, torch.Tensor):
        x = image_to_tensor(image)
    else:
        raise TypeError(f"image must be a numpy array or tensor ((H, W) grey, (H, W, 3|4) colour, or a (1, H, W) "
                        f"float tensor in [0, 1]), got {type(image).__name__}")
    cin = getattr(getattr(model, "backbone", None), "in_channels", x.shape[0])
    if x.shape[0] == 1 and cin != 1:
        x = x.expand(cin, -1, -1)
    if x.shape[-1] == 0 or x.shape[-2] == 0:
        raise ValueError(f"image is empty: shape {tuple(x.shape)}")
    return x.to(device)


def _features(model, x):
    feats = model.backbone(x)
    if isinstance(feats, dict):
        feats = list(feats.values())[-1]
    elif isinstance(feats, (list, tuple)):
        feats = feats[-1]
    return feats


_CHUNK_PIXELS = 1 << 17  # head outputs computed and reduced this many pixels at a time


def predict_outputs(model, image, *, tile=(1664, 2048), overlap: Optional[int] = None, batch: int = 1,
                    device=None, cutoff: Optional[float] = None, grow_to: Optional[float] = None,
                    seeds: Optional[str] = None) -> PageOutputs:
    """A page's head outputs, computed in tiles and stitched, in the reduced form decoding reads.

    Parameters
    ----------
    model : DeepWatershedDetector
        In eval mode (it is not switched); its decoder's ``cutoff`` / ``grow_to`` / ``seeds`` set what is
        kept unless given here.
    image : array or tensor
        ``(H, W)`` grey or ``(H, W, 3|4)`` colour (uint8 or float in [0, 1], paper light; see
        :func:`~dwd_fast.torch.image_to_tensor`), or a ``(1, H, W)`` float tensor already converted.
    tile : int or (int, int)
        Largest tile (rows, columns) in input pixels (the last tile of an axis may be up to the backbone's
        grid - 1 longer). Memory grows with the tile's area; a page that fits in one tile is run whole.
        The default runs a DeepScores page (2668 x 1894) in two tiles of 1552 x 1894.
    overlap : int, optional
        Context kept around each tile's own pixels, in input pixels. Default: the backbone's receptive
        radius (:func:`receptive_radius`) rounded up to its grid, so that tiled outputs equal untiled ones.
    batch : int
        Tiles per forward pass (tiles of one shape).
    device : str or torch.device, optional
        Where the network runs (default: the model's device). The reduced maps live on the CPU.
    cutoff, grow_to, seeds : optional
        Decoding options (default: the model's decoder's).

    Returns
    -------
    PageOutputs
    """
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be a positive integer, got {batch!r}")
    if device is None:
        p = next(iter(model.parameters()), None)
        device = p.device if p is not None else torch.device("cpu")
    device = torch.device(device)
    x = _as_input(model, image, device)
    H, W = int(x.shape[-2]), int(x.shape[-1])
    bb = model.backbone
    grid = backbone_grid(bb)
    if overlap is None:
        overlap = _ceil_to(receptive_radius(bb), grid)
    opts = _decoder_options(model, cutoff, grow_to)
    if seeds is not None:
        opts["seeds"] = seeds
    cut = opts["cutoff"]
    grow = opts["grow_to"] if opts["seeds"] != "peaks" or opts["grow_to"] is not None else cut
    thr = cut if grow is None else min(cut, float(grow))
    mode = "components" if opts["seeds"] == "cutoff" and grow is None else "pixels"
    upsample = bool(getattr(model.head, "upsample", False))
    from .model import output_stride
    import dwd_fast

    st = {"K": None, "C": None, "pieces": 0}
    acc = {"index": [], "above": [], "logits": [], "pixels": [], "psum": [], "csum": []}

    def reduce_chunk(e, c, sz, r0, r1, c0, c1):
        K, C = st["K"], st["C"]
        if K is None:
            K, C = st["K"], st["C"] = int(e.shape[0]), int(c.shape[0])
            if K > 255:
                raise ValueError(f"the model has {K} energy levels; at most 255 are supported")
        for name, v in (("energy", e), ("classes", c), ("sizes", sz)):
            # a finite sum means finite values (one cheap pass); an infinite one may be an overflow: look closer
            if not bool(torch.isfinite(v.sum())) and not bool(torch.isfinite(v).all()):
                raise ValueError(f"the network's {name} outputs hold NaN or infinity (output rows {r0}:{r1}, "
                                 f"columns {c0}:{c1})")
        lv = e.argmax(0)
        level[r0:r1, c0:c1] = lv.to(torch.uint8).cpu().numpy()
        sizes[:, r0:r1, c0:c1] = sz.float().cpu().numpy()
        keep = lv > thr
        if not bool(keep.any()):
            return
        pe = torch.softmax(e[:, keep].double(), 0)
        ab = pe[torch.arange(K, device=pe.device, dtype=torch.float64) > cut].sum(0)
        if mode == "pixels":
            rr, cc = torch.nonzero(keep, as_tuple=True)
            acc["index"].append(((rr + r0) * w_out + (cc + c0)).cpu().numpy())
            acc["above"].append(ab.cpu().numpy())
            acc["logits"].append(c[:, keep].float().T.contiguous().cpu().numpy())
            return
        lab_np, m = dwd_fast.label(keep.cpu().numpy(), connectivity=2, return_num=True)
        lab = torch.from_numpy(lab_np).to(keep.device)[keep].long() - 1
        pc = torch.softmax(c[:, keep].double(), 0).T
        acc["csum"].append(torch.zeros((m, C), dtype=torch.float64, device=pc.device).index_add_(0, lab, pc).cpu())
        acc["psum"].append(torch.zeros(m, dtype=torch.float64, device=ab.device).index_add_(0, lab, ab).cpu())
        acc["pixels"].append(torch.bincount(lab, minlength=m).cpu())
        lab_np[lab_np > 0] += st["pieces"]
        piece[r0:r1, c0:c1] = lab_np
        st["pieces"] += m

    def run(group):
        xb = torch.stack([x[:, y0:y1, x0:x1] for (y0, y1, x0, x1, *_r) in group])
        feats = _features(model, xb)
        th, tw = int(xb.shape[-2]), int(xb.shape[-1])
        out_full = None
        if upsample and tuple(feats.shape[-2:]) != (th, tw):
            out_full, s = model.head(feats, size=(th, tw)), 1
        else:
            s = output_stride((th, tw), feats.shape[-2:])
        if s != stride:
            raise ValueError(f"the model's output stride differs between tiles ({stride} and {s})")
        for b, (y0, y1, x0, x1, oy0, oy1, ox0, ox1) in enumerate(group):
            ry0, rx0 = y0 // s, x0 // s  # the tile's first output pixel
            rows = max(1, _CHUNK_PIXELS // max(1, ox1 - ox0))
            for r0 in range(oy0, oy1, rows):
                r1 = min(oy1, r0 + rows)
                sl = (b, slice(None), slice(r0 - ry0, r1 - ry0), slice(ox0 - rx0, ox1 - rx0))
                if out_full is not None:
                    out = {k: v[sl] for k, v in out_full.items()}
                else:  # the head is 1x1 convolutions: run it on the part of the features this tile gives
                    out = {k: v[0] for k, v in model.head(feats[sl][None]).items()}
                reduce_chunk(out["energy"], out["classes"], out["sizes"], r0, r1, ox0, ox1)

    with torch.inference_mode():
        # the output stride, from the features of one small corner of the page
        probe = x[None, :, :min(H, 4 * grid), :min(W, 4 * grid)]
        stride = 1 if upsample else output_stride(tuple(probe.shape[-2:]), _features(model, probe).shape[-2:])
        h_out, w_out = -(-H // stride), -(-W // stride)
        tiles = tile_layout(H, W, tile=tile, overlap=int(overlap), grid=grid, stride=stride)
        level = np.zeros((h_out, w_out), np.uint8)
        sizes = np.zeros((2, h_out, w_out), np.float32)
        piece = np.zeros((h_out, w_out), np.int32) if mode == "components" else None
        groups: dict = {}
        for t in tiles:
            groups.setdefault((t[1] - t[0], t[3] - t[2]), []).append(t)
        for same in groups.values():
            for i in range(0, len(same), batch):
                run(same[i:i + batch])
    K, C = st["K"], st["C"]
    common = dict(level=level, sizes=sizes, mode=mode, stride=int(stride), levels=int(K), num_classes=int(C),
                  cutoff=float(cut), threshold=float(thr))
    if mode == "pixels":
        return PageOutputs(**common, index=np.concatenate(acc["index"]).astype(np.int64) if acc["index"]
                           else np.zeros(0, np.int64),
                           above=np.concatenate(acc["above"]) if acc["above"] else np.zeros(0),
                           class_logits=(np.concatenate(acc["logits"]) if acc["logits"]
                                         else np.zeros((0, C), np.float32)))
    cat = (lambda k, shape, dt: torch.cat(acc[k]).numpy() if acc[k] else np.zeros(shape, dt))
    return PageOutputs(**common, piece=piece, piece_pixels=cat("pixels", 0, np.int64).astype(np.int64),
                       piece_above=cat("psum", 0, np.float64), piece_classes=cat("csum", (0, C), np.float64))


_ROWS = 1 << 16  # class softmax computed this many pixels at a time (float64)


def decode_outputs(outputs: PageOutputs, *, min_size: int = 4, grow_to: Optional[float] = None,
                   seeds: str = "cutoff", size_reduce: str = "max", size_mode: str = "regress", class_sizes=None,
                   class_confidence: float = 0.5, class_spread: float = 0.15):
    """Detections of a page's reduced outputs, as :func:`dwd_fast.decode` finds them on the full logits
    (``reduce_over="core"``, 8-connected), boxes multiplied by the output stride.

    ``size_mode``, ``class_sizes`` (in input pixels), ``class_confidence``, ``class_spread``: as
    :func:`dwd_fast.decode`, applied once the objects' classes are known.

    The objects, centres, boxes and areas come from :func:`dwd_fast.decode` on the level map and sizes; an
    object's score (mean probability of the levels above the cut-off), class (argmax of its mean class
    probability, first maximum) and class score are then summed over its core from the kept pieces or
    pixels, in float64 as the decoder does (equal to its results up to the order of the sums).

    Returns
    -------
    dwd_fast.Detections
        numpy arrays; ``.as_dict()`` gives ``{"boxes", "labels", "scores"}``.
    """
    import dwd_fast
    from ..class_sizes import apply_size_mode, check_size_mode

    table = check_size_mode(size_mode, class_sizes, class_confidence, class_spread)
    if not isinstance(outputs, PageOutputs):
        raise TypeError(f"outputs must be PageOutputs (from predict_outputs), got {type(outputs).__name__}")
    cut = outputs.cutoff
    grow = grow_to if seeds != "peaks" or grow_to is not None else cut
    mode = "components" if seeds == "cutoff" and grow is None else "pixels"
    if mode == "pixels" and outputs.mode != "pixels":
        raise ValueError(f"seeds={seeds!r}, grow_to={grow_to!r} need outputs kept per pixel: pass the same options "
                         f"to predict_outputs")
    if mode == "pixels" and min(cut, float(grow)) < outputs.threshold:
        raise ValueError(f"grow_to {grow_to} is below the level ({outputs.threshold}) the outputs kept pixels above; "
                         f"pass it to predict_outputs")
    det = dwd_fast.decode(outputs.level, None, outputs.sizes, cutoff=cut, min_size=min_size, grow_to=grow_to,
                          seeds=seeds, size_reduce=size_reduce, levels=outputs.levels, return_label_map=True)
    L = det.label_map
    det.label_map = None
    n, C = len(det), outputs.num_classes
    if outputs.mode == "components" and mode == "components":
        m = int(outputs.piece_pixels.shape[0])
        obj = np.zeros(m + 1, np.int64)
        obj[outputs.piece.reshape(-1)] = L.reshape(-1)  # every pixel of a piece lies in one object (or none)
        obj = obj[1:]
        on = obj > 0
        o = torch.from_numpy(obj[on] - 1)
        area = np.bincount(obj[on] - 1, weights=outputs.piece_pixels[on], minlength=n)
        psum = np.bincount(obj[on] - 1, weights=outputs.piece_above[on], minlength=n)
        sums = torch.zeros((n, C), dtype=torch.float64).index_add_(0, o, torch.from_numpy(outputs.piece_classes[on]))
    else:
        lab = L.reshape(-1)[outputs.index]
        lv = outputs.level.reshape(-1)[outputs.index]
        on = lab > 0
        has_core = np.zeros(n + 1, bool)
        has_core[lab[on & (lv > cut)]] = True
        core = np.flatnonzero(on & (~has_core[lab] | (lv > cut)))
        o = lab[core] - 1
        area = np.bincount(o, minlength=n).astype(np.float64)
        psum = np.bincount(o, weights=outputs.above[core], minlength=n)
        sums = torch.zeros((n, C), dtype=torch.float64)
        for i in range(0, core.size, _ROWS):
            r = core[i:i + _ROWS]
            z = torch.softmax(torch.from_numpy(outputs.class_logits[r]).double(), 1)
            sums.index_add_(0, torch.from_numpy(lab[r] - 1), z)
    sums = sums.numpy()
    a = np.maximum(area, 1)
    scores = (psum / a).astype(np.float32)
    if C and n:
        labels = sums.argmax(1).astype(np.int64)  # first maximum, as the decoder
        class_scores = (sums[np.arange(n), labels] / a).astype(np.float32)
    else:
        labels, class_scores = np.full(n, -1, np.int64), np.zeros(n, np.float32)
    s = outputs.stride
    det.labels, det.scores, det.class_scores = labels, scores, class_scores
    if table is not None:  # on the output grid, as the decoder applies it: the cached sizes divided by the stride
        grid = (table[0] / s, table[1])
        rec = apply_size_mode({"boxes": det.boxes, "centers": det.centers, "labels": labels,
                               "class_scores": class_scores}, size_mode, grid,
                              class_confidence=class_confidence, class_spread=class_spread)
        det.boxes = rec["boxes"]
    if s != 1:
        det.boxes = (det.boxes * s).astype(np.float32)
    return det


def detect_image(model, image, *, tile=(1664, 2048), overlap: Optional[int] = None, batch: int = 1, device=None,
                 **decode_options):
    """Detections on one page, tiled with bounded memory: :func:`predict_outputs` then :func:`decode_outputs`
    with the model's decoder options (``cutoff``, ``min_size``, ``grow_to``, ``seeds``, ``size_reduce``;
    override them as keywords).

    Returns
    -------
    dwd_fast.Detections
        boxes (N, 4) float32 ``(x1, y1, x2, y2)`` in input pixels, labels (N,) int64, scores (N,) float32
        (and centres, areas, class scores), numpy arrays. ``.as_dict()`` is torchvision's dict;
        ``.to_coco(image_id, category_ids)`` / ``.to_deepscores(...)`` give result records. The same
        detections as ``model(image)`` in eval mode on the whole page (scores equal to rounding).
    """
    unknown = set(decode_options) - {"cutoff", "min_size", "grow_to", "seeds", "size_reduce", "size_mode",
                                     "class_sizes", "class_confidence", "class_spread"}
    if unknown:
        raise TypeError(f"detect_image got unexpected keyword arguments {sorted(unknown)}")
    opts = _decoder_options(model, decode_options.get("cutoff"), decode_options.get("grow_to"))
    for k in ("min_size", "seeds", "size_reduce", "size_mode", "class_sizes", "class_confidence", "class_spread"):
        if k in decode_options:
            opts[k] = decode_options[k]
    out = predict_outputs(model, image, tile=tile, overlap=overlap, batch=batch, device=device,
                          cutoff=opts["cutoff"], grow_to=opts["grow_to"], seeds=opts["seeds"])
    return decode_outputs(out, **decode_kwargs(opts))
