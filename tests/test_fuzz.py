"""Fuzz harness (issue 18): every public function and argument of dwd_fast with hostile values.

One property for every call: it returns a correct result (checked against scikit-image / numpy / the
original DWD code where a reference exists, and free of non-finite values elsewhere) or raises
``TypeError`` / ``ValueError`` whose message names the argument that was made hostile -- never a crash,
a hang, a non-finite output or a pybind11 signature dump ("incompatible function arguments").

Calls run in a worker process (tests/_sandbox.py) with a time budget, so a segfault or a hang fails
the test instead of killing or blocking pytest. CI runs a modest number of examples per function;
``DWD_FAST_FUZZ_EXAMPLES=5000`` runs more (``DWD_FAST_FUZZ_TIMEOUT`` sets the per-call budget, s).
"""

from __future__ import annotations

import math
import os
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests._sandbox import Crash, Hang, Sandbox

EXAMPLES = int(os.environ.get("DWD_FAST_FUZZ_EXAMPLES", "12"))
TIMEOUT = float(os.environ.get("DWD_FAST_FUZZ_TIMEOUT", "30"))
# no shrinking: every call costs a round trip to the worker, and the failing example is printed as drawn
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES <= 50, database=None,
                suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate],
                report_multiple_bugs=False)

try:
    import torch
except ImportError:  # pragma: no cover - torch is a test dependency
    torch = None


@pytest.fixture(scope="module")
def box():
    sb = Sandbox(TIMEOUT)
    yield sb
    sb.close()


# ---- hostile values ----------------------------------------------------------------------------------------

WRONG_TYPES = [None, "abc", b"\x00", 3, 2.5, [[1, 2], [3]], {"a": 1}, [], (), object(), complex(1, 2)]
SCALARS = [None, True, False, 0, 1, -1, 2, 3, 7, 2**31, -2**31 - 1, 2**63 - 1, 2**63, -2**63, -2**63 - 1, 2**64,
           10**30, 0.0, 0.5, 1.0, -0.5, 1e300, -1e300, math.nan, math.inf, -math.inf, "1", "abc", "", [1], (1, 2),
           np.int64(2), np.int8(-3), np.uint64(2**64 - 1), np.float32(1.5), np.float64(math.nan), np.bool_(True),
           complex(1, 1), object()]
CHOICE_NOISE = ["", "CPU", "bogus", None, 0, 1, 1.0, True, "cuda", "host", "cpu", "auto"]
FLOAT_DTYPES = ["float16", "float32", "float64", ">f8", ">f4", "complex64", "complex128"]
INT_DTYPES = ["bool", "int8", "uint8", "int16", "uint16", ">i2", "int32", "uint32", ">u4", "int64", "uint64", ">i8",
              ">u8"]


def _torch_of(a, dt):
    if torch is None:
        return a
    t = torch.from_numpy(np.ascontiguousarray(a.astype(np.float32 if dt == "bfloat16" else a.dtype)))
    return t.to(getattr(torch, dt)) if dt in ("bfloat16", "float16") else t


@st.composite
def hostile_array(draw, base):
    """A hostile variant of the valid array ``base``."""
    kind = draw(st.sampled_from(["dtype", "nonfinite", "extreme", "shape", "layout", "wrong", "torch", "object"]))
    a = np.asarray(base)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        if kind == "dtype":
            return a.astype(draw(st.sampled_from(FLOAT_DTYPES + INT_DTYPES)))
        if kind == "object":
            return a.astype(object)
        if kind == "torch":
            return _torch_of(a, draw(st.sampled_from(["bfloat16", "float16", "same"])))
        if kind == "nonfinite":
            b = a.astype(draw(st.sampled_from(["float64", "float32", ">f8", "float16"])))
            if b.size:
                idx = tuple(draw(st.integers(0, s - 1)) for s in b.shape)
                b[idx] = draw(st.sampled_from([np.nan, np.inf, -np.inf, 1e300 if b.dtype.itemsize == 8 else 6e4]))
                if draw(st.booleans()):
                    b[...] = b[idx]
            return b
        if kind == "extreme":
            dt = np.dtype(draw(st.sampled_from(["int64", "uint64", "int32", "uint8", "int8", ">i8", "float64"])))
            b = a.astype(dt)
            if b.size:
                info = np.finfo(dt) if dt.kind == "f" else np.iinfo(dt)
                idx = tuple(draw(st.integers(0, s - 1)) for s in b.shape)
                b[idx] = draw(st.sampled_from([info.max, info.min]))
                if draw(st.booleans()):
                    b[...] = b[idx]
            return b
        if kind == "shape":
            ops = [lambda x: x[:0], lambda x: x[:1, :1] if x.ndim >= 2 else x[:1], lambda x: x.reshape(-1),
                   lambda x: x[None], lambda x: x[..., None], lambda x: x[:, :-1] if x.ndim >= 2 else x[:-1],
                   lambda x: x[:0, :0] if x.ndim >= 2 else x[:0], lambda x: np.swapaxes(x, -1, -2) if x.ndim >= 2 else x,
                   lambda x: np.asarray(x.reshape(-1)[0]) if x.size else x, lambda x: np.concatenate([x, x], -1)]
            return draw(st.sampled_from(ops))(a)
        if kind == "layout":
            ops = [np.asfortranarray, lambda x: x[::-1], lambda x: x[..., ::-1],
                   lambda x: np.repeat(x, 2, axis=-1)[..., ::2], lambda x: x.copy(order="K")]
            return draw(st.sampled_from(ops))(a)
        return draw(st.sampled_from(WRONG_TYPES))


def scalar():
    return st.sampled_from(SCALARS)


def choice(*valid):
    return st.sampled_from(list(valid) + CHOICE_NOISE)


# ---- the property ----------------------------------------------------------------------------------------------

def _walk_floats(x, path="result"):
    if isinstance(x, np.ndarray):
        if x.dtype.kind in "fc":
            yield path, x
    elif isinstance(x, float):
        yield path, np.asarray(x)
    elif isinstance(x, dict):
        for k, v in x.items():
            yield from _walk_floats(v, f"{path}[{k!r}]")
    elif hasattr(x, "_fields"):
        for k, v in zip(x._fields, x):
            yield from _walk_floats(v, f"{path}.{k}")
    elif hasattr(x, "__dataclass_fields__"):
        for k in x.__dataclass_fields__:
            yield from _walk_floats(getattr(x, k), f"{path}.{k}")
    elif isinstance(x, (list, tuple)):
        for i, v in enumerate(x):
            yield from _walk_floats(v, f"{path}[{i}]")


def assert_finite(result, allow_nan=(), allow_inf=False):
    for path, a in _walk_floats(result):
        if any(path.endswith(n) for n in allow_nan):
            assert allow_inf or not np.isinf(a).any(), f"{path} holds inf"
            continue
        assert np.isfinite(a).all(), f"{path} holds non-finite values"


def run(box, path, hostile, *args, extra_ok=(), **kwargs):
    """Call ``path`` in the sandbox: ("ok", result) or ("err", type, message) after checking the error.

    ``hostile`` names the arguments made hostile; an error must name one of them."""
    try:
        out = box.call(path, *args, **kwargs)
    except (Crash, Hang) as e:
        raise AssertionError(f"{e} (hostile: {hostile})") from None
    if out[0] == "err":
        _, typ, msg = out
        assert "incompatible function arguments" not in msg, f"pybind11 signature dump for {hostile}: {msg[:300]}"
        ok_types = ("TypeError", "ValueError") + tuple(extra_ok)
        if typ == "RuntimeError" and "CUDA" in msg and "backend" in hostile:
            return out  # backend="cuda" where CUDA is not usable: documented RuntimeError
        if typ == "MemoryError" and "shape" in hostile:
            return out  # asked for a map larger than memory
        assert typ in ok_types, f"{typ} ({msg[:300]}) for hostile {hostile}"
        names = [h for h in hostile]
        assert any(n in msg for n in names), f"{typ} message does not name {names}: {msg[:300]}"
    return out


def _native(a):
    return a.astype(a.dtype.newbyteorder("=")) if isinstance(a, np.ndarray) and not a.dtype.isnative else a


def _as_numpy(x):
    if torch is not None and isinstance(x, torch.Tensor):
        return x.float().numpy() if x.dtype == torch.bfloat16 else x.numpy()
    return _native(x) if isinstance(x, np.ndarray) else x


def _reference(fn, *args, **kwargs):
    """The reference's result, or None when the reference itself refuses the input."""
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            return fn(*args, **kwargs)
    except Exception:  # noqa: BLE001
        return None


def pick(draw, spec):
    """Draw {arg: value}: the valid values, then one or two arguments made hostile."""
    names = sorted(spec)
    n = draw(st.integers(0, 2))
    hostile = draw(st.lists(st.sampled_from(names), min_size=n, max_size=n, unique=True))
    kwargs = {}
    for name in names:
        valid, bad = spec[name]
        kwargs[name] = draw(bad) if name in hostile else valid
    return kwargs, tuple(hostile)


def _small_map(seed, shape=(7, 9), levels=4):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, levels, shape) * (rng.random(shape) < 0.6)).astype(np.int32)


# ---- label --------------------------------------------------------------------------------------------------

@FUZZ
@given(data=st.data(), seed=st.integers(0, 2**16))
def test_fuzz_label(box, data, seed):
    img = _small_map(seed)
    spec = {"image": (img, hostile_array(img)), "connectivity": (data.draw(st.sampled_from([1, 2])), scalar()),
            "return_num": (True, st.sampled_from([True, False, None, 1])),
            "backend": ("cpu", choice("cpu", "host")), "order": ("forward", choice("forward", "reversed")),
            "seed": (0, scalar())}
    kw, hostile = data.draw(st.composite(lambda d: pick(d, spec))())
    out = run(box, "dwd_fast.label", hostile, **kw)
    if out[0] == "ok":
        from skimage.measure import label as sk_label

        res = out[1]
        lab, num = res if isinstance(res, tuple) else (res, None)
        want = _reference(sk_label, _as_numpy(kw["image"]), connectivity=kw["connectivity"])
        if want is not None:
            np.testing.assert_array_equal(lab, want)
            if num is not None:
                assert num == want.max(initial=0)


# ---- peak_local_max ----------------------------------------------------------------------------------------------

@FUZZ
@given(data=st.data(), seed=st.integers(0, 2**16))
def test_fuzz_peak_local_max(box, data, seed):
    rng = np.random.default_rng(seed)
    img = np.round(rng.random((9, 8)) * 4) / 4
    lab = _small_map(seed, (9, 8), 3)
    spec = {"image": (img, hostile_array(img)), "min_distance": (1, scalar()), "threshold_abs": (None, scalar()),
            "threshold_rel": (None, scalar()), "exclude_border": (True, scalar()), "num_peaks": (None, scalar()),
            "labels": (None, st.one_of(st.just(lab), hostile_array(lab))),
            "num_peaks_per_label": (None, scalar()), "backend": ("cpu", choice("cpu", "host"))}
    kw, hostile = data.draw(st.composite(lambda d: pick(d, spec))())
    out = run(box, "dwd_fast.peak_local_max", hostile, **kw)
    if out[0] == "ok":
        from skimage.feature import peak_local_max as sk_peaks

        sk_kw = {k: _as_numpy(v) for k, v in kw.items() if k != "backend"}
        sk_kw = {k: (np.inf if v is None and k in ("num_peaks", "num_peaks_per_label") else v) for k, v in sk_kw.items()}
        want = _reference(sk_peaks, **sk_kw)
        if want is not None:
            np.testing.assert_array_equal(out[1], want)


# ---- watershed ----------------------------------------------------------------------------------------------------

@FUZZ
@given(data=st.data(), seed=st.integers(0, 2**16), method=st.sampled_from(["canonical", "skimage"]))
def test_fuzz_watershed(box, data, seed, method):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 5, (8, 9)).astype(np.float64)
    mk = np.zeros((8, 9), np.int32)
    mk[rng.integers(0, 8, 3), rng.integers(0, 9, 3)] = [1, 2, 3]
    mask = rng.random((8, 9)) < 0.8
    spec = {"image": (img, hostile_array(img)), "markers": (mk, hostile_array(mk)),
            "connectivity": (1, scalar()), "mask": (None, st.one_of(st.just(mask), hostile_array(mask))),
            "method": (method, choice("canonical", "skimage")), "backend": ("cpu", choice("cpu", "host"))}
    kw, hostile = data.draw(st.composite(lambda d: pick(d, spec))())
    out = run(box, "dwd_fast.watershed", hostile, **kw)
    if out[0] != "ok":
        return
    res = out[1]
    m = _as_numpy(kw["markers"])
    assert res.shape == np.shape(m)
    assert set(np.unique(res)) <= set(np.unique(m)) | {0}
    if kw["method"] == "skimage" and kw["backend"] == "cpu":
        from skimage.segmentation import watershed as sk_ws

        want = _reference(sk_ws, _as_numpy(kw["image"]), m, connectivity=kw["connectivity"],
                          mask=_as_numpy(kw["mask"]))
        if want is not None:
            np.testing.assert_array_equal(res, want)


# ---- region_stats ---------------------------------------------------------------------------------------------------

def _region_reference(lab, image):
    lab = np.asarray(lab).astype(np.int64)
    n = int(lab.max()) if lab.size and lab.max() > 0 else 0
    area = np.array([(lab == k).sum() for k in range(1, n + 1)], np.int64)
    out = {"area": area}
    if image is not None:
        img = np.asarray(image)
        if img.dtype.kind in "biu":
            vals = [[int(v) for v in img[lab == k]] for k in range(1, n + 1)]
            out["image_sum"] = np.array([float(sum(v)) for v in vals])
            out["image_max"] = np.array([float(max(v)) if v else np.nan for v in vals])
        else:
            out["image_sum"] = np.array([img[lab == k].astype(np.float64).sum() for k in range(1, n + 1)])
    return out


@FUZZ
@given(data=st.data(), seed=st.integers(0, 2**16))
def test_fuzz_region_stats(box, data, seed):
    lab = _small_map(seed, (7, 8), 5)
    rng = np.random.default_rng(seed)
    img = rng.integers(-50, 50, (7, 8)).astype(np.int64)
    cls = rng.integers(0, 4, (7, 8)).astype(np.int32)
    spec = {"labels": (lab, hostile_array(lab)), "image": (img, st.one_of(st.just(None), hostile_array(img))),
            "classes": (cls, st.one_of(st.just(None), hostile_array(cls))), "num_classes": (None, scalar()),
            "backend": ("cpu", choice("cpu", "host"))}
    kw, hostile = data.draw(st.composite(lambda d: pick(d, spec))())
    out = run(box, "dwd_fast.region_stats", hostile, **kw)
    if out[0] != "ok":
        return
    res = out[1]
    img = _as_numpy(kw["image"])
    # float sums of inf, or of values near float64's maximum, are not finite (as numpy's)
    inf_in = isinstance(img, np.ndarray) and img.dtype.kind == "f" and img.size > 0 and \
        bool(np.isinf(img).any() or np.abs(img).max() > 1e300)
    assert_finite(res, allow_nan=("centroid", "image_max") + (("image_sum", "image_max") if inf_in else ()),
                  allow_inf=inf_in)
    ref = _region_reference(_as_numpy(kw["labels"]), _as_numpy(kw["image"]))
    np.testing.assert_array_equal(res.area, ref["area"])
    if "image_max" in ref:
        np.testing.assert_array_equal(res.image_sum[res.area > 0], ref["image_sum"][ref["area"] > 0])
        np.testing.assert_array_equal(res.image_max, ref["image_max"])
    elif "image_sum" in ref:
        np.testing.assert_allclose(res.image_sum, ref["image_sum"], rtol=1e-12, atol=1e-9)


# ---- decode --------------------------------------------------------------------------------------------------------

@FUZZ
@given(data=st.data(), seed=st.integers(0, 2**16), logits=st.booleans())
def test_fuzz_decode(box, data, seed, logits):
    rng = np.random.default_rng(seed)
    lev = _small_map(seed, (10, 11), 10).astype(np.uint8)
    energy = (rng.normal(size=(10, 10, 11)).astype(np.float32) if logits else lev)
    classes = (rng.normal(size=(3, 10, 11)).astype(np.float32) if logits else rng.integers(0, 3, (10, 11)))
    sizes = rng.random((2, 10, 11)).astype(np.float32) * 6
    table = np.array([[3.0, 4.0], [np.nan, np.nan], [2.0, 5.0]])
    spec = {"energy": (energy, hostile_array(energy)), "classes": (classes, hostile_array(classes)),
            "sizes": (sizes, hostile_array(sizes)), "cutoff": (3, scalar()), "min_size": (1, scalar()),
            "seeds": ("cutoff", choice("cutoff", "peaks")), "grow_to": (None, scalar()),
            "reduce_over": ("core", choice("core", "region")), "min_distance": (1, scalar()),
            "connectivity": (2, scalar()), "size_reduce": ("max", choice("max", "mean", "median")),
            "levels": (None, scalar()), "return_label_map": (False, st.sampled_from([True, None, 1, "yes"])),
            "backend": ("cpu", choice("cpu", "host")), "size_mode": ("regress", choice("regress", "class", "blend")),
            "class_sizes": (table, hostile_array(table)), "class_confidence": (0.5, scalar()),
            "class_spread": (0.15, scalar())}
    kw, hostile = data.draw(st.composite(lambda d: pick(d, spec))())
    out = run(box, "dwd_fast.decode", hostile, **kw)
    if out[0] == "ok":
        det = out[1]
        assert_finite(det)
        assert det.boxes.shape == (len(det.labels), 4)
        assert ((det.scores >= 0) & (det.scores <= 1)).all()


# ---- encode, box_targets, class_size_table -----------------------------------------------------------------------

def _boxes(seed, n=4):
    rng = np.random.default_rng(seed)
    xy = rng.random((n, 2)) * 20
    wh = 1 + rng.random((n, 2)) * 8
    return np.concatenate([xy, xy + wh], 1), rng.integers(1, 5, n)


@FUZZ
@given(data=st.data(), seed=st.integers(0, 2**16))
def test_fuzz_encode(box, data, seed):
    b, lab = _boxes(seed)
    spec = {"boxes": (b, hostile_array(b)), "labels": (lab, hostile_array(lab)), "shape": ((24, 26), scalar()),
            "levels": (8, scalar()), "marker": ("oval", choice("oval", "box", "hull")), "size": (0.8, scalar()),
            "profile": ("linear", choice("linear", "quadratic", "root")),
            "overlap": ("max", choice("max", "nearest", "last")), "backend": ("cpu", choice("cpu", "host"))}
    kw, hostile = data.draw(st.composite(lambda d: pick(d, spec))())
    out = run(box, "dwd_fast.encode", hostile, kw.pop("boxes"), kw.pop("labels"), kw.pop("shape"), **kw)
    if out[0] == "ok":
        t = out[1]
        assert_finite(t)
        assert int(np.max(t.energy, initial=0)) < t.levels


@FUZZ
@given(data=st.data(), seed=st.integers(0, 2**16))
def test_fuzz_box_targets_and_class_sizes(box, data, seed):
    b, lab = _boxes(seed)
    spec = {"boxes": (b, hostile_array(b)), "labels": (lab, hostile_array(lab)), "shape": ((24, 26), scalar()),
            "levels": (8, scalar()), "min_marker": (6.0, scalar())}
    kw, hostile = data.draw(st.composite(lambda d: pick(d, spec))())
    out = run(box, "dwd_fast.data.box_targets", hostile, kw.pop("boxes"), kw.pop("labels"), kw.pop("shape"), **kw)
    if out[0] == "ok":
        assert_finite(out[1])
    spec = {"boxes": (b, hostile_array(b)), "labels": (lab, hostile_array(lab)), "num_classes": (6, scalar()),
            "stat": ("median", choice("median", "mean"))}
    kw, hostile = data.draw(st.composite(lambda d: pick(d, spec))())
    out = run(box, "dwd_fast.class_size_table", hostile, kw.pop("boxes"), kw.pop("labels"), kw.pop("num_classes"),
              **kw)
    if out[0] == "ok":
        assert_finite(out[1], allow_nan=("sizes", "spread"))


# ---- data ---------------------------------------------------------------------------------------------------------

@FUZZ
@given(data=st.data())
def test_fuzz_reference_page(box, data):
    spec = {"n": (5, scalar()), "seed": (0, scalar()), "levels": (16, scalar()), "shape": ((48, 50), scalar())}
    kw, hostile = data.draw(st.composite(lambda d: pick(d, spec))())
    out = run(box, "dwd_fast.data.reference_page", hostile, **kw)
    if out[0] == "ok":
        assert_finite(out[1])
        assert int(out[1].energy.max(initial=0)) < kw["levels"]


@FUZZ
@given(data=st.data(), seed=st.integers(0, 2**16))
def test_fuzz_simulate_outputs(box, data, seed):
    from dwd_fast.data import reference_page

    import dwd_fast

    page = reference_page(6, seed=seed % 7, shape=(48, 50))
    t = dwd_fast.encode(page.boxes, page.labels, (48, 50), levels=8)
    spec = {"seed": (seed, scalar()), "blur": (1.0, scalar()), "noise": (0.35, scalar()), "miss": (0.02, scalar()),
            "merge": (0.02, scalar()), "merge_radius": (3, scalar()), "class_error": (0.03, scalar()),
            "size_noise": (0.08, scalar()), "logits": (True, st.sampled_from([True, False, None, "yes"])),
            "num_classes": (130, scalar()), "size_bias": (0.0, scalar())}
    kw, hostile = data.draw(st.composite(lambda d: pick(d, spec))())
    out = run(box, "dwd_fast.data.simulate_outputs", hostile, t, **kw)
    if out[0] == "ok":
        sim = out[1]
        assert_finite(sim)
        if sim.energy_logits is not None:  # the two halves fit: decode takes the simulated logits
            dec = run(box, "dwd_fast.decode", (), sim.energy_logits, sim.class_logits, cutoff=3)
            assert dec[0] == "ok", dec


# ---- compat -----------------------------------------------------------------------------------------------------

@FUZZ
@given(data=st.data(), seed=st.integers(0, 2**16), variant=st.sampled_from(["2018", "2020"]))
def test_fuzz_perform_dws(box, data, seed, variant):
    from tests.reference import dwd_original as orig

    rng = np.random.default_rng(seed)
    e = (_small_map(seed, (1, 12, 13), 12)).astype(np.int64)
    cls = rng.integers(0, 3, (1, 12, 13))
    bb = rng.random((1, 12, 13, 2)) * 8
    spec = {"dws_energy": (e, hostile_array(e)), "class_map": (cls, hostile_array(cls)),
            "bbox_map": (bb, hostile_array(bb)), "cutoff": ([7, 1] if variant == "2020" else 5, scalar()),
            "min_ccoponent_size": (0, scalar())}
    kw, hostile = data.draw(st.composite(lambda d: pick(d, spec))())
    out = run(box, "dwd_fast.compat.perform_dws", hostile, **kw, variant=variant)
    if out[0] == "ok":
        ref = orig.perform_dws_2018 if variant == "2018" else orig.perform_dws_2020
        want = _reference(ref, *[_as_numpy(kw[k]) for k in ("dws_energy", "class_map", "bbox_map", "cutoff",
                                                               "min_ccoponent_size")])
        bb = _as_numpy(kw["bbox_map"])
        near_int64_max = bb.dtype.kind in "iu" and np.abs(bb.astype(np.float64)).max(initial=0) >= 2.0**63
        if want is not None and not near_int64_max:  # the documented difference (compat's docstring)
            assert out[1] == want


@FUZZ
@given(data=st.data(), seed=st.integers(0, 2**16))
def test_fuzz_get_markers_and_loss_mask(box, data, seed):
    b, lab = _boxes(seed, 3)
    gt = np.concatenate([b, lab[:, None]], 1).astype(np.float32)
    s = {"ds_factors": [1], "downsample_marker": True, "overlap_solution": "max", "stamp_func": "stamp_energy",
         "stamp_args": {"marker_dim": None, "size_percentage": 0.8, "loss": "softmax", "energy_shape": "linear",
                        "shape": "oval"}}
    spec = {"size": ((1, 30, 31, 3), scalar()), "gt": (list(gt), st.one_of(hostile_array(gt).map(lambda g: list(g) if isinstance(g, np.ndarray) and g.ndim else g),
                                                                          hostile_array(gt))),
            "nr_classes": (6, scalar()), "objectness_settings": (s, st.sampled_from([{}, None, 3, "x"]))}
    kw, hostile = data.draw(st.composite(lambda d: pick(d, spec))())
    out = run(box, "dwd_fast.compat.get_markers", hostile, **kw, extra_ok=("KeyError",))
    if out[0] == "ok":
        assert_finite(out[1])
        gm = out[1][0]
        spec = {"gt_map": (gm, hostile_array(gm)), "balance_mask": ("fg_bg_balanced", choice("fg_bg_balanced",
                                                                                          "by_class", None))}
        kw, hostile = data.draw(st.composite(lambda d: pick(d, spec))())
        out = run(box, "dwd_fast.compat.loss_mask", hostile, **kw)
        if out[0] == "ok":
            assert_finite(out[1])


# ---- dwd_fast.torch (lightly) -------------------------------------------------------------------------------------

@pytest.mark.skipif(torch is None, reason="needs torch")
@FUZZ
@given(data=st.data(), seed=st.integers(0, 2**16))
def test_fuzz_torch_modules(box, data, seed):
    b, lab = _boxes(seed)
    tb, tl = torch.from_numpy(b.astype(np.float32)), torch.from_numpy(lab.astype(np.int64))
    spec = {"targets": ([{"boxes": tb, "labels": tl}],
                        st.one_of(hostile_array(b).map(lambda x: [{"boxes": x, "labels": tl}]),
                                  hostile_array(lab).map(lambda x: [{"boxes": tb, "labels": x}]),
                                  st.sampled_from([[], None, [{}], [{"boxes": tb}], "x"]))),
            "image_size": ((24, 26), scalar()), "levels": (8, scalar()), "num_classes": (6, scalar()),
            "stride": (1, scalar())}
    kw, hostile = data.draw(st.composite(lambda d: pick(d, spec))())
    out = run(box, "tests._sandbox.torch_target_encoder", hostile, **kw)
    if out[0] == "ok":
        assert_finite(out[1])
    rng = np.random.default_rng(seed)
    outputs = {"energy": torch.from_numpy(rng.normal(size=(1, 8, 12, 13)).astype(np.float32)),
               "classes": torch.from_numpy(rng.normal(size=(1, 6, 12, 13)).astype(np.float32)),
               "sizes": torch.from_numpy(rng.random((1, 2, 12, 13)).astype(np.float32) * 5)}
    key = data.draw(st.sampled_from(sorted(outputs)))
    bad = dict(outputs, **{key: data.draw(hostile_array(outputs[key].numpy()))})
    out = run(box, "tests._sandbox.torch_decoder", ("outputs", key), bad, cutoff=2, min_size=1)
    if out[0] == "ok":
        assert_finite(out[1])
