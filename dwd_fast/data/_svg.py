"""Geometry of Verovio's SVG: transforms, exact path bounding boxes, and the boxed objects of a page.

Private helpers of :mod:`dwd_fast.data.engraved`. Coordinates are SVG user units until the caller
scales them to pixels.
"""

from __future__ import annotations

import math
import re

import numpy as np

SVG = "{http://www.w3.org/2000/svg}"
XLINK = "{http://www.w3.org/1999/xlink}"

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_TOKEN = re.compile(rf"([MmLlHhVvCcSsQqTtZzAa])|({_NUM})")
_TRANSFORM = re.compile(r"(matrix|translate|scale|rotate)\s*\(([^)]*)\)")


# --------------------------------------------------------------------------------------------------
# Affine transforms (a, b, c, d, e, f): x' = a x + c y + e, y' = b x + d y + f
# --------------------------------------------------------------------------------------------------

IDENTITY = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)


def compose(m, n):
    """The transform applying ``n`` first, then ``m``."""
    a, b, c, d, e, f = m
    A, B, C, D, E, F = n
    return (a * A + c * B, b * A + d * B, a * C + c * D, b * C + d * D, a * E + c * F + e, b * E + d * F + f)


def parse_transform(text):
    """The affine transform of an SVG ``transform`` attribute (matrix, translate, scale, rotate)."""
    m = IDENTITY
    for name, args in _TRANSFORM.findall(text or ""):
        v = [float(x) for x in re.findall(_NUM, args)]
        if name == "matrix":
            t = tuple(v[:6])
        elif name == "translate":
            t = (1.0, 0.0, 0.0, 1.0, v[0], v[1] if len(v) > 1 else 0.0)
        elif name == "scale":
            t = (v[0], 0.0, 0.0, v[1] if len(v) > 1 else v[0], 0.0, 0.0)
        else:
            r = math.radians(v[0])
            t = (math.cos(r), math.sin(r), -math.sin(r), math.cos(r), 0.0, 0.0)
            if len(v) == 3:
                t = compose(compose((1, 0, 0, 1, v[1], v[2]), t), (1, 0, 0, 1, -v[1], -v[2]))
        m = compose(m, t)
    return m


def apply(m, pts):
    """Transform an (n, 2) array of points."""
    a, b, c, d, e, f = m
    pts = np.asarray(pts, np.float64).reshape(-1, 2)
    return np.stack([a * pts[:, 0] + c * pts[:, 1] + e, b * pts[:, 0] + d * pts[:, 1] + f], 1)


# --------------------------------------------------------------------------------------------------
# Path bounding boxes: the exact extrema of lines and quadratic / cubic Beziers
# --------------------------------------------------------------------------------------------------

def _cubic_extrema(p0, p1, p2, p3):
    """Parameters in (0, 1) where one coordinate of a cubic Bezier has a zero derivative."""
    ts = []
    for i in range(2):
        a = -p0[i] + 3 * p1[i] - 3 * p2[i] + p3[i]
        b = 2 * (p0[i] - 2 * p1[i] + p2[i])
        c = p1[i] - p0[i]
        if abs(a) < 1e-12:
            if abs(b) > 1e-12:
                ts.append(-c / b)
            continue
        disc = b * b - 4 * a * c
        if disc < 0:
            continue
        # roots without cancellation (a may be tiny next to b): q / a and c / q
        q = -(b + math.copysign(math.sqrt(disc), b)) / 2
        ts.append(q / a)
        if q != 0:
            ts.append(c / q)
    return [t for t in ts if 0 < t < 1]


def _cubic_at(p0, p1, p2, p3, t):
    u = 1 - t
    return tuple(u ** 3 * p0[i] + 3 * u * u * t * p1[i] + 3 * u * t * t * p2[i] + t ** 3 * p3[i] for i in range(2))


def path_points(d):
    """Points whose bounding box is the exact bounding box of the path ``d`` (extrema of its curves).

    Supports M L H V C S Q T Z, absolute and relative (quadratics are raised to cubics; arcs are
    approximated by their end points and are not produced by Verovio).
    """
    toks = _TOKEN.findall(d)
    pts = []
    cur = (0.0, 0.0)
    start = cur
    last_ctrl = None
    last_kind = None
    i = 0
    nums = []

    def take(k):
        nonlocal i
        v = nums[i:i + k]
        i += k
        return v

    # Split into (command, numbers) groups.
    groups = []
    for c, num in toks:
        if c:
            groups.append([c, []])
        elif groups:
            groups[-1][1].append(float(num))
    for cmd, nums in groups:
        i = 0
        rel = cmd.islower()
        C = cmd.upper()
        if C == "Z":
            cur = start
            pts.append(cur)
            last_kind = None
            continue
        while i < len(nums):
            ox, oy = cur if rel else (0.0, 0.0)
            if C == "M":
                x, y = take(2)
                cur = (ox + x, oy + y)
                start = cur
                pts.append(cur)
                C = "L"  # further pairs are line-tos
            elif C == "L":
                x, y = take(2)
                cur = (ox + x, oy + y)
                pts.append(cur)
            elif C == "H":
                (x,) = take(1)
                cur = ((cur[0] if rel else 0.0) + x, cur[1])
                pts.append(cur)
            elif C == "V":
                (y,) = take(1)
                cur = (cur[0], (cur[1] if rel else 0.0) + y)
                pts.append(cur)
            elif C in "CS":
                if C == "C":
                    x1, y1, x2, y2, x, y = take(6)
                    c1 = (ox + x1, oy + y1)
                else:
                    x2, y2, x, y = take(4)
                    c1 = (2 * cur[0] - last_ctrl[0], 2 * cur[1] - last_ctrl[1]) if last_kind == "C" else cur
                c2, end = (ox + x2, oy + y2), (ox + x, oy + y)
                pts += [_cubic_at(cur, c1, c2, end, t) for t in _cubic_extrema(cur, c1, c2, end)] + [end]
                last_ctrl, last_kind, cur = c2, "C", end
                continue
            elif C in "QT":
                if C == "Q":
                    x1, y1, x, y = take(4)
                    q = (ox + x1, oy + y1)
                else:
                    x, y = take(2)
                    q = (2 * cur[0] - last_ctrl[0], 2 * cur[1] - last_ctrl[1]) if last_kind == "Q" else cur
                end = (ox + x, oy + y)
                c1 = (cur[0] + 2 / 3 * (q[0] - cur[0]), cur[1] + 2 / 3 * (q[1] - cur[1]))
                c2 = (end[0] + 2 / 3 * (q[0] - end[0]), end[1] + 2 / 3 * (q[1] - end[1]))
                pts += [_cubic_at(cur, c1, c2, end, t) for t in _cubic_extrema(cur, c1, c2, end)] + [end]
                last_ctrl, last_kind, cur = q, "Q", end
                continue
            elif C == "A":
                *_, x, y = take(7)
                cur = (ox + x, oy + y)
                pts.append(cur)
            last_kind = None  # S / T reflect a control point only right after C / S or Q / T
    return np.asarray(pts, np.float64).reshape(-1, 2)


def bbox(pts):
    """(x1, y1, x2, y2) of an (n, 2) array of points."""
    return (float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max()))


# --------------------------------------------------------------------------------------------------
# The objects of a Verovio page
# --------------------------------------------------------------------------------------------------

# Verovio element class -> box class for drawn (non-glyph) shapes. Staff lines and the system's start
# line are not boxed (DeepScores' detection classes do not include them).
SHAPE_CLASSES = {
    "stem": "stem",
    "ledgerLines": "ledgerLine",
    "beam": "beam",
    "barLine": "barline",
    "slur": "slur",
    "tie": "tie",
    "grpSym": "brace",
    "dots": "augmentationDot",
}
# Classes boxed one primitive at a time (each ledger line, beam segment and dot is an object).
PER_PRIMITIVE = {"ledgerLine", "beam", "augmentationDot"}


def _classes(el):
    return (el.get("class") or "").split()


def _shape_box(el, m, stroke):
    """Bounding box (SVG units, after ``m``) of a path / polygon / ellipse / rect element."""
    tag = el.tag.replace(SVG, "")
    w = float(el.get("stroke-width", stroke))
    if tag == "path":
        pts = path_points(el.get("d", ""))
    elif tag in ("polygon", "polyline"):
        pts = np.asarray([float(v) for v in re.findall(_NUM, el.get("points", ""))], np.float64).reshape(-1, 2)
    elif tag == "ellipse":
        cx, cy, rx, ry = (float(el.get(k, 0)) for k in ("cx", "cy", "rx", "ry"))
        pts = np.array([[cx - rx, cy - ry], [cx + rx, cy + ry]])
        w = 0.0
    elif tag == "rect":
        x, y, rw, rh = (float(el.get(k, 0)) for k in ("x", "y", "width", "height"))
        pts = np.array([[x, y], [x + rw, y + rh]])
    else:
        return None
    if pts.size == 0:
        return None
    x1, y1, x2, y2 = bbox(pts)
    if tag == "path" and len(pts) == 2 and w > 0:
        # A straight stroked line with butt caps widens only across its direction.
        if abs(x2 - x1) <= abs(y2 - y1):
            x1, x2 = x1 - w / 2, x2 + w / 2
        else:
            y1, y2 = y1 - w / 2, y2 + w / 2
    elif w > 0:
        x1, y1, x2, y2 = x1 - w / 2, y1 - w / 2, x2 + w / 2, y2 + w / 2
    corners = apply(m, [[x1, y1], [x2, y1], [x1, y2], [x2, y2]])
    return bbox(corners)


class Obj:
    """One boxed object: class name, (x1, y1, x2, y2) in outer SVG units, and its SVG elements with
    their transforms (to render the object alone)."""

    __slots__ = ("name", "box", "parts")

    def __init__(self, name, box, parts):
        self.name, self.box, self.parts = name, box, parts


def page_objects(root, glyph_names, default_stroke=1.0):
    """The boxed objects of a parsed Verovio SVG page, in document (drawing) order.

    Parameters
    ----------
    root : Element
        The outer ``<svg>``.
    glyph_names : dict
        SMuFL codepoint (``"E0A4"``) -> glyph name (``"noteheadBlack"``).

    Returns
    -------
    list of Obj
    """
    glyph_box = {}
    for g in root.iter(SVG + "g"):
        gid = g.get("id")
        if gid and re.match(r"^[0-9A-F]{4}-", gid):
            pts = []
            for p in g.iter(SVG + "path"):
                pts.append(apply(parse_transform(p.get("transform")), path_points(p.get("d", ""))))
            if pts:
                glyph_box[gid] = bbox(np.concatenate(pts))

    objs = []

    def box_shapes(el, m, name, per_primitive):
        parts, boxes = [], []
        for child in el:
            if child.tag in (SVG + "g", SVG + "use"):
                continue
            cm = compose(m, parse_transform(child.get("transform")))
            b = _shape_box(child, cm, default_stroke)
            if b is None:
                continue
            if per_primitive:
                objs.append(Obj(name, b, [(child, cm)]))
            else:
                boxes.append(b)
                parts.append((child, cm))
        if boxes:
            bx = np.asarray(boxes)
            objs.append(Obj(name, (bx[:, 0].min(), bx[:, 1].min(), bx[:, 2].max(), bx[:, 3].max()), parts))

    def visit(el, m):
        tag = el.tag.replace(SVG, "")
        if tag == "defs":
            return
        if tag == "svg" and el is not root:
            vb = [float(v) for v in re.findall(_NUM, el.get("viewBox", ""))]
            if len(vb) == 4 and el.get("width") and el.get("height"):
                sx = float(el.get("width").rstrip("px")) / vb[2]
                sy = float(el.get("height").rstrip("px")) / vb[3]
                s = min(sx, sy)  # preserveAspectRatio xMinYMin meet
                m = compose(m, (s, 0.0, 0.0, s, -vb[0] * s, -vb[1] * s))
        m = compose(m, parse_transform(el.get("transform")))
        if tag == "use":
            ref = (el.get(XLINK + "href") or el.get("href") or "").lstrip("#")
            if ref in glyph_box:
                x1, y1, x2, y2 = glyph_box[ref]
                b = bbox(apply(m, [[x1, y1], [x2, y1], [x1, y2], [x2, y2]]))
                objs.append(Obj(glyph_names.get(ref[:4], "uni" + ref[:4]), b, [(el, m)]))
            return
        if tag == "g":
            # Shapes drawn directly in a group of a boxed class (a stem's line, a beam's polygons); its
            # nested groups are visited on their own (a stem's flag is a glyph of its own).
            named = next((SHAPE_CLASSES[c] for c in _classes(el) if c in SHAPE_CLASSES), None)
            if named is not None:
                box_shapes(el, m, named, named in PER_PRIMITIVE)
        if tag in ("g", "svg"):
            for child in el:
                visit(child, m)

    visit(root, IDENTITY)
    return objs

