"""`dwd-fast demo` (engraved page, overlay PNG, precision / recall, timings) and `dwd-fast bench`."""

import json
import re
import sys

import numpy as np
import pytest

from dwd_fast import cli


def _cuda_usable():
    import dwd_fast

    return bool(dwd_fast.info()["cuda"].get("usable"))


def test_demo_writes_overlay_and_reports(tmp_path, capsys):
    pytest.importorskip("verovio")
    pytest.importorskip("resvg_py")
    Image = pytest.importorskip("PIL.Image")
    pytest.importorskip("skimage")
    assert cli.main(["demo", "--out", str(tmp_path), "--music", "chorale", "--repeat", "3", "--simulated"]) == 0
    captured = capsys.readouterr()
    out = captured.out
    png = tmp_path / "dwd_fast_demo.png"
    assert png.exists()
    with Image.open(png) as im:
        assert im.size == (947, 1334) and im.mode == "RGB"
        pixels = np.asarray(im)
    # the overlay has green ground-truth boxes and magenta detections on the grey page
    assert np.any((pixels[..., 1] > 150) & (pixels[..., 0] < 60) & (pixels[..., 2] < 60))
    assert np.any((pixels[..., 0] > 200) & (pixels[..., 1] < 60) & (pixels[..., 2] > 180))
    m = re.search(r"(\d+) objects of (\d+) classes", out)
    assert m and int(m.group(1)) > 100
    m = re.search(r"precision ([\d.]+), recall ([\d.]+) at IoU 0.5", out)
    assert m, out
    p, r = float(m.group(1)), float(m.group(2))
    assert 0.5 < p <= 1 and 0.5 < r <= 1
    m = re.search(r"COCO mAP@0.5 ([\d.]+), mAP ([\d.]+)", out)  # scored by dwd_fast.evaluate
    assert m, out
    map50, map_ = float(m.group(1)), float(m.group(2))
    assert 0.3 < map50 <= 1 and 0 < map_ <= map50
    m = re.search(r"dwd_fast.decode \(cpu\): ([\d.]+) ms .*scikit-image label \+ regionprops: ([\d.]+) ms .*same boxes", out)
    assert m, out
    assert "engraving" in captured.err  # progress for the steps that take more than a second


def test_demo_falls_back_without_verovio(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "verovio", None)
    assert cli.main(["demo", "--repeat", "3", "--show", "2"]) == 0
    captured = capsys.readouterr()
    assert "pip install 'dwd-fast[demo]'" in captured.err and "reference page" in captured.err
    assert "decoding the reference page" in captured.out


@pytest.mark.skipif(_cuda_usable(), reason="a GPU is present")
@pytest.mark.parametrize("cmd", ["demo", "bench"])
def test_device_cuda_without_gpu_is_a_clear_error(cmd, capsys):
    assert cli.main([cmd, "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "--device cuda" in err and "CUDA" in err


def test_bench_quick_subset(tmp_path, capsys):
    pytest.importorskip("skimage")
    pytest.importorskip("PIL")
    js, plot = tmp_path / "b.json", tmp_path / "b.png"
    assert cli.main(["bench", "--quick", "--only", "decode,label", "--pages", "250,120",
                     "--json", str(js), "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    data = json.loads(js.read_text())
    assert data["quick"] and data["machine"]["cores"] >= 1 and data["machine"]["numpy"]
    ops = {r["op"] for r in data["results"]}
    assert ops == {"decode", "decode grow_to=1", "label"}
    assert {r["page"] for r in data["results"]} == {"reference n=250", "reference n=120"}
    for r in data["results"]:
        assert r["ms"] > 0 and r["rounds"] >= 1
        assert r["correct"] in (None, True), r
    refs = [r for r in data["results"] if r["implementation"] == "skimage label+regionprops"]
    assert len(refs) == 2 and all(r["correct"] for r in refs)
    # the table: machine, versions, threads, then one row per (op, page, reference) with a ratio
    assert "Machine:" in out and "Threads:" in out and "numpy" in out
    rows = [l for l in out.splitlines() if l.startswith("| decode | reference n=250 |")]
    assert any("skimage label+regionprops" in l and "faster" in l for l in rows)
    assert plot.exists() and plot.stat().st_size > 1000


def test_bench_rejects_bad_options(capsys):
    assert cli.main(["bench", "--quick", "--only", "nothing-like-this"]) == 2
    assert "matches no op" in capsys.readouterr().err
    assert cli.main(["bench", "--quick", "--pages", "lots"]) == 2
    assert "--pages" in capsys.readouterr().err


def test_bench_names_missing_references(monkeypatch, capsys):
    pytest.importorskip("skimage")
    monkeypatch.setitem(sys.modules, "cc3d", None)
    assert cli.main(["bench", "--quick", "--only", "label", "--pages", "100"]) == 0
    out = capsys.readouterr().out
    assert "cc3d.connected_components" not in out
    assert "Not run, not installed: " in out and "cc3d" in out
