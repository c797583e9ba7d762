import numpy as np
import pytest

from tests.layer_test_helper import run_layer_test
from vsa_tf.layers.region_proposal_head import RegionProposalHead


def test_layer_contract():
    run_layer_test(
        RegionProposalHead,
        {"anchors_per_location": 3, "filters": 4},
        np.random.default_rng(0).normal(size=(2, 3, 4, 5)).astype("float32"),
        expected_output_shape=((2, 36), (2, 36, 4)),
        expected_num_trainable_weights=6,
    )


def test_outputs_are_in_the_anchor_generators_order_and_deltas_start_at_zero():
    head = RegionProposalHead(anchors_per_location=2, filters=4)
    feature_map = np.zeros((1, 2, 3, 5), "float32")
    feature_map[0, 1, 2] = 1.0  # only the last position sees a signal
    logits, deltas = head(feature_map)
    objectness = np.asarray(head.objectness(head.conv(feature_map))).reshape(1, -1)
    np.testing.assert_allclose(np.asarray(logits), objectness, rtol=1e-6)  # position-major, then the k anchors
    assert np.all(np.asarray(deltas) == 0.0)


def test_errors_name_the_value():
    with pytest.raises(ValueError, match="anchors_per_location must be >= 1, received 0"):
        RegionProposalHead(anchors_per_location=0)
    with pytest.raises(ValueError, match="filters must be >= 1, received 0"):
        RegionProposalHead(anchors_per_location=1, filters=0)
