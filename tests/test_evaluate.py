"""dwd_fast.evaluate: COCO protocol equal to pycocotools and faster-coco-eval; the DeepScores protocol on
hand-worked cases and against a plain re-statement of the obb_anns toolkit's loop; detection files."""

import contextlib
import io
import json
import math
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import dwd_fast
from dwd_fast.metrics import COCO_AREA_RANGES, read_detections, to_coco, to_deepscores, write_detections

# "no cap" for the references' maxDets: more than any page holds (faster-coco-eval allocates by maxDets)


# ----------------------------------------------------------------------------------------------
# COCO references


def _coco_docs(gts, dets, num_classes):
    """COCO ground-truth dict and results list from pages (image ids 1..n; category ids = labels)."""
    images = [{"id": i + 1, "width": 1000, "height": 1000} for i in range(len(gts))]
    anns, aid = [], 1
    for i, g in enumerate(gts):
        for b, c in zip(np.asarray(g["boxes"], np.float64), g["labels"]):
            w, h = b[2] - b[0], b[3] - b[1]
            anns.append({"id": aid, "image_id": i + 1, "category_id": int(c), "bbox": [b[0], b[1], w, h],
                         "area": w * h, "iscrowd": 0})
            aid += 1
    cats = [{"id": c, "name": str(c)} for c in range(1, num_classes + 1)]
    res = []
    for i, d in enumerate(dets):
        res += to_coco(d, i + 1)
    return {"images": images, "annotations": anns, "categories": cats}, res


def _ref_precision(lib, gt_doc, res, max_dets, area=(0, 1e10)):
    """eval['precision'][..., 0, 0] (T, R, K) and eval['recall'][..., 0, 0] (T, K) of pycocotools or faster-coco-eval."""
    with contextlib.redirect_stdout(io.StringIO()):
        if lib == "pycocotools":
            from pycocotools.coco import COCO
            from pycocotools.cocoeval import COCOeval as Eval

            gt = COCO()
            gt.dataset = json.loads(json.dumps(gt_doc))
            gt.createIndex()
        else:
            from faster_coco_eval import COCO
            from faster_coco_eval import COCOeval_faster as Eval

            gt = COCO(json.loads(json.dumps(gt_doc)))
        dt = gt.loadRes(json.loads(json.dumps(res)))
        E = Eval(gt, dt, "bbox")
        E.params.maxDets = [max_dets]
        E.params.areaRng = [list(area)]
        E.params.areaRngLbl = ["all"]
        E.evaluate()
        E.accumulate()
    return np.asarray(E.eval["precision"])[:, :, :, 0, 0], np.asarray(E.eval["recall"])[:, :, 0, 0]


def _check_coco(gts, dets, num_classes, max_dets=None, libs=("pycocotools", "faster_coco_eval"), area="all"):
    r = dwd_fast.evaluate(dets, gts, protocol="coco", max_dets=max_dets, area_range=area,
                          class_names=[str(c) for c in range(1, num_classes + 1)])
    if not any(len(d["labels"]) for d in dets):
        return r  # the references cannot load an empty results list
    gt_doc, res = _coco_docs(gts, dets, num_classes)
    rng = COCO_AREA_RANGES[area]
    for lib in libs:
        prec, rec = _ref_precision(lib, gt_doc, res, len(res) if max_dets is None else max_dets, rng)
        np.testing.assert_allclose(r.precision, prec, atol=1e-6, rtol=0, err_msg=lib)
        np.testing.assert_allclose(np.nan_to_num(r.recall, nan=-1), rec.mean(axis=0), atol=1e-6, rtol=0, err_msg=lib)
        has = (prec > -1).any(axis=(0, 1))
        ref_ap = np.where(has, prec.mean(axis=(0, 1)), np.nan)
        np.testing.assert_allclose(r.ap, ref_ap, atol=1e-6, rtol=0, err_msg=lib)
        np.testing.assert_allclose(r.ap50, np.where(has, prec[0].mean(axis=0), np.nan), atol=1e-6, rtol=0)
        if has.any():
            s = prec[prec > -1]  # COCOeval.summarize's stats[0]
            assert abs(r.map - s.mean()) < 1e-6, lib
            assert abs(r.map50 - prec[0][prec[0] > -1].mean()) < 1e-6, lib
    return r


@st.composite
def coco_cases(draw):
    n_img = draw(st.integers(1, 4))
    nc = draw(st.integers(1, 4))
    grid = st.integers(0, 24)
    gts, dets = [], []
    for _ in range(n_img):
        ng = draw(st.integers(0, 7))
        gb = []
        for _ in range(ng):
            x, y = draw(grid), draw(grid)
            w, h = draw(st.integers(0, 12)), draw(st.integers(0, 12))
            gb.append([x, y, x + w, y + h])
        gl = [draw(st.integers(1, nc)) for _ in range(ng)]
        db, dl, ds = [], [], []
        for _ in range(draw(st.integers(0, 10))):
            if gb and draw(st.booleans()):  # near a ground truth, sometimes a duplicate
                k = draw(st.integers(0, ng - 1))
                j = [draw(st.floats(-2.5, 2.5, allow_nan=False)) for _ in range(4)] if draw(st.booleans()) else [0] * 4
                b = [gb[k][0] + j[0], gb[k][1] + j[1], gb[k][2] + j[2], gb[k][3] + j[3]]
                b = [min(b[0], b[2]), min(b[1], b[3]), max(b[0], b[2]), max(b[1], b[3])]
                lab = gl[k] if draw(st.booleans()) else draw(st.integers(1, nc))
            else:
                x, y = draw(st.floats(0, 24)), draw(st.floats(0, 24))
                b = [x, y, x + draw(st.floats(0, 12)), y + draw(st.floats(0, 12))]
                lab = draw(st.integers(1, nc))
            db.append(b)
            dl.append(lab)
            ds.append(draw(st.sampled_from([0.1, 0.25, 0.5, 0.9])) if draw(st.booleans()) else draw(st.floats(0, 1)))
        gts.append({"boxes": np.asarray(gb, np.float32).reshape(-1, 4), "labels": np.asarray(gl, np.int64)})
        dets.append({"boxes": np.asarray(db, np.float32).reshape(-1, 4), "labels": np.asarray(dl, np.int64),
                     "scores": np.asarray(ds, np.float32)})
    return gts, dets, nc


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(coco_cases(), st.sampled_from([None, None, 1, 3]))
def test_coco_equals_references_random(case, max_dets):
    gts, dets, nc = case
    _check_coco(gts, dets, nc, max_dets)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(coco_cases(), st.sampled_from(["small", "medium", "large"]))
def test_coco_area_ranges_equal_references(case, area):
    gts, dets, nc = case
    # scale up so that the three ranges all see boxes
    for p in gts + dets:
        p["boxes"] = p["boxes"] * np.float32(8)
    _check_coco(gts, dets, nc, None, area=area)


def _page_case(seed, n_img=3, n_gt=300, nc=30):
    rng = np.random.default_rng(seed)
    gts, dets = [], []
    for _ in range(n_img):
        xy = rng.uniform(0, 1800, (n_gt, 2))
        wh = rng.uniform(4, 40, (n_gt, 2))
        gb = np.hstack([xy, xy + wh]).astype(np.float32)
        gl = rng.integers(1, nc + 1, n_gt)
        keep = rng.random(n_gt) < 0.85
        db = gb[keep] + rng.normal(0, 2.0, (keep.sum(), 4)).astype(np.float32)
        db = np.hstack([np.minimum(db[:, :2], db[:, 2:]), np.maximum(db[:, :2], db[:, 2:])])
        dl = np.where(rng.random(keep.sum()) < 0.9, gl[keep], rng.integers(1, nc + 1, keep.sum()))
        n_fp = n_gt // 5
        fxy = rng.uniform(0, 1800, (n_fp, 2))
        fb = np.hstack([fxy, fxy + rng.uniform(4, 40, (n_fp, 2))])
        dup = rng.choice(len(db), len(db) // 10)  # duplicates of detections, lower scores
        db = np.vstack([db, fb, db[dup] + 1]).astype(np.float32)
        sc = np.concatenate([rng.uniform(0.3, 1, keep.sum()), rng.uniform(0, 0.6, n_fp), rng.uniform(0, 0.4, len(dup))])
        dl = np.concatenate([dl, rng.integers(1, nc + 1, n_fp), dl[dup]])
        gts.append({"boxes": gb, "labels": gl})
        dets.append({"boxes": db, "labels": dl, "scores": sc.astype(np.float32)})
    return gts, dets, nc


@pytest.mark.parametrize("seed", [0, 1])
def test_coco_equals_references_page_shaped(seed):
    gts, dets, nc = _page_case(seed)
    r = _check_coco(gts, dets, nc, None)
    assert 0.2 < r.map50 < 1


def test_coco_page_shaped_cap():
    gts, dets, nc = _page_case(5)
    _check_coco(gts, dets, nc, 4, libs=("faster_coco_eval",))


def test_coco_no_detections_and_no_gt_classes():
    gts = [{"boxes": np.array([[0, 0, 10, 10]], np.float32), "labels": np.array([2])},
           {"boxes": np.zeros((0, 4), np.float32), "labels": np.zeros(0, np.int64)}]
    empty = {"boxes": np.zeros((0, 4)), "labels": np.zeros(0, np.int64), "scores": np.zeros(0)}
    r = dwd_fast.evaluate([empty, empty], gts, class_names=["a", "b", "c"])
    assert np.isnan(r.ap[0]) and r.ap[1] == 0 and np.isnan(r.ap[2])  # no GT -> excluded (COCO's -1)
    assert r.map == 0 and list(r.num_gt) == [0, 1, 0]
    dets = [empty, {"boxes": np.array([[0, 0, 5, 5]]), "labels": np.array([3]), "scores": np.array([0.5])}]
    r = _check_coco(gts, dets, 3)
    assert r.map == 0 and np.isnan(r.ap[2]) and r.num_dets[2] == 1


def test_coco_duplicate_is_a_false_positive():
    g = [{"boxes": np.array([[0, 0, 10, 10]], np.float32), "labels": np.array([1])}]
    d = [{"boxes": np.array([[0, 0, 10, 10], [0, 0, 10, 10]], np.float32), "labels": np.array([1, 1]),
          "scores": np.array([0.9, 0.1])}]
    r = _check_coco(g, d, 1)
    assert r.map == pytest.approx(1.0)  # the TP ranks first: precision 1 up to recall 1
    d[0]["scores"] = np.array([0.1, 0.9])
    assert dwd_fast.evaluate(d, g).map == pytest.approx(1.0)


def test_detections_and_torch_and_image_id_dicts():
    gts, dets, nc = _page_case(3, n_img=2, n_gt=50, nc=5)
    ref = dwd_fast.evaluate(dets, gts)
    objs = [dwd_fast.Detections(boxes=d["boxes"], labels=d["labels"], scores=d["scores"],
                                centers=np.zeros((len(d["labels"]), 2)), areas=np.zeros(len(d["labels"]), np.int64),
                                class_scores=d["scores"]) for d in dets]
    assert dwd_fast.evaluate(objs, gts).map == ref.map
    pages = [dict(g, image_id=10 + i) for i, g in enumerate(gts)]
    by_id = {10 + i: d for i, d in enumerate(dets)}
    assert dwd_fast.evaluate(by_id, pages).map == ref.map
    torch = pytest.importorskip("torch")
    tdets = [{k: torch.as_tensor(v) for k, v in d.items()} for d in dets]
    assert dwd_fast.evaluate(tdets, gts).map == ref.map

    class Page:  # the DeepScores reader's page, by duck typing
        def __init__(self, g, i):
            self.image_id, self.boxes, self.labels = i, g["boxes"], g["labels"]
            self.oriented = np.stack([g["boxes"][:, [0, 1]], g["boxes"][:, [2, 1]], g["boxes"][:, [2, 3]],
                                      g["boxes"][:, [0, 3]]], axis=1)

    class Dataset:
        class_names = ("background",) + tuple(f"c{i}" for i in range(1, nc + 1))
        pages = [Page(g, 10 + i) for i, g in enumerate(gts)]

    r = dwd_fast.evaluate(by_id, Dataset())
    assert r.map == ref.map and r.class_names[0] == "c1"
    assert "c1" in str(r) and "mean" in r.table()


def test_bad_input():
    g = [{"boxes": np.array([[0, 0, 10, 10]], np.float32), "labels": np.array([1])}]
    d = [{"boxes": np.array([[0, 0, 10, 10]], np.float32), "labels": np.array([1]), "scores": np.array([0.5])}]
    with pytest.raises(ValueError, match="protocol"):
        dwd_fast.evaluate(d, g, protocol="voc")
    with pytest.raises(ValueError, match="detections"):
        dwd_fast.evaluate(d + d, g)
    with pytest.raises(ValueError, match=r"detections\[0\].boxes"):
        dwd_fast.evaluate([dict(d[0], boxes=np.array([[0, 0, np.nan, 1]]))], g)
    with pytest.raises(ValueError, match=r"detections\[0\].boxes"):
        dwd_fast.evaluate([dict(d[0], boxes=np.zeros((1, 5)))], g)
    with pytest.raises(ValueError, match=r"scores"):
        dwd_fast.evaluate([dict(d[0], scores=np.array([np.nan]))], g)
    with pytest.raises(ValueError, match=r"scores"):
        dwd_fast.evaluate([dict(d[0], scores=np.array([0.5, 0.2]))], g)
    with pytest.raises(ValueError, match=r"ground_truth\[0\].labels"):
        dwd_fast.evaluate(d, [dict(g[0], labels=np.array([0]))])
    with pytest.raises(ValueError, match=r"detections\[0\].labels"):
        dwd_fast.evaluate([dict(d[0], labels=np.array([2]))], g, class_names=["a"])
    with pytest.raises(ValueError, match="max_dets"):
        dwd_fast.evaluate(d, g, max_dets=0)
    with pytest.raises(ValueError, match="area_range"):
        dwd_fast.evaluate(d, g, area_range="tiny")
    with pytest.raises(TypeError, match="ground_truth"):
        dwd_fast.evaluate(d, 5)
    with pytest.raises(TypeError, match="detections"):
        dwd_fast.evaluate(5, g)
    with pytest.raises(TypeError, match="scores"):
        dwd_fast.evaluate([{"boxes": d[0]["boxes"], "labels": d[0]["labels"]}], g)
    with pytest.raises(ValueError, match="image_id"):
        dwd_fast.evaluate({99: d[0]}, [dict(g[0], image_id=1)])
    with pytest.raises(ValueError, match="iou_thresholds"):
        dwd_fast.evaluate(d, g, iou_thresholds=[1.5])
    with pytest.raises(ValueError, match="oriented"):
        dwd_fast.evaluate(d, g, protocol="deepscores", oriented=True)


# ----------------------------------------------------------------------------------------------
# DeepScores protocol


def _one(boxes, scores, labels=None):
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    return {"boxes": boxes, "labels": np.ones(len(boxes), np.int64) if labels is None else np.asarray(labels),
            "scores": np.asarray(scores, np.float64)}


GT1 = [{"boxes": np.array([[0, 0, 10, 10]], np.float32), "labels": np.array([1])}]


def test_deepscores_duplicates_faithful_vs_corrected():
    # an exact detection scored 0.9 and a half one (enclosing overlap 0.5) scored 0.1
    d = [_one([[0, 0, 10, 10], [0, 0, 10, 5]], [0.9, 0.1])]
    f = dwd_fast.evaluate(d, GT1, protocol="deepscores", faithful=True)
    # the toolkit matches lowest score first: the 0.1 one takes the GT (TP at 0.5 only), the 0.9 one is a FP.
    # ranked: FP (p 0, r 0), TP (p 1/2, r 1) -> area under the envelope = 1/2 at IoU 0.5, 0 above.
    assert f.ap50[0] == pytest.approx(0.5) and f.ap75[0] == 0 and f.ap[0] == pytest.approx(0.05)
    c = dwd_fast.evaluate(d, GT1, protocol="deepscores", faithful=False)
    assert c.ap[0] == pytest.approx(1.0) and c.ap50[0] == pytest.approx(1.0)
    # COCO agrees with the corrected order here
    assert dwd_fast.evaluate(d, GT1).ap[0] == pytest.approx(1.0)


def test_deepscores_enclosing_box_overlap_is_not_iou():
    s = 1.5  # a 10x10 box shifted by (1.5, 1.5): IoU 72.25/127.75 = .566, enclosing 72.25/132.25 = .546
    d = [_one([[s, s, 10 + s, 10 + s]], [0.7])]
    assert 72.25 / 127.75 > 0.55 > 72.25 / 132.25
    ds = dwd_fast.evaluate(d, GT1, protocol="deepscores")
    co = dwd_fast.evaluate(d, GT1, protocol="coco")
    assert ds.ap[0] == pytest.approx(0.1)  # TP at 0.5 only
    assert co.ap[0] == pytest.approx(0.2)  # TP at 0.5 and 0.55


def test_deepscores_just_under_threshold_and_reserve():
    eps = 1e-6
    # enclosing overlap 0.5 - eps: a FP at 0.5
    d = [_one([[0, 0, 10, 5 - 10 * eps]], [0.5])]
    assert dwd_fast.evaluate(d, GT1, protocol="deepscores").ap50[0] == 0
    d = [_one([[0, 0, 10, 5]], [0.5])]
    assert dwd_fast.evaluate(d, GT1, protocol="deepscores").ap50[0] == pytest.approx(1)
    # thresholds below the reserve overlap 0.2: an overlap of 0.19 never reserves the GT
    thr = [0.1, 0.15, 0.25]
    d = [_one([[0, 0, 10, 1.9]], [0.5])]
    r = dwd_fast.evaluate(d, GT1, protocol="deepscores", iou_thresholds=thr)
    assert r.ap[0] == 0 and np.isnan(r.ap50[0])
    d = [_one([[0, 0, 10, 2.1]], [0.5])]
    r = dwd_fast.evaluate(d, GT1, protocol="deepscores", iou_thresholds=thr)
    assert r.ap[0] == pytest.approx(2 / 3)
    r = dwd_fast.evaluate([_one([[0, 0, 10, 1.9]], [0.5])], GT1, protocol="deepscores", iou_thresholds=thr, reserve=0.1)
    assert r.ap[0] == pytest.approx(2 / 3)
    # touching boxes: zero overlap (no division by the enclosing box of disjoint boxes)
    r = dwd_fast.evaluate([_one([[10, 0, 20, 10]], [0.5])], GT1, protocol="deepscores")
    assert r.ap[0] == 0


def test_deepscores_mean_over_classes():
    g = [{"boxes": np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32), "labels": np.array([1, 2])}]
    d = [_one([[0, 0, 10, 10], [50, 50, 60, 60]], [0.9, 0.8], labels=[1, 3])]
    f = dwd_fast.evaluate(d, g, protocol="deepscores", class_names=["a", "b", "c"])
    # faithful: classes with proposals (1: AP 1, 3: no GT -> AP 0); class 2 (no proposal) absent
    assert f.ap[0] == pytest.approx(1) and f.ap[2] == 0 and np.isnan(f.ap[1]) and f.map == pytest.approx(0.5)
    c = dwd_fast.evaluate(d, g, protocol="deepscores", faithful=False, class_names=["a", "b", "c"])
    assert c.ap[1] == 0 and np.isnan(c.ap[2]) and c.map == pytest.approx(0.5)


def _toolkit_restatement(dets, gts, nc, thr, faithful, oriented):
    """The obb_anns loop written out plainly: per image, proposals by score (ascending as the toolkit),
    each takes the remaining same-class GT of largest overlap if > 0.2; then VOC AP per class."""
    recs = []  # (overlap, class, score), in the toolkit's order
    for i, (d, g) in enumerate(zip(dets, gts)):
        order = sorted(range(len(d["scores"])), key=lambda j: (d["scores"][j] if faithful else -d["scores"][j]))
        left = list(range(len(g["labels"])))
        for j in order:
            best, bi = -1.0, None
            for k in left:
                if g["labels"][k] != d["labels"][j]:
                    continue
                if oriented:
                    o = _poly_iou(g["oriented"][k], d["oriented"][j])
                else:
                    a, b = g["boxes"][k], d["boxes"][j]
                    dxi, dyi = min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1])
                    dxo, dyo = max(a[2], b[2]) - min(a[0], b[0]), max(a[3], b[3]) - min(a[1], b[1])
                    o = dxi * dyi / (dxo * dyo) if dxi >= 0 and dyi >= 0 and dxo * dyo > 0 else 0.0
                if o > best:
                    best, bi = o, k
            if bi is not None and best > 0.2:
                left.remove(bi)
                recs.append((best, d["labels"][j], d["scores"][j]))
            else:
                recs.append((0.0, d["labels"][j], d["scores"][j]))
    ngt = np.bincount(np.concatenate([g["labels"] for g in gts]).astype(int), minlength=nc + 1)
    aps = {}
    for c in range(1, nc + 1):
        rc = [r for r in recs if r[1] == c]
        if not rc or (not faithful and ngt[c] == 0):
            continue
        sc = np.array([r[2] for r in rc])
        order = np.argsort(sc, kind="stable")[::-1] if faithful else np.argsort(-sc, kind="stable")
        ov = np.array([r[0] for r in rc])[order]
        vals = []
        for t in thr:
            tp = np.cumsum(ov >= t).astype(float)
            fp = np.cumsum(ov < t).astype(float)
            rec = tp / ngt[c] if ngt[c] else tp * 0
            prec = tp / (fp + tp + np.spacing(1))
            mrec = np.concatenate([[0], rec, [1]])
            mpre = np.concatenate([[0], prec, [0]])
            for i in range(len(mpre) - 1, 0, -1):
                mpre[i - 1] = max(mpre[i - 1], mpre[i])
            ind = np.where(mrec[1:] != mrec[:-1])[0]
            vals.append(np.sum((mrec[ind + 1] - mrec[ind]) * mpre[ind + 1]))
        aps[c] = float(np.mean(vals))
    return aps


def _poly_area(p):
    x, y = p[:, 0], p[:, 1]
    return 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def _cross(u, v):
    return u[0] * v[1] - u[1] * v[0]


def _poly_iou(a, b):
    """Convex polygon IoU by brute force: the intersection's corners are the corners of each inside the
    other and the edge crossings; their convex hull (angle sort) is the intersection."""
    a, b = np.asarray(a, float).reshape(4, 2), np.asarray(b, float).reshape(4, 2)

    def inside(p, poly):
        s = [_cross(poly[(i + 1) % 4] - poly[i], p - poly[i]) for i in range(4)]
        return all(v >= -1e-12 for v in s) or all(v <= 1e-12 for v in s)

    pts = [p for p in a if inside(p, b)] + [p for p in b if inside(p, a)]
    for i in range(4):
        p1, p2 = a[i], a[(i + 1) % 4]
        for j in range(4):
            q1, q2 = b[j], b[(j + 1) % 4]
            r, s = p2 - p1, q2 - q1
            den = _cross(r, s)
            if abs(den) <= 1e-9 * np.linalg.norm(r) * np.linalg.norm(s):
                continue  # parallel (or collinear: their shared points are corners inside the other)
            t, u = _cross(q1 - p1, s) / den, _cross(q1 - p1, r) / den
            if 0 <= t <= 1 and 0 <= u <= 1:
                pts.append(p1 + t * r)
    if len(pts) < 3:
        return 0.0
    pts = np.array(pts)
    c = pts.mean(axis=0)
    pts = pts[np.argsort(np.arctan2(pts[:, 1] - c[1], pts[:, 0] - c[0]))]
    inter = _poly_area(pts)
    return inter / (_poly_area(a) + _poly_area(b) - inter)


def _rotated(cx, cy, w, h, ang):
    c, s = math.cos(ang), math.sin(ang)
    pts = [(-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2)]
    return [(cx + c * x - s * y, cy + s * x + c * y) for x, y in pts]


def test_quad_iou_known_values():
    from dwd_fast._ext import cpu_ext

    sq = np.array(_rotated(0, 0, 1, 1, 0)).ravel()
    rot = np.array(_rotated(0, 0, 1, 1, math.pi / 4)).ravel()
    inter = 2 * (math.sqrt(2) - 1)  # the regular octagon of a unit square and its 45-degree turn
    assert cpu_ext().quad_iou(sq, rot) == pytest.approx(inter / (2 - inter), abs=1e-12)
    assert cpu_ext().quad_iou(sq, sq[::-1].reshape(4, 2)[:, ::-1].ravel()) == pytest.approx(1)  # clockwise
    assert cpu_ext().quad_iou(sq, sq + 5) == 0


@settings(max_examples=80, deadline=None)
@given(st.tuples(st.floats(-3, 3), st.floats(-3, 3), st.floats(0.5, 6), st.floats(0.5, 6), st.floats(0, 3.2)),
       st.tuples(st.floats(-3, 3), st.floats(-3, 3), st.floats(0.5, 6), st.floats(0.5, 6), st.floats(0, 3.2)),
       st.booleans())
@example((0.0, 2.65, 3.85, 4.28, 2.7), (0.0, 2.65, 3.85, 2.65, 2.7), False)  # nested, two sides collinear
def test_quad_iou_random(p, q, flip):
    from dwd_fast._ext import cpu_ext

    a, b = np.array(_rotated(*p)), np.array(_rotated(*q))
    if flip:
        b = b[::-1]
    assert cpu_ext().quad_iou(a.ravel(), b.ravel()) == pytest.approx(_poly_iou(a, b), abs=1e-9)


@st.composite
def ds_cases(draw):
    n_img, nc = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    gts, dets = [], []
    for _ in range(n_img):
        ng = draw(st.integers(0, 6))
        gb = [[draw(st.integers(0, 20)), draw(st.integers(0, 20))] for _ in range(ng)]
        gb = [[x, y, x + draw(st.integers(1, 10)), y + draw(st.integers(1, 10))] for x, y in gb]
        gl = [draw(st.integers(1, nc)) for _ in range(ng)]
        db, dl, ds = [], [], []
        for _ in range(draw(st.integers(0, 8))):
            if gb and draw(st.booleans()):
                k = draw(st.integers(0, ng - 1))
                j = [draw(st.floats(-3, 3)) for _ in range(2)]
                b = [gb[k][0] + j[0], gb[k][1] + j[1], gb[k][2] + j[0], gb[k][3] + j[1]]
                lab = gl[k]
            else:
                x, y = draw(st.floats(0, 20)), draw(st.floats(0, 20))
                b = [x, y, x + draw(st.floats(0.5, 10)), y + draw(st.floats(0.5, 10))]
                lab = draw(st.integers(1, nc))
            db.append(b)
            dl.append(lab)
            ds.append(draw(st.sampled_from([0.2, 0.6])) if draw(st.booleans()) else draw(st.floats(0, 1)))

        def corners(bb):
            bb = np.asarray(bb, np.float64).reshape(-1, 4)
            return np.stack([bb[:, [0, 1]], bb[:, [2, 1]], bb[:, [2, 3]], bb[:, [0, 3]]], axis=1)

        gts.append({"boxes": np.asarray(gb, np.float64).reshape(-1, 4), "labels": np.asarray(gl, np.int64),
                    "oriented": corners(gb)})
        dets.append({"boxes": np.asarray(db, np.float64).reshape(-1, 4), "labels": np.asarray(dl, np.int64),
                     "scores": np.asarray(ds, np.float64), "oriented": corners(db)})
    return gts, dets, nc


@settings(max_examples=60, deadline=None)
@given(ds_cases(), st.booleans(), st.booleans())
def test_deepscores_equals_restatement(case, faithful, oriented):
    gts, dets, nc = case
    r = dwd_fast.evaluate(dets, gts, protocol="deepscores", faithful=faithful, oriented=oriented,
                          class_names=[str(c) for c in range(1, nc + 1)])
    ref = _toolkit_restatement(dets, gts, nc, np.linspace(0.5, 0.95, 10), faithful, oriented)
    for c in range(1, nc + 1):
        if c in ref:
            assert r.ap[c - 1] == pytest.approx(ref[c], abs=1e-9), c
        elif faithful:
            assert np.isnan(r.ap[c - 1])
    if faithful and ref:
        assert r.map == pytest.approx(np.mean(list(ref.values())), abs=1e-9)


# ----------------------------------------------------------------------------------------------
# Files and CLI


def test_write_read_round_trip_and_faster_coco_eval_loads(tmp_path):
    gts, dets, nc = _page_case(7, n_img=2, n_gt=40, nc=4)
    cat = np.array([-1, 11, 12, 13, 14])  # label -> dataset category id
    p = tmp_path / "res.json"
    write_detections(p, dets, [5, 6], format="coco", category_ids=cat)
    raw = json.loads(p.read_text())
    assert raw[0].keys() == {"image_id", "category_id", "bbox", "score"} and raw[0]["category_id"] in cat[1:]
    back = read_detections(p, category_ids=cat)
    for i, d in enumerate(dets):
        np.testing.assert_allclose(back[5 + i]["boxes"], d["boxes"], atol=1e-4)
        np.testing.assert_array_equal(back[5 + i]["labels"], d["labels"])
        np.testing.assert_array_equal(back[5 + i]["scores"], d["scores"])
    gt_doc, _ = _coco_docs(gts, dets, nc)
    for a in gt_doc["annotations"]:
        a["category_id"] = int(cat[a["category_id"]])
        a["image_id"] += 4
    for im in gt_doc["images"]:
        im["id"] += 4
    gt_doc["categories"] = [{"id": int(c), "name": str(c)} for c in cat[1:]]
    from faster_coco_eval import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        dt = COCO(json.loads(json.dumps(gt_doc))).loadRes(str(p))
    assert len(dt.getAnnIds()) == sum(len(d["labels"]) for d in dets)
    # DeepScores proposals: axis-aligned and oriented
    q = tmp_path / "props.json"
    write_detections(q, dets, [5, 6], format="deepscores", category_ids=cat)
    raw = json.loads(q.read_text())
    assert raw["annotation_set"] == "deepscores" and set(raw["proposals"][0]) == {"bbox", "cat_id", "img_id", "score"}
    assert len(raw["proposals"][0]["bbox"]) == 4 and isinstance(raw["proposals"][0]["cat_id"], int)
    back = read_detections(q, category_ids=cat)
    np.testing.assert_allclose(back[6]["boxes"], dets[1]["boxes"], atol=1e-4)
    odets = [dict(d, oriented=np.stack([d["boxes"][:, [0, 1]], d["boxes"][:, [2, 1]], d["boxes"][:, [2, 3]],
                                         d["boxes"][:, [0, 3]]], axis=1)) for d in dets]
    write_detections(q, odets, [5, 6], format="deepscores")
    back = read_detections(q)
    assert len(json.loads(q.read_text())["proposals"][0]["bbox"]) == 8
    np.testing.assert_allclose(back[5]["oriented"], odets[0]["oriented"], atol=1e-4)
    np.testing.assert_allclose(back[5]["boxes"], dets[0]["boxes"], atol=1e-4)
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".")]  # no temporary left behind
    # Detections methods
    det = dwd_fast.Detections(boxes=dets[0]["boxes"], labels=dets[0]["labels"], scores=dets[0]["scores"],
                              centers=None, areas=None, class_scores=None)
    assert det.to_coco(5, cat) == to_coco(dets[0], 5, cat)
    assert det.to_deepscores(5, cat) == to_deepscores(dets[0], 5, cat)
    with pytest.raises(ValueError, match="format"):
        write_detections(q, dets, [5, 6], format="voc")
    with pytest.raises(ValueError, match="image_ids"):
        write_detections(q, dets, [5], format="coco")
    (tmp_path / "bad.json").write_text('{"x": 1}')
    with pytest.raises(ValueError, match="bad.json"):
        read_detections(tmp_path / "bad.json")
    (tmp_path / "bad2.json").write_text('[{"image_id": 1, "category_id": 1, "bbox": [1, 2, 3], "score": 1}]')
    with pytest.raises(ValueError, match="record 0"):
        read_detections(tmp_path / "bad2.json")


def test_cli_eval_on_coco_files(tmp_path, capsys):
    from dwd_fast import cli

    gts, dets, nc = _page_case(9, n_img=2, n_gt=60, nc=3)
    gt_doc, res = _coco_docs(gts, dets, nc)
    gt_doc["categories"] = [{"id": c, "name": f"sym{c}"} for c in range(1, nc + 1)]
    (tmp_path / "gt.json").write_text(json.dumps(gt_doc))
    write_detections(tmp_path / "det.json", dets, [1, 2], format="coco")
    png = tmp_path / "pr.png"
    assert cli.main(["eval", str(tmp_path / "det.json"), str(tmp_path / "gt.json"), "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    ref = dwd_fast.evaluate(dets, gts)
    assert "sym1" in out and "mean" in out and f"{100 * ref.map:6.2f}" in out
    assert png.stat().st_size > 1000 and png.read_bytes()[:4] == b"\x89PNG"
    write_detections(tmp_path / "props.json", dets, [1, 2], format="deepscores")
    cli.main(["eval", str(tmp_path / "props.json"), str(tmp_path / "gt.json"), "--protocol", "deepscores"])
    out = capsys.readouterr().out
    ref = dwd_fast.evaluate(dets, gts, protocol="deepscores")
    assert f"{100 * ref.map:6.2f}" in out and "faithful" in out
    cli.main(["eval", str(tmp_path / "det.json"), str(tmp_path / "gt.json"), "--max-dets", "1"])
    assert f"{100 * dwd_fast.evaluate(dets, gts, max_dets=1).map:6.2f}" in capsys.readouterr().out
    assert cli.main(["eval", str(tmp_path / "det.json"), str(tmp_path / "nope.json")]) == 2
    assert "nope.json" in capsys.readouterr().err
    assert cli.main(["eval", str(tmp_path / "gt.json"), str(tmp_path / "gt.json")]) == 2  # not detections
    assert "gt.json" in capsys.readouterr().err


def test_threads_do_not_change_results_and_calls_run_concurrently():
    from concurrent.futures import ThreadPoolExecutor

    from dwd_fast._ext import cpu_ext

    gts, dets, nc = _page_case(11, n_img=3, n_gt=120, nc=7)
    old = cpu_ext().page_threads(1, 0)
    try:
        one = [dwd_fast.evaluate(dets, gts, protocol=p) for p in ("coco", "deepscores")]
        cpu_ext().page_threads(3, 0)  # several threads even for this small input
        many = [dwd_fast.evaluate(dets, gts, protocol=p) for p in ("coco", "deepscores")]
    finally:
        cpu_ext().page_threads(*old)
    for a, b in zip(one, many):
        np.testing.assert_array_equal(a.ap, b.ap)
    with ThreadPoolExecutor(4) as ex:
        got = list(ex.map(lambda p: dwd_fast.evaluate(dets, gts, protocol=p), ["coco", "deepscores"] * 4))
    for i, r in enumerate(got):
        np.testing.assert_array_equal(r.ap, one[i % 2].ap)
