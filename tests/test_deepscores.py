"""DeepScores in and out: the V2 reader on hand-written files with each quirk of the real ones, the v1
reader, the writer (round trips), the minimum-area rectangle, engraved pages in DeepScoresV2's classes,
make-dataset (deterministic, resumable) and bad input for every reader."""

import json
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dwd_fast.data import deepscores as dsm
from dwd_fast.data.deepscores import (DeepScoresFormatError, DeepScoresPage, deepscores_categories,
                                      min_area_rect, parse_comments, read_deepscores, read_deepscores_v1,
                                      write_deepscores)

PIL = pytest.importorskip("PIL.Image")


def _png(path, w, h, value=255):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    PIL.fromarray(np.full((h, w), value, np.uint8)).save(path)


def _v2_dict():
    """A small DeepScoresV2 file in the real files' shape: categories keyed by string id in the file's
    interleaved order, cat_id strings with a null, img_id strings, 'file_name' on one image, comments,
    a_bbox and o_bbox that disagree."""
    return {
        "info": {"description": "test", "version": "2.0"},
        "annotation_sets": ["deepscores", "muscima++"],
        "categories": {
            "42": {"name": "stem", "annotation_set": "deepscores", "color": 52},
            "161": {"name": "stem", "annotation_set": "muscima++", "color": 52},
            "25": {"name": "noteheadBlackOnLine", "annotation_set": "deepscores", "color": 35},
            "157": {"name": "noteheadFullSmall", "annotation_set": "muscima++", "color": 38},
            "108": {"name": "stringsDownBow", "annotation_set": "deepscores", "color": 131},
            "135": {"name": "staff", "annotation_set": "deepscores", "color": 165},
        },
        "images": [
            {"id": 7, "filename": "page-a.png", "width": 60, "height": 40, "ann_ids": ["100", "101", "102"]},
            {"id": 9, "file_name": "page-b.png", "width": 30, "height": 20, "ann_ids": ["103", "104"]},
        ],
        "annotations": {
            "100": {"a_bbox": [10.5, 5.25, 12.0, 30.0], "o_bbox": [12.0, 30.0, 12.0, 5.0, 10.0, 5.0, 10.0, 30.0],
                    "cat_id": ["42", "161"], "area": 40, "img_id": "7",
                    "comments": "instance:#00a1f3;onset:2.5;duration:1;rel_position:-3;"},
            "101": {"a_bbox": [20, 10, 32, 20], "o_bbox": [33.0, 21.0, 33.0, 9.0, 19.0, 9.0, 19.0, 21.0],
                    "cat_id": ["25", "157"], "area": 96, "img_id": "7", "comments": ""},
            # a deepscores-only category (null for muscima++)
            "102": {"a_bbox": [40, 2, 48, 9], "o_bbox": [48, 9, 48, 2, 40, 2, 40, 9],
                    "cat_id": ["108", None], "area": 30, "img_id": "7", "comments": ""},
            "103": {"a_bbox": [0, 0, 30, 20], "o_bbox": [30, 20, 30, 0, 0, 0, 0, 20],
                    "cat_id": ["135", None], "area": 200, "img_id": "9", "comments": "rel_position:4;"},
            "104": {"a_bbox": [1, 1, 5, 19], "o_bbox": [5, 19, 5, 1, 1, 1, 1, 19],
                    "cat_id": ["42", "161"], "area": 50, "img_id": "9", "comments": ""},
        },
    }


def _write_v2(tmp_path, data=None, images=True, name="deepscores_train.json"):
    data = _v2_dict() if data is None else data
    p = tmp_path / name
    p.write_text(json.dumps(data))
    if images:
        for im in data["images"]:
            _png(str(tmp_path / "images" / im.get("filename", im.get("file_name"))), im["width"], im["height"])
    return p


def test_v2_reader_quirks(tmp_path):
    p = _write_v2(tmp_path)
    ds = read_deepscores(p)
    # labels: contiguous 1..C over the deepscores categories in category-id order
    assert ds.class_names == ("background", "noteheadBlackOnLine", "stem", "stringsDownBow", "staff")
    assert ds.category_ids.tolist() == [-1, 25, 42, 108, 135]
    assert ds.colors.tolist() == [0, 35, 52, 131, 165]
    assert ds.annotation_set == "deepscores" and ds.skipped == 0 and len(ds) == 2
    a, b = ds
    assert (a.image_id, a.filename, a.width, a.height) == (7, "page-a.png", 60, 40)
    assert b.filename == "page-b.png" and b.path == str(tmp_path / "images" / "page-b.png")
    assert a.boxes.dtype == np.float32 and a.boxes.shape == (3, 4)
    np.testing.assert_array_equal(a.boxes[0], np.float32([10.5, 5.25, 12.0, 30.0]))
    # o_bbox kept as given (it disagrees with a_bbox: never derived from it)
    np.testing.assert_array_equal(a.oriented[1], np.float32([[33, 21], [33, 9], [19, 9], [19, 21]]))
    assert a.oriented.shape == (3, 4, 2) and a.oriented.dtype == np.float32
    assert a.labels.tolist() == [2, 1, 3] and a.labels.dtype == np.int64
    assert a.category_ids.tolist() == [42, 25, 108] and a.ann_ids.tolist() == [100, 101, 102]
    assert a.area.tolist() == [40.0, 96.0, 30.0]
    assert a.comments[0] == {"instance": "#00a1f3", "onset": 2.5, "duration": 1.0, "rel_position": -3}
    assert a.comments[1] == {} and b.comments[0] == {"rel_position": 4}
    assert [ds.class_names[i] for i in b.labels] == ["staff", "stem"]
    assert a.load_image().shape == (40, 60) and a.load_image().dtype == np.uint8


def test_v2_reader_lenient_forms(tmp_path):
    """Integer img_id and cat_id entries, a single cat_id, no annotation_sets: the same pages."""
    d = _v2_dict()
    for a in d["annotations"].values():
        a["img_id"] = int(a["img_id"])
        a["cat_id"] = [None if c is None else int(c) for c in a["cat_id"]]
    d["annotations"]["103"]["cat_id"] = 135
    d["images"][0]["ann_ids"] = [int(k) for k in d["images"][0]["ann_ids"]]
    del d["annotation_sets"]
    ref = read_deepscores(_write_v2(tmp_path), check_images=False)
    (tmp_path / "x").mkdir()
    got = read_deepscores(_write_v2(tmp_path / "x", d, images=False), check_images=False)
    assert got.class_names == ref.class_names
    for p, q in zip(ref, got):
        for f in ("boxes", "oriented", "labels", "category_ids", "area", "ann_ids"):
            np.testing.assert_array_equal(getattr(p, f), getattr(q, f))
        assert p.comments == q.comments and list(p.comments) == list(q.comments)
    c = ref[0].comments
    assert isinstance(c, dsm.CommentList) and c[-3] == c[0] and c[0:2] == [c[0], {}] and c.raw[1] == ""


@pytest.mark.parametrize("annotation_set", ["deepscores", "muscima++"])
def test_v2_cat_id_follows_annotation_sets_order(tmp_path, annotation_set):
    d = _v2_dict()
    d["annotation_sets"] = ["muscima++", "deepscores"]
    for a in d["annotations"].values():
        a["cat_id"] = a["cat_id"][::-1]
    ref = read_deepscores(_write_v2(tmp_path), annotation_set, check_images=False)
    (tmp_path / "x").mkdir()
    got = read_deepscores(_write_v2(tmp_path / "x", d, images=False), annotation_set, check_images=False)
    assert got.skipped == ref.skipped
    for p, q in zip(ref, got):
        np.testing.assert_array_equal(p.category_ids, q.category_ids)
        np.testing.assert_array_equal(p.ann_ids, q.ann_ids)


def test_v2_reader_muscima_set_skips_and_counts(tmp_path):
    ds = read_deepscores(_write_v2(tmp_path), "muscima++")
    assert ds.class_names == ("background", "noteheadFullSmall", "stem")
    assert ds.category_ids.tolist() == [-1, 157, 161]
    assert ds.skipped == 2  # 102 and 103 have no muscima++ category
    assert ds[0].ann_ids.tolist() == [100, 101] and ds[0].category_ids.tolist() == [161, 157]
    assert ds[1].ann_ids.tolist() == [104]


def test_v2_labels_do_not_depend_on_key_order(tmp_path):
    d = _v2_dict()
    d["categories"] = dict(reversed(list(d["categories"].items())))
    (tmp_path / "x").mkdir()
    ds1 = read_deepscores(_write_v2(tmp_path), check_images=False)
    ds2 = read_deepscores(_write_v2(tmp_path / "x", d, images=False), check_images=False)
    assert ds1.class_names == ds2.class_names
    for p1, p2 in zip(ds1, ds2):
        np.testing.assert_array_equal(p1.labels, p2.labels)


def _obb_anns_restatement(path, annotation_set):
    """What the obb_anns toolkit's loader gives (its logic restated with plain json): per image id, the
    (ann id, category id of the set, a_bbox, o_bbox, area) of its annotations, in ann_ids order."""
    with open(path) as f:
        data = json.load(f)
    cats = {int(k): v for k, v in data["categories"].items()}
    ann = {int(k): v for k, v in data["annotations"].items()}
    out = {}
    for img in data["images"]:
        rows = []
        for i in img["ann_ids"]:
            a = ann[int(i)]
            ids = [int(c) for c in a["cat_id"] if c is not None and cats[int(c)]["annotation_set"] == annotation_set]
            if ids:
                rows.append((int(i), ids[0], a["a_bbox"], a["o_bbox"], a["area"]))
        out[int(img["id"])] = rows
    return out


@pytest.mark.parametrize("annotation_set", ["deepscores", "muscima++"])
def test_v2_reader_matches_obb_anns_logic(tmp_path, annotation_set):
    p = _write_v2(tmp_path)
    ref = _obb_anns_restatement(p, annotation_set)
    ds = read_deepscores(p, annotation_set)
    for page in ds:
        rows = ref[page.image_id]
        assert page.ann_ids.tolist() == [r[0] for r in rows]
        assert page.category_ids.tolist() == [r[1] for r in rows]
        np.testing.assert_allclose(page.boxes, np.array([r[2] for r in rows], np.float32).reshape(-1, 4))
        np.testing.assert_allclose(page.oriented.reshape(-1, 8), np.array([r[3] for r in rows]).reshape(-1, 8),
                                   rtol=1e-6)
        assert page.area.tolist() == [r[4] for r in rows]
        assert [ds.category_ids[i] for i in page.labels] == [r[1] for r in rows]


# -- bad input, V2 -------------------------------------------------------------------------------

def test_v2_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.json"):
        read_deepscores(tmp_path / "nope.json")


def test_v2_malformed_json(tmp_path):
    p = tmp_path / "deepscores_train.json"
    p.write_text('{"images": [')
    with pytest.raises(DeepScoresFormatError, match="deepscores_train.json: not valid JSON"):
        read_deepscores(p)
    p.write_text("[1, 2]")
    with pytest.raises(ValueError, match="top level"):
        read_deepscores(p)
    p.write_text('{"images": [], "annotations": {}}')
    with pytest.raises(ValueError, match="no 'categories'"):
        read_deepscores(p)


def test_v2_unknown_annotation_set(tmp_path):
    with pytest.raises(ValueError, match="deepscores_train.json: unknown annotation set 'muscima'"):
        read_deepscores(_write_v2(tmp_path), "muscima")


@pytest.mark.parametrize("box, what", [([-5, 0, 10, 10], "a_bbox"), ([50, 30, 61.5 + 2, 39], "a_bbox"),
                                       ([10, 30, 20, 45], "a_bbox"), ([20, 10, 10, 20], "inverted")])
def test_v2_box_outside_image(tmp_path, box, what):
    d = _v2_dict()
    d["annotations"]["101"]["a_bbox"] = box
    with pytest.raises(DeepScoresFormatError) as e:
        read_deepscores(_write_v2(tmp_path, d))
    msg = str(e.value)
    assert "deepscores_train.json" in msg and "annotation '101'" in msg and "image 7 (60 x 40)" in msg, msg


def test_v2_box_tolerance(tmp_path):
    d = _v2_dict()
    d["annotations"]["101"]["a_bbox"] = [-1.5, 0, 10, 41.0]  # within 2 px of the page
    assert read_deepscores(_write_v2(tmp_path, d))[0].boxes[1, 0] == -1.5
    with pytest.raises(DeepScoresFormatError, match="outside"):
        read_deepscores(_write_v2(tmp_path, d), box_tolerance=0)


def test_v2_image_size_disagrees(tmp_path):
    p = _write_v2(tmp_path)
    _png(str(tmp_path / "images" / "page-b.png"), 31, 20)
    with pytest.raises(DeepScoresFormatError, match=r"deepscores_train.json: image 9 \(page-b.png\): the file is "
                                                    r"31 x 20 px but the JSON says 30 x 20"):
        read_deepscores(p)
    ds = read_deepscores(p, check_images=False)  # annotations alone
    with pytest.raises(DeepScoresFormatError, match="page-b.png"):
        ds[1].load_image()


def test_v2_missing_image(tmp_path):
    p = _write_v2(tmp_path)
    os.remove(tmp_path / "images" / "page-a.png")
    with pytest.raises(FileNotFoundError, match="image 7"):
        read_deepscores(p)
    with pytest.raises(FileNotFoundError, match="page-a.png"):
        read_deepscores(p, check_images=False)[0].load_image()


@pytest.mark.parametrize("mutate, match", [
    (lambda d: d["images"][0]["ann_ids"].append("999"), "image 7: annotation '999' is listed"),
    (lambda d: d["annotations"]["101"].update(a_bbox=[1, 2, 3]), "annotation '101': a_bbox"),
    (lambda d: d["annotations"]["100"].update(o_bbox=[1, 2, 3, 4, 5, 6, 7, "x"]), "annotation '100': o_bbox"),
    (lambda d: d["annotations"]["101"].pop("cat_id"), "annotation '101': no 'cat_id'"),
    (lambda d: d["annotations"].update({"101": [1, 2]}), "annotation '101': must be an object"),
    (lambda d: d["images"][0].update(ann_ids="100"), "image 7: ann_ids must be a list"),
    (lambda d: d.update(annotation_sets="deepscores"), "'annotation_sets' must be a list"),
    (lambda d: d["annotations"]["104"].update(img_id="7"), "annotation '104': img_id '7' but image 9"),
    (lambda d: d["images"][1].pop("width"), r"images\[1\]: no 'width'"),
    (lambda d: d["images"][1].update(id=7, ann_ids=[]), "image 7: the id appears twice"),
    (lambda d: d["categories"].update(x={"name": "y", "annotation_set": "deepscores"}), "category 'x'"),
])
def test_v2_bad_records(tmp_path, mutate, match):
    d = _v2_dict()
    mutate(d)
    with pytest.raises(DeepScoresFormatError, match="deepscores_train.json: " + match):
        read_deepscores(_write_v2(tmp_path, d, images=False), check_images=False)


# -- DeepScores v1 ------------------------------------------------------------------------------

V1_CLASSES = ["noteheadBlack", "gClef", "stem"]


def _v1_xml(w, h, objs):
    parts = [f"<annotation><size><width>{w}</width><height>{h}</height><depth>1</depth></size>"]
    for name, (x0, y0, x1, y1) in objs:
        parts.append(f"<object><name>{name}</name><bndbox><xmin>{x0!r}</xmin><ymin>{y0!r}</ymin>"
                     f"<xmax>{x1!r}</xmax><ymax>{y1!r}</ymax></bndbox></object>")
    return "".join(parts) + "</annotation>"


def _write_v1(root, nested=True, pages=None):
    base = root / "segmentation_detection" if nested else root
    (base / "xml_annotations").mkdir(parents=True)
    (root / "train_val_test").mkdir()
    csv_dir = root / "DeepScores_classification" if nested else root
    csv_dir.mkdir(exist_ok=True)
    (csv_dir / "class_names.csv").write_text("".join(f"{i + 1},{n}\n" for i, n in enumerate(V1_CLASSES)))
    pages = pages or {
        "lg-1-page1": (100, 50, [("gClef", (0.05, 0.1, 0.129, 0.9)), ("noteheadBlack", (0.5, 0.4, 0.5999, 0.55))]),
        "lg-2-page3": (80, 60, [("stem", (0.25, 0.0, 0.2625, 1.0))]),
    }
    for stem, (w, h, objs) in pages.items():
        (base / "xml_annotations" / f"{stem}.xml").write_text(_v1_xml(w, h, objs))
        _png(str(base / "images_png" / f"{stem}.png"), w, h)
    names = list(pages)
    (root / "train_val_test" / "train.txt").write_text(f"0,{names[0]}\n")
    (root / "train_val_test" / "test.txt").write_text("".join(f"{i},{n}\n" for i, n in enumerate(names[1:])))
    return pages


@pytest.mark.parametrize("nested", [True, False])
def test_v1_reader(tmp_path, nested):
    pages = _write_v1(tmp_path, nested)
    ds = read_deepscores_v1(tmp_path)
    assert ds.class_names == ("background", *V1_CLASSES) and ds.category_ids.tolist() == [-1, 1, 2, 3]
    assert [p.filename for p in ds] == ["lg-1-page1.png", "lg-2-page3.png"]
    for page, (w, h, objs) in zip(ds, pages.values()):
        assert (page.width, page.height) == (w, h)
        # v1 boxes: floor(relative * size)
        want = np.array([[np.floor(v * s) for v, s in zip(b, (w, h, w, h))] for _, b in objs], np.float32)
        np.testing.assert_array_equal(page.boxes, want)
        assert [ds.class_names[i] for i in page.labels] == [n for n, _ in objs]
        x0, y0, x1, y1 = want.T
        np.testing.assert_array_equal(page.oriented[:, 0], np.stack([x0, y0], 1))
        np.testing.assert_array_equal(page.oriented[:, 2], np.stack([x1, y1], 1))
        np.testing.assert_array_equal(page.area, (x1 - x0) * (y1 - y0))
        assert page.load_image().shape == (h, w)
    assert [p.filename for p in read_deepscores_v1(tmp_path, "test")] == ["lg-2-page3.png"]
    assert [p.filename for p in read_deepscores(tmp_path)] == ["lg-1-page1.png", "lg-2-page3.png"]


def test_v1_bad_input(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_deepscores_v1(tmp_path / "none")
    with pytest.raises(FileNotFoundError, match="not a DeepScores v1 folder"):
        read_deepscores_v1(tmp_path)
    _write_v1(tmp_path)
    with pytest.raises(FileNotFoundError, match="train_val_test/val.txt"):
        read_deepscores_v1(tmp_path, "val")
    xml = tmp_path / "segmentation_detection" / "xml_annotations"
    good = (xml / "lg-1-page1.xml").read_text()
    for text, match in [
        (good.replace("gClef", "cClef"), "lg-1-page1.xml: object 0: class 'cClef' is not in class_names.csv"),
        (good.replace("0.129", "1.2"), r"lg-1-page1.xml: object 0 \(gClef\): bndbox .* outside"),
        (good.replace("<size>", "<sise>").replace("</size>", "</sise>"), "lg-1-page1.xml: no valid <size>"),
        (good[:-5], "lg-1-page1.xml: not valid XML"),
        (good.replace("<xmin>0.05</xmin>", ""), r"object 0 \(gClef\): no valid <bndbox>"),
    ]:
        (xml / "lg-1-page1.xml").write_text(text)
        with pytest.raises(DeepScoresFormatError, match=match):
            read_deepscores_v1(tmp_path)
    (xml / "lg-1-page1.xml").write_text(good)
    _png(str(tmp_path / "segmentation_detection" / "images_png" / "lg-1-page1.png"), 101, 50)
    with pytest.raises(DeepScoresFormatError, match=r"lg-1-page1.xml: the image lg-1-page1.png is 101 x 50 px but "
                                                    r"the XML says 100 x 50"):
        read_deepscores_v1(tmp_path)
    os.remove(xml / "lg-2-page3.xml")
    with pytest.raises(FileNotFoundError, match="lg-2-page3.xml"):
        read_deepscores_v1(tmp_path, "test")
    (tmp_path / "DeepScores_classification" / "class_names.csv").write_text("1,stem\nx,gClef\n")
    with pytest.raises(DeepScoresFormatError, match="class_names.csv: line 2"):
        read_deepscores_v1(tmp_path)


# -- comments, min-area rectangle ---------------------------------------------------------------

def test_comments():
    assert parse_comments("instance:#00a1f3;onset:2.5;duration:1;rel_position:-3;") == {
        "instance": "#00a1f3", "onset": 2.5, "duration": 1.0, "rel_position": -3}
    assert parse_comments("onset:x;") == {"onset": "x"}
    d = {"instance": "#010203", "onset": 0.25, "duration": 2.0, "rel_position": 5}
    assert parse_comments(dsm.format_comments(d)) == d


def _masks():
    def build(spec):
        h, w, rects, line = spec
        m = np.zeros((h, w), bool)
        for y, x, dy, dx in rects:
            m[y % h:y % h + dy, x % w:x % w + dx] = True
        if line is not None:
            a, t, L = line
            yy, xx = np.mgrid[:h, :w]
            u = (xx - w / 2) * np.cos(a) + (yy - h / 2) * np.sin(a)
            v = -(xx - w / 2) * np.sin(a) + (yy - h / 2) * np.cos(a)
            m |= (np.abs(v) < t) & (np.abs(u) < L)
        return m
    rect = st.tuples(st.integers(0, 60), st.integers(0, 60), st.integers(1, 20), st.integers(1, 20))
    line = st.none() | st.tuples(st.floats(0, 3.2), st.floats(0.6, 4), st.floats(2, 25))
    return st.tuples(st.integers(1, 50), st.integers(1, 50), st.lists(rect, min_size=1, max_size=4), line).map(build)


@settings(max_examples=150, deadline=None)
@given(_masks())
def test_min_area_rect_matches_opencv(mask):
    cv2 = pytest.importorskip("cv2")
    r = min_area_rect(mask, (3, -2))
    ys, xs = np.nonzero(mask)
    corners = np.concatenate([np.stack([xs + dx, ys + dy], 1) for dx in (0, 1) for dy in (0, 1)]).astype(np.float64)
    (_, _), (w, h), _ = cv2.minAreaRect(corners.astype(np.float32))
    e1, e2 = r[1] - r[0], r[3] - r[0]
    area = abs(e1[0] * e2[1] - e1[1] * e2[0])
    assert area == pytest.approx(w * h, rel=1e-4, abs=1e-3)
    assert abs(e1 @ e2) < 1e-6 * max(1.0, area)  # a rectangle
    # every pixel corner lies inside (shifted by the origin)
    c = corners + [3, -2]
    for e, o in ((e1, r[0]), (e2, r[0])):
        t = (c - o) @ e / (e @ e)
        assert t.min() > -1e-6 and t.max() < 1 + 1e-6
    assert min_area_rect(np.zeros((3, 3), bool)) is None


# -- writer: round trips -------------------------------------------------------------------------

DS_IDS = [i for i, _, _ in deepscores_categories()]


@st.composite
def _pages(draw):
    n_pages = draw(st.integers(1, 3))
    out = []
    for k in range(n_pages):
        w, h = draw(st.integers(8, 40)), draw(st.integers(8, 40))
        n = draw(st.integers(0, 12))
        x0 = np.array(draw(st.lists(st.floats(0, w - 1, width=32), min_size=n, max_size=n)), np.float64)
        y0 = np.array(draw(st.lists(st.floats(0, h - 1, width=32), min_size=n, max_size=n)), np.float64)
        x1 = np.minimum(w, x0 + np.array(draw(st.lists(st.floats(0, 20), min_size=n, max_size=n))))
        y1 = np.minimum(h, y0 + np.array(draw(st.lists(st.floats(0, 20), min_size=n, max_size=n))))
        boxes = np.round(np.stack([x0, y0, x1, y1], 1).reshape(-1, 4), 3)
        ang = np.array(draw(st.lists(st.floats(0, 3), min_size=n, max_size=n)))
        corners = (boxes[:, None, :2] + boxes[:, None, 2:]) / 2 + np.stack(
            [np.cos(ang), np.sin(ang)], 1)[:, None] * np.array([-3, -1, 1, 3])[None, :, None]
        cats = np.array(draw(st.lists(st.sampled_from(DS_IDS), min_size=n, max_size=n)), np.int64)
        area = np.array(draw(st.lists(st.integers(0, 400), min_size=n, max_size=n)), np.float64)
        com = [draw(st.sampled_from([{}, {"rel_position": -3}, {"onset": 2.5, "duration": 0.5},
                                     {"instance": "#00a1f3", "rel_position": 1}])) for _ in range(n)]
        img = np.array(draw(st.lists(st.integers(0, 255), min_size=w * h, max_size=w * h)), np.uint8).reshape(h, w)
        seg = (img // 64).astype(np.uint8)
        out.append(DeepScoresPage(0, f"p{k}.png", "", w, h, boxes.astype(np.float32), np.round(corners, 3)
                                  .astype(np.float32), cats.copy(), cats, area, np.arange(n), com, img, seg))
    return out


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(_pages())
def test_write_read_round_trip(tmp_path, pages):
    out = tmp_path / "rt"
    path = write_deepscores(pages, out, "train")
    ds = read_deepscores(path)
    assert len(ds) == len(pages) and ds.num_classes == 136 and ds.skipped == 0
    assert ds.class_names[1:] == tuple(n for _, n, _ in deepscores_categories())
    for p, q in zip(pages, ds):
        assert (q.filename, q.width, q.height) == (p.filename, p.width, p.height)
        np.testing.assert_allclose(q.boxes, p.boxes, atol=1e-3)
        np.testing.assert_allclose(q.oriented, p.oriented, atol=1e-3)
        np.testing.assert_array_equal(q.category_ids, p.category_ids)
        np.testing.assert_array_equal(ds.category_ids[q.labels], p.category_ids)
        np.testing.assert_array_equal(q.area, p.area)
        assert q.comments == p.comments
        np.testing.assert_array_equal(q.load_image(), p.image)
        seg = np.asarray(PIL.open(out / "segmentation" / (p.filename[:-4] + "_seg.png")))
        np.testing.assert_array_equal(seg, p.segmentation)
    # the muscima++ view of the same file: each annotation with a counterpart, the rest skipped
    mp = read_deepscores(path, "muscima++")
    n_counter = sum(int(c) in dsm.MUSCIMA_COUNTERPART for p in pages for c in p.category_ids)
    assert sum(q.n for q in mp) == n_counter and mp.skipped == sum(p.n for p in pages) - n_counter
    # no temporary files left
    assert not [f for _, _, fs in os.walk(out) for f in fs if f.endswith(".tmp")]


def test_written_json_schema(tmp_path):
    d = read_deepscores(_write_v2(tmp_path))
    path = write_deepscores(list(d), tmp_path / "out", "test", info={"description": "x"})
    assert os.path.basename(path) == "deepscores_test.json"
    with open(path) as f:
        data = json.load(f)
    assert list(data) == ["info", "annotation_sets", "categories", "images", "annotations"]
    assert data["annotation_sets"] == ["deepscores", "muscima++"] and data["info"]["description"] == "x"
    assert len(data["categories"]) == 208 and data["categories"]["25"] == {
        "name": "noteheadBlackOnLine", "annotation_set": "deepscores", "color": 35}
    assert [im["id"] for im in data["images"]] == [1, 2]
    assert data["images"][0]["ann_ids"] == ["1", "2", "3"] and data["images"][0]["filename"] == "page-a.png"
    a = data["annotations"]["1"]
    assert a["img_id"] == "1" and a["cat_id"] == ["42", "161"] and isinstance(a["area"], int)
    assert a["comments"] == "instance:#00a1f3;onset:2.5;duration:1;rel_position:-3;"
    assert data["annotations"]["3"]["cat_id"] == ["108", None]
    assert _obb_anns_restatement(path, "deepscores")[1][0][1] == 42


def test_writer_bad_input(tmp_path):
    d = read_deepscores(_write_v2(tmp_path))
    p = d[0]
    with pytest.raises(ValueError, match="box 1 .* outside the 60 x 40 page"):
        write_deepscores([p._replace(boxes=p.boxes + np.float32([0, 0, 30, 0]))], tmp_path / "o")
    with pytest.raises(ValueError, match="category id 9999"):
        write_deepscores([p._replace(category_ids=np.array([42, 9999, 25]))], tmp_path / "o")
    with pytest.raises(ValueError, match="split must be"):
        write_deepscores([p], tmp_path / "o", "../x")
    with pytest.raises(TypeError, match="pages\\[0\\]"):
        write_deepscores([{"boxes": 1}], tmp_path / "o")
    with pytest.raises(ValueError, match="page-a.png: image 7 is 60 x 40 px but the annotations say 61 x 40"):
        write_deepscores([p._replace(width=61)], tmp_path / "o")
    with pytest.raises(ValueError, match=r"pages\[0\] \(page-a.png\): the image is 60 x 40 px but the page says 61"):
        write_deepscores([p._replace(width=61, image=np.zeros((40, 60), np.uint8))], tmp_path / "o")
    assert not (tmp_path / "o" / "deepscores_train.json").exists()


# -- engraved pages -----------------------------------------------------------------------------

def test_deepscores_names_from_context():
    staff = (100.0, 110.0, 120.0, 130.0, 140.0)  # staff space 10
    name = dsm._deepscores_name
    assert name("noteheadBlack", (0, 115, 10, 125), (staff, False)) == ("noteheadBlackOnLine", {"rel_position": 0})
    assert name("noteheadBlack", (0, 100, 10, 110), (staff, False)) == ("noteheadBlackInSpace", {"rel_position": 3})
    assert name("noteheadHalf", (0, 145, 10, 155), (staff, False)) == ("noteheadHalfOnLine", {"rel_position": -6})
    assert name("noteheadWhole", (0, 85, 10, 95), (staff, False))[0] == "noteheadWholeOnLine"
    assert name("noteheadBlack", (0, 0, 1, 1), None) == (None, {})
    assert name("accidentalSharp", (0, 0, 1, 1), (staff, True))[0] == "keySharp"
    assert name("accidentalSharp", (0, 0, 1, 1), (staff, False))[0] == "accidentalSharp"
    assert name("accidentalFlat", (0, 0, 1, 1), (staff, True))[0] == "keyFlat"
    assert name("cClef", (0, 100, 10, 140), (staff, False))[0] == "clefCAlto"
    assert name("cClef", (0, 90, 10, 130), (staff, False))[0] == "clefCTenor"
    assert name("gClef", (0, 0, 1, 1), None)[0] == "clefG" and name("ledgerLine", (0, 0, 1, 1), None)[0] == "legerLine"
    ds_names = {n for _, n, _ in deepscores_categories()}
    assert set(dsm.ENGRAVED_TO_DEEPSCORES.values()) - {"noteheadDoubleWhole"} <= ds_names


@pytest.fixture(scope="module")
def engraved_small():
    pytest.importorskip("verovio")
    pytest.importorskip("resvg_py")
    from dwd_fast.data import engraved_page

    p = engraved_page("random", seed=5, measures=8)
    return p, dsm.from_engraved(p, image_id=3, filename="x.png")


def test_from_engraved(engraved_small):
    ep, page = engraved_small
    names = dict((i, n) for i, n, _ in deepscores_categories())
    got = [names[c] for c in page.category_ids]
    for n in ("stem", "clefG", "clefF", "brace", "legerLine", "noteheadBlackOnLine", "noteheadBlackInSpace"):
        assert n in got, n
    assert "barline" not in got and page.n == sum(n != "barline" for n in ep.names)
    np.testing.assert_array_equal(page.labels, page.category_ids)  # label = category id in the deepscores set
    # oriented box: its area is at most the axis-aligned ink box's, and it covers the ink (area > 0)
    e1 = page.oriented[:, 1] - page.oriented[:, 0]
    e2 = page.oriented[:, 3] - page.oriented[:, 0]
    o_area = np.abs(e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0])
    assert (page.area > 0).all() and (o_area >= page.area * 0.999).all()
    b = page.boxes
    assert (o_area <= (b[:, 2] - b[:, 0] + 3) * (b[:, 3] - b[:, 1] + 3)).all()
    # segmentation: pixel = category colour where the ink of some object is
    colors = {i: c for i, _, c in deepscores_categories()}
    assert set(np.unique(page.segmentation).tolist()) <= {0} | {colors[c] for c in page.category_ids}
    ink = ep.image < 128
    assert (page.segmentation[ink] > 0).mean() > 0.5  # staff lines and barlines are ink without a class


def test_noteheads_on_line_or_in_space(engraved_small):
    """An independent look at the picture: a notehead on a line has a (staff or ledger) line through its
    centre, visible just beside the head; one in a space has paper there (most of the time)."""
    ep, page = engraved_small
    names = dict((i, n) for i, n, _ in deepscores_categories())
    img = ep.image
    on, space = [], []
    for b, c in zip(page.boxes, page.category_ids):
        n = names[c]
        if n not in ("noteheadBlackOnLine", "noteheadBlackInSpace"):
            continue
        cy = int((b[1] + b[3]) / 2)
        xs = [int(b[0]) - 2, int(np.ceil(b[2])) + 3]
        line = any(img[cy - 1:cy + 2, x].min() < 128 for x in xs if 0 <= x < img.shape[1])
        (on if n.endswith("OnLine") else space).append(line)
    assert len(on) > 10 and len(space) > 10
    assert np.mean(on) > 0.9 and np.mean(space) < 0.3, (np.mean(on), np.mean(space))


def test_engraved_round_trip(tmp_path, engraved_small):
    ep, page = engraved_small
    path = write_deepscores([page], tmp_path, "train")
    ds = read_deepscores(path)
    q = ds[0]
    np.testing.assert_allclose(q.boxes, page.boxes, atol=1e-3)
    np.testing.assert_array_equal(q.category_ids, page.category_ids)
    np.testing.assert_array_equal(q.load_image(), ep.image)
    assert [c.get("rel_position") for c in q.comments] == [c.get("rel_position") for c in page.comments]


# -- make-dataset -------------------------------------------------------------------------------

def _files(d):
    out = {}
    for root, _, fs in os.walk(d):
        for f in fs:
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, d)] = fh.read()
    return out


def test_make_dataset_deterministic_and_resumable(tmp_path):
    pytest.importorskip("verovio")
    from dwd_fast import cli

    a, b = tmp_path / "a", tmp_path / "b"
    kw = dict(seed=4, measures=3, test_share=0.5, fonts=["Bravura", "Leland"], progress=False)
    r = dsm.make_dataset(a, 2, jobs=1, **kw)
    assert (r["written"], r["kept"]) == (2, 0)
    assert cli.main(["make-dataset", str(b), "--pages", "2", "--seed", "4", "--measures", "3", "--test-share", "0.5",
                     "--fonts", "Bravura,Leland", "--jobs", "2", "--quiet"]) == 0
    fa, fb = _files(a), _files(b)
    assert sorted(fa) == sorted(fb) and all(fa[k] == fb[k] for k in fa)  # byte-identical whatever --jobs
    assert {"deepscores_train.json", "deepscores_test.json"} <= set(fa)
    train, test = read_deepscores(r["train"]), read_deepscores(r["test"])
    assert len(train) == len(test) == 1 and train[0].n > 0 and train[0].image_id != test[0].image_id
    assert not set(train[0].ann_ids) & set(test[0].ann_ids)
    fonts = sorted(p.filename.split("-")[3] for p in (train[0], test[0]))
    assert fonts == ["bravura", "leland"]
    # resumable: a lost page is engraved again, the other kept (not rewritten)
    imgs = sorted((a / "images").iterdir())
    os.remove(a / "records" / (imgs[0].stem + ".json"))
    t_kept = os.stat(imgs[1]).st_mtime_ns
    r2 = dsm.make_dataset(a, 2, jobs=1, **kw)
    assert (r2["written"], r2["kept"]) == (1, 1) and os.stat(imgs[1]).st_mtime_ns == t_kept
    assert _files(a) == fa
    with pytest.raises(ValueError, match="pages"):
        dsm.make_dataset(a, 0)
    with pytest.raises(ValueError, match="font"):
        dsm.make_dataset(a, 1, fonts=["Arial"])


def test_demo_writes_a_one_page_dataset(tmp_path, capsys):
    pytest.importorskip("verovio")
    from dwd_fast import cli

    assert cli.main(["demo", "--out", str(tmp_path), "--music", "chorale", "--repeat", "1",
                     "--dataset", str(tmp_path / "ds")]) == 0
    assert "DeepScores dataset:" in capsys.readouterr().out
    ds = read_deepscores(tmp_path / "ds" / "deepscores_test.json")
    assert len(ds) == 1 and ds[0].n > 100 and ds[0].load_image().shape == (2668, 1894)
    assert (tmp_path / "ds" / "segmentation" / "dwd_fast_demo_page_seg.png").exists()


def test_progress_bar_without_tqdm(monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "tqdm", None)  # import fails
    bar = dsm._Bar(4, "make-dataset")
    bar.update(3)
    bar.close()
    err = capsys.readouterr().err
    assert "make-dataset [" in err and "3/4" in err and err.endswith("\n")
