"""dwd_fast.data.simulate_outputs / box_targets, and the detection matching of the demo."""

import numpy as np
import pytest

import dwd_fast
from dwd_fast._bench.evaluate import box_iou, match, precision_recall
from dwd_fast.data import box_targets, reference_page, simulate_outputs


@pytest.fixture(scope="module")
def targets():
    p = reference_page(150, seed=1)
    t, objects = box_targets(p.boxes, p.labels, p.energy.shape, levels=16)
    return p, t, objects


EXACT = dict(blur=0, noise=0, miss=0, merge=0, class_error=0, size_noise=0, amplitude=(1, 1))


def test_box_targets_maps(targets):
    p, t, objects = targets
    assert t.energy.shape == p.energy.shape and t.levels == 16
    ids = objects[objects > 0]
    assert ids.max() <= len(p.boxes)
    # each target pixel holds its own box's class and (height, width)
    np.testing.assert_array_equal(t.classes[objects > 0], p.labels[ids - 1])
    np.testing.assert_allclose(t.sizes[0][objects > 0], (p.boxes[:, 3] - p.boxes[:, 1])[ids - 1])
    np.testing.assert_allclose(t.sizes[1][objects > 0], (p.boxes[:, 2] - p.boxes[:, 0])[ids - 1])
    assert np.all(t.classes[objects == 0] == 0)


def test_box_targets_widen_thin_markers():
    boxes = np.array([[10, 10, 11.5, 60], [30, 40, 80, 42]], np.float32)  # a stem, a ledger line
    t0, _ = box_targets(boxes, [1, 2], (100, 100), min_marker=0)
    t6, obj = box_targets(boxes, [1, 2], (100, 100), min_marker=6)
    assert np.count_nonzero(t6.energy) > np.count_nonzero(t0.energy)
    assert set(np.unique(obj)) == {0, 1, 2}
    # the size map keeps the real (thin) sizes
    assert t6.sizes[1][obj == 1].max() == pytest.approx(1.5)
    assert t6.sizes[0][obj == 2].max() == pytest.approx(2.0)


def test_without_degradation_outputs_equal_targets(targets):
    p, t, objects = targets
    out = simulate_outputs(t, seed=0, objects=objects, **EXACT)
    np.testing.assert_array_equal(out.energy, t.energy)
    fg = t.energy > 0
    np.testing.assert_array_equal(out.classes[fg], t.classes[fg])
    np.testing.assert_allclose(out.sizes[:, fg], t.sizes[:, fg], rtol=1e-6)
    assert out.missed.size == out.merged.size == out.misclassified.size == 0


def test_deterministic_with_seed(targets):
    _, t, objects = targets
    a = simulate_outputs(t, seed=3, objects=objects)
    b = simulate_outputs(t, seed=3, objects=objects)
    c = simulate_outputs(t, seed=4, objects=objects)
    for x, y in zip(a[:3], b[:3]):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.energy, c.energy)


def test_missed_objects_vanish(targets):
    _, t, objects = targets
    out = simulate_outputs(t, seed=0, objects=objects, **{**EXACT, "miss": 0.3})
    assert 0 < out.missed.size < out.objects
    for i in out.missed:
        assert np.all(out.energy[objects == i + 1] == 0)
    kept = ~np.isin(objects, out.missed + 1)
    np.testing.assert_array_equal(out.energy[kept], t.energy[kept])


def test_misclassified_objects_change_class(targets):
    _, t, objects = targets
    out = simulate_outputs(t, seed=0, objects=objects, **{**EXACT, "class_error": 1.0})
    assert out.misclassified.size == out.objects
    fg = t.energy > 0
    assert np.all(out.classes[fg] != t.classes[fg])


def test_merged_objects_grow(targets):
    _, t, objects = targets
    out = simulate_outputs(t, seed=0, objects=objects, **{**EXACT, "merge": 1.0, "merge_radius": 2})
    assert np.count_nonzero(out.energy) > np.count_nonzero(t.energy)
    assert np.all(out.energy >= t.energy)
    # two noteheads side by side (cores 5 px apart): separate in the targets, one core when fattened
    boxes = np.array([[10, 10, 30, 26], [24, 10, 44, 26]], np.float32)
    t2, obj2 = box_targets(boxes, [1, 1], (40, 64))
    assert dwd_fast.label(t2.energy > 7, return_num=True)[1] == 2
    fused = simulate_outputs(t2, seed=0, objects=obj2, **{**EXACT, "merge": 1.0, "merge_radius": 4})
    assert fused.merged.tolist() == [0, 1]
    assert dwd_fast.label(fused.energy > 7, return_num=True)[1] == 1


def test_noise_and_decode_quality(targets):
    p, t, objects = targets
    out = simulate_outputs(t, seed=0, objects=objects)
    assert out.energy.dtype == np.uint8 and out.energy.max() <= 15
    det = dwd_fast.decode(out.energy, out.classes, out.sizes, cutoff=6, min_size=2, levels=16)
    prec, rec, _, _ = precision_recall(det.boxes, det.labels, det.scores, p.boxes, p.labels)
    assert 0.6 < prec <= 1 and 0.6 < rec <= 1


def test_logits():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 280, (60, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(6, 30, (60, 2))], 1)
    t, objects = box_targets(boxes, rng.integers(1, 12, 60), (320, 320), levels=16)
    out = simulate_outputs(t, seed=0, objects=objects, logits=True, num_classes=12)
    assert out.energy_logits.dtype == np.float16 and out.energy_logits.shape == (16, 320, 320)
    assert out.class_logits.dtype == np.float16 and out.class_logits.shape == (12, 320, 320)
    np.testing.assert_array_equal(out.energy_logits.argmax(0), out.energy)
    np.testing.assert_array_equal(out.class_logits.argmax(0), out.classes)
    # decode takes the logits as they are, and finds the objects of the level and id maps
    a = dwd_fast.decode(out.energy_logits.astype(np.float32), out.class_logits.astype(np.float32), out.sizes,
                        cutoff=6, min_size=2)
    b = dwd_fast.decode(out.energy, out.classes, out.sizes, cutoff=6, min_size=2, levels=16)
    np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-3)
    with pytest.raises(ValueError, match="num_classes"):
        simulate_outputs(t, seed=0, objects=objects, logits=True, num_classes=3)


def test_components_when_no_objects_given(targets):
    _, t, _ = targets
    out = simulate_outputs(t, seed=0, **EXACT)
    assert out.objects == dwd_fast.label(t.energy > 0, return_num=True)[1]
    np.testing.assert_array_equal(out.energy, t.energy)


def test_bad_input(targets):
    _, t, objects = targets
    with pytest.raises(TypeError, match="targets"):
        simulate_outputs(t.energy, seed=0)
    with pytest.raises(TypeError, match="seed"):
        simulate_outputs(t, seed=1.5)
    with pytest.raises(ValueError, match="miss"):
        simulate_outputs(t, seed=0, miss=2)
    with pytest.raises(ValueError, match="blur"):
        simulate_outputs(t, seed=0, blur=-1)
    with pytest.raises(ValueError, match="objects"):
        simulate_outputs(t, seed=0, objects=objects[:10])
    with pytest.raises(ValueError, match="amplitude"):
        simulate_outputs(t, seed=0, amplitude=(2, 1))
    with pytest.raises(ValueError, match="labels"):
        box_targets(np.zeros((2, 4)) + [0, 0, 5, 5], [1], (10, 10))


# --------------------------------------------------------------------------------------------------
# matching
# --------------------------------------------------------------------------------------------------

def test_iou_and_matching():
    gt = np.array([[0, 0, 10, 10], [20, 0, 30, 10], [0, 20, 4, 24]], np.float32)
    assert np.allclose(np.diag(box_iou(gt, gt)), 1)
    assert box_iou([[0, 0, 10, 10]], [[5, 0, 15, 10]])[0, 0] == pytest.approx(1 / 3)
    det = np.array([[1, 0, 11, 10], [20, 0, 30, 10], [20, 0, 30, 10], [0, 20, 4, 24]], np.float32)
    labels = np.array([1, 2, 2, 9])
    scores = np.array([0.9, 0.5, 0.8, 0.7])
    tp, used = match(det, labels, scores, gt, [1, 2, 3])
    # det 0 matches gt 0 (IoU 9/11); of the duplicates, the higher score wins; det 3 has the wrong class
    assert tp.tolist() == [True, False, True, False] and used.tolist() == [True, True, False]
    p, r, _, _ = precision_recall(det, labels, scores, gt, [1, 2, 3])
    assert (p, r) == (0.5, pytest.approx(2 / 3))
    tp, used = match(np.zeros((0, 4)), [], [], gt, [1, 2, 3])
    assert tp.size == 0 and not used.any()
