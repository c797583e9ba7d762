import keras
import numpy as np
import pytest

from tests.layer_test_helper import run_layer_test
from vsa_tf.layers.brnn import BidirectionalRNNEncoder

KWARGS = {"vocabulary_size": 10, "output_dim": 4, "embedding_dim": 3, "hidden_dim": 5}


def test_layer():
    tokens = np.array([[4, 5, 6, 0], [7, 0, 0, 0]], "int32")
    run_layer_test(
        BidirectionalRNNEncoder,
        {**KWARGS, "dropout": 0.1},
        tokens,
        (2, 4, 4),
        expected_num_trainable_weights=9,
        call_kwargs={"padding_mask": tokens != 0},
    )


def _reference(layer, tokens):
    """Eqs. 2-6 in numpy for one unpadded sentence."""
    embedding = np.asarray(layer.word_embedding.embeddings)
    input_kernel, input_bias = (np.asarray(weight) for weight in layer.input_projection.weights)
    output_kernel, output_bias = (np.asarray(weight) for weight in layer.output_projection.weights)
    relu = lambda value: np.maximum(value, 0.0)
    inputs = relu(embedding[tokens] @ input_kernel + input_bias)  # e_t
    forward, backward = np.zeros_like(inputs), np.zeros_like(inputs)
    state = np.zeros(inputs.shape[1])
    for step in range(len(tokens)):
        state = relu(inputs[step] + state @ np.asarray(layer.forward_kernel) + np.asarray(layer.forward_bias))
        forward[step] = state
    state = np.zeros(inputs.shape[1])
    for step in reversed(range(len(tokens))):
        state = relu(inputs[step] + state @ np.asarray(layer.backward_kernel) + np.asarray(layer.backward_bias))
        backward[step] = state
    return relu((forward + backward) @ output_kernel + output_bias)


def test_matches_equations_and_padding_never_reaches_real_words():
    layer = BidirectionalRNNEncoder(**KWARGS, recurrent_initializer=keras.initializers.RandomNormal(stddev=0.5, seed=1))
    sentence = np.array([4, 5, 6], "int32")
    padded = np.array([[4, 5, 6, 0, 0], [4, 5, 6, 9, 9]], "int32")
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 0, 0]], bool)  # row 2: non-zero ids under padding
    outputs = np.asarray(layer(padded, padding_mask=mask))
    expected = _reference(layer, sentence)
    assert np.abs(expected).sum() > 0
    np.testing.assert_allclose(outputs[0, :3], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(outputs[1, :3], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(outputs[:, 3:], 0.0)
    alone = np.asarray(layer(sentence[None], padding_mask=np.ones((1, 3), bool)))
    np.testing.assert_allclose(outputs[0, :3], alone[0], rtol=1e-5, atol=1e-6)


def test_default_mask_is_nonzero_tokens():
    layer = BidirectionalRNNEncoder(**KWARGS)
    tokens = np.array([[4, 5, 0]], "int32")
    np.testing.assert_allclose(
        np.asarray(layer(tokens)), np.asarray(layer(tokens, padding_mask=tokens != 0)), rtol=1e-6
    )


def test_pretrained_frozen_embeddings():
    layer = BidirectionalRNNEncoder(**KWARGS, embedding_trainable=False)
    matrix = np.random.rand(10, 3).astype("float32")
    layer.set_word_embeddings(matrix)
    np.testing.assert_allclose(np.asarray(layer.word_embedding.embeddings), matrix)
    assert len(layer.trainable_weights) == 8
    with pytest.raises(ValueError, match=r"\(10, 3\).*\(10, 4\)"):
        layer.set_word_embeddings(np.zeros((10, 4)))


def test_bad_arguments():
    with pytest.raises(ValueError, match="hidden_dim must be positive; received 0"):
        BidirectionalRNNEncoder(10, 4, hidden_dim=0)
    with pytest.raises(ValueError, match="1.5"):
        BidirectionalRNNEncoder(10, 4, dropout=1.5)


def test_dynamic_length_scan_matches_static_unroll():
    import tensorflow as tf

    layer = BidirectionalRNNEncoder(**KWARGS)
    tokens = np.array([[4, 5, 6, 0], [7, 8, 0, 0]], "int32")
    static = np.asarray(layer(tokens))
    dynamic = tf.function(lambda ids: layer(ids), input_signature=[tf.TensorSpec([None, None], tf.int32)])
    np.testing.assert_allclose(np.asarray(dynamic(tokens)), static, rtol=1e-5, atol=1e-6)


def test_build_shapes_match_compute_output_shape():
    encoder = BidirectionalRNNEncoder(**KWARGS)
    encoder.build((2, 3))
    assert encoder.compute_output_shape(**encoder._build_shapes_dict) == (2, 3, 4)
    encoder.build((2, 3))  # a second build (a model built after the layer was called) adds nothing
    assert len(encoder.weights) == 9


def test_summary_of_built_alignment_model():
    from vsa_tf.config import ImageEncoderConfig
    from vsa_tf.models.alignment_model import AlignmentModel

    model = AlignmentModel(
        vocabulary_size=10, region_dim=4, image_encoder=ImageEncoderConfig(mode="cached", feature_dim=5), hidden_dim=3, embedding_dim=3
    ).build_from_dummy()
    lines = []
    model.summary(print_fn=lambda line, **kwargs: lines.append(line))
    text = "\n".join(lines)
    assert "BidirectionalRNNEncoder" in text and "(2, 3, 4)" in text


def test_alignment_model_fits_after_its_encoders_were_called():
    from vsa_tf.config import ImageEncoderConfig
    from vsa_tf.models.alignment_model import AlignmentModel

    image_encoder = ImageEncoderConfig(mode="cached", feature_dim=5)
    model = AlignmentModel(vocabulary_size=10, region_dim=4, image_encoder=image_encoder, hidden_dim=3, embedding_dim=3)
    batch = model.dummy_batch()
    model.encode_sentences(batch)
    model.encode_images(batch)
    num_weights = len(model.weights)
    model.compile_for_training()
    history = model.fit(batch, epochs=1, verbose=0)
    assert len(model.weights) == num_weights
    assert np.isfinite(history.history["loss"][0])
