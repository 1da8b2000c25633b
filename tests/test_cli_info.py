"""The dwd-fast command, dwd_fast.info() and the CUDA extension's behaviour without a GPU."""

import json

import pytest

import dwd_fast
from dwd_fast import cli
from dwd_fast._ext import cuda_ext


def test_demo_matches_skimage(capsys):
    assert cli.main(["demo", "--reference", "--repeat", "3", "--show", "3"]) == 0
    out = capsys.readouterr().out
    assert "detections" in out and "same boxes and classes" in out


def test_info_command(capsys):
    assert cli.main(["info"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["version"] == dwd_fast.__version__
    assert d["cpu"]["threads"] >= 1 and d["cpu"]["pool_threads"] >= 1


def test_info_reports_cuda_status():
    i = dwd_fast.info()
    assert set(i) >= {"cpu", "cuda", "cuda_built", "cuda_archs"}
    if not i["cuda"]["usable"]:
        assert i["cuda"]["error"], "an unusable CUDA must say why"


def _gpu_usable():
    cu = cuda_ext()
    return cu is not None and cu.device_info()["usable"]


def test_cuda_extension_without_gpu_raises_clearly():
    cu = cuda_ext()
    if cu is None:
        pytest.skip("built without CUDA")
    if _gpu_usable():
        pytest.skip("a GPU is present")
    assert "75" in cu.archs.split(";")
    with pytest.raises(RuntimeError, match="cuda|CUDA|driver|device"):
        cu.selftest(1000)


@pytest.mark.cuda
@pytest.mark.skipif(not _gpu_usable(), reason="needs a CUDA GPU")
def test_cuda_selftest_on_gpu():
    n = 1 << 20
    assert cuda_ext().selftest(n) == sum(i % 3 for i in range(n))
