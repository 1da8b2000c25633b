"""Files written whole: a temporary file in the same folder, renamed over the target once complete, so
that a crash or an interrupt never leaves a half-written file under the final name."""

from __future__ import annotations

import os
import tempfile


def atomic_write(path, write, binary=False, suffix=".tmp"):
    """Call ``write(f)`` on a temporary file beside ``path``, then rename it to ``path``.

    ``suffix`` lets tools that look at the extension (Pillow's ``save``) see the right one.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=suffix, dir=folder)
    try:
        with os.fdopen(fd, "wb" if binary else "w") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def atomic_write_bytes(path, data):
    """Write ``data`` (bytes) to ``path`` whole."""
    atomic_write(path, lambda f: f.write(data), binary=True)


def save_image(img, path, **options):
    """``PIL.Image.save`` to ``path`` whole (the format from ``path``'s extension)."""
    ext = os.path.splitext(os.fspath(path))[1] or ".png"
    fmt = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}.get(ext.lower(), None)
    atomic_write(path, lambda f: img.save(f, format=fmt, **options), binary=True, suffix=ext)
