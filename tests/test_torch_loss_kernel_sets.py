"""The loss kernels' AVX-512 set against its AVX2 set: the 16-lane dense kernel adds the same terms in
the same order as the 8-lane one, so the float32 losses are equal, not only close (a machine's choice of
set does not change a training run)."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

import dwd_fast  # noqa: E402
from dwd_fast.torch import ops  # noqa: E402
from tests.test_torch_loss_kernels import batch, shapes  # noqa: E402


def _has_avx512():
    ext = dwd_fast._ext.cpu_ext()
    try:
        return ext.loss_use_kernels("avx512") == "avx512"
    finally:
        ext.loss_use_kernels("best")


pytestmark = pytest.mark.skipif(not _has_avx512(), reason="this CPU has no AVX-512 (the set compared)")


@settings(deadline=None, max_examples=15)
@given(shape=shapes, seed=st.integers(0, 2**16), density=st.sampled_from([0.05, 0.4, 1.0]),
       em=st.sampled_from(["fg_bg_balanced", "none", "by_class"]))
def test_avx512_and_avx2_sets_give_equal_losses(shape, seed, density, em):
    B, H, W, K, C = shape
    out, te, tc, ts = batch(seed, B, H * 3, W * 5, K, C, torch.uint8, density)
    out["energy"][:, :, ::7] *= 40  # some groups out of exp's range: recomputed shifted
    args = (out["energy"], out["classes"], out["sizes"], te, tc, ts, em, "by_class_no_bg", "mask_bg", "l2")
    ext = dwd_fast._ext.cpu_ext()
    got = {}
    try:
        for name in ("avx512", "avx2"):
            assert ext.loss_use_kernels(name) == name
            got[name] = ops.dwd_loss(*args)
    finally:
        ext.loss_use_kernels("best")
    assert torch.equal(got["avx512"], got["avx2"])
