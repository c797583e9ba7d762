import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from vsa_tf.config import ImageEncoderConfig
from tests.helpers.recall import recalls
from vsa_tf.models.alignment_model import AlignmentModel
from vsa_tf.models.alignment_model import HardestNegativeWarmup
from vsa_tf.evaluation.retrieval_evaluator import RetrievalEvaluator
from vsa_tf.evaluation.retrieval import score_dataset

TINY = {"vocabulary_size": 10, "region_dim": 4, "embedding_dim": 3, "hidden_dim": 4}
CACHED = ImageEncoderConfig(mode="cached")
CACHED_6 = ImageEncoderConfig(mode="cached", feature_dim=6)


def _ranking_batches(pixels=False, num_pairs=8, num_regions=3, num_words=4, seed=0):
    """Random pairs where each image's features decide its words, so the ranking is learnable."""
    random = np.random.default_rng(seed)
    image_id = np.arange(num_pairs, dtype="int64") % 4
    tokens = np.zeros((num_pairs, num_words), "int32")
    lengths = random.integers(2, num_words + 1, num_pairs)
    for row, length in enumerate(lengths):
        tokens[row, :length] = 4 + (image_id[row] + np.arange(length)) % 6
    batch = {
        "tokens": tokens,
        "token_mask": tokens != 0,
        "image_id": image_id,
        "region_mask": np.array([[True] * (num_regions - 1) + [False]] * num_pairs),
    }
    if pixels:
        images = np.zeros((num_pairs, 16, 16, 3), "float32")
        for row in range(num_pairs):
            images[row, :, :, image_id[row] % 3] = 60.0 * (1 + image_id[row])
        boxes = np.tile(np.array([0, 0, 1, 1], "float32"), (num_pairs, num_regions, 1))
        boxes[:, -1] = 0.0
        batch.update({"images": images, "boxes": boxes})
    else:
        prototypes = random.normal(size=(4, num_regions, 6)).astype("float32")
        batch["region_features"] = prototypes[image_id]
    return batch


def _dataset(batch, batch_size=8):
    return tf.data.Dataset.from_tensor_slices(batch).batch(batch_size)


def test_call_shapes_and_encoders():
    model = AlignmentModel(**TINY, image_encoder=CACHED_6)
    batch = _ranking_batches()
    scores = model(batch)
    assert tuple(scores.shape) == (8, 8)
    regions, region_mask = model.encode_images(batch)
    words, token_mask = model.encode_sentences(batch)
    assert tuple(regions.shape) == (8, 3, 4) and tuple(words.shape) == (8, 4, 4)
    np.testing.assert_array_equal(np.asarray(region_mask), batch["region_mask"])
    np.testing.assert_array_equal(np.asarray(token_mask), batch["token_mask"])
    with pytest.raises(ValueError, match="tokens"):
        model.encode_sentences({"token_mask": batch["token_mask"]})


def test_config_round_trip_and_weights(tmp_path):
    model = AlignmentModel(**TINY, image_encoder=CACHED_6, sentence_encoder="bag_of_words", score="defrag")
    model.build_from_dummy()
    config = json.loads(json.dumps(model.get_config()))
    revived = AlignmentModel.from_config(config)
    assert revived.get_config() == model.get_config()
    path = str(tmp_path / "model.weights.h5")
    model.save_weights(path)
    revived.build_from_dummy().load_weights(path)
    batch = _ranking_batches()
    np.testing.assert_allclose(np.asarray(revived(batch)), np.asarray(model(batch)), rtol=1e-6)


@pytest.mark.parametrize("pixels", [False, True], ids=["cached", "pixels"])
def test_training_lowers_the_loss(pixels):
    keras.utils.set_random_seed(1)
    batch = _ranking_batches(pixels=pixels)
    model = AlignmentModel(
        **TINY, image_encoder=ImageEncoderConfig(mode="pixels" if pixels else "cached", filters=(4, 8)), image_shape=(16, 16), dropout=0.0
    )
    model.compile_for_training(learning_rate=0.003, weight_decay=1e-4)
    history = model.fit(_dataset(batch), epochs=12, verbose=0).history["loss"]
    assert np.mean(history[-3:]) < 0.6 * history[0], history
    assert model.evaluate(_dataset(batch), verbose=0) < history[0]


@pytest.mark.parametrize("weight_decay, expected", [(0.0, "Adam"), (1e-4, "AdamW")])
def test_adam_optimizer_option_trains(weight_decay, expected):
    keras.utils.set_random_seed(1)
    batch = _ranking_batches()
    model = AlignmentModel(**TINY, image_encoder=CACHED, dropout=0.0)
    model.compile_for_training(learning_rate=0.01, weight_decay=weight_decay, optimizer="adam")
    assert type(model.optimizer).__name__ == expected
    assert model.optimizer.clipvalue == 5.0
    history = model.fit(_dataset(batch), epochs=12, verbose=0).history["loss"]
    assert np.mean(history[-3:]) < 0.6 * history[0], history


def test_compile_rejects_unknown_optimizer():
    model = AlignmentModel(**TINY, image_encoder=CACHED)
    with pytest.raises(ValueError, match="optimizer must be one of \\['sgd', 'adam'\\]; received 'rmsprop'"):
        model.compile_for_training(optimizer="rmsprop")


def test_hardest_negative_warmup_switches_the_loss():
    model = AlignmentModel(**TINY, image_encoder=CACHED, hardest_negative=True)
    model.compile_for_training(learning_rate=1e-3)
    switches = []

    class Record(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            switches.append(float(model.hardest_negative_weight.numpy()))

    model.fit(_dataset(_ranking_batches()), epochs=3, verbose=0, callbacks=[HardestNegativeWarmup(2), Record()])
    assert switches == [0.0, 0.0, 1.0]


def test_retrieval_evaluator_logs_recalls_and_saves_best(tmp_path):
    batch = _ranking_batches()
    model = AlignmentModel(**TINY, image_encoder=CACHED)
    model.compile_for_training(learning_rate=0.02)
    images = _dataset({"region_features": batch["region_features"][:4], "region_mask": batch["region_mask"][:4]}, 3)
    sentences = _dataset({"tokens": batch["tokens"], "token_mask": batch["token_mask"]}, 3)
    path = str(tmp_path / "best.weights.h5")
    evaluator = RetrievalEvaluator(images, sentences, batch["image_id"], weights_path=path)
    history = model.fit(_dataset(batch), epochs=2, verbose=0, callbacks=[evaluator]).history
    assert len(history["val_recall_sum"]) == 2
    # The last epoch's logs are the recalls of the final weights' scores, ranked here independently.
    scores = score_dataset(model, images, sentences)
    assert scores.shape == (4, 8)
    expected = recalls(scores, batch["image_id"])
    for direction, prefix in (("image_annotation", "annotation"), ("image_search", "search")):
        for level in ("r1", "r5", "r10"):
            assert history[f"val_{prefix}_{level}"][-1] == expected[direction][level], (prefix, level)
    assert history["val_recall_sum"][-1] == pytest.approx(sum(expected[d][k] for d in expected for k in ("r1", "r5", "r10")))
    assert history["val_annotation_r10"][-1] == 100.0  # only 4 images
    revived = AlignmentModel.from_config(dict(model.get_config(), image_encoder=CACHED_6.to_dict()))
    revived.build_from_dummy().load_weights(path)
    assert evaluator.best == max(history["val_recall_sum"])


def test_padding_regions_and_words_never_change_the_scores():
    model = AlignmentModel(**TINY, image_encoder=CACHED)
    batch = _ranking_batches()
    before = np.asarray(model(batch))
    padded = dict(batch)
    padded["region_features"] = np.concatenate([batch["region_features"], np.full((8, 2, 6), 9.0, "float32")], axis=1)
    padded["region_features"][:, 2] = 9.0  # the batch's own padding region
    padded["region_mask"] = np.concatenate([batch["region_mask"], np.zeros((8, 2), bool)], axis=1)
    padded["tokens"] = np.concatenate([batch["tokens"], np.full((8, 3), 7, "int32")], axis=1)
    padded["token_mask"] = np.concatenate([batch["token_mask"], np.zeros((8, 3), bool)], axis=1)
    np.testing.assert_allclose(np.asarray(model(padded)), before, rtol=1e-5, atol=1e-5)


def test_l2_feature_normalization_makes_scores_scale_free():
    batch = _ranking_batches()
    scaled = dict(batch, region_features=batch["region_features"] * np.array([30.0, 0.5, 7.0], "float32")[None, :, None])
    model = AlignmentModel(**TINY, image_encoder=CACHED_6.replace(normalization="l2")).build_from_dummy()
    np.testing.assert_allclose(np.asarray(model(scaled)), np.asarray(model(batch)), rtol=1e-5, atol=1e-6)
    regions, _ = model.encode_images(dict(batch, region_features=np.zeros_like(batch["region_features"])))
    np.testing.assert_array_equal(np.asarray(regions), 0.0)  # all-zero (padding) regions stay zero, no NaN
    plain = AlignmentModel(**TINY, image_encoder=CACHED_6).build_from_dummy()
    plain.set_weights(model.get_weights())
    assert not np.allclose(np.asarray(plain(scaled)), np.asarray(plain(batch)), rtol=1e-3)
    revived = AlignmentModel.from_config(json.loads(json.dumps(model.get_config())))
    assert revived.feature_normalization == "l2" and revived.get_config() == model.get_config()
    with pytest.raises(ValueError, match="AlignmentModel: image normalization must be one of \\['none', 'l2'\\], received 'layer'"):
        AlignmentModel(**TINY, image_encoder=CACHED.replace(normalization="layer"))


@pytest.mark.parametrize("pooling, feature_dim", [("average", 8), ("flatten", 2 * 2 * 8)])
def test_pooling_sets_the_region_feature_size_and_survives_the_config(pooling, feature_dim):
    model = AlignmentModel(**TINY, image_encoder=ImageEncoderConfig(filters=(4, 8), pool_size=2, pooling=pooling), image_shape=(16, 16))
    model.build_from_dummy()
    assert tuple(model.region_encoder.projection.kernel.shape) == (feature_dim, TINY["region_dim"])
    revived = AlignmentModel.from_config(json.loads(json.dumps(model.get_config())))
    assert revived.image_encoder.pooling == pooling and revived.get_config() == model.get_config()
