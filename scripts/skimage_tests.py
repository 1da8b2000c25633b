#!/usr/bin/env python
"""Fetch scikit-image's own tests for the functions dwd_fast.skimage replaces, once, into a cache dir.

The installed scikit-image wheel does not ship its tests; its sdist does. This script downloads the
sdist of the *installed* scikit-image version from PyPI (the simple index's JSON form, sha256
checked), extracts only the test modules of label (test_label, test_ccomp), regionprops, peak_local_max and
watershed, and prints the directory. The files stay in the cache (never in this
repository); tests/test_skimage_suite.py runs them against dwd_fast.skimage.

(``pip download --no-binary`` would be the ordinary route, but pip prepares an sdist's metadata before
it keeps the file, and for scikit-image that means configuring its meson build: minutes, and build
tools CI does not have.)

Usage: python scripts/skimage_tests.py [CACHE_DIR]   (default: $DWD_FAST_SKIMAGE_TESTS or
~/.cache/dwd_fast/skimage-tests). Prints the directory holding the test modules.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import tarfile
import urllib.request
from pathlib import Path

MEMBERS = {  # path in the sdist (under its top folder) -> file name in the cache
    "tests/skimage/measure/test_label.py": "test_label.py",
    "tests/skimage/measure/test_ccomp.py": "test_ccomp.py",
    "tests/skimage/measure/test_regionprops.py": "test_regionprops.py",
    "tests/skimage/feature/test_peak.py": "test_peak.py",
    "tests/skimage/segmentation/test_watershed.py": "test_watershed.py",
}


def default_dir() -> Path:
    env = os.environ.get("DWD_FAST_SKIMAGE_TESTS")
    return Path(env) if env else Path.home() / ".cache" / "dwd_fast" / "skimage-tests"


def cached(dest: Path):
    """The directory holding the installed scikit-image version's test modules under ``dest``, or None
    when they have not been fetched."""
    import skimage

    out = dest / skimage.__version__
    return out if all((out / name).is_file() for name in MEMBERS.values()) else None


def fetch(dest: Path) -> Path:
    import skimage

    version = skimage.__version__
    out = dest / version
    if cached(dest) is not None:
        return out
    req = urllib.request.Request("https://pypi.org/simple/scikit-image/",
                                 headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        index = json.load(r)
    wanted = f"scikit_image-{version}.tar.gz"
    files = [f for f in index["files"] if f["filename"] == wanted]
    if not files:
        raise SystemExit(f"no sdist {wanted} on PyPI")
    info = files[0]
    with urllib.request.urlopen(info["url"], timeout=300) as r:
        data = r.read()
    digest = hashlib.sha256(data).hexdigest()
    if "sha256" in info.get("hashes", {}) and digest != info["hashes"]["sha256"]:
        raise SystemExit(f"{wanted}: sha256 mismatch")
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tf:
        top = f"scikit_image-{version}/"
        for member, name in MEMBERS.items():
            f = tf.extractfile(top + member)
            if f is None:
                raise SystemExit(f"{wanted} has no {member}")
            (tmp / name).write_bytes(f.read())
    if out.exists():
        import shutil

        shutil.rmtree(out)
    os.replace(tmp, out)
    return out


if __name__ == "__main__":
    print(fetch(Path(sys.argv[1]) if len(sys.argv) > 1 else default_dir()))
