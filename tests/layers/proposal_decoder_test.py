import keras
import numpy as np
import pytest

from vsa_tf.evaluation.proposals import box_iou
from vsa_tf.layers.proposal_decoder import ProposalDecoder
from vsa_tf.layers.proposal_targets import ProposalTargets


def _numpy_nms(boxes, scores, iou_threshold, keep):
    """Greedy NMS, the reference: the best box, then every box overlapping a kept one by more is dropped."""
    order, kept = np.argsort(-scores, kind="stable"), []
    for index in order:
        if scores[index] <= 0:
            continue
        if all(box_iou(boxes[index], boxes[other])[0, 0] <= iou_threshold for other in kept):
            kept.append(index)
        if len(kept) == keep:
            break
    return kept


def test_nms_matches_a_numpy_reference_on_random_boxes():
    rng = np.random.default_rng(0)
    corners = np.sort(rng.uniform(0, 60, (2, 40, 2, 2)), axis=2)  # [B, A, (low, high), (x, y)]
    anchors = np.concatenate([corners[0, :, 0], corners[0, :, 1] + 2.0], axis=1).astype("float32")
    logits = rng.normal(size=(2, 40)).astype("float32")
    decoder = ProposalDecoder(max_proposals=10, iou_threshold=0.5, pre_nms_top=40, min_size=0.0)
    boxes, scores, count = decoder(anchors, logits, np.zeros((2, 40, 4), "float32"), image_size=(64, 64))
    sigmoid = 1 / (1 + np.exp(-logits))
    for image in range(2):
        kept = _numpy_nms(anchors, sigmoid[image], 0.5, keep=10)
        assert int(count[image]) == len(kept)
        np.testing.assert_allclose(np.asarray(boxes)[image, : len(kept)], anchors[kept], atol=1e-4)
        np.testing.assert_allclose(np.asarray(scores)[image, : len(kept)], sigmoid[image, kept], rtol=1e-5)
        assert np.all(np.asarray(boxes)[image, len(kept):] == 0)


def test_decoding_inverts_the_targets_and_boxes_are_clipped_and_filtered():
    anchors = np.array([[0, 0, 16, 16], [30, 30, 50, 50], [50, 0, 70, 8]], "float32")
    truth = np.array([[[2, 3, 14, 20], [28, 35, 60, 50]]], "float32")
    labels, deltas, matched = ProposalTargets(samples_per_image=3)(anchors, truth, np.ones((1, 2), bool))
    logits = np.array([[3.0, 2.0, 1.0]], "float32")
    boxes, _, count = ProposalDecoder(max_proposals=3, iou_threshold=0.9, min_size=4.0)(anchors, logits, deltas, image_size=(48, 56))
    # Anchor 0 decodes to its truth box; anchor 1's box is clipped to the 56 x 48 image; anchor 2 (no
    # overlap, zero deltas) is clipped to [50, 0, 56, 8]: 6 pixels wide, kept at min_size 4.
    np.testing.assert_allclose(np.asarray(boxes)[0, 0], truth[0, 0], atol=1e-3)
    np.testing.assert_allclose(np.asarray(boxes)[0, 1], [28, 35, 56, 48], atol=1e-3)
    np.testing.assert_allclose(np.asarray(boxes)[0, 2], [50, 0, 56, 8], atol=1e-3)
    narrow = ProposalDecoder(max_proposals=3, iou_threshold=0.9, min_size=7.0)(anchors, logits, deltas, image_size=(48, 56))
    assert int(count[0]) == 3 and int(narrow[2][0]) == 2


def test_config_round_trip_and_errors():
    decoder = ProposalDecoder(max_proposals=5, iou_threshold=0.6, pre_nms_top=50, min_size=2.0)
    assert keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(decoder)).get_config() == decoder.get_config()
    with pytest.raises(ValueError, match="max_proposals and pre_nms_top must be >= 1, received 0 and 1000"):
        ProposalDecoder(max_proposals=0)
    with pytest.raises(ValueError, match="iou_threshold must be in \\(0, 1\\], received 0"):
        ProposalDecoder(iou_threshold=0)
    with pytest.raises(ValueError, match="min_size must be >= 0, received -1"):
        ProposalDecoder(min_size=-1)
