import keras
import numpy as np
import pytest
import tensorflow as tf

from vsa_tf.evaluation.proposals import proposal_recall
from vsa_tf.layers.box_refinement_head import BoxRefinementHead
from vsa_tf.layers.proposal_targets import pairwise_iou
from vsa_tf.models.proposal_model import ProposalModel, anchor_boxes


def _scenes(count, seed=0, size=32, stride=4):
    """Feature maps that light up inside one square object per image, and that object's box."""
    rng = np.random.default_rng(seed)
    cells = size // stride
    maps, boxes = np.zeros((count, cells, cells, 3), "float32"), np.zeros((count, 1, 4), "float32")
    for index in range(count):
        side = int(rng.integers(2, 5))
        x, y = (int(value) for value in rng.integers(0, cells - side + 1, size=2))
        maps[index, y: y + side, x: x + side, 0] = 1.0
        maps[index, ..., 1] = rng.normal(0, 0.1, (cells, cells))
        boxes[index, 0] = [x * stride, y * stride, (x + side) * stride, (y + side) * stride]
    return maps, boxes


def test_anchors_are_keras_cv_anchors_in_the_heads_order():
    anchors = anchor_boxes((16, 24), stride=8, sizes=(16,), aspect_ratios=(1.0,))
    assert anchors.shape == (6, 4)
    np.testing.assert_allclose(anchors[:2], [[-4, -4, 12, 12], [4, -4, 20, 12]])  # row by row, centres at stride / 2
    with pytest.raises(ValueError, match="positive sizes and aspect ratios, received stride=8, sizes=\\(\\), aspect_ratios=\\(1.0,\\)"):
        anchor_boxes((16, 24), stride=8, sizes=(), aspect_ratios=(1.0,))


def test_a_tiny_training_run_lowers_the_loss_and_finds_the_objects():
    keras.utils.set_random_seed(0)
    maps, boxes = _scenes(32)
    model = ProposalModel(image_size=(32, 32), feature_stride=4, anchor_sizes=(8, 16), aspect_ratios=(1.0,), filters=16,
                          samples_per_image=32, positive_iou=0.5, max_proposals=5, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    batches = tf.data.Dataset.from_tensor_slices({"feature_map": maps, "boxes": boxes, "box_mask": np.ones((32, 1), bool)}).batch(8)
    losses = model.fit(batches, epochs=15, verbose=0).history["loss"]
    assert losses[-1] < 0.6 * losses[0]
    proposed, scores, count = model.propose({"feature_map": maps})
    assert proposed.shape == (32, 5, 4) and np.all(np.diff(np.asarray(scores), axis=1) <= 1e-6)
    truth = {str(index): {"width": 32, "height": 32, "objects": [{"box": boxes[index, 0].tolist()}]} for index in range(32)}
    found = proposal_recall({str(index): np.asarray(proposed)[index, : int(count[index])] for index in range(32)}, truth, recall_at=(5,))
    assert found["recall_at"]["5"] >= 75.0


def test_saved_model_file_round_trip_and_errors(tmp_path):
    model = ProposalModel(image_size=(32, 32), feature_stride=8, anchor_sizes=(8, 16), filters=4)
    feature_map = np.random.default_rng(1).normal(size=(2, 4, 4, 6)).astype("float32")
    logits, _ = model({"feature_map": feature_map})
    path = str(tmp_path / "proposals.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_allclose(np.asarray(restored({"feature_map": feature_map})[0]), np.asarray(logits), rtol=1e-5)
    assert restored.get_config()["anchor_sizes"] == (8.0, 16.0) and restored.anchors.shape == (96, 4)
    with pytest.raises(ValueError, match="the feature map gives 150 anchors but \\(32, 32\\) images at stride 8 have 96"):
        model({"feature_map": np.zeros((1, 5, 5, 6), "float32")})
    with pytest.raises(ValueError, match="box_loss_weight must be >= 0, received -1"):
        ProposalModel(image_size=(32, 32), feature_stride=8, box_loss_weight=-1)


def test_upsampling_lays_anchors_at_the_finer_stride_and_round_trips(tmp_path):
    model = ProposalModel(image_size=(32, 32), feature_stride=8, anchor_sizes=(8, 16), filters=4, upsampling=2)
    feature_map = np.random.default_rng(0).normal(size=(2, 4, 4, 6)).astype("float32")
    logits, deltas = model({"feature_map": feature_map})
    # An 8 x 8 grid of anchor centres 4 pixels apart, 2 sizes x 3 ratios each.
    assert model.anchor_stride == 4 and model.anchors.shape == (8 * 8 * 6, 4)
    assert tuple(logits.shape) == (2, 384) and tuple(deltas.shape) == (2, 384, 4)
    centres = (model.anchors[:, :2] + model.anchors[:, 2:]) / 2
    np.testing.assert_allclose(np.unique(np.round(centres[:, 0], 3)), 2.0 + 4.0 * np.arange(8))
    path = str(tmp_path / "model.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    assert restored.upsampling == 2
    np.testing.assert_allclose(np.asarray(restored({"feature_map": feature_map})[0]), np.asarray(logits), rtol=1e-5)
    with pytest.raises(ValueError, match="upsampling must be an integer >= 1 dividing feature_stride 8, received 3"):
        ProposalModel(image_size=(32, 32), feature_stride=8, upsampling=3)


def test_a_feature_layer_lays_the_anchors_on_a_map_tapped_from_the_backbone_and_round_trips(tmp_path):
    from vsa_tf.layers.backbones import Backbone

    keras.utils.set_random_seed(0)
    model = ProposalModel(
        image_size=(16, 16), feature_stride=2, anchor_sizes=(4, 8), filters=4,
        backbone=Backbone("simple", filters=(3, 5, 7)), feature_layer="conv2",
    )
    images = np.random.default_rng(0).uniform(0, 255, (2, 16, 16, 3)).astype("float32")
    logits, deltas = model({"images": images})
    # conv2 of the (3, 5, 7) CNN: an 8 x 8 x 5 map (stride 2), not the stride-4 output.
    assert tuple(model.feature_map(images).shape) == (2, 8, 8, 5)
    assert model.anchors.shape == (8 * 8 * 6, 4) and tuple(logits.shape) == (2, 384)
    network = model.backbone.network
    expected = keras.Model(network.inputs[0], network.get_layer("conv2").output)(images / 255.0)
    np.testing.assert_allclose(np.asarray(model.feature_map(images)), np.asarray(expected), rtol=1e-5, atol=1e-6)
    path = str(tmp_path / "model.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    assert restored.feature_layer == "conv2"
    np.testing.assert_allclose(np.asarray(restored({"images": images})[1]), np.asarray(deltas), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="feature_layer 'conv2' names a backbone layer, but the model has no backbone"):
        ProposalModel(image_size=(16, 16), feature_stride=2, feature_layer="conv2")


def _refined_model(**overrides):
    arguments = dict(image_size=(32, 32), feature_stride=4, anchor_sizes=(8, 16), aspect_ratios=(1.0,), filters=16, samples_per_image=32,
                     positive_iou=0.5, max_proposals=5, nms_iou_threshold=0.5, seed=0,
                     refinement=BoxRefinementHead(filters=8, pool_size=2, hidden=32, name="refinement"))
    arguments.update(overrides)
    return ProposalModel(**arguments)


def test_the_second_stage_moves_the_proposals_onto_the_objects():
    keras.utils.set_random_seed(0)
    maps, boxes = _scenes(48)
    model = _refined_model()
    mask = np.ones((48, 1), bool)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model({"feature_map": maps[:1]})
    start = float(model.refinement_loss(maps, *model({"feature_map": maps}), boxes, mask))
    batches = tf.data.Dataset.from_tensor_slices({"feature_map": maps, "boxes": boxes, "box_mask": mask}).batch(8)
    model.fit(batches, epochs=25, verbose=0)
    logits, deltas = model({"feature_map": maps})
    assert float(model.refinement_loss(maps, logits, deltas, boxes, mask)) < 0.5 * start
    raw, raw_scores, raw_count = model.decoder(model.anchors, logits, deltas, image_size=model.image_size)
    refined, scores, count = model.propose({"feature_map": maps})
    np.testing.assert_array_equal(np.asarray(count), np.asarray(raw_count))  # the RPN's proposals, scores and order ...
    np.testing.assert_allclose(np.asarray(scores), np.asarray(raw_scores))
    real = np.arange(5)[None, :] < np.asarray(count)[:, None]
    best_raw = np.asarray(pairwise_iou(raw, boxes))[..., 0][real]
    best_refined = np.asarray(pairwise_iou(refined, boxes))[..., 0][real]
    regressed = best_raw >= model.refinement_min_iou  # ... moved closer to the object they overlap
    assert best_refined[regressed].mean() > best_raw[regressed].mean() + 0.05
    assert np.all(np.asarray(refined)[~real] == np.asarray(raw)[~real])  # padding rows untouched
    # No box in an image: nothing is regressed.
    assert float(model.refinement_loss(maps, logits, deltas, boxes, np.zeros((48, 1), bool))) == 0.0


def test_a_refined_model_compiles_without_xla_where_keras_would_choose_it():
    from keras.src.trainers.trainer import model_supports_jit

    assert not model_supports_jit(_refined_model())  # its training step decodes (NMS) and crops: no XLA kernels
    assert model_supports_jit(_refined_model(refinement=None))


def test_a_refined_model_round_trips_and_refuses_bad_arguments(tmp_path):
    model = _refined_model()
    feature_map = np.random.default_rng(1).normal(size=(2, 8, 8, 3)).astype("float32")
    model({"feature_map": feature_map})
    model.refinement.deltas.kernel.assign(np.random.default_rng(2).normal(size=model.refinement.deltas.kernel.shape).astype("float32"))
    expected = [np.asarray(value) for value in model.propose({"feature_map": feature_map})]
    path = str(tmp_path / "refined.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored.refinement, BoxRefinementHead) and restored.refinement_min_iou == 0.3
    for got, want in zip(restored.propose({"feature_map": feature_map}), expected):
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"refinement must be a BoxRefinementHead, its config or None, received str"):
        _refined_model(refinement="yes")
    with pytest.raises(ValueError, match=r"refinement_min_iou must be in \(0, 1\], received 0"):
        _refined_model(refinement_min_iou=0)
    with pytest.raises(ValueError, match=r"refinement_loss_weight must be >= 0, received -1"):
        _refined_model(refinement_loss_weight=-1)
