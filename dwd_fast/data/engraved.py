"""Real engraved music pages with one box per symbol, rendered by Verovio (``pip install dwd-fast[pages]``).

Verovio lays out the music and writes an SVG page in which every SMuFL glyph (notehead, accidental,
flag, rest, clef, key and time signature, articulation...) is a ``<use>`` of a glyph symbol and every
drawn shape (stem, beam, ledger line, barline, slur, tie, dot) a path, polygon or ellipse. This module
renders that page with resvg to a grey image at DeepScores resolution and computes each object's box
from the SVG geometry: the exact bounding box of the glyph's outline (the extrema of its Bezier
curves) or of the shape, mapped through the SVG transforms to pixels.

Classes are SMuFL glyph names (as DeepScoresV2 names its classes), plus ``stem``, ``beam``,
``ledgerLine``, ``barline``, ``slur``, ``tie``, ``brace`` and ``augmentationDot`` for the drawn shapes.
Staff lines and the line that opens each system are drawn but not boxed.
"""

from __future__ import annotations

import functools
import importlib.resources
import io
import os
import re
import xml.etree.ElementTree as ET
from typing import NamedTuple, Tuple

import numpy as np

from . import _svg

__all__ = ["engraved_page", "EngravedPage", "random_music", "PIECES", "FONTS", "engraved_classes"]

FONTS = ("Bravura", "Gootville", "Leipzig", "Leland", "Petaluma")
PIECES = ("toccata", "chorale", "reel")  # the pieces the package carries (dwd_fast/data/music/)
_PIECE_FILES = {"chorale": "chorale.krn", "toccata": "toccata.krn", "reel": "reel.abc"}
SHAPE_CLASSES = ("stem", "beam", "ledgerLine", "barline", "slur", "tie", "brace", "augmentationDot")
DEEPSCORES_ASPECT = 2668 / 1894  # rows / cols of a DeepScores page


class EngravedPage(NamedTuple):
    """An engraved page and its ground truth.

    image : (H, W) uint8
        Grey page, 255 = paper, 0 = full ink (anti-aliased edges in between).
    boxes : (N, 4) float32
        ``(x1, y1, x2, y2)`` of each object's ink in pixels (pixel ``(r, c)`` covers
        ``[c, c+1) x [r, r+1)``), in drawing order.
    labels : (N,) int32
        Index of each object's class in ``class_names`` (0 is ``"background"``).
    class_names : tuple of str
        ``"background"``, the drawn shapes' classes, then the SMuFL glyph names (see
        :func:`engraved_classes`).
    font : str
    svg : str
        The rendered SVG (pixel units).
    """

    image: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    class_names: Tuple[str, ...]
    font: str
    svg: str

    @property
    def names(self):
        """Class name of each box."""
        return [self.class_names[i] for i in self.labels]


def _missing(what):
    return ImportError(f"dwd_fast.data.engraved_page needs {what}: pip install 'dwd-fast[pages]' "
                       "(verovio, resvg-py and pillow)")


def _verovio():
    try:
        import verovio
    except ImportError:
        raise _missing("verovio") from None
    return verovio


@functools.lru_cache(maxsize=1)
def _glyph_names():
    """SMuFL codepoint (``"E0A4"``) -> glyph name, from the font metadata Verovio ships."""
    verovio = _verovio()
    path = verovio.toolkit(False).getResourcePath()
    names = {}
    for font in FONTS:
        f = os.path.join(path, font + ".xml")
        if not os.path.exists(f):
            continue
        for g in ET.parse(f).getroot().iter("g"):
            if g.get("c") and g.get("n"):
                names.setdefault(g.get("c").upper(), g.get("n"))
    return names


@functools.lru_cache(maxsize=1)
def engraved_classes():
    """The class names of engraved pages (a tuple): ``"background"``, the drawn shapes (``stem``, ``beam``,
    ``ledgerLine``, ``barline``, ``slur``, ``tie``, ``brace``, ``augmentationDot``), then every SMuFL
    glyph name of Verovio's fonts in codepoint order. Labels index this list; it is the same for every
    page and font of one Verovio version."""
    glyphs = [n for c, n in sorted(_glyph_names().items()) if n not in SHAPE_CLASSES]
    return ("background", *SHAPE_CLASSES, *glyphs)


# --------------------------------------------------------------------------------------------------
# Random but plausible music (Humdrum **kern, a piano grand staff)
# --------------------------------------------------------------------------------------------------

_SHARPS = "fcgdaeb"
_FLATS = "beadgcf"


def _kern_pitch(step):
    """**kern pitch of a diatonic step (0 = middle C, 7 = the C above)."""
    letter = "cdefgab"[step % 7]
    octave = 4 + step // 7
    return letter * (octave - 3) if octave >= 4 else letter.upper() * (4 - octave)


# Beat patterns: (sixteenths, kind) with kind "n" note/chord, "r" rest; "beam" says how to beam.
_BEAT_PATTERNS = [
    ((4,), "n", 4.0), ((2, 2), "n", 3.0), ((1, 1, 1, 1), "n", 2.0), ((2, 1, 1), "n", 1.5),
    ((3, 1), "n", 1.0), ((4,), "r", 1.0), ((2, 2), "rn", 0.7), ((1, 1, 2), "n", 1.0),
]
_TWO_BEAT_PATTERNS = [((8,), "n", 2.0), ((6, 2), "n", 1.5), ((8,), "r", 0.5)]
_DUR = {16: "1", 12: "2.", 8: "2", 6: "4.", 4: "4", 3: "8.", 2: "8", 1: "16"}


def _staff_measure(rng, beats, low, high, chord_max, state):
    """One measure of one staff: a list of (onset in sixteenths, **kern token)."""
    events = []
    t = 0
    b = 0
    key_acc = state["key_acc"]
    if beats == 4 and rng.random() < 0.05:
        rest = rng.random() < 0.4
        groups = [((16,), "r" if rest else "n")]
    else:
        groups = []
        while b < beats:
            if beats - b >= 2 and b % 2 == 0 and rng.random() < 0.25:
                w = np.array([p[2] for p in _TWO_BEAT_PATTERNS])
                p = _TWO_BEAT_PATTERNS[rng.choice(len(w), p=w / w.sum())]
                b += 2
            else:
                w = np.array([p[2] for p in _BEAT_PATTERNS])
                p = _BEAT_PATTERNS[rng.choice(len(w), p=w / w.sum())]
                b += 1
            groups.append(p[:2])
    for durs, kind in groups:
        beamed = len(durs) > 1 and all(d < 4 for d in durs) and kind == "n" and (
            durs != (3, 1) or rng.random() < 0.5) and rng.random() < 0.85
        toks = []
        for j, d in enumerate(durs):
            dur = _DUR[d]
            if kind == "r" or (kind == "rn" and j == 0):
                toks.append((t, [dur + "r"]))
                t += d
                continue
            # a melodic step from the previous note, kept inside the staff's range (with ledger lines)
            step = int(np.clip(state["step"] + rng.integers(-3, 4), low, high))
            state["step"] = step
            n = 1 + int(rng.choice(chord_max, p=state["chord_p"]))
            intervals = [0] + sorted(rng.choice([1, 2, 3, 4, 5], size=n - 1, replace=False).tolist())
            notes = []
            for k in intervals:
                s = min(step + k, high + 2)
                if any(_kern_pitch(s) == x.rstrip("#-n") for x in notes):
                    continue
                # kern pitches are absolute: a note of the key signature carries its accidental, and
                # a chromatic note shows a sign (a natural for a note of the key signature)
                in_key = "cdefgab"[s % 7] in key_acc
                acc = state["key_sign"] if in_key else ""
                if rng.random() < 0.1:
                    acc = "n" if in_key else ("#" if rng.random() < 0.55 else "-")
                notes.append(_kern_pitch(s) + acc)
            art = ""
            if d <= 2 and rng.random() < 0.12:
                art = "'"
            elif rng.random() < 0.04:
                art = "^"
            toks.append((t, [dur + x + (art if i == 0 else "") for i, x in enumerate(notes)]))
            t += d
        if beamed:
            # level-1 beam over the group; level-2 beam over runs of sixteenths
            note_ix = [i for i in range(len(toks))]
            marks = [""] * len(toks)
            marks[note_ix[0]] += "L"
            marks[note_ix[-1]] += "J"
            sixteenth = [durs[i] == 1 for i in range(len(durs))]
            i = 0
            while i < len(durs):
                if sixteenth[i]:
                    j = i
                    while j + 1 < len(durs) and sixteenth[j + 1]:
                        j += 1
                    if j > i:
                        marks[i] += "L"
                        marks[j] += "J"
                    elif i > 0:
                        marks[i] += "k"  # partial beam of a lone sixteenth, pointing left
                    else:
                        marks[i] += "K"
                    i = j + 1
                else:
                    i += 1
            toks = [(on, [sub[0] + m] + sub[1:]) for (on, sub), m in zip(toks, marks)]
        events += [(on, " ".join(sub)) for on, sub in toks]
    return events


def random_music(seed=0, *, measures=40, staves=2):
    """Random but musically plausible piano music as Humdrum **kern text (what Verovio reads).

    Measures in 4/4, 3/4 or 2/4 filled beat by beat with quarters, beamed or flagged eighths and
    sixteenths, dotted rhythms, halves, wholes and rests; chords of up to four notes (seconds give
    touching noteheads), accidentals and naturals against a random key signature, staccatos and
    accents, ledger lines, occasional clef and key changes, a final barline. ``staves`` = 1 or 2
    (treble alone, or a braced grand staff).

    Examples
    --------
    >>> text = random_music(0, measures=2)
    >>> text.startswith("!!!system-decoration") and text.rstrip().endswith("*-\\t*-")
    True
    """
    if staves not in (1, 2):
        raise ValueError(f"staves must be 1 or 2, got {staves!r}")
    if int(measures) != measures or measures < 1:
        raise ValueError(f"measures must be a positive integer, got {measures!r}")
    rng = np.random.default_rng(seed)
    beats = int(rng.choice([4, 3, 2], p=[0.6, 0.3, 0.1]))
    nacc = int(rng.integers(0, 5))
    sharp = rng.random() < 0.5
    key_acc = (_SHARPS if sharp else _FLATS)[:nacc]
    key = "*k[" + "".join(a + ("#" if sharp else "-") for a in key_acc) + "]"
    meter = f"*M{beats}/4"
    specs = [dict(low=-2, high=13, chord_max=4, chord_p=[0.45, 0.3, 0.17, 0.08], step=6, clef="*clefG2")]
    if staves == 2:
        specs.insert(0, dict(low=-15, high=1, chord_max=3, chord_p=[0.5, 0.35, 0.15], step=-8, clef="*clefF4"))
    states = [dict(step=s["step"], key_acc=key_acc, key_sign="#" if sharp else "-", chord_p=s["chord_p"])
              for s in specs]
    S = len(specs)
    lines = ["!!!system-decoration: {(s1,s2)}" if S == 2 else "!!!system-decoration: s1"]
    lines += ["\t".join(["**kern"] * S), "\t".join(["*staff2", "*staff1"][-S:]),
              "\t".join(s["clef"] for s in specs), "\t".join([key] * S), "\t".join([meter] * S)]
    if beats == 4 and rng.random() < 0.5:
        lines.append("\t".join(["*met(c)"] * S))
    for m in range(1, int(measures) + 1):
        lines.append("\t".join([f"={m}"] * S))
        if m > 1 and rng.random() < 0.04:
            nacc = int(rng.integers(0, 5))
            key_acc = (_SHARPS if sharp else _FLATS)[:nacc]
            key = "*k[" + "".join(a + ("#" if sharp else "-") for a in key_acc) + "]"
            for st in states:
                st["key_acc"] = key_acc
            lines.append("\t".join([key] * S))
        if S == 2 and m > 1 and rng.random() < 0.05:
            # the left hand moves to the treble clef for one measure
            lines.append("*clefG2\t*")
            specs[0].update(low=-3, high=9)
            states[0]["step"] = 2
            per = [_staff_measure(rng, beats, specs[i]["low"], specs[i]["high"], specs[i]["chord_max"], states[i])
                   for i in range(S)]
            specs[0].update(low=-15, high=1)
            states[0]["step"] = -8
            back = True
        else:
            per = [_staff_measure(rng, beats, specs[i]["low"], specs[i]["high"], specs[i]["chord_max"], states[i])
                   for i in range(S)]
            back = False
        onsets = sorted({on for ev in per for on, _ in ev})
        at = [dict(ev) for ev in per]
        for on in onsets:
            lines.append("\t".join(at[i].get(on, ".") for i in range(S)))
        if back:
            lines.append("*clefF4\t*")
    lines.append("\t".join(["=="] * S))
    lines.append("\t".join(["*-"] * S))
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------

def _piece_text(name):
    return importlib.resources.files("dwd_fast.data").joinpath("music", _PIECE_FILES[name]).read_text("utf-8")


def _music_text(music, seed, measures):
    if music is None:
        return _piece_text(PIECES[0])
    if isinstance(music, os.PathLike):
        with open(music, encoding="utf-8") as f:
            return f.read()
    if not isinstance(music, str):
        raise TypeError(f"music must be None, a piece name, 'random', a file path or music text, "
                        f"got {type(music).__name__}")
    if music == "random":
        return random_music(seed, measures=measures)
    if music in _PIECE_FILES:
        return _piece_text(music)
    if "\n" not in music and len(music) < 4096 and os.path.exists(music):
        with open(music, encoding="utf-8") as f:
            return f.read()
    if "\n" not in music.strip() and len(music) < 256:
        raise ValueError(f"music {music!r} is not a piece name ({', '.join(PIECES)}), 'random', an existing file "
                         "or music text (MEI, MusicXML, Humdrum, ABC)")
    return music


def _render(svg_text, width, height):
    try:
        import resvg_py
    except ImportError:
        raise _missing("resvg-py") from None
    try:
        from PIL import Image
    except ImportError:
        raise _missing("pillow") from None
    png = resvg_py.svg_to_bytes(svg_string=svg_text, width=width, height=height, skip_system_fonts=True)
    rgba = np.asarray(Image.open(io.BytesIO(bytes(png))).convert("RGBA"))
    if rgba.shape[:2] != (height, width):
        raise RuntimeError(f"resvg rendered {rgba.shape[:2]}, expected {(height, width)}")
    return 255 - rgba[..., 3]  # black ink on transparent paper -> grey page


def _prepare_svg(svg_text, width, height):
    """Verovio's SVG with the page mapped onto width x height pixels (1 SVG unit = 1 pixel outside)."""
    ET.register_namespace("", "http://www.w3.org/2000/svg")
    ET.register_namespace("xlink", "http://www.w3.org/1999/xlink")
    root = ET.fromstring(svg_text)
    root.set("width", f"{width}px")
    root.set("height", f"{height}px")
    root.set("viewBox", f"0 0 {width} {height}")
    for inner in root.findall(_svg.SVG + "svg"):
        inner.set("width", f"{width}")
        inner.set("height", f"{height}")
        inner.set("preserveAspectRatio", "xMinYMin meet")
    return root


def engraved_page(music=None, *, font="Bravura", width=1894, page=1, seed=0, measures=40):
    """A page of real engraved music and one box per symbol.

    Parameters
    ----------
    music : None, str or path-like
        ``None``: the first of the pieces the package carries (:data:`PIECES`); a piece name;
        ``"random"``: random but plausible piano music drawn with ``seed`` (:func:`random_music`, with
        ``measures`` measures); a file path; or the music itself in any format Verovio reads (MEI,
        MusicXML, Humdrum **kern, ABC, Plaine & Easie).
    font : {"Bravura", "Gootville", "Leipzig", "Leland", "Petaluma"}
        SMuFL music font.
    width : int
        Page width in pixels; the height follows DeepScores' aspect (1894 -> 2668 rows). The layout is
        an A4 page (210 mm wide), so 1894 px is DeepScores' resolution (about 229 dpi, staff space
        16.2 px).
    page : int
        Page of the engraved score to render (1-based).
    seed : int
        Seed of ``music="random"``.

    Returns
    -------
    EngravedPage

    Raises
    ------
    ImportError
        Without verovio, resvg-py or pillow (``pip install 'dwd-fast[pages]'``).

    Examples
    --------
    >>> p = engraved_page("chorale")                                    # doctest: +SKIP
    >>> p.image.shape, p.boxes.shape[1], p.names[:4]                    # doctest: +SKIP
    ((2668, 1894), 4, ['brace', 'gClef', 'accidentalSharp', 'timeSig3'])
    """
    if font not in FONTS:
        raise ValueError(f"font must be one of {FONTS}, got {font!r}")
    if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or not 64 <= width <= 16384:
        raise ValueError(f"width must be an integer in [64, 16384] pixels, got {width!r}")
    if isinstance(page, bool) or not isinstance(page, (int, np.integer)) or page < 1:
        raise ValueError(f"page must be a positive integer, got {page!r}")
    text = _music_text(music, seed, measures)
    verovio = _verovio()
    width = int(width)
    height = int(round(width * DEEPSCORES_ASPECT))
    unit_w = 2100  # A4 width in Verovio's units (tenths of a mm)
    tk = verovio.toolkit()
    tk.setOptions({
        "font": font, "pageWidth": unit_w, "pageHeight": int(round(unit_w * height / width)),
        "pageMarginLeft": 100, "pageMarginRight": 100, "pageMarginTop": 100, "pageMarginBottom": 100,
        "scale": 100, "adjustPageHeight": False, "header": "none", "footer": "none", "mnumInterval": 0,
        "breaks": "auto", "xmlIdSeed": 1, "smuflTextFont": "none", "spacingSystem": 6,
    })
    if not tk.loadData(text):
        raise ValueError("Verovio could not read music (expected MEI, MusicXML, Humdrum, ABC or a file of them): "
                         + tk.getLog()[-300:])
    pages = tk.getPageCount()
    if page > pages:
        raise ValueError(f"page {page} does not exist: the music has {pages} page(s)")
    root = _prepare_svg(tk.renderToSVG(int(page)), width, height)
    svg_text = ET.tostring(root, encoding="unicode")
    image = _render(svg_text, width, height)

    objs, boxes, labels = _boxes(root, width, height)
    return EngravedPage(image, boxes, labels, engraved_classes(), font, svg_text)


def _boxes(root, width, height):
    """(objects, boxes float32 (N, 4), labels int32 (N,)) of a prepared page: every glyph and shape with
    a known class whose box, clipped to the page, is not empty."""
    objs = _svg.page_objects(root, _glyph_names())
    index = {n: i for i, n in enumerate(engraved_classes())}
    boxes = np.asarray([o.box for o in objs], np.float64).reshape(-1, 4)
    boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, width)
    boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, height)
    labels = np.asarray([index.get(o.name, -1) for o in objs], np.int64).reshape(-1)
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1]) & (labels >= 0)
    return ([o for o, k in zip(objs, keep) if k], boxes[keep].astype(np.float32), labels[keep].astype(np.int32))


def render_alone(page, indices=None, margin=4):
    """Render objects of ``page`` one at a time, each alone on a crop around its box: yields
    ``(index, ink image (h, w) uint8 with 255 = paper, (x0, y0) of the crop's top-left pixel)``. For
    measuring how tightly the boxes fit their ink (the tests do)."""
    root = ET.fromstring(page.svg)
    objs, boxes, _ = _boxes(root, page.image.shape[1], page.image.shape[0])
    defs = ET.tostring(root.find(_svg.SVG + "defs"), encoding="unicode")
    defs = re.sub(r"^<(\w+:)?defs[^>]*>", "<defs>", defs).replace("ns0:", "").replace("html:", "")
    for i in range(len(objs)) if indices is None else indices:
        x1, y1, x2, y2 = boxes[i]
        x0, y0 = int(np.floor(x1)) - margin, int(np.floor(y1)) - margin
        w, h = int(np.ceil(x2)) + margin - x0, int(np.ceil(y2)) + margin - y0
        body = []
        for el, m in objs[i].parts:
            el = ET.fromstring(ET.tostring(el))
            el.attrib.pop("transform", None)
            body.append('<g transform="matrix(%r %r %r %r %r %r)">' % tuple(float(v) for v in m)
                        + ET.tostring(el, encoding="unicode") + "</g>")
        svg = (f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
               f'width="{w}px" height="{h}px" viewBox="{x0} {y0} {w} {h}" color="black">'
               '<style type="text/css">path, polygon, polyline, rect, ellipse {stroke:currentColor}</style>'
               + defs + "".join(body) + "</svg>")
        yield i, _render(svg, w, h), (x0, y0)
