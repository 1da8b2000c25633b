"""dwd_fast.data.engraved_page: real engraved music (Verovio + resvg) with one box per symbol.

The boxes come from the SVG geometry (the exact bounding boxes of glyph outlines and shapes); these
tests measure them against the rendered ink: every box holds ink on the page, and each object rendered
alone has its ink within a pixel of its box on every side.
"""

import collections
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("verovio")
pytest.importorskip("resvg_py")
pytest.importorskip("PIL")

from dwd_fast.data import _svg, engraved  # noqa: E402
from dwd_fast.data import FONTS, PIECES, engraved_classes, engraved_page, random_music  # noqa: E402

INK = 192  # a pixel is ink when its coverage is above 1/4 (grey < 192)


@pytest.fixture(scope="module")
def random_page():
    return engraved_page("random", seed=3, measures=12)


def _ink_box(img, x0, y0):
    rows, cols = np.nonzero(img < INK)
    if rows.size == 0:
        return None
    return np.array([cols.min() + x0, rows.min() + y0, cols.max() + 1 + x0, rows.max() + 1 + y0], np.float64)


def _tightness(page, indices=None):
    """Per object: (inkless, signed gaps (4,)) with gap > 0 where the box extends past the ink and gap < 0
    where ink lies outside the box: (x1_ink - x1, y1_ink - y1, x2 - x2_ink, y2 - y2_ink)."""
    gaps = {}
    for i, img, (x0, y0) in engraved.render_alone(page, indices):
        ink = _ink_box(img, x0, y0)
        gaps[i] = None if ink is None else np.array([ink[0] - page.boxes[i, 0], ink[1] - page.boxes[i, 1],
                                                     page.boxes[i, 2] - ink[2], page.boxes[i, 3] - ink[3]])
    return gaps


def test_page_shape_and_types(random_page):
    p = random_page
    assert p.image.shape == (2668, 1894) and p.image.dtype == np.uint8
    assert p.boxes.dtype == np.float32 and p.boxes.shape == (len(p.labels), 4)
    assert p.labels.dtype == np.int32 and p.labels.min() >= 1
    assert p.class_names is engraved_classes() and p.class_names[0] == "background"
    assert np.all(p.boxes[:, 2] > p.boxes[:, 0]) and np.all(p.boxes[:, 3] > p.boxes[:, 1])
    assert np.all(p.boxes >= 0) and np.all(p.boxes[:, 2] <= 1894) and np.all(p.boxes[:, 3] <= 2668)
    counts = collections.Counter(p.names)
    # what dense piano music is made of
    for name in ("noteheadBlack", "stem", "beam", "gClef", "fClef", "barline", "ledgerLine", "brace"):
        assert counts[name] > 0, name
    assert any(n.startswith("accidental") for n in counts) and any(n.startswith("rest") for n in counts)
    assert len(p.boxes) > 300
    # paper is white, ink is black
    assert np.median(p.image) == 255 and p.image.min() == 0


def test_every_box_holds_ink(random_page):
    p = random_page
    for (x1, y1, x2, y2), name in zip(p.boxes, p.names):
        r0, r1 = int(np.floor(y1)), int(np.ceil(y2))
        c0, c1 = int(np.floor(x1)), int(np.ceil(x2))
        assert (p.image[r0:r1, c0:c1] < INK).any(), f"{name} box {(x1, y1, x2, y2)} holds no ink"


def test_boxes_bound_their_glyphs_tightly(random_page):
    """Each object alone: its ink lies within 1 px outside the box and the box within 1 px outside the ink
    (anti-aliasing: a box side falling inside a pixel leaves that pixel partly inked)."""
    gaps = _tightness(random_page)
    assert len(gaps) == len(random_page.boxes)
    inkless = [random_page.names[i] for i, g in gaps.items() if g is None]
    assert not inkless, f"objects that render no ink alone: {inkless[:10]}"
    g = np.array(list(gaps.values()))
    assert np.abs(g).max() <= 1.0, f"worst gap {np.abs(g).max():.2f} px"
    assert np.median(np.abs(g)) <= 0.5


@pytest.mark.parametrize("font", FONTS)
def test_every_font_tight(font):
    p = engraved_page("chorale", font=font, width=947)  # half DeepScores' resolution: faster, and harder
    assert p.font == font and len(p.boxes) > 100
    idx = np.random.default_rng(0).choice(len(p.boxes), size=min(60, len(p.boxes)), replace=False)
    gaps = _tightness(p, idx.tolist())
    assert all(v is not None for v in gaps.values())
    assert np.abs(np.array(list(gaps.values()))).max() <= 1.0


def test_fonts_draw_differently():
    a, b = engraved_page("chorale", font="Bravura", width=947), engraved_page("chorale", font="Petaluma", width=947)
    assert collections.Counter(a.names) == collections.Counter(b.names)  # same music, same symbols
    assert not np.allclose(a.boxes, b.boxes)  # different glyph shapes


@pytest.mark.parametrize("piece", PIECES)
def test_bundled_pieces_load_without_errors(piece):
    import verovio

    tk = verovio.toolkit()
    assert tk.loadData(engraved._piece_text(piece))
    assert "Error" not in tk.getLog()


@settings(max_examples=25)
@given(st.integers(0, 2**32 - 1))
def test_random_music_is_valid_humdrum(seed):
    """Every measure adds up (Verovio reports inconsistent rhythms as errors) and the text is a function
    of the seed."""
    import verovio

    text = random_music(seed, measures=6)
    assert text == random_music(seed, measures=6)
    tk = verovio.toolkit()
    assert tk.loadData(text)
    log = tk.getLog()
    assert "Error" not in log and "rhythm" not in log, log[:300]


def test_random_music_depends_on_seed():
    assert random_music(0) != random_music(1)
    a = engraved_page("random", seed=5, measures=4, width=600)
    b = engraved_page("random", seed=5, measures=4, width=600)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.boxes, b.boxes)


def test_music_inputs(tmp_path):
    abc = engraved._piece_text("reel")
    path = tmp_path / "reel.abc"
    path.write_text(abc)
    for music in (path, str(path), "reel", abc):
        assert engraved._music_text(music, 0, 40) == abc
    assert engraved._music_text(None, 0, 40) == engraved._piece_text(PIECES[0])
    assert engraved._music_text("random", 7, 9) == random_music(7, measures=9)
    from_text = engraved_page(abc)
    assert collections.Counter(from_text.names)["repeatDot"] == 8  # |: :| twice in the tune


def test_width_scales_the_page():
    small = engraved_page("chorale", width=947)
    big = engraved_page("chorale")
    assert small.image.shape == (1334, 947)
    assert len(small.boxes) == len(big.boxes)
    np.testing.assert_allclose(small.boxes * 2, big.boxes, atol=0.3)


def test_bad_input():
    with pytest.raises(ValueError, match="font"):
        engraved_page("chorale", font="Comic Sans")
    with pytest.raises(ValueError, match="width"):
        engraved_page("chorale", width=10)
    with pytest.raises(ValueError, match="page"):
        engraved_page("chorale", page=0)
    with pytest.raises(ValueError, match="page 5 does not exist"):
        engraved_page("chorale", page=5)
    with pytest.raises(ValueError, match="music"):
        engraved_page("no-such-piece")
    with pytest.raises(TypeError, match="music"):
        engraved_page(42)
    with pytest.raises(ValueError, match="Verovio could not read music"):
        engraved_page("this is not music\nat all\n")
    with pytest.raises(ValueError, match="staves"):
        random_music(0, staves=3)


def test_missing_verovio_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "verovio", None)
    with pytest.raises(ImportError, match=r"dwd-fast\[pages\]"):
        engraved_page("chorale")


# --------------------------------------------------------------------------------------------------
# Path bounding boxes (the geometry the boxes are built from) against dense sampling
# --------------------------------------------------------------------------------------------------

coord = st.floats(-100, 100, allow_nan=False, width=32)


@given(st.lists(st.tuples(coord, coord), min_size=4, max_size=4), st.booleans())
def test_cubic_bbox_is_exact(pts, relative):
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = pts
    if relative:
        d = f"M{x0} {y0}c{x1 - x0} {y1 - y0} {x2 - x0} {y2 - y0} {x3 - x0} {y3 - y0}z"
    else:
        d = f"M{x0} {y0}C{x1} {y1} {x2} {y2} {x3} {y3}Z"
    got = _svg.bbox(_svg.path_points(d))
    t = np.linspace(0, 1, 20001)[:, None]
    P = np.array(pts, np.float64)
    curve = (1 - t) ** 3 * P[0] + 3 * (1 - t) ** 2 * t * P[1] + 3 * (1 - t) * t ** 2 * P[2] + t ** 3 * P[3]
    want = (curve[:, 0].min(), curve[:, 1].min(), curve[:, 0].max(), curve[:, 1].max())
    # the exact box contains every sample and exceeds the sampled box by at most the sampling error
    assert got[0] <= want[0] + 1e-6 and got[1] <= want[1] + 1e-6
    assert got[2] >= want[2] - 1e-6 and got[3] >= want[3] - 1e-6
    assert np.allclose(got, want, atol=1e-2)


def test_path_commands():
    # h, v, l, H, V, then a smooth cubic from (1, 0) (first control point = the current point) to (5, 0)
    # through (4, 3), whose height 9 t^2 (1 - t) peaks at 4/3
    pts = _svg.path_points("M10 20h5v-3l2 2H1V0s3 3 4 0z")
    assert _svg.bbox(pts) == (1.0, 0.0, 17.0, 20.0)
    x1, y1, x2, y2 = _svg.bbox(_svg.path_points("M0 0Q10 10 20 0"))
    assert (x1, x2, y1) == (0.0, 20.0, 0.0) and abs(y2 - 5.0) < 1e-9  # a quadratic peaks halfway
    # T reflects the previous quadratic's control point (the second arch dips to -5); S after a
    # quadratic does not reflect it (its first control point is the current point: a flat curve)
    assert _svg.bbox(_svg.path_points("M0 0Q10 10 20 0T40 0")) == (0.0, -5.0, 40.0, 5.0)
    assert _svg.bbox(_svg.path_points("M0 0Q10 10 20 0S40 0 40 0")) == (0.0, 0.0, 40.0, 5.0)
    m = _svg.parse_transform("translate(10, 20) scale(2)")
    assert np.allclose(_svg.apply(m, [[1, 1]]), [[12, 22]])


MEI = """<?xml version="1.0" encoding="UTF-8"?>
<mei xmlns="http://www.music-encoding.org/ns/mei" meiversion="5.0">
 <music><body><mdiv><score>
  <scoreDef meter.count="2" meter.unit="4" keysig="1s">
   <staffGrp><staffDef n="1" lines="5" clef.shape="G" clef.line="2"/></staffGrp>
  </scoreDef>
  <section><measure n="1"><staff n="1"><layer n="1">
   <chord dur="4"><note pname="g" oct="4"/><note pname="a" oct="4"/><note pname="c" oct="5" accid="s"/></chord>
   <rest dur="4"/>
  </layer></staff></measure></section>
 </score></mdiv></body></music>
</mei>
"""

MUSICXML = """<?xml version="1.0" encoding="UTF-8"?>
<score-partwise version="4.0"><part-list><score-part id="P1"><part-name/></score-part></part-list>
<part id="P1"><measure number="1">
 <attributes><divisions>1</divisions><time><beats>2</beats><beat-type>4</beat-type></time>
  <clef><sign>F</sign><line>4</line></clef></attributes>
 <note><pitch><step>C</step><octave>3</octave></pitch><duration>1</duration><type>quarter</type></note>
 <note><chord/><pitch><step>D</step><octave>3</octave></pitch><duration>1</duration><type>quarter</type></note>
 <note><rest/><duration>1</duration><type>quarter</type></note>
</measure></part></score-partwise>
"""


@pytest.mark.parametrize("text, clef, noteheads, extra", [
    (MEI, "gClef", 3, "accidentalSharp"), (MUSICXML, "fClef", 2, "restQuarter")])
def test_mei_and_musicxml(text, clef, noteheads, extra):
    p = engraved_page(text, width=600)
    counts = collections.Counter(p.names)
    assert counts[clef] == 1 and counts["noteheadBlack"] == noteheads and counts[extra] >= 1
    assert counts["restQuarter"] == 1


def test_later_pages():
    text = random_music(11, measures=90)
    first = engraved_page(text, width=600)
    second = engraved_page(text, width=600, page=2)
    assert len(first.boxes) > 100 and len(second.boxes) > 10
    assert not np.array_equal(first.image, second.image)
