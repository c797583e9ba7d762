import numpy as np

from tests.layer_test_helper import run_layer_test
from vsa_tf.layers.bag_of_words import BagOfWordsEncoder


def test_layer():
    tokens = np.array([[4, 5, 0], [7, 0, 0]], "int32")
    run_layer_test(
        BagOfWordsEncoder,
        {"vocabulary_size": 10, "output_dim": 4, "embedding_dim": 3},
        tokens,
        (2, 3, 4),
        expected_num_trainable_weights=3,
        call_kwargs={"padding_mask": tokens != 0},
    )


def test_words_are_independent_of_context_and_padding():
    layer = BagOfWordsEncoder(vocabulary_size=10, output_dim=4, embedding_dim=3)
    outputs = np.asarray(layer(np.array([[4, 5, 0], [6, 5, 9]], "int32"), padding_mask=np.array([[1, 1, 0], [1, 1, 0]], bool)))
    np.testing.assert_allclose(outputs[0, 1], outputs[1, 1], rtol=1e-6)
    np.testing.assert_array_equal(outputs[:, 2], 0.0)
    embedding = np.asarray(layer.word_embedding.embeddings)
    kernel, bias = (np.asarray(weight) for weight in layer.projection.weights)
    np.testing.assert_allclose(outputs[0, 0], np.maximum(embedding[4] @ kernel + bias, 0), rtol=1e-5, atol=1e-6)


def test_build_shapes_match_compute_output_shape():
    encoder = BagOfWordsEncoder(vocabulary_size=10, output_dim=4, embedding_dim=3)
    encoder.build((2, 3))
    assert encoder.compute_output_shape(**encoder._build_shapes_dict) == (2, 3, 4)
    encoder.build((2, 3))  # a second build (a model built after the layer was called) adds nothing
    assert len(encoder.weights) == 3


def test_summary_of_built_alignment_model():
    from vsa_tf.config import ImageEncoderConfig
    from vsa_tf.models.alignment_model import AlignmentModel

    model = AlignmentModel(
        vocabulary_size=10,
        region_dim=4,
        image_encoder=ImageEncoderConfig(mode="cached", feature_dim=5),
        sentence_encoder="bag_of_words",
        embedding_dim=3,
    ).build_from_dummy()
    lines = []
    model.summary(print_fn=lambda line, **kwargs: lines.append(line))
    text = "\n".join(lines)
    assert "BagOfWordsEncoder" in text and "(2, 3, 4)" in text
