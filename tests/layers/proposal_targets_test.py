import keras
import numpy as np
import pytest
from keras.utils import bounding_boxes

from vsa_tf.layers.proposal_targets import ProposalTargets, pairwise_iou
from vsa_tf.evaluation.proposals import box_iou


def _grid_anchors(size=8, stride=8, count=8):
    """Square anchors of side `size` on a count x count grid (pixel xyxy)."""
    corners = [(x * stride, y * stride) for y in range(count) for x in range(count)]
    return np.array([[x, y, x + size, y + size] for x, y in corners], "float32")


def test_pairwise_iou_matches_the_numpy_evaluation_iou():
    rng = np.random.default_rng(0)
    anchors = _grid_anchors(size=12)
    boxes = np.sort(rng.uniform(0, 64, (2, 3, 2, 2)), axis=2).transpose(0, 1, 3, 2).reshape(2, 3, 4)[..., [0, 2, 1, 3]] + [0, 0, 1, 1]
    iou = np.asarray(pairwise_iou(anchors, boxes))
    for image in range(2):
        np.testing.assert_allclose(iou[image], box_iou(anchors, boxes[image]), rtol=1e-5, atol=1e-6)


def test_labels_follow_the_iou_thresholds_the_best_anchor_rule_and_the_mask():
    anchors = np.array([[0, 0, 10, 10], [0, 0, 10, 16], [0, 0, 20, 20], [40, 40, 50, 50], [30, 30, 60, 60]], "float32")
    boxes = np.array([[[0, 0, 10, 12], [40, 40, 56, 56], [0, 0, 1, 1]]], "float32")
    mask = np.array([[True, True, False]])  # the third box is padding
    labels, deltas, matched = ProposalTargets(samples_per_image=5, positive_fraction=1.0)(anchors, boxes, mask)
    # IoUs: 0.83 and 0.75 with box 0 (positives), 0.3 (ignored: between 0.3 and 0.7), box 1: 0.39 and 0.28.
    # Anchor 3 is box 1's best anchor, so positive although below 0.7; anchor 4 is negative (0.28 < 0.3).
    assert np.asarray(labels).tolist() == [[1.0, 1.0, -1.0, 1.0, 0.0]]
    assert np.asarray(matched)[0, :2].tolist() == [0, 0] and np.asarray(matched)[0, 3] == 1
    decoded = bounding_boxes.decode_deltas_to_boxes(anchors, deltas, anchor_format="xyxy", box_format="xyxy")
    np.testing.assert_allclose(np.asarray(decoded)[0, [0, 1, 3]], boxes[0, [0, 0, 1]], atol=1e-3)


def test_sampling_keeps_at_most_the_positive_fraction_and_fills_with_negatives():
    anchors = _grid_anchors(size=8, stride=4, count=16)  # 256 overlapping anchors
    boxes = np.array([[[0, 0, 40, 40], [30, 30, 60, 60]], [[0, 0, 8, 8], [0, 0, 1, 1]]], "float32")
    mask = np.array([[True, True], [True, False]])
    layer = ProposalTargets(positive_iou=0.1, negative_iou=0.05, samples_per_image=32, positive_fraction=0.25, seed=3)
    labels = np.asarray(layer(anchors, boxes, mask)[0])
    full_iou = np.asarray(pairwise_iou(anchors, boxes))
    for image in range(2):
        positives, negatives = (labels[image] == 1).sum(), (labels[image] == 0).sum()
        assert positives <= 8 and positives + negatives == 32
        best = np.where(mask[image][None, :], full_iou[image], -1).max(axis=1)
        assert np.all(best[labels[image] == 0] < 0.05) and np.all(best[labels[image] == 1] > 0)
    assert (labels[0] == 1).sum() == 8  # plenty of positives: the cap binds
    again = np.asarray(ProposalTargets.from_config(layer.get_config())(anchors, boxes, mask)[0])
    assert again.shape == labels.shape


def test_config_round_trip_and_errors():
    layer = ProposalTargets(positive_iou=0.6, negative_iou=0.2, samples_per_image=64, positive_fraction=0.4, seed=1)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert restored.get_config() == layer.get_config()
    with pytest.raises(ValueError, match="need 0 < negative_iou <= positive_iou <= 1, received negative_iou=0.8, positive_iou=0.7"):
        ProposalTargets(negative_iou=0.8)
    with pytest.raises(ValueError, match="samples_per_image must be >= 1, received 0"):
        ProposalTargets(samples_per_image=0)
    with pytest.raises(ValueError, match="positive_fraction must be in \\(0, 1\\], received 0"):
        ProposalTargets(positive_fraction=0)
