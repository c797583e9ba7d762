import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from vsa_tf.config import ImageEncoderConfig
from vsa_tf.models.caption_model import CaptionModel
from vsa_tf.samplers import BeamSampler, GreedySampler

VOCABULARY = 10
CACHED = ImageEncoderConfig(mode="cached")


def cached_batch(batch_size=6, feature_dim=5, seed=0):
    """Two image classes; class k is described by a fixed sentence, so the captioner can learn it."""
    random = np.random.RandomState(seed)
    classes = np.arange(batch_size) % 2
    features = np.where(classes[:, None, None] == 0, 1.0, -1.0) * np.ones((batch_size, 1, feature_dim)) + 0.05 * random.randn(batch_size, 1, feature_dim)
    sentences = {0: [2, 4, 5, 6, 3, 0], 1: [2, 7, 8, 3, 0, 0]}
    return {
        "region_features": features.astype("float32"),
        "region_mask": np.ones((batch_size, 1), bool),
        "tokens": np.array([sentences[k] for k in classes], "int32"),
    }


def test_call_shapes_pixels_and_cached():
    cached = CaptionModel(VOCABULARY, hidden_dim=4, embedding_dim=3, image_encoder=CACHED)
    assert tuple(cached(cached_batch()).shape) == (6, 5, VOCABULARY)
    pixels = CaptionModel(VOCABULARY, hidden_dim=4, embedding_dim=3, image_encoder=ImageEncoderConfig(filters=(4, 8)), image_shape=(32, 32))
    batch = pixels.dummy_batch(batch_size=3, num_words=2)
    assert tuple(pixels(batch).shape) == (3, 3, VOCABULARY)  # START w1 w2 END -> 3 targets


def test_masked_loss_ignores_padding():
    model = CaptionModel(VOCABULARY, hidden_dim=4, embedding_dim=3, image_encoder=CACHED)
    batch = cached_batch()
    logits = model(batch)
    loss = float(model.compute_loss(batch, y_pred=logits))
    targets = batch["tokens"][:, 1:]
    log_probs = np.asarray(tf.nn.log_softmax(logits))
    picked = np.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]
    expected = -picked[targets != 0].mean()
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    # Changing the logits at padded targets changes nothing.
    noisy = np.asarray(logits).copy()
    noisy[targets == 0] += np.random.RandomState(1).randn(int((targets == 0).sum()), VOCABULARY) * 10
    np.testing.assert_allclose(float(model.compute_loss(batch, y_pred=noisy)), loss, rtol=1e-6)


def test_fit_lowers_the_loss_and_generation_learns_the_captions():
    model = CaptionModel(VOCABULARY, hidden_dim=16, embedding_dim=8, image_encoder=CACHED, dropout=0.1)
    model.compile_for_training(learning_rate=1e-2)
    batch = cached_batch(batch_size=8)
    dataset = tf.data.Dataset.from_tensors(batch).repeat(60)
    history = model.fit(dataset, epochs=2, verbose=0).history
    assert history["loss"][-1] < history["loss"][0]
    assert history["perplexity"][-1] < history["perplexity"][0]
    assert history["perplexity"][-1] == pytest.approx(np.exp(history["loss"][-1]), rel=0.05)
    tokens = model.generate(batch, BeamSampler(num_beams=3, max_length=6))
    assert tokens.shape == (8, 3, 6)
    np.testing.assert_array_equal(tokens[0, 0], [4, 5, 6, 3, 0, 0])
    np.testing.assert_array_equal(tokens[1, 0], [7, 8, 3, 0, 0, 0])
    greedy = model.generate(batch, GreedySampler(max_length=6))
    np.testing.assert_array_equal(greedy[:2, 0], tokens[:2, 0])


def test_config_round_trip_and_weights(tmp_path):
    image_encoder = ImageEncoderConfig(mode="cached", feature_dim=5, normalization="layer")
    model = CaptionModel(VOCABULARY, hidden_dim=4, embedding_dim=3, image_encoder=image_encoder, cell="lstm")
    model.build_from_dummy()
    config = json.loads(json.dumps(keras.saving.serialize_keras_object(model)))
    revived = keras.saving.deserialize_keras_object(config)
    assert isinstance(revived, CaptionModel) and revived.get_config() == model.get_config()
    assert revived.image_encoder == image_encoder and (revived.feature_mode, revived.feature_dim) == ("cached", 5)
    assert revived.image_normalization == "layer"
    path = str(tmp_path / "model.weights.h5")
    model.save_weights(path)
    revived.build_from_dummy()
    revived.load_weights(path)
    batch = cached_batch()
    np.testing.assert_allclose(np.asarray(model(batch)), np.asarray(revived(batch)), rtol=1e-6)


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="ImageEncoderConfig.mode must be one of .* received 'features'"):
        CaptionModel(VOCABULARY, image_encoder={"mode": "features"})
    with pytest.raises(ValueError, match="CaptionModel: image normalization must be one of \\['none', 'layer'\\], received 'l2'"):
        CaptionModel(VOCABULARY, image_encoder=ImageEncoderConfig(normalization="l2"))
    model = CaptionModel(VOCABULARY, hidden_dim=4, embedding_dim=3, image_encoder=CACHED)
    with pytest.raises(ValueError, match="needs `region_features`"):
        model({"tokens": np.zeros((1, 3), "int32")})
    with pytest.raises(ValueError, match="needs feature_dim"):
        model.dummy_batch()


@pytest.mark.parametrize("pooling, feature_dim", [("average", 8), ("flatten", 3 * 3 * 8)])
def test_pooling_sets_the_image_feature_size(pooling, feature_dim):
    image_encoder = ImageEncoderConfig(filters=(4, 8), pool_size=3, pooling=pooling)
    model = CaptionModel(VOCABULARY, hidden_dim=4, embedding_dim=3, image_encoder=image_encoder, image_shape=(32, 32))
    features = model.image_features(model.dummy_batch(batch_size=2, num_words=2))
    assert tuple(features.shape)[-1] == feature_dim
    assert CaptionModel.from_config(json.loads(json.dumps(model.get_config()))).image_encoder.pooling == pooling


def test_a_model_that_generated_still_checkpoints(tmp_path):
    # generate() caches one traced function per sampler; that cache must stay out of the model's
    # object graph (a tracked dict with integer keys made SavedModel export and checkpoints fail).
    model = CaptionModel(VOCABULARY, hidden_dim=4, embedding_dim=3, image_encoder=CACHED)
    batch = cached_batch()
    first = model.generate(batch, GreedySampler(max_length=4))
    path = tf.train.Checkpoint(model=model).write(str(tmp_path / "checkpoint"))
    restored = CaptionModel(VOCABULARY, hidden_dim=4, embedding_dim=3, image_encoder=CACHED)
    restored(batch)
    tf.train.Checkpoint(model=restored).read(path).assert_existing_objects_matched()
    np.testing.assert_array_equal(restored.generate(batch, GreedySampler(max_length=4)), first)
