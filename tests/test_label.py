"""label: equality with skimage.measure.label; the data-parallel algorithm through HostExec."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from skimage.measure import label as sk_label

import dwd_fast
from tests.conftest import assert_unchanged, torch_or_skip
from tests.strategies import INT_DTYPES, blob_maps

pytestmark = pytest.mark.usefixtures("page_threads")

ORDERS = ["forward", "reversed", "shuffled"]


@given(a=blob_maps(levels=2), conn=st.sampled_from([1, 2]))
def test_bool_equals_skimage(a, conn):
    b = a.astype(bool)
    before = b.copy()
    out, n = dwd_fast.label(b, connectivity=conn, return_num=True)
    ref, rn = sk_label(b, connectivity=conn, return_num=True)
    assert out.dtype == np.int32
    assert n == rn
    np.testing.assert_array_equal(out, ref)
    assert_unchanged(before, b)


@given(a=blob_maps(levels=4), conn=st.sampled_from([1, 2]), dtype=st.sampled_from(INT_DTYPES[1:]))
def test_multivalued_equals_skimage(a, conn, dtype):
    a = a.astype(dtype)
    ref, rn = sk_label(a, connectivity=conn, return_num=True)
    out, n = dwd_fast.label(a, connectivity=conn, return_num=True)
    assert n == rn
    np.testing.assert_array_equal(out, ref)


@given(a=blob_maps(levels=3), conn=st.sampled_from([1, 2]), seed=st.integers(0, 1000))
def test_host_algorithm_equals_cpu_in_every_order(a, conn, seed):
    cpu = dwd_fast.label(a, connectivity=conn)
    for order in ORDERS:
        host = dwd_fast.label(a, connectivity=conn, backend="host", order=order, seed=seed)
        np.testing.assert_array_equal(host, cpu, err_msg=order)


def test_reference_page_equals_skimage_and_host(page250):
    b = page250.energy >= 8
    ref = sk_label(b, connectivity=2)
    np.testing.assert_array_equal(dwd_fast.label(b), ref)
    crop = b[:600, :500]
    for order in ORDERS:
        np.testing.assert_array_equal(dwd_fast.label(crop, backend="host", order=order), sk_label(crop))


def test_negative_and_extreme_values_are_labels():
    a = np.array([[-1, -1, 0, 127], [0, -128, 0, 127]], np.int8)
    np.testing.assert_array_equal(dwd_fast.label(a), sk_label(a))
    u = np.array([[2**64 - 1, 2**64 - 1], [0, 1]], np.uint64)
    np.testing.assert_array_equal(dwd_fast.label(u, connectivity=1), sk_label(u, connectivity=1))


def test_all_foreground_and_empty():
    a = np.ones((7, 5), bool)
    np.testing.assert_array_equal(dwd_fast.label(a), np.ones((7, 5), np.int32))
    z = np.zeros((4, 9), np.uint8)
    out, n = dwd_fast.label(z, return_num=True)
    assert n == 0 and not out.any()


def test_list_input():
    np.testing.assert_array_equal(dwd_fast.label([[1, 0, 1]]), [[1, 0, 2]])


def test_torch_in_torch_out():
    torch = torch_or_skip()
    t = torch.tensor([[1, 0, 1], [1, 0, 0]], dtype=torch.uint8)
    out = dwd_fast.label(t)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.int32
    assert out.tolist() == [[1, 0, 2], [1, 0, 0]]


@pytest.mark.parametrize("bad, exc, msg", [
    (np.zeros((2, 2, 2), np.uint8), ValueError, r"image must be 2-D \(H, W\), got shape \(2, 2, 2\)"),
    (np.zeros(3, np.uint8), ValueError, "image must be 2-D"),
    (np.zeros((2, 2), np.float32), TypeError, "image must be an integer or bool array, got dtype float32"),
    (np.zeros((2, 2), np.complex64), TypeError, "image has unsupported dtype complex64"),
    (None, TypeError, "image must be an array, got None"),
    ("abc", TypeError, "image must be an array"),
])
def test_bad_input(bad, exc, msg):
    with pytest.raises(exc, match=msg):
        dwd_fast.label(bad)


def test_bad_options():
    a = np.zeros((3, 3), np.uint8)
    with pytest.raises(ValueError, match="connectivity must be 1 or 2"):
        dwd_fast.label(a, connectivity=3)
    with pytest.raises(ValueError, match="backend must be"):
        dwd_fast.label(a, backend="gpu")
    with pytest.raises(ValueError, match="order must be one of"):
        dwd_fast.label(a, backend="host", order="sideways")
    with pytest.raises(RuntimeError, match="CUDA"):
        dwd_fast.label(a, backend="cuda")


def test_empty_image():
    out = dwd_fast.label(np.zeros((0, 5), np.uint8))
    assert out.shape == (0, 5)
