"""Decoding DWD outputs into boxes: dwd_fast against scikit-image and against the original DWD code.

Groups (one per page):

``decode n=...``
    ``dwd_fast.decode`` (8-connected seeds of ``energy > 7`` of at least 4 pixels, class vote, maximum
    size, boxes) against the same pipeline written with scikit-image's ``label`` + ``regionprops``
    (:func:`references.skimage_decode`), and the numpy floor. Both must find the same objects, classes
    and boxes.
``decode grow_to=1 n=...`` (n = 250, 2000)
    ``dwd_fast.decode(..., grow_to=1)`` (seeds grown by the canonical watershed over ``-energy`` inside
    ``energy > 1``) against the scikit-image pipeline label + watershed + regionprops
    (:func:`references.skimage_decode_grow`); scikit-image's watershed breaks ties differently, so
    the check is on the object count and on most boxes being equal.
``perform_dws 2020 n=...`` / ``perform_dws 2018 n=...``
    ``dwd_fast.compat.perform_dws`` against the re-statements of the original decoders
    (:mod:`references`), called as the original detector called them (2020: ``[7, 1], 8``; 2018:
    ``1, 4``) on an int64 energy (an argmax), the int32 class map and an (H, W, 2) float32 box map. The
    originals must return exactly the same list. The 2020 original runs a whole-page ``np.where`` per
    object and is timed over a single round; at n=7664 (minutes) it runs only with ``DWD_BENCH_SLOW=1``.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from conftest import FLOOR, SLOW, floor_call, record
from references import original_perform_dws_2018, original_perform_dws_2020, skimage_decode, skimage_decode_grow

import dwd_fast
from dwd_fast._threads import one_thread

CUTOFF, MIN_SIZE = 7, 4


# ---------------------------------------------------------------------------------------------------
# decode
# ---------------------------------------------------------------------------------------------------

def _dwd_fast_decode(energy, classes, sizes):
    return dwd_fast.decode(energy, classes, sizes, cutoff=CUTOFF, min_size=MIN_SIZE)


def _skimage_decode(energy, classes, sizes):
    return skimage_decode(energy, classes, sizes, cutoff=CUTOFF, min_size=MIN_SIZE)


def _skimage():
    pytest.importorskip("skimage")
    return _skimage_decode


# name -> factory returning the decoder (skipping when its library is missing)
DECODERS = {
    "dwd_fast": lambda: _dwd_fast_decode,
    "skimage label+regionprops": _skimage,
    FLOOR: None,
}


def _as_dict(result):
    """boxes / labels / centers of a decoder's result, as numpy arrays."""
    if isinstance(result, dwd_fast.Detections):
        return {"boxes": result.boxes, "labels": result.labels, "centers": result.centers}
    return result


def _same_objects(a, b):
    """Same objects in the same order: equal classes, centres and boxes up to float rounding."""
    return (a["boxes"].shape == b["boxes"].shape
            and np.array_equal(a["labels"], b["labels"])
            and np.allclose(a["centers"], b["centers"], rtol=0, atol=1e-9)
            and np.allclose(a["boxes"], b["boxes"], rtol=0, atol=1e-3))


@pytest.mark.parametrize("implementation", list(DECODERS))
def test_decode(benchmark, page, implementation):
    benchmark.group = f"decode n={page.n}"
    record(benchmark, implementation, page, cutoff=CUTOFF, min_size=MIN_SIZE)
    if DECODERS[implementation] is None:
        fn, args = floor_call(page)
        benchmark(fn, *args)
        return
    decoder = DECODERS[implementation]()
    result = _as_dict(benchmark(decoder, page.energy, page.classes, page.sizes))
    other = _skimage_decode if decoder is _dwd_fast_decode else _dwd_fast_decode
    ok = _same_objects(result, _as_dict(other(page.energy, page.classes, page.sizes)))
    benchmark.extra_info.update(correct=ok, objects=int(result["labels"].size))
    assert ok, f"{implementation}: objects differ between dwd_fast.decode and the scikit-image pipeline"


# ---------------------------------------------------------------------------------------------------
# decode with grow_to
# ---------------------------------------------------------------------------------------------------

GROW = {
    "dwd_fast": lambda e, c, s: dwd_fast.decode(e, c, s, cutoff=CUTOFF, min_size=MIN_SIZE, grow_to=1),
    "dwd_fast (1 thread)": one_thread(lambda e, c, s: dwd_fast.decode(e, c, s, cutoff=CUTOFF, min_size=MIN_SIZE,
                                                                      grow_to=1)),
    "skimage label+watershed+regionprops": lambda e, c, s: skimage_decode_grow(e, c, s, cutoff=CUTOFF,
                                                                               min_size=MIN_SIZE, grow_to=1),
}


@pytest.mark.parametrize("implementation", list(GROW) + [FLOOR])
@pytest.mark.parametrize("n", [250, 2000])
def test_decode_grow(benchmark, n, implementation):
    from conftest import load_page

    page = load_page(n)
    benchmark.group = f"decode grow_to=1 n={n}"
    record(benchmark, implementation, page, cutoff=CUTOFF, min_size=MIN_SIZE, grow_to=1)
    if implementation == FLOOR:
        fn, args = floor_call(page)
        benchmark(fn, *args)
        return
    if implementation.startswith("dwd_fast"):
        result = _as_dict(benchmark(GROW[implementation], page.energy, page.classes, page.sizes))
    else:
        pytest.importorskip("skimage")
        result = benchmark.pedantic(GROW[implementation], args=(page.energy, page.classes, page.sizes),
                                    rounds=3, iterations=1)
    other = GROW["skimage label+watershed+regionprops" if implementation.startswith("dwd_fast") else "dwd_fast"]
    ref = _as_dict(other(page.energy, page.classes, page.sizes))
    same = result["boxes"].shape == ref["boxes"].shape
    share = float(np.mean(np.all(np.abs(result["boxes"] - ref["boxes"]) < 1e-3, axis=1))) if same else 0.0
    benchmark.extra_info.update(objects=int(result["labels"].size), identical_box_share=share)
    assert same and share > 0.95, f"decode grow_to: {share:.3f} of boxes agree with the scikit-image pipeline"


# ---------------------------------------------------------------------------------------------------
# perform_dws, original vs dwd_fast.compat
# ---------------------------------------------------------------------------------------------------

# variant -> (positional arguments after the three maps, the original, rounds of the original)
VARIANTS = {
    "2020": (([7, 1], 8), original_perform_dws_2020, 1),
    "2018": ((1, 4), original_perform_dws_2018, 3),
}


def _compat(variant):
    return functools.partial(dwd_fast.compat.perform_dws, variant=variant)


@pytest.mark.parametrize("implementation", ["dwd_fast.compat", "original"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_perform_dws(benchmark, page, variant, implementation):
    options, original, rounds = VARIANTS[variant]
    # what the original detector passed: (1, H, W) maps and a (1, H, W, 2) box map
    args = (page.energy64[None], page.classes[None], page.boxmap[None], *options)
    benchmark.group = f"perform_dws {variant} n={page.n}"
    record(benchmark, implementation, page, variant=variant, options=repr(options))
    if implementation == "dwd_fast.compat":
        result = benchmark(_compat(variant), *args)
        benchmark.extra_info["objects"] = len(result)
        return
    if variant == "2020" and page.n == 7664 and not SLOW:
        pytest.skip("the original 2020 decoder takes minutes at n=7664; set DWD_BENCH_SLOW=1 to run it")
    result = benchmark.pedantic(original, args=args, rounds=rounds, iterations=1)
    ok = result == _compat(variant)(*args)
    benchmark.extra_info.update(correct=ok, objects=len(result))
    assert ok, f"original perform_dws {variant} and dwd_fast.compat.perform_dws differ at n={page.n}"
