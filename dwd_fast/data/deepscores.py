"""DeepScores in and out: read DeepScoresV2 (JSON) and DeepScores v1 (XML), write DeepScoresV2.

DeepScoresV2 is one JSON file per split (``deepscores_train.json``, ``deepscores_test.json``) beside an
``images/`` folder (and ``segmentation/``, ``instance/``), in the format of its authors' ``obb_anns``
toolkit::

    {"info": {...}, "annotation_sets": ["deepscores", "muscima++"],
     "categories": {"1": {"name": "brace", "annotation_set": "deepscores", "color": 1}, ...},
     "images": [{"id": 410, "filename": "x.png", "width": 2707, "height": 3828, "ann_ids": ["41408", ...]}],
     "annotations": {"41408": {"a_bbox": [x0, y0, x1, y1], "o_bbox": [8 floats: 4 corners],
                               "cat_id": ["135", "208"], "area": 24251, "img_id": "410",
                               "comments": "instance:#00a1f3;onset:2.5;duration:1;rel_position:-3;"}}}

``cat_id`` holds one category id per annotation set (``null`` where a set has none), ``img_id`` is a
string although image ids are integers. ``a_bbox`` and ``o_bbox`` come from different sources in the
real data and disagree by up to about 12 px: both are kept, neither is derived from the other.

DeepScores v1 is one PASCAL-VOC-like XML file per page (``xml_annotations/<name>.xml``, coordinates
relative to the page size) beside ``images_png/<name>.png``, a ``class_names.csv`` and split lists
``train_val_test/<split>.txt`` (lines ``<number>,<name>``).

Only numpy and Pillow (and the standard library) are used.
"""

from __future__ import annotations

import csv
import json
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import NamedTuple, Optional

import numpy as np

from .._files import atomic_write_bytes
from ._deepscores_categories import CATEGORIES, MUSCIMA_COUNTERPART

__all__ = ["read_deepscores", "read_deepscores_v1", "write_deepscores", "DeepScoresPage", "DeepScoresDataset",
           "DeepScoresFormatError", "CommentList", "deepscores_categories", "from_engraved", "min_area_rect",
           "parse_comments", "format_comments"]

ANNOTATION_SETS = ("deepscores", "muscima++")


class DeepScoresFormatError(ValueError):
    """A DeepScores file that does not follow the format; the message names the file and the record."""


# --------------------------------------------------------------------------------------------------
# Types
# --------------------------------------------------------------------------------------------------

class DeepScoresPage(NamedTuple):
    """One page of a DeepScores dataset and its annotations (of one annotation set).

    image_id : int
    filename : str
        The image's file name as the dataset lists it.
    path : str
        The image file (``images/<filename>`` beside the JSON; ``images_png/<name>.png`` in v1).
    width, height : int
        Page size in pixels, as the annotation file gives it.
    boxes : (N, 4) float32
        ``a_bbox``: axis-aligned ``(x0, y0, x1, y1)`` in pixels.
    oriented : (N, 4, 2) float32
        ``o_bbox``: the four corners ``(x, y)`` of the oriented box (v1: the axis-aligned box's corners).
    labels : (N,) int64
        Contiguous class ids 1..C (index the dataset's ``class_names``).
    category_ids : (N,) int64
        The dataset's category ids.
    area : (N,) float64
        ``area`` (the object's pixel count in V2; the box area in v1).
    ann_ids : (N,) int64
    comments : sequence of dict
        The parsed ``comments`` of each annotation (:func:`parse_comments`; a :class:`CommentList` when
        read from a file, parsed on access; its ``raw`` holds the strings).
    image : (H, W) uint8 or None
        The page itself when it is held in memory (pages made by :func:`from_engraved`), else None.
    segmentation : (H, W) uint8 or None
        Class segmentation (pixel = category colour) when held in memory, else None.
    """

    image_id: int
    filename: str
    path: str
    width: int
    height: int
    boxes: np.ndarray
    oriented: np.ndarray
    labels: np.ndarray
    category_ids: np.ndarray
    area: np.ndarray
    ann_ids: np.ndarray
    comments: list
    image: Optional[np.ndarray] = None
    segmentation: Optional[np.ndarray] = None

    @property
    def n(self):
        """Number of annotations."""
        return int(self.labels.shape[0])

    def load_image(self):
        """The page as a (height, width) uint8 grey image (255 = paper).

        Raises
        ------
        FileNotFoundError
            If the image file is missing.
        DeepScoresFormatError
            If its size is not the annotated ``width`` x ``height``.
        """
        if self.image is not None:
            return self.image
        return load_grey(self.path, (self.width, self.height), what=f"image {self.image_id}")


def load_grey(path, size=None, what="image"):
    """Read an image file as (H, W) uint8 grey; check its (width, height) against ``size`` if given."""
    from PIL import Image

    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what}: image file {path} does not exist")
    with Image.open(path) as im:
        if size is not None and tuple(im.size) != tuple(size):
            raise DeepScoresFormatError(f"{path}: {what} is {im.size[0]} x {im.size[1]} px but the annotations "
                                        f"say {size[0]} x {size[1]}")
        if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
            im = im.convert("RGBA")
            bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
            im = Image.alpha_composite(bg, im)
        return np.asarray(im.convert("L"))


class DeepScoresDataset:
    """Pages of a DeepScores dataset (one annotation set) and its label space.

    Attributes
    ----------
    pages : list of DeepScoresPage
    class_names : tuple of str
        ``class_names[0] == "background"``; labels 1..C index it.
    category_ids : (C + 1,) int64
        Label -> the dataset's category id (``category_ids[0] == -1``).
    colors : (C + 1,) int64
        Label -> the category's colour (segmentation pixel value; 0 for background).
    annotation_set : str
    skipped : int
        Annotations with no category in ``annotation_set`` (left out).
    path : str
        The file (V2) or folder (v1) read.
    """

    def __init__(self, pages, class_names, category_ids, annotation_set, skipped=0, path="", colors=None):
        self.pages = list(pages)
        self.class_names = tuple(class_names)
        self.category_ids = np.asarray(category_ids, np.int64)
        self.colors = (np.zeros(len(self.class_names), np.int64) if colors is None
                       else np.asarray(colors, np.int64))
        self.annotation_set = annotation_set
        self.skipped = int(skipped)
        self.path = str(path)

    def __len__(self):
        return len(self.pages)

    def __getitem__(self, i):
        return self.pages[i]

    def __iter__(self):
        return iter(self.pages)

    @property
    def num_classes(self):
        """C, the number of classes without the background."""
        return len(self.class_names) - 1

    def label_of(self, category_id):
        """The contiguous label of a dataset category id (KeyError if it is not in the set)."""
        lut = {int(c): i for i, c in enumerate(self.category_ids) if i > 0}
        return lut[int(category_id)]

    def __repr__(self):
        n = sum(p.n for p in self.pages)
        return (f"DeepScoresDataset({self.path!r}, annotation_set={self.annotation_set!r}, {len(self.pages)} pages, "
                f"{n} annotations, {self.num_classes} classes, skipped={self.skipped})")


def deepscores_categories(annotation_set="deepscores"):
    """DeepScoresV2's categories of one annotation set in id order: a list of ``(id, name, colour)``.

    Examples
    --------
    >>> cats = deepscores_categories()
    >>> len(cats), cats[0], cats[24]
    (136, (1, 'brace', 1), (25, 'noteheadBlackOnLine', 35))
    """
    if annotation_set not in ANNOTATION_SETS:
        raise ValueError(f"annotation_set must be one of {ANNOTATION_SETS}, got {annotation_set!r}")
    return [(i, n, c) for i, n, s, c in CATEGORIES if s == annotation_set]


# --------------------------------------------------------------------------------------------------
# Comments
# --------------------------------------------------------------------------------------------------

_FLOAT_KEYS = {"onset", "duration"}
_INT_KEYS = {"rel_position"}


def _typed(key, value):
    try:
        if key in _INT_KEYS:
            return int(value)
        if key in _FLOAT_KEYS:
            return float(value)
    except ValueError:
        pass
    return value


def parse_comments(text):
    """Parse an annotation's ``comments`` string (``"instance:#00a1f3;onset:2.5;duration:1;rel_position:-3;"``)
    into a dict: ``onset`` and ``duration`` become floats, ``rel_position`` an int, other values stay strings.

    Examples
    --------
    >>> parse_comments("instance:#00a1f3;onset:2.5;duration:1;rel_position:-3;")
    {'instance': '#00a1f3', 'onset': 2.5, 'duration': 1.0, 'rel_position': -3}
    >>> parse_comments("")
    {}
    """
    if not text:
        return {}
    try:
        out = dict(part.split(":", 1) for part in str(text).split(";") if part)
        for key in ("onset", "duration", "rel_position"):
            v = out.get(key)
            if v is not None:
                out[key] = _typed(key, v)
        return out
    except ValueError:  # a part without ':' (or with spaces): the careful way
        pass
    out = {}
    for part in str(text).split(";"):
        if not part:
            continue
        key, sep, value = part.partition(":")
        key = key.strip()
        out[key] = _typed(key, value.strip()) if sep else ""
    return out


class CommentList(Sequence):
    """The comments of a page's annotations: a read-only sequence of dicts (:func:`parse_comments`),
    parsed when read (a page of the real set holds hundreds). ``raw`` holds the strings as the file
    gives them. Compares equal to a list of the same dicts."""

    __slots__ = ("raw", "_parsed")

    def __init__(self, raw):
        self.raw = list(raw)
        self._parsed = {}

    def __len__(self):
        return len(self.raw)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self.raw)))]
        if i < 0:
            i += len(self.raw)
        d = self._parsed.get(i)
        if d is None:
            d = self._parsed[i] = parse_comments(self.raw[i])
        return d

    def __eq__(self, other):
        if isinstance(other, (list, tuple, CommentList)):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    def __repr__(self):
        return repr(list(self))


def format_comments(d):
    """The inverse of :func:`parse_comments`: ``{"onset": 2.5}`` -> ``"onset:2.5;"``."""
    parts = []
    for k, v in d.items():
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        parts.append(f"{k}:{v};")
    return "".join(parts)


# --------------------------------------------------------------------------------------------------
# DeepScoresV2 reader
# --------------------------------------------------------------------------------------------------

def _fail(path, msg):
    raise DeepScoresFormatError(f"{os.path.basename(path)}: {msg}")


def _label_space(path, categories, annotation_set):
    """(class_names, category_ids, colours, {category id string: label}) of one annotation set."""
    if not isinstance(categories, dict):
        _fail(path, f"'categories' must be an object keyed by category id, got {type(categories).__name__}")
    rows = []
    for k, v in categories.items():
        if not isinstance(v, dict) or "name" not in v or "annotation_set" not in v:
            _fail(path, f"category {k!r}: needs 'name' and 'annotation_set', got {v!r}")
        try:
            cid = int(k)
        except ValueError:
            _fail(path, f"category {k!r}: the key must be an integer id")
        if v["annotation_set"] == annotation_set:
            rows.append((cid, str(v["name"]), int(v.get("color", 0) or 0)))
    rows.sort()
    names = ("background",) + tuple(r[1] for r in rows)
    ids = np.array([-1] + [r[0] for r in rows], np.int64)
    colors = np.array([0] + [r[2] for r in rows], np.int64)
    lut = {}
    for label, (cid, _, _) in enumerate(rows, 1):
        lut[str(cid)] = label
        lut[cid] = label
    return names, ids, colors, lut


def read_deepscores(path, annotation_set="deepscores", *, check_images=True, box_tolerance=2.0):
    """Read a DeepScoresV2 annotation file (the obb_anns format), or a DeepScores v1 folder.

    Parameters
    ----------
    path : str or path-like
        A DeepScoresV2 JSON file (``deepscores_train.json``); its images are ``images/<filename>``
        beside it. A folder is read as DeepScores v1 (:func:`read_deepscores_v1`, all its pages).
    annotation_set : {"deepscores", "muscima++"}
        Whose categories label the annotations. Annotations with no category in this set are left
        out and counted in ``skipped``.
    check_images : bool
        Check that every image file exists and has the annotated size (reads each PNG's header).
        Pass False to read the annotations without the images.
    box_tolerance : float
        How far (pixels) an ``a_bbox`` may reach outside the image before it is an error.

    Returns
    -------
    DeepScoresDataset
        Labels are contiguous ids 1..C over the set's categories in category-id order (the same for
        every file with the same categories).

    Raises
    ------
    FileNotFoundError
        A missing annotation or image file.
    DeepScoresFormatError (a ValueError)
        Malformed JSON, an unknown annotation set, a box outside its image, a record that refers to
        nothing, an image whose size disagrees with the JSON. The message names the file and record.

    Examples
    --------
    >>> ds = read_deepscores("ds2_dense/deepscores_train.json")          # doctest: +SKIP
    >>> page = ds[0]; page.boxes.shape, ds.class_names[page.labels[0]]   # doctest: +SKIP
    ((243, 4), 'staff')
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        return read_deepscores_v1(path, check_images=check_images)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"DeepScores annotation file {path} does not exist")
    try:
        with open(path, "rb") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise DeepScoresFormatError(f"{os.path.basename(path)}: not valid JSON: {e}") from None
    except UnicodeDecodeError as e:
        raise DeepScoresFormatError(f"{os.path.basename(path)}: not valid JSON (bad UTF-8): {e}") from None
    if not isinstance(data, dict):
        _fail(path, f"the top level must be an object, got {type(data).__name__}")
    for key in ("categories", "images", "annotations"):
        if key not in data:
            _fail(path, f"no {key!r} (a DeepScoresV2 file has 'info', 'annotation_sets', 'categories', "
                        "'images' and 'annotations')")
    sets = data.get("annotation_sets")
    set_pos = None  # where cat_id lists the chosen set's category (the fast path)
    if sets is None:
        if not isinstance(data["categories"], dict):
            _fail(path, "'categories' must be an object keyed by category id")
        sets = sorted({str(v.get("annotation_set")) for v in data["categories"].values() if isinstance(v, dict)})
    elif not isinstance(sets, list) or not all(isinstance(x, str) for x in sets):
        _fail(path, f"'annotation_sets' must be a list of names, got {sets!r}")
    else:
        set_pos = sets.index(annotation_set) if annotation_set in sets else None
    if annotation_set not in sets:
        _fail(path, f"unknown annotation set {annotation_set!r}: the file has {list(sets)}")
    names, cat_ids, colors, lut = _label_space(path, data["categories"], annotation_set)
    anns = data["annotations"]
    if not isinstance(anns, dict):
        _fail(path, f"'annotations' must be an object keyed by annotation id, got {type(anns).__name__}")
    images = data["images"]
    if not isinstance(images, list):
        _fail(path, f"'images' must be a list, got {type(images).__name__}")
    root = os.path.join(os.path.dirname(os.path.abspath(path)), "images")
    pages = []
    skipped = 0
    seen_ids = set()
    inv = np.asarray(cat_ids, np.int64)
    for n_img, im in enumerate(images):
        page, sk = _read_v2_page(path, root, n_img, im, anns, lut, box_tolerance, set_pos, inv)
        if page.image_id in seen_ids:
            _fail(path, f"image {page.image_id}: the id appears twice in 'images'")
        seen_ids.add(page.image_id)
        skipped += sk
        if check_images:
            _check_image(path, page)
        pages.append(page)
    return DeepScoresDataset(pages, names, cat_ids, annotation_set, skipped, path, colors)


def _check_image(json_path, page):
    from PIL import Image

    if not os.path.isfile(page.path):
        raise FileNotFoundError(f"{os.path.basename(json_path)}: image {page.image_id}: {page.path} does not exist "
                                "(pass check_images=False to read the annotations alone)")
    with Image.open(page.path) as im:
        size = im.size
    if tuple(size) != (page.width, page.height):
        _fail(json_path, f"image {page.image_id} ({page.filename}): the file is {size[0]} x {size[1]} px but the "
                         f"JSON says {page.width} x {page.height}")


def _labels_fast(recs, lut, set_pos, siid):
    """Labels of a page's records when every cat_id is a list with the set's entry at ``set_pos`` and every
    img_id is the page's id string (the real files); None otherwise."""
    if set_pos is None:
        return None
    try:
        if not all(r["img_id"] == siid for r in recs):
            return None
        return np.fromiter((lut.get(r["cat_id"][set_pos], 0) for r in recs), np.int64, len(recs))
    except (TypeError, IndexError, KeyError):
        return None


def _labels_slow(path, recs, ann_ids, lut, iid):
    labels = np.zeros(len(recs), np.int64)
    siid = str(iid)
    for j, r in enumerate(recs):
        if "cat_id" not in r:
            _fail(path, f"annotation {str(ann_ids[j])!r}: no 'cat_id'")
        if "img_id" not in r:
            _fail(path, f"annotation {str(ann_ids[j])!r}: no 'img_id'")
        cats = r["cat_id"]
        lab = 0
        for c in (cats if isinstance(cats, list) else [cats]):
            if c is not None and not isinstance(c, (list, dict)):
                lab = lut.get(c, 0) or lut.get(str(c), 0)
                if lab:
                    break
        labels[j] = lab
        if str(r["img_id"]) != siid:
            _fail(path, f"annotation {str(ann_ids[j])!r}: img_id {r['img_id']!r} but image {iid} lists it")
    return labels


def _read_v2_page(path, root, n_img, im, anns, lut, tol, set_pos=None, inv=None):
    if not isinstance(im, dict):
        _fail(path, f"images[{n_img}]: must be an object, got {type(im).__name__}")
    try:
        iid = int(im["id"])
        fname = im.get("filename", im.get("file_name"))
        if fname is None:
            raise KeyError("filename")
        width, height = int(im["width"]), int(im["height"])
        ann_ids = im.get("ann_ids", [])
    except KeyError as e:
        _fail(path, f"images[{n_img}]: no {e.args[0]!r}")
    except (TypeError, ValueError) as e:
        _fail(path, f"images[{n_img}]: {e}")
    if width <= 0 or height <= 0:
        _fail(path, f"image {iid}: size {width} x {height} is not positive")
    if not isinstance(ann_ids, list):
        _fail(path, f"image {iid}: ann_ids must be a list, got {type(ann_ids).__name__}")
    try:
        recs = [anns[k] for k in ann_ids]  # the real files: string ids
    except (KeyError, TypeError):
        recs = []
        for k in ann_ids:
            r = anns.get(str(k))
            if r is None:
                _fail(path, f"image {iid}: annotation {str(k)!r} is listed in its ann_ids but not in 'annotations'")
            recs.append(r)
    if not all(type(r) is dict for r in recs):
        j = next(j for j, r in enumerate(recs) if not isinstance(r, dict))
        _fail(path, f"annotation {str(ann_ids[j])!r}: must be an object, got {type(recs[j]).__name__}")
    n = len(recs)
    siid = str(iid)
    try:
        labels = _labels_fast(recs, lut, set_pos, siid)
        if labels is None:
            labels = _labels_slow(path, recs, ann_ids, lut, iid)
        keep = labels > 0
        a = np.array([r["a_bbox"] for r in recs], np.float64).reshape(n, -1) if n else np.zeros((0, 4))
        o = np.array([r["o_bbox"] for r in recs], np.float64).reshape(n, -1) if n else np.zeros((0, 8))
        area = np.array([r["area"] for r in recs], np.float64) if n else np.zeros(0)
    except KeyError as e:
        bad = next(j for j, r in enumerate(recs) if e.args[0] not in r)
        _fail(path, f"annotation {str(ann_ids[bad])!r}: no {e.args[0]!r}")
    except (TypeError, ValueError):
        for j, r in enumerate(recs):
            for key, size in (("a_bbox", 4), ("o_bbox", 8)):
                v = r.get(key)
                if not (isinstance(v, list) and len(v) == size
                        and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)):
                    _fail(path, f"annotation {str(ann_ids[j])!r}: {key} must be {size} numbers, got {v!r}")
            if not isinstance(r.get("area"), (int, float)):
                _fail(path, f"annotation {str(ann_ids[j])!r}: area must be a number, got {r.get('area')!r}")
        raise
    if a.shape[1] != 4 or o.shape[1] != 8:
        for j, r in enumerate(recs):
            if len(r["a_bbox"]) != 4 or len(r["o_bbox"]) != 8:
                _fail(path, f"annotation {str(ann_ids[j])!r}: a_bbox needs 4 numbers and o_bbox 8, got "
                            f"{r['a_bbox']!r} and {r['o_bbox']!r}")
    bad = ~np.isfinite(a).all(1) | (a[:, 0] < -tol) | (a[:, 1] < -tol) | (a[:, 2] > width + tol) \
        | (a[:, 3] > height + tol) | (a[:, 2] < a[:, 0]) | (a[:, 3] < a[:, 1])
    if bad.any():
        j = int(np.flatnonzero(bad)[0])
        _fail(path, f"annotation {str(ann_ids[j])!r}: a_bbox {recs[j]['a_bbox']} lies outside image {iid} "
                    f"({width} x {height}) or is inverted")
    obad = ~np.isfinite(o).all(1) | (o[:, 0::2].min(1) < -tol - 16) | (o[:, 1::2].min(1) < -tol - 16) \
        | (o[:, 0::2].max(1) > width + tol + 16) | (o[:, 1::2].max(1) > height + tol + 16)
    if obad.any():
        j = int(np.flatnonzero(obad)[0])
        _fail(path, f"annotation {str(ann_ids[j])!r}: o_bbox {recs[j]['o_bbox']} lies outside image {iid} "
                    f"({width} x {height})")
    skipped = int(n - keep.sum())
    if skipped:
        idx = np.flatnonzero(keep)
        recs = [recs[j] for j in idx]
        a, o, area, labels = a[idx], o[idx], area[idx], labels[idx]
        ann_ids = [ann_ids[j] for j in idx]
    comments = CommentList([r.get("comments", "") or "" for r in recs])
    try:
        aid = np.array([int(x) for x in ann_ids], np.int64)
    except ValueError:
        _fail(path, f"image {iid}: annotation ids must be integers, got {ann_ids[:5]!r}")
    page = DeepScoresPage(iid, str(fname), os.path.join(root, str(fname)), width, height,
                          a.astype(np.float32), o.astype(np.float32).reshape(-1, 4, 2), labels,
                          inv[labels] if inv is not None else _category_ids_of(labels, lut), area, aid, comments)
    return page, skipped


def _category_ids_of(labels, lut):
    inv = np.zeros(max((v for v in lut.values()), default=0) + 1, np.int64)
    for k, v in lut.items():
        if isinstance(k, int):
            inv[v] = k
    return inv[labels] if labels.size else np.zeros(0, np.int64)


# --------------------------------------------------------------------------------------------------
# DeepScores v1 reader
# --------------------------------------------------------------------------------------------------

def _v1_dirs(root):
    """(images folder, xml folder) of a DeepScores v1 root (``segmentation_detection/`` or flat)."""
    for base in (os.path.join(root, "segmentation_detection"), root):
        img, xml = os.path.join(base, "images_png"), os.path.join(base, "xml_annotations")
        if os.path.isdir(xml):
            return img, xml
    raise FileNotFoundError(f"{root}: not a DeepScores v1 folder (no xml_annotations/ nor "
                            "segmentation_detection/xml_annotations/)")


def _v1_class_names(root):
    for p in (os.path.join(root, "class_names.csv"),
              os.path.join(root, "DeepScores_classification", "class_names.csv")):
        if os.path.isfile(p):
            break
    else:
        raise FileNotFoundError(f"{root}: no class_names.csv (looked in the folder and DeepScores_classification/)")
    rows = []
    with open(p, newline="", encoding="utf-8") as f:
        for n, row in enumerate(csv.reader(f), 1):
            if not row or not "".join(row).strip():
                continue
            if len(row) < 2:
                raise DeepScoresFormatError(f"class_names.csv: line {n}: expected '<id>,<name>', got {row!r}")
            try:
                cid = int(row[0])
            except ValueError:
                raise DeepScoresFormatError(f"class_names.csv: line {n}: the id {row[0]!r} is not an integer") from None
            rows.append((cid, row[1].strip()))
    if not rows:
        raise DeepScoresFormatError(f"class_names.csv: no classes in {p}")
    return rows


def read_deepscores_v1(root, split=None, *, check_images=True):
    """Read DeepScores v1: per-page XML annotations, ``class_names.csv`` and the split lists.

    Parameters
    ----------
    root : str or path-like
        The dataset folder: ``class_names.csv`` (or ``DeepScores_classification/class_names.csv``),
        ``images_png/`` and ``xml_annotations/`` (or both under ``segmentation_detection/``), and
        ``train_val_test/<split>.txt``.
    split : str or None
        ``"train"``, ``"val"``, ``"test"``... (the name of a ``train_val_test/*.txt`` list, lines
        ``<number>,<name>``); None reads every XML file.
    check_images : bool
        Check that each page's PNG exists and has the size of its XML's ``<size>``.

    Returns
    -------
    DeepScoresDataset
        Boxes are ``floor(relative * size)`` (as DeepScores v1's loaders convert them), ``oriented``
        the boxes' corners, ``area`` the box area; labels are 1..C in the order of ``class_names.csv``
        (a ``__background__`` row, if there is one, is label 0); ``category_ids`` are the CSV's ids.
    """
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"DeepScores v1 folder {root} does not exist")
    img_dir, xml_dir = _v1_dirs(root)
    rows = _v1_class_names(root)
    bg = [r for r in rows if r[1] in ("__background__", "background")]
    rows = [r for r in rows if r[1] not in ("__background__", "background")]
    names = ("background",) + tuple(r[1] for r in rows)
    cat_ids = np.array([bg[0][0] if bg else -1] + [r[0] for r in rows], np.int64)
    lut = {r[1]: i for i, r in enumerate(rows, 1)}
    if split is None:
        stems = sorted(f[:-4] for f in os.listdir(xml_dir) if f.endswith(".xml"))
    else:
        lst = os.path.join(root, "train_val_test", f"{split}.txt")
        if not os.path.isfile(lst):
            raise FileNotFoundError(f"{root}: no split list train_val_test/{split}.txt")
        stems = []
        with open(lst, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if line:
                    stems.append(line.split(",", 1)[1].strip() if "," in line else line)
    pages = []
    for iid, stem in enumerate(stems):
        pages.append(_read_v1_page(os.path.join(xml_dir, stem + ".xml"), os.path.join(img_dir, stem + ".png"),
                                   iid, lut, cat_ids, check_images))
    return DeepScoresDataset(pages, names, cat_ids, "deepscores_v1", 0, root)


def _read_v1_page(xml_path, png_path, iid, lut, cat_ids, check_images):
    base = os.path.basename(xml_path)
    if not os.path.isfile(xml_path):
        raise FileNotFoundError(f"{xml_path}: annotation file does not exist")
    try:
        tree = ET.parse(xml_path)
    except ET.ParseError as e:
        raise DeepScoresFormatError(f"{base}: not valid XML: {e}") from None
    size = tree.find("size")
    try:
        width = int(round(float(size.find("width").text)))
        height = int(round(float(size.find("height").text)))
    except (AttributeError, TypeError, ValueError):
        raise DeepScoresFormatError(f"{base}: no valid <size><width>/<height>") from None
    if width <= 0 or height <= 0:
        raise DeepScoresFormatError(f"{base}: size {width} x {height} is not positive")
    objs = tree.findall("object")
    rel = np.zeros((len(objs), 4), np.float64)
    labels = np.zeros(len(objs), np.int64)
    for j, obj in enumerate(objs):
        name = obj.findtext("name")
        name = name.strip() if name else name
        if name not in lut:
            raise DeepScoresFormatError(f"{base}: object {j}: class {name!r} is not in class_names.csv")
        labels[j] = lut[name]
        bb = obj.find("bndbox")
        try:
            rel[j] = [float(bb.find(k).text) for k in ("xmin", "ymin", "xmax", "ymax")]
        except (AttributeError, TypeError, ValueError):
            raise DeepScoresFormatError(f"{base}: object {j} ({name}): no valid <bndbox> xmin/ymin/xmax/ymax") from None
        if not (np.isfinite(rel[j]).all() and (rel[j] >= 0).all() and (rel[j] <= 1).all()
                and rel[j, 2] >= rel[j, 0] and rel[j, 3] >= rel[j, 1]):
            raise DeepScoresFormatError(f"{base}: object {j} ({name}): bndbox {rel[j].tolist()} lies outside the "
                                        f"page (v1 coordinates are relative, in [0, 1]) or is inverted")
    boxes = np.floor(rel * np.array([width, height, width, height], np.float64))
    x0, y0, x1, y1 = boxes.T
    oriented = np.stack([np.stack([x0, y0], 1), np.stack([x1, y0], 1), np.stack([x1, y1], 1),
                         np.stack([x0, y1], 1)], 1) if len(objs) else np.zeros((0, 4, 2))
    page = DeepScoresPage(iid, os.path.basename(png_path), png_path, width, height, boxes.astype(np.float32),
                          oriented.astype(np.float32), labels, cat_ids[labels], (x1 - x0) * (y1 - y0),
                          np.arange(len(objs), dtype=np.int64), [{} for _ in objs])
    if check_images:
        if not os.path.isfile(png_path):
            raise FileNotFoundError(f"{base}: its image {png_path} does not exist")
        from PIL import Image

        with Image.open(png_path) as im:
            if tuple(im.size) != (width, height):
                raise DeepScoresFormatError(f"{base}: the image {os.path.basename(png_path)} is {im.size[0]} x "
                                            f"{im.size[1]} px but the XML says {width} x {height}")
    return page


# --------------------------------------------------------------------------------------------------
# Minimum-area rectangle (convex hull + rotating calipers)
# --------------------------------------------------------------------------------------------------

def _convex_hull(pts):
    """Convex hull (counter-clockwise in x-right/y-up terms, no collinear points) of (n, 2) points
    (Andrew's monotone chain)."""
    pts = np.asarray(pts, np.float64)
    pts = pts[np.lexsort((pts[:, 1], pts[:, 0]))]
    if len(pts) > 1:
        d = np.any(pts[1:] != pts[:-1], axis=1)
        pts = pts[np.concatenate([[True], d])]
    if len(pts) <= 2:
        return pts
    pts = pts.tolist()

    def half(points):
        out = []
        for p in points:
            while len(out) >= 2:
                (ax, ay), (bx, by) = out[-2], out[-1]
                if (bx - ax) * (p[1] - ay) - (by - ay) * (p[0] - ax) <= 0:
                    out.pop()
                else:
                    break
            out.append((p[0], p[1]))
        return out

    lower = half(pts)
    upper = half(pts[::-1])
    return np.array(lower[:-1] + upper[:-1], np.float64)


def min_area_rect(mask, origin=(0, 0)):
    """The minimum-area rectangle enclosing the pixels of ``mask`` (each pixel ``(r, c)`` the unit square
    ``[c, c+1) x [r, r+1)``), by rotating calipers over the convex hull of the pixel squares' corners.

    Parameters
    ----------
    mask : (h, w) bool array
    origin : (x0, y0)
        Added to the corners (the mask's top-left pixel position on the page).

    Returns
    -------
    (4, 2) float64
        The corners ``(x, y)`` in order around the rectangle, or None if the mask is empty.

    Examples
    --------
    >>> m = np.zeros((5, 6), bool); m[1:3, 2:5] = True
    >>> r = min_area_rect(m); sorted(map(tuple, r.tolist()))
    [(2.0, 1.0), (2.0, 3.0), (5.0, 1.0), (5.0, 3.0)]
    """
    mask = np.asarray(mask, bool)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {mask.shape}")
    rows = np.flatnonzero(mask.any(1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(0))
    if rows[-1] - rows[0] + 1 == rows.size and cols[-1] - cols[0] + 1 == cols.size \
            and mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].all():
        # a full rectangle of pixels (a stem, a ledger line): it is its own minimum-area rectangle
        x0, y0, x1, y1 = float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1)
        return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]) + np.asarray(origin, np.float64)
    sub = mask[rows]
    first = sub.argmax(1)
    last = sub.shape[1] - 1 - sub[:, ::-1].argmax(1)
    # The hull of all pixel squares is the hull of each row's first and last pixel squares; of a run of
    # rows with the same first (last) column only the run's ends can be hull points.
    pts = []
    for col, off in ((first, 0), (last, 1)):
        keep = np.ones(len(rows), bool)
        if len(rows) > 2:
            same = (col[1:-1] == col[:-2]) & (col[1:-1] == col[2:]) & (rows[1:-1] == rows[:-2] + 1) \
                & (rows[1:-1] == rows[2:] - 1)
            keep[1:-1] = ~same
        c, r = col[keep] + off, rows[keep]
        pts.append(np.stack([np.concatenate([c, c]), np.concatenate([r, r + 1])], 1))
    xs, ys = np.concatenate(pts).T.astype(np.float64)
    hull = _convex_hull(np.stack([xs, ys], 1))
    if len(hull) < 3:
        hull = np.concatenate([hull, hull])[:3]
    edges = np.roll(hull, -1, 0) - hull
    lens = np.hypot(edges[:, 0], edges[:, 1])
    ok = lens > 0
    u = edges[ok] / lens[ok, None]  # edge directions
    v = np.stack([-u[:, 1], u[:, 0]], 1)
    pu = hull @ u.T  # (hull points, directions)
    pv = hull @ v.T
    umin, umax, vmin, vmax = pu.min(0), pu.max(0), pv.min(0), pv.max(0)
    areas = (umax - umin) * (vmax - vmin)
    k = int(np.argmin(areas))
    corners = np.array([umin[k] * u[k] + vmin[k] * v[k], umax[k] * u[k] + vmin[k] * v[k],
                        umax[k] * u[k] + vmax[k] * v[k], umin[k] * u[k] + vmax[k] * v[k]])
    return corners + np.asarray(origin, np.float64)


# --------------------------------------------------------------------------------------------------
# Engraved pages -> DeepScoresV2 classes
# --------------------------------------------------------------------------------------------------

# Engraved class (SMuFL glyph name or drawn shape) -> DeepScoresV2 name, where the names differ. Names
# that DeepScoresV2 spells as SMuFL does (stem, beam, slur, tie, brace, augmentationDot, flag8thUp,
# restQuarter, timeSig4, accidentalSharp, articAccentAbove, ...) map to themselves. Noteheads, key
# signature accidentals and C clefs need the page's context (see from_engraved).
ENGRAVED_TO_DEEPSCORES = {
    "gClef": "clefG", "gClefChange": "clefG", "fClef": "clefF", "fClefChange": "clefF",
    "unpitchedPercussionClef1": "clefUnpitchedPercussion", "ledgerLine": "legerLine",
    "dynamicPiano": "dynamicP", "dynamicMezzo": "dynamicM", "dynamicForte": "dynamicF",
    "dynamicSforzando": "dynamicS", "dynamicZ": "dynamicZ", "dynamicRinforzando": "dynamicR",
    "noteheadDoubleWholeSquare": "noteheadDoubleWhole",
}
_NOTEHEADS = {"noteheadBlack", "noteheadHalf", "noteheadWhole", "noteheadDoubleWhole"}
_KEY_ACCIDENTALS = {"accidentalSharp": "keySharp", "accidentalFlat": "keyFlat", "accidentalNatural": "keyNatural"}


def _glyph_context(root):
    """{<use> element: (staff line ys in pixels (sorted) or None, inside a key signature)} of a prepared
    Verovio page (the same transforms as the boxes: dwd_fast.data._svg)."""
    from . import _svg

    ctx = {}

    def visit(el, m, staff, keysig):
        tag = el.tag.replace(_svg.SVG, "")
        if tag == "defs":
            return
        if tag == "svg" and el is not root:
            vb = [float(v) for v in re.findall(_svg._NUM, el.get("viewBox", ""))]
            if len(vb) == 4 and el.get("width") and el.get("height"):
                s = min(float(el.get("width").rstrip("px")) / vb[2], float(el.get("height").rstrip("px")) / vb[3])
                m = _svg.compose(m, (s, 0.0, 0.0, s, -vb[0] * s, -vb[1] * s))
        m = _svg.compose(m, _svg.parse_transform(el.get("transform")))
        if tag == "use":
            ctx[el] = (staff, keysig)
            return
        classes = _svg._classes(el)
        if tag == "g" and "staff" in classes:
            ys = []
            for child in el:
                if child.tag == _svg.SVG + "path":
                    pts = _svg.path_points(child.get("d", ""))
                    if len(pts) == 2 and abs(pts[0, 1] - pts[1, 1]) < 1e-6 and abs(pts[0, 0] - pts[1, 0]) > 0:
                        cm = _svg.compose(m, _svg.parse_transform(child.get("transform")))
                        ys.append(float(_svg.apply(cm, pts[:1])[0, 1]))
            if len(ys) >= 2:
                staff = tuple(sorted(ys))
        if "keySig" in classes:
            keysig = True
        for child in el:
            visit(child, m, staff, keysig)

    visit(root, _svg.IDENTITY, None, False)
    return ctx


def _staff_step(staff, cy):
    """Half-spaces from the staff's top line down to ``cy`` (an integer) and the middle line's step."""
    sp = (staff[-1] - staff[0]) / (len(staff) - 1)
    return int(round((cy - staff[0]) / (sp / 2))), len(staff) - 1


def _deepscores_name(name, box, context):
    """DeepScoresV2 name of an engraved object (None when DeepScoresV2 has no class for it) and its
    comments (``rel_position`` of noteheads: half-spaces above the middle staff line)."""
    staff, keysig = context if context is not None else (None, False)
    cy = (box[1] + box[3]) / 2
    if name in _NOTEHEADS or name == "noteheadDoubleWholeSquare":
        if staff is None:
            return None, {}
        step, mid = _staff_step(staff, cy)
        base = "noteheadDoubleWhole" if name == "noteheadDoubleWholeSquare" else name
        return base + ("OnLine" if step % 2 == 0 else "InSpace"), {"rel_position": mid - step}
    if name in _KEY_ACCIDENTALS and keysig:
        return _KEY_ACCIDENTALS[name], {}
    if name in ("cClef", "cClefChange"):
        if staff is None:
            return None, {}
        step, mid = _staff_step(staff, cy)
        return {mid: "clefCAlto", mid - 2: "clefCTenor"}.get(step), {}
    return ENGRAVED_TO_DEEPSCORES.get(name, name), {}


def from_engraved(page, *, image_id=0, filename="", ink_threshold=128, segmentation=True):
    """An engraved page (:func:`dwd_fast.data.engraved_page`) as a DeepScoresV2 page.

    Each object is rendered alone to measure its ink: ``area`` is its ink pixel count (pixels darker
    than ``ink_threshold``), ``oriented`` the minimum-area rectangle of that ink
    (:func:`min_area_rect`); ``boxes`` are the page's boxes (from the SVG geometry, as ``a_bbox``).
    Classes become DeepScoresV2's: ``noteheadBlack`` becomes ``noteheadBlackOnLine`` or
    ``noteheadBlackInSpace`` by its position on the staff (staff lines read from the SVG), an
    accidental inside a key signature ``keySharp`` / ``keyFlat`` / ``keyNatural``, ``gClef`` ``clefG``,
    ``ledgerLine`` ``legerLine`` (:data:`ENGRAVED_TO_DEEPSCORES`). Objects DeepScoresV2 has no class
    for (``barline``, and any glyph it does not list) are left out. Labels and category ids are those
    of the ``deepscores`` annotation set (label = category id there).

    Returns
    -------
    DeepScoresPage
        With ``image`` (and ``segmentation``, pixel = category colour, when asked) held in memory.
    """
    from . import engraved

    H, W = page.image.shape
    root = ET.fromstring(page.svg)
    objs, boxes, _ = engraved._boxes(root, W, H)
    if len(objs) != len(page.boxes):
        raise ValueError("page.svg does not give page.boxes (was the EngravedPage modified?)")
    ctx = _glyph_context(root)
    names = page.names
    ds = {n: (i, c) for i, n, c in deepscores_categories("deepscores")}
    color_of = {i: c for i, c in ds.values()}
    keep, cats, comments = [], [], []
    for i, o in enumerate(objs):
        el = o.parts[0][0] if o.parts else None
        dsname, com = _deepscores_name(names[i], page.boxes[i], ctx.get(el))
        if dsname in ds:
            keep.append(i)
            cats.append(ds[dsname][0])
            comments.append(com)
    n = len(keep)
    oriented = np.zeros((n, 4, 2), np.float64)
    area = np.zeros(n, np.float64)
    seg = np.zeros((H, W), np.uint8) if segmentation else None
    pos = {i: j for j, i in enumerate(keep)}
    for i, img, (x0, y0) in engraved.render_alone(page, keep, margin=2):
        j = pos[i]
        ink = img < ink_threshold
        if not ink.any():
            ink = img < 255
        area[j] = float(ink.sum())
        r = min_area_rect(ink, (x0, y0))
        if r is None:
            bx = page.boxes[i]
            r = np.array([[bx[0], bx[1]], [bx[2], bx[1]], [bx[2], bx[3]], [bx[0], bx[3]]])
        oriented[j] = r
        if seg is not None:
            h, w = ink.shape
            ys, xs = max(0, y0), max(0, x0)
            ye, xe = min(H, y0 + h), min(W, x0 + w)
            if ye > ys and xe > xs:
                sub = ink[ys - y0:ye - y0, xs - x0:xe - x0]
                seg[ys:ye, xs:xe][sub] = color_of[cats[j]]
    cats = np.asarray(cats, np.int64)
    return DeepScoresPage(int(image_id), filename, "", W, H, page.boxes[keep].astype(np.float32).reshape(-1, 4),
                          oriented.astype(np.float32), cats.copy(), cats, area, np.arange(n, dtype=np.int64),
                          comments, page.image, seg)


# --------------------------------------------------------------------------------------------------
# DeepScoresV2 writer
# --------------------------------------------------------------------------------------------------

def _png_bytes(array):
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array, np.uint8), "L").save(buf, format="PNG")
    return buf.getvalue()


def _categories_json():
    return {str(i): {"name": n, "annotation_set": s, "color": c} for i, n, s, c in CATEGORIES}


def _info_json(info=None):
    out = {"description": "DeepScoresV2-format dataset written by dwd_fast", "version": "2.0",
           "year": 2026, "contributor": "dwd_fast", "date_created": "", "url": "https://tuggeluk.github.io/deepscores/"}
    if info:
        out.update(info)
    return out


_MUSCIMA_TO_DS = {}
for _d, _m in sorted(MUSCIMA_COUNTERPART.items()):
    _MUSCIMA_TO_DS.setdefault(_m, _d)
_VALID = {s: {i for i, _, s2, _ in CATEGORIES if s2 == s} for s in ANNOTATION_SETS}


def _r(x):
    return round(float(x), 3)


def _ann_records(page, annotation_set="deepscores"):
    """The annotations of a page as DeepScoresV2 records (without ``img_id``), in order."""
    n = len(page.category_ids)
    boxes = np.asarray(page.boxes, np.float64).reshape(n, 4)
    oriented = np.asarray(page.oriented, np.float64).reshape(n, 8)
    area = np.asarray(page.area, np.float64).reshape(n)
    comments = page.comments if page.comments is not None else [{}] * n
    if isinstance(comments, CommentList):
        comments = comments.raw
    out = []
    for j in range(n):
        c = int(page.category_ids[j])
        if c not in _VALID[annotation_set]:
            raise ValueError(f"page {page.image_id} ({page.filename}): category id {c} of annotation {j} is not a "
                             f"DeepScoresV2 {annotation_set!r} category")
        if annotation_set == "deepscores":
            m = MUSCIMA_COUNTERPART.get(c)
            cat = [str(c), None if m is None else str(m)]
        else:
            d = _MUSCIMA_TO_DS.get(c)
            cat = [None if d is None else str(d), str(c)]
        com = comments[j]
        out.append({"a_bbox": [_r(v) for v in boxes[j]], "o_bbox": [_r(v) for v in oriented[j]], "cat_id": cat,
                    "area": int(round(area[j])), "comments": com if isinstance(com, str) else format_comments(com)})
    return out


def _check_page_boxes(page):
    b = np.asarray(page.boxes, np.float64).reshape(-1, 4)
    bad = (b[:, 0] < 0) | (b[:, 1] < 0) | (b[:, 2] > page.width) | (b[:, 3] > page.height) | (b[:, 2] < b[:, 0]) \
        | (b[:, 3] < b[:, 1]) | ~np.isfinite(b).all(1)
    if bad.any():
        j = int(np.flatnonzero(bad)[0])
        raise ValueError(f"page {page.image_id} ({page.filename}): box {j} {b[j].tolist()} lies outside the "
                         f"{page.width} x {page.height} page or is inverted")


def _assemble_json(images, info=None):
    """The DeepScoresV2 JSON text of ``images``: a list of (image id, filename, width, height, records)."""
    img_list, anns = [], {}
    next_id = 1
    for iid, fname, w, h, recs, first in images:
        ids = []
        next_id = first if first is not None else next_id
        for r in recs:
            k = str(next_id)
            next_id += 1
            ids.append(k)
            rec = dict(r)
            rec["img_id"] = str(iid)
            anns[k] = {"a_bbox": rec["a_bbox"], "o_bbox": rec["o_bbox"], "cat_id": rec["cat_id"], "area": rec["area"],
                       "img_id": rec["img_id"], "comments": rec["comments"]}
        img_list.append({"id": int(iid), "filename": fname, "width": int(w), "height": int(h), "ann_ids": ids})
    data = {"info": _info_json(info), "annotation_sets": list(ANNOTATION_SETS), "categories": _categories_json(),
            "images": img_list, "annotations": anns}
    return json.dumps(data, separators=(",", ":"), ensure_ascii=True)


def write_deepscores(pages, out_dir, split="train", *, annotation_set="deepscores", info=None, segmentation=True,
                     first_image_id=1):
    """Write pages as a DeepScoresV2 dataset: ``images/<name>.png``, ``segmentation/<name>_seg.png`` and
    ``deepscores_<split>.json`` (the obb_anns format: see the module's docstring).

    Parameters
    ----------
    pages : iterable of DeepScoresPage or EngravedPage
        Engraved pages are converted with :func:`from_engraved`. A page's image is its ``image`` or its
        ``path`` file; its ``category_ids`` must be DeepScoresV2 categories of ``annotation_set``.
    out_dir : str or path-like
    split : str
        The JSON's name: ``deepscores_<split>.json``.
    annotation_set : {"deepscores", "muscima++"}
        What the pages' ``category_ids`` are; each annotation's ``cat_id`` lists its category in both
        sets (``null`` where the other set has no counterpart).
    info : dict, optional
        Entries of the JSON's ``info``.
    segmentation : bool
        Write ``segmentation/<name>_seg.png`` (pixel = category colour) for pages that carry one.
    first_image_id : int
        Image ids are ``first_image_id``, ``first_image_id + 1``, ... in page order; annotation ids
        count from 1 in page order.

    Returns
    -------
    str
        The JSON file's path. Every file is written under a temporary name and then renamed.
    """
    if annotation_set not in ANNOTATION_SETS:
        raise ValueError(f"annotation_set must be one of {ANNOTATION_SETS}, got {annotation_set!r}")
    if not isinstance(split, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", split):
        raise ValueError(f"split must be a plain name such as 'train' or 'test', got {split!r}")
    out_dir = os.fspath(out_dir)
    os.makedirs(os.path.join(out_dir, "images"), exist_ok=True)
    entries = []
    used = set()
    for k, page in enumerate(pages):
        iid = first_image_id + k
        if not isinstance(page, DeepScoresPage):
            if hasattr(page, "svg") and hasattr(page, "image"):
                page = from_engraved(page, image_id=iid, segmentation=segmentation)
            else:
                raise TypeError(f"pages[{k}] must be a DeepScoresPage or an EngravedPage, got {type(page).__name__}")
        fname = os.path.basename(page.filename) if page.filename else f"page_{iid:06d}.png"
        if not fname.lower().endswith(".png"):
            fname = os.path.splitext(fname)[0] + ".png"
        if fname in used:
            raise ValueError(f"pages[{k}]: the file name {fname} is used twice")
        used.add(fname)
        img = page.load_image()
        if img.shape != (page.height, page.width):
            raise ValueError(f"pages[{k}] ({fname}): the image is {img.shape[1]} x {img.shape[0]} px but the page "
                             f"says {page.width} x {page.height}")
        _check_page_boxes(page)
        recs = _ann_records(page, annotation_set)
        atomic_write_bytes(os.path.join(out_dir, "images", fname), _png_bytes(img))
        if segmentation and page.segmentation is not None:
            os.makedirs(os.path.join(out_dir, "segmentation"), exist_ok=True)
            stem = os.path.splitext(fname)[0]
            atomic_write_bytes(os.path.join(out_dir, "segmentation", stem + "_seg.png"), _png_bytes(page.segmentation))
        entries.append((iid, fname, page.width, page.height, recs, None))
    path = os.path.join(out_dir, f"deepscores_{split}.json")
    atomic_write_bytes(path, _assemble_json(entries, info).encode("ascii"))
    return path


# --------------------------------------------------------------------------------------------------
# make-dataset: engraved pages -> a DeepScoresV2 dataset (parallel, deterministic, resumable)
# --------------------------------------------------------------------------------------------------

PIECE_EVERY = 8  # every 8th page is one of the bundled pieces (in turn), the others random music


def page_specs(n, *, fonts=None, seed=0, measures=40):
    """The engraving of each page of :func:`make_dataset`: a list of dicts ``(index, stem, music, font,
    seed, measures)``. Page i is in font ``fonts[i % len(fonts)]``; every 8th page (i % 8 == 7) is a
    bundled piece (:data:`~dwd_fast.data.PIECES` in turn), the others random music with seed
    ``seed * 1_000_003 + i``."""
    from .engraved import FONTS, PIECES

    fonts = tuple(FONTS if not fonts else fonts)
    for f in fonts:
        if f not in FONTS:
            raise ValueError(f"font {f!r} is not one of {FONTS}")
    specs = []
    for i in range(int(n)):
        font = fonts[i % len(fonts)]
        if i % PIECE_EVERY == PIECE_EVERY - 1:
            music, s = PIECES[(i // PIECE_EVERY) % len(PIECES)], 0
        else:
            music, s = "random", int(seed) * 1_000_003 + i
        stem = f"dwd-s{int(seed)}-{i:06d}-{font.lower()}-{music}"
        specs.append(dict(index=i, stem=stem, music=music, font=font, seed=s, measures=int(measures)))
    return specs


def _make_one(spec, out_dir, segmentation=True):
    """Engrave one page and write its image, segmentation and record (record last: it marks the page done).
    Top-level so that spawned worker processes can run it."""
    from .engraved import engraved_page

    ep = engraved_page(spec["music"], font=spec["font"], seed=spec["seed"], measures=spec["measures"])
    page = from_engraved(ep, image_id=spec["index"] + 1, filename=spec["stem"] + ".png", segmentation=segmentation)
    recs = _ann_records(page)
    atomic_write_bytes(os.path.join(out_dir, "images", spec["stem"] + ".png"), _png_bytes(page.image))
    if segmentation:
        atomic_write_bytes(os.path.join(out_dir, "segmentation", spec["stem"] + "_seg.png"),
                            _png_bytes(page.segmentation))
    record = {"spec": spec, "width": page.width, "height": page.height, "annotations": recs}
    atomic_write_bytes(_record_path(out_dir, spec), json.dumps(record, separators=(",", ":")).encode("ascii"))
    return spec["index"], len(recs)


def _record_path(out_dir, spec):
    return os.path.join(out_dir, "records", spec["stem"] + ".json")


def _done(out_dir, spec, segmentation):
    p = _record_path(out_dir, spec)
    if not (os.path.isfile(p) and os.path.isfile(os.path.join(out_dir, "images", spec["stem"] + ".png"))):
        return False
    if segmentation and not os.path.isfile(os.path.join(out_dir, "segmentation", spec["stem"] + "_seg.png")):
        return False
    try:
        with open(p, encoding="ascii") as f:
            return json.load(f).get("spec") == spec
    except (OSError, ValueError):
        return False


class _Bar:
    """tqdm if installed, else a plain stderr bar."""

    def __init__(self, total, desc, enabled=True):
        import sys

        self.total, self.n, self.desc, self.enabled = total, 0, desc, enabled
        self._tqdm = None
        self._out = sys.stderr
        if enabled:
            try:
                from tqdm import tqdm

                self._tqdm = tqdm(total=total, desc=desc, unit="page")
            except ImportError:
                self._draw()

    def _draw(self):
        w = 30
        k = int(w * self.n / max(1, self.total))
        self._out.write(f"\r{self.desc} [{'#' * k}{'.' * (w - k)}] {self.n}/{self.total}")
        self._out.flush()

    def update(self, k=1):
        self.n += k
        if self._tqdm is not None:
            self._tqdm.update(k)
        elif self.enabled:
            self._draw()

    def close(self):
        if self._tqdm is not None:
            self._tqdm.close()
        elif self.enabled:
            self._out.write("\n")


def make_dataset(out_dir, pages, *, fonts=None, seed=0, test_share=0.2, jobs=1, measures=40, segmentation=True,
                 progress=True):
    """Engrave pages into a DeepScoresV2-format dataset: ``images/``, ``segmentation/``,
    ``deepscores_train.json`` and ``deepscores_test.json`` (the ``dwd-fast make-dataset`` command).

    Random music in every font plus the bundled pieces (:func:`page_specs`), converted with
    :func:`from_engraved` (DeepScoresV2's categories and colours). Deterministic: the same arguments
    give byte-identical JSON and PNG files whatever ``jobs``. Resumable: pages already written
    (``records/<page>.json`` with the same engraving, and its images) are kept, not engraved again.

    Parameters
    ----------
    out_dir : str or path-like
    pages : int
        Number of pages.
    fonts : sequence of str, optional
        SMuFL fonts to cycle through (default: all of :data:`~dwd_fast.data.FONTS`).
    seed : int
    test_share : float
        Share of pages in the test split (chosen by a permutation drawn with ``seed``).
    jobs : int
        Worker processes (spawned); 1 engraves in this process.
    measures : int
        Measures of random music (a page shows what fits; fewer measures, emptier pages).
    segmentation : bool
        Also write ``segmentation/<name>_seg.png``.
    progress : bool
        Show a progress bar on stderr.

    Returns
    -------
    dict
        ``train`` and ``test`` JSON paths, ``written`` and ``kept`` page counts, ``annotations``.
    """
    if isinstance(pages, bool) or not isinstance(pages, (int, np.integer)) or pages < 1:
        raise ValueError(f"pages must be a positive integer, got {pages!r}")
    if not 0 <= float(test_share) <= 1:
        raise ValueError(f"test_share must be in [0, 1], got {test_share!r}")
    if isinstance(jobs, bool) or not isinstance(jobs, (int, np.integer)) or jobs < 1:
        raise ValueError(f"jobs must be a positive integer, got {jobs!r}")
    out_dir = os.fspath(out_dir)
    specs = page_specs(pages, fonts=fonts, seed=seed, measures=measures)
    for sub in ("images", "records") + (("segmentation",) if segmentation else ()):
        os.makedirs(os.path.join(out_dir, sub), exist_ok=True)
    todo = [s for s in specs if not _done(out_dir, s, segmentation)]
    bar = _Bar(len(specs), "make-dataset", progress)
    bar.update(len(specs) - len(todo))
    try:
        if jobs == 1 or len(todo) <= 1:
            for s in todo:
                _make_one(s, out_dir, segmentation)
                bar.update()
        else:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor, as_completed

            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=int(jobs), mp_context=ctx) as ex:
                futs = [ex.submit(_make_one, s, out_dir, segmentation) for s in todo]
                for f in as_completed(futs):
                    f.result()
                    bar.update()
    finally:
        bar.close()
    # assemble the two JSON files (image ids = page index + 1, annotation ids counted over the dataset)
    rng = np.random.default_rng(int(seed))
    n_test = int(round(float(test_share) * len(specs)))
    test = set(rng.permutation(len(specs))[:n_test].tolist())
    splits = {"train": [], "test": []}
    next_ann = 1
    total = 0
    for s in specs:
        with open(_record_path(out_dir, s), encoding="ascii") as f:
            rec = json.load(f)
        splits["test" if s["index"] in test else "train"].append(
            (s["index"] + 1, s["stem"] + ".png", rec["width"], rec["height"], rec["annotations"], next_ann))
        next_ann += len(rec["annotations"])
        total += len(rec["annotations"])
    paths = {}
    for name, entries in splits.items():
        p = os.path.join(out_dir, f"deepscores_{name}.json")
        info = {"description": f"Engraved pages (Verovio, SMuFL fonts) in DeepScoresV2's format, {name} split "
                               f"(dwd_fast make-dataset, seed {int(seed)})"}
        atomic_write_bytes(p, _assemble_json(entries, info).encode("ascii"))
        paths[name] = p
    return {"train": paths["train"], "test": paths["test"], "written": len(todo), "kept": len(specs) - len(todo),
            "annotations": total}
