import keras
import numpy as np
import pytest
from keras.utils import bounding_boxes

from vsa_tf.layers.box_refinement_head import BoxRefinementHead, refined_boxes


def _maps_and_boxes():
    rng = np.random.default_rng(0)
    return rng.normal(size=(2, 6, 6, 5)).astype("float32"), rng.uniform(0.0, 0.5, size=(2, 3, 4)).astype("float32") + [0, 0, 0.5, 0.5]


def test_an_untrained_head_leaves_the_boxes_and_padding_rows_get_zero_deltas():
    feature_map, boxes = _maps_and_boxes()
    head = BoxRefinementHead(filters=3, pool_size=2, hidden=8)
    deltas = head(feature_map, boxes)
    assert tuple(deltas.shape) == (2, 3, 4) and np.all(np.asarray(deltas) == 0.0)  # zero-initialised output layer
    head.deltas.kernel.assign(np.random.default_rng(1).normal(size=head.deltas.kernel.shape).astype("float32"))
    mask = np.array([[True, True, False], [True, False, False]])
    masked = np.asarray(head(feature_map, boxes, mask))
    assert np.all(masked[~mask] == 0.0) and np.all(np.abs(masked[mask]).sum(axis=-1) > 0)
    np.testing.assert_allclose(masked[mask], np.asarray(head(feature_map, boxes))[mask], rtol=1e-6)


def test_the_context_box_is_the_box_enlarged_about_its_centre_and_clipped():
    head = BoxRefinementHead(filters=2, pool_size=2, hidden=4, context_scale=2.0)
    context = np.asarray(head.context_boxes(np.array([[0.4, 0.4, 0.6, 0.6], [0.0, 0.1, 0.5, 0.3]], "float32")))
    np.testing.assert_allclose(context, [[0.3, 0.3, 0.7, 0.7], [0.0, 0.0, 0.75, 0.4]], atol=1e-6)
    # The context changes the deltas: the same box on maps that differ only outside it.
    feature_map = np.zeros((2, 8, 8, 3), "float32")
    feature_map[1, 0, :, :] = 5.0  # a row outside the box, inside its context
    boxes = np.array([[[0.25, 0.25, 0.75, 0.75]]] * 2, "float32")
    head = BoxRefinementHead(filters=2, pool_size=2, hidden=4)
    head(feature_map, boxes)
    head.deltas.kernel.assign(np.ones(head.deltas.kernel.shape, "float32"))
    head.reduce.bias.assign(np.ones(head.reduce.bias.shape, "float32"))
    own = np.asarray(head.roi_align(head.reduce(feature_map), boxes))
    np.testing.assert_allclose(own[0], own[1])  # the box's own bins do not see the row ...
    deltas = np.asarray(head(feature_map, boxes))
    assert not np.allclose(deltas[0], deltas[1])  # ... its surroundings do


def test_refined_boxes_invert_the_keras_encoding_and_clip_to_the_image():
    boxes = np.array([[[2.0, 2.0, 10.0, 12.0], [0.0, 0.0, 4.0, 4.0]]], "float32")
    targets = np.array([[[3.0, 1.0, 12.0, 15.0], [0.0, 0.0, 8.0, 6.0]]], "float32")
    deltas = bounding_boxes.encode_box_to_deltas(
        anchors=boxes, boxes=targets, anchor_format="xyxy", box_format="xyxy", variance=BoxRefinementHead.BOX_VARIANCE
    )
    np.testing.assert_allclose(np.asarray(refined_boxes(boxes, deltas, (32, 32))), targets, atol=1e-4)
    np.testing.assert_allclose(np.asarray(refined_boxes(boxes, deltas, (14, 11))), np.minimum(targets, [11, 14, 11, 14]), atol=1e-4)
    np.testing.assert_array_equal(np.asarray(refined_boxes(boxes, np.zeros_like(deltas), (32, 32))), boxes)


def test_config_round_trip_and_serialization(tmp_path):
    feature_map, boxes = _maps_and_boxes()
    head = BoxRefinementHead(filters=3, pool_size=2, hidden=8, context_scale=1.5, name="refinement")
    head(feature_map, boxes)
    head.deltas.kernel.assign(np.random.default_rng(2).normal(size=head.deltas.kernel.shape).astype("float32"))
    config = head.get_config()
    assert {key: config[key] for key in ("filters", "pool_size", "hidden", "context_scale")} == {
        "filters": 3, "pool_size": 2, "hidden": 8, "context_scale": 1.5
    }
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(head))
    clone(feature_map, boxes)
    clone.set_weights(head.get_weights())
    np.testing.assert_allclose(np.asarray(clone(feature_map, boxes)), np.asarray(head(feature_map, boxes)), rtol=1e-6)


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"filters": 0}, r"filters must be a positive integer, received 0"),
        ({"pool_size": 2.5}, r"pool_size must be a positive integer, received 2.5"),
        ({"hidden": True}, r"hidden must be a positive integer, received True"),
        ({"context_scale": 0.5}, r"context_scale must be a number >= 1, received 0.5"),
    ],
)
def test_bad_arguments_name_the_value(arguments, message):
    with pytest.raises(ValueError, match=message):
        BoxRefinementHead(**arguments)
