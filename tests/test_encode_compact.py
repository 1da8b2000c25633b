"""encode's compact layout (classes uint8, sizes float16): bit for bit the wide layout converted by numpy, on
the cpu painter (fresh maps and ``out=``), the host-executed data-parallel algorithm in every order, and the
float -> half conversions (portable scalar, F16C) against numpy's round-to-nearest-even."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import dwd_fast
from dwd_fast._ext import cpu_ext
from tests.test_encode import ORDERS, options, scenes


def _converted(t):
    """The wide targets converted with numpy: the definition of the compact layout."""
    with np.errstate(over="ignore"):
        return t.energy, t.classes.astype(np.uint8), t.sizes.astype(np.float16)


def _assert_bits(t, energy, classes, sizes):
    assert t.classes.dtype == np.uint8 and t.sizes.dtype == np.float16 and t.energy.dtype == np.uint8
    np.testing.assert_array_equal(t.energy, energy)
    np.testing.assert_array_equal(t.classes, classes)
    np.testing.assert_array_equal(t.sizes.view(np.uint16), sizes.view(np.uint16))  # bits, not values


def _with_big_labels(scene, rng_seed):
    """The scene with labels spread over [0, 255] (the whole uint8 range)."""
    boxes, labels, shape = scene
    return boxes, np.random.default_rng(rng_seed).integers(0, 256, len(labels)).astype(np.int64), shape


@given(scene=scenes(), opts=options, seed=st.integers(0, 1000))
def test_compact_equals_wide_converted_cpu_and_host(scene, opts, seed):
    boxes, labels, shape = _with_big_labels(scene, seed)
    want = _converted(dwd_fast.encode(boxes, labels, shape, **opts))
    _assert_bits(dwd_fast.encode(boxes, labels, shape, layout="compact", **opts), *want)
    for order in ORDERS:
        _assert_bits(dwd_fast.encode(boxes, labels, shape, layout="compact", backend="host", order=order, seed=seed,
                                     **opts), *want)


@given(scene=scenes(max_side=90), opts=options, fill=st.sampled_from([0, 7, 255]), seed=st.integers(0, 1000))
def test_compact_out_buffers_are_fully_overwritten(scene, opts, fill, seed):
    boxes, labels, shape = _with_big_labels(scene, seed)
    want = _converted(dwd_fast.encode(boxes, labels, shape, **opts))
    buf = (np.full(shape, fill, np.uint8), np.full(shape, fill, np.uint8), np.full((2,) + shape, fill, np.float16))
    t = dwd_fast.encode(boxes, labels, shape, out=buf, layout="compact", **opts)
    assert t.energy is buf[0] and t.classes is buf[1] and t.sizes is buf[2]
    _assert_bits(t, *want)
    buf[2][...] = np.nan  # the host backend zeroes `out` first, then writes the markers
    _assert_bits(dwd_fast.encode(boxes, labels, shape, out=buf, layout="compact", backend="host", order="shuffled",
                                 seed=seed, **opts), *want)


def test_compact_batch_and_strides():
    boxes = [np.array([[1, 1, 9, 7], [4, 2, 30, 12.5]], np.float32), np.array([[3, 2, 8, 9]], np.float32)]
    labels = [np.array([255, 3]), np.array([200])]
    for s in (1, 2, 3):
        wide = dwd_fast.encode(boxes, labels, (20, 33), strides=(s,))
        for backend in ("cpu", "host"):
            _assert_bits(dwd_fast.encode(boxes, labels, (20, 33), strides=(s,), layout="compact", backend=backend),
                         *_converted(wide))
    both = dwd_fast.encode(boxes, labels, (20, 33), strides=(1, 2), layout="compact")
    assert [t.sizes.dtype for t in both] == [np.float16, np.float16]
    buf = (np.ones((2, 20, 33), np.uint8), np.ones((2, 20, 33), np.uint8), np.ones((2, 2, 20, 33), np.float16))
    for backend in ("cpu", "host"):
        _assert_bits(dwd_fast.encode(boxes, labels, (20, 33), out=buf, layout="compact", backend=backend),
                     *_converted(dwd_fast.encode(boxes, labels, (20, 33))))


def test_sizes_round_to_nearest_even_and_overflow_to_inf():
    """Box heights chosen on float16's rounding boundaries: ties go to the even neighbour, 65520 and up is inf."""
    heights = np.array([2049, 2051, 2050, 4097, 4099, 4101, 65504, 65519, 65520, 70000, 1 + 2 ** -11, 1 + 3 * 2 ** -11,
                        0.1, 1 / 3], np.float64)
    for h in heights:  # one tall box per call, its fixed 2 x 2 marker at the centre of a 10 x 10 page
        b = np.array([[1.0, 5.0 - h / 2, 3.0, 5.0 + h / 2]])
        t = dwd_fast.encode(b, np.array([7]), (10, 10), size=(2.0, 2.0), layout="compact")
        w = dwd_fast.encode(b, np.array([7]), (10, 10), size=(2.0, 2.0))
        on = w.energy > 0
        assert on.any()
        got = t.sizes[0][on]
        with np.errstate(over="ignore"):
            want = w.sizes[0][on].astype(np.float16)
        np.testing.assert_array_equal(got.view(np.uint16), want.view(np.uint16))
    # the hand-checked values of round-to-nearest-even (float16 steps: 2 from 2048, 4 from 4096)
    h16 = lambda h: dwd_fast.encode(np.array([[1.0, 5.0 - h / 2, 3.0, 5.0 + h / 2]]), np.array([1]), (10, 10),  # noqa
                                    size=(2.0, 2.0), layout="compact").sizes[0, 5, 2]
    assert h16(2049) == 2048 and h16(2051) == 2052 and h16(4098) == 4096 and h16(4102) == 4104
    assert h16(65504) == 65504 and h16(65519) == 65504 and np.isinf(h16(65520))


def _float_cases(rng):
    """float32 inputs on every float16 boundary: each half, each midpoint between neighbours and one float32 ulp
    either side, subnormal and overflow ranges, zeros, infinities, and random bit patterns."""
    halves = np.arange(0, 0x7c00, dtype=np.uint16).view(np.float16).astype(np.float32)
    nxt = np.arange(1, 0x7c01, dtype=np.uint16).view(np.float16).astype(np.float32)
    with np.errstate(over="ignore"):
        mid = ((halves.astype(np.float64) + nxt.astype(np.float64)) / 2).astype(np.float32)  # exact in float32
    mid[-1] = 65520.0  # the midpoint between 65504 and the next (inf) step
    cases = [halves, mid, np.nextafter(mid, np.float32(0)), np.nextafter(mid, np.float32(np.inf)),
             np.array([0.0, 2.0 ** -25, 2.0 ** -24, 2.0 ** -26, 1e-30, 3e38, np.inf, 1e-45], np.float32),
             rng.integers(0, 2 ** 32, 200_000, dtype=np.uint64).astype(np.uint32).view(np.float32),
             np.arange(0x33000000, 0x38800000, 97, dtype=np.uint32).view(np.float32)]
    x = np.concatenate(cases).astype(np.float32)
    x = np.concatenate([x, -x])
    return x[~np.isnan(x)]


def test_float_to_half_portable_and_f16c_equal_numpy():
    x = _float_cases(np.random.default_rng(0))
    with np.errstate(over="ignore"):
        want = x.astype(np.float16).view(np.uint16)
    scalar, used = cpu_ext().float_to_half(x, False)
    assert not used
    np.testing.assert_array_equal(scalar, want)
    vec, used = cpu_ext().float_to_half(x, True)
    np.testing.assert_array_equal(vec, want)  # F16C where the CPU has it (used), else the scalar code again
    for n in range(0, 20):  # the vector code's tails
        np.testing.assert_array_equal(cpu_ext().float_to_half(x[:n], True)[0], want[:n])


def test_float_to_half_nan_stays_nan():
    nan = np.array([np.nan, -np.nan], np.float32)
    payload = np.array([0x7fc00001, 0x7f800001, 0xffa00000], np.uint32).view(np.float32)
    for x in (nan, payload):
        s, _ = cpu_ext().float_to_half(x, False)
        v, _ = cpu_ext().float_to_half(x, True)
        assert np.all(np.isnan(s.view(np.float16))) and np.all(np.isnan(v.view(np.float16)))
        np.testing.assert_array_equal(s, v)


@pytest.mark.parametrize("labels, msg", [
    (np.array([1, 256]), r"labels: the compact layout stores classes as uint8 \(at most 255\), got label 256 at box 1"),
    (np.array([1000, 2]), "got label 1000 at box 0"),
])
def test_compact_labels_above_255_raise(labels, msg):
    boxes = np.array([[1, 1, 4, 4], [2, 2, 6, 6]], np.float32)
    for backend in ("cpu", "host"):
        with pytest.raises(ValueError, match=msg):
            dwd_fast.encode(boxes, labels, (8, 8), layout="compact", backend=backend)
    with pytest.raises(ValueError, match=r"labels\[1\]: the compact layout"):
        dwd_fast.encode([boxes[:1], boxes], [np.array([3]), labels], (8, 8), layout="compact")
    dwd_fast.encode(boxes, labels, (8, 8))  # the wide layout takes them


def test_bad_layout_and_out():
    b, lab = np.array([[1, 1, 3, 3]], np.float32), np.array([1])
    for layout in ("narrow", None, 1):
        with pytest.raises(ValueError, match="layout must be one of"):
            dwd_fast.encode(b, lab, (5, 5), layout=layout)
    wide = (np.zeros((5, 5), np.uint8), np.zeros((5, 5), np.int32), np.zeros((2, 5, 5), np.float32))
    compact = (np.zeros((5, 5), np.uint8), np.zeros((5, 5), np.uint8), np.zeros((2, 5, 5), np.float16))
    with pytest.raises(ValueError, match=r"out.classes must be uint8 of shape \(5, 5\) \(layout='compact'\)"):
        dwd_fast.encode(b, lab, (5, 5), out=wide, layout="compact")
    with pytest.raises(ValueError, match=r"out.classes must be int32 .*layout='wide'"):
        dwd_fast.encode(b, lab, (5, 5), out=compact)
    with pytest.raises(ValueError, match="out.sizes must be float16"):
        dwd_fast.encode(b, lab, (5, 5), out=compact[:2] + (np.zeros((2, 5, 5), np.float32),), layout="compact")


def test_compact_reference_page_equals_wide_converted():
    """A whole DeepScores-sized page of the benchmark (the banded painter's every path, thousands of objects,
    into fresh maps and into dirty ``out`` buffers)."""
    p = dwd_fast.data.reference_page(2000, seed=0)
    shape = dwd_fast.data.PAGE_SHAPE
    labels = np.asarray(p.labels) % 256
    want = _converted(dwd_fast.encode(p.boxes, labels, shape))
    _assert_bits(dwd_fast.encode(p.boxes, labels, shape, layout="compact"), *want)
    buf = (np.full(shape, 9, np.uint8), np.full(shape, 9, np.uint8), np.full((2,) + shape, 9, np.float16))
    _assert_bits(dwd_fast.encode(p.boxes, labels, shape, layout="compact", out=buf), *want)


@given(scene=scenes(max_side=90), opts=options, threads=st.sampled_from([2, 3, 5]), seed=st.integers(0, 1000))
def test_thread_settings_do_not_change_the_maps(scene, opts, threads, seed):
    """Any thread setting (even with min_work 0, where every phase that can split does) gives the one-thread maps,
    in both layouts, into fresh maps and into dirty ``out`` buffers."""
    from dwd_fast import _cpu

    boxes, labels, shape = _with_big_labels(scene, seed)
    boxes = np.concatenate([boxes] * 3) if len(boxes) else boxes  # markers across many bands
    labels = np.concatenate([labels] * 3) if len(labels) else labels
    old = _cpu.page_threads(1, -1)
    try:
        want = {lay: dwd_fast.encode(boxes, labels, shape, layout=lay, **opts) for lay in ("wide", "compact")}
        _cpu.page_threads(threads, 0)
        for lay, w in want.items():
            c, s = (np.uint8, np.float16) if lay == "compact" else (np.int32, np.float32)
            buf = (np.full(shape, 5, np.uint8), np.full(shape, 5, c), np.full((2,) + shape, 5, s))
            for t in (dwd_fast.encode(boxes, labels, shape, layout=lay, **opts),
                      dwd_fast.encode(boxes, labels, shape, layout=lay, out=buf, **opts)):
                np.testing.assert_array_equal(t.energy, w.energy)
                np.testing.assert_array_equal(t.classes, w.classes)
                np.testing.assert_array_equal(t.sizes.view(np.uint8), w.sizes.view(np.uint8))
    finally:
        _cpu.page_threads(*old)
