import numpy as np
import pytest

from tests.layer_test_helper import run_layer_test
from vsa_tf.layers.multimodal_rnn import MultimodalRNNDecoder

IMAGE = np.random.RandomState(0).rand(2, 6).astype("float32")
TOKENS = np.array([[2, 5, 6, 3, 0], [2, 4, 3, 0, 0]], "int32")
MASK = TOKENS != 0


@pytest.mark.parametrize(
    "cell, image_conditioning, activate_inputs, weights",
    [
        ("rnn", "bias", False, 7),  # embedding, W_hx, W_hi, W_hh, b_h, W_oh, b_o
        ("rnn", "bias", True, 9),  # + b_x, b_i
        ("lstm", "bias", False, 7),
        ("lstm", "input", False, 8),  # + image bias
    ],
)
@pytest.mark.parametrize("image_normalization", ["none", "layer"])  # "layer": + gain and offset
def test_layer_basics(cell, image_conditioning, activate_inputs, weights, image_normalization):
    run_layer_test(
        MultimodalRNNDecoder,
        init_kwargs={
            "vocabulary_size": 10,
            "hidden_dim": 4,
            "embedding_dim": 3,
            "cell": cell,
            "image_conditioning": image_conditioning,
            "activate_inputs": activate_inputs,
            "dropout": 0.1,
            "image_normalization": image_normalization,
        },
        input_data=IMAGE,
        call_kwargs={"tokens": TOKENS, "padding_mask": MASK},
        expected_output_shape=(2, 5, 10),
        expected_num_trainable_weights=weights + (2 if image_normalization == "layer" else 0),
    )


@pytest.mark.parametrize("cell, image_conditioning", [("rnn", "bias"), ("rnn", "input"), ("lstm", "bias"), ("lstm", "input")])
def test_next_matches_teacher_forced_call(cell, image_conditioning):
    decoder = MultimodalRNNDecoder(10, hidden_dim=4, embedding_dim=3, cell=cell, image_conditioning=image_conditioning)
    logits = np.asarray(decoder(IMAGE, tokens=TOKENS, padding_mask=MASK))
    state = decoder.initial_state(IMAGE)
    for step in range(TOKENS.shape[1]):
        step_logits, state = decoder.next(TOKENS[:, step], state, step)
        valid = MASK[:, step]
        np.testing.assert_allclose(np.asarray(step_logits)[valid], logits[valid, step], rtol=1e-5, atol=1e-5)


def test_image_enters_only_at_first_step():
    decoder = MultimodalRNNDecoder(10, hidden_dim=4, embedding_dim=3)
    decoder(IMAGE, tokens=TOKENS)
    zero_image = np.zeros_like(IMAGE)
    state = decoder.initial_state(IMAGE)
    other_state = decoder.initial_state(zero_image)
    # Same hidden state entering step 1 -> the image bias must no longer matter.
    _, state = decoder.next(TOKENS[:, 0], state, 0)
    other_state["hidden"] = state["hidden"]
    first, _ = decoder.next(TOKENS[:, 1], state, 1)
    second, _ = decoder.next(TOKENS[:, 1], other_state, 1)
    np.testing.assert_allclose(np.asarray(first), np.asarray(second), rtol=1e-6)
    # ...while at step 0 it does.
    first, _ = decoder.next(TOKENS[:, 0], decoder.initial_state(IMAGE), 0)
    second, _ = decoder.next(TOKENS[:, 0], decoder.initial_state(zero_image), 0)
    assert not np.allclose(np.asarray(first), np.asarray(second))


def test_layer_image_normalization_removes_the_feature_scale():
    # A from-scratch CNN's features start ~100x smaller than a pretrained one's; with "layer" the
    # decoder sees the same b_v at any scale, and without it b_v shrinks with the features.
    normalized = MultimodalRNNDecoder(10, hidden_dim=4, embedding_dim=3, image_normalization="layer")
    plain = MultimodalRNNDecoder(10, hidden_dim=4, embedding_dim=3)
    logits = np.asarray(normalized(IMAGE, tokens=TOKENS))
    for scale in (0.1, 100.0):
        np.testing.assert_allclose(np.asarray(normalized(IMAGE * scale, tokens=TOKENS)), logits, rtol=1e-3, atol=1e-4)
    plain(IMAGE, tokens=TOKENS)  # builds it
    bias = np.asarray(plain.initial_state(IMAGE)["image_bias"])
    np.testing.assert_allclose(np.asarray(plain.initial_state(IMAGE * 0.1)["image_bias"]), 0.1 * bias, rtol=1e-4, atol=1e-7)
    # Two images still give two different biases (only the scale is removed).
    state = normalized.initial_state(IMAGE)
    assert not np.allclose(np.asarray(state["image_bias"])[0], np.asarray(state["image_bias"])[1])


def test_padding_does_not_change_valid_positions():
    decoder = MultimodalRNNDecoder(10, hidden_dim=4, embedding_dim=3)
    logits = np.asarray(decoder(IMAGE, tokens=TOKENS, padding_mask=MASK))
    other = TOKENS.copy()
    other[~MASK] = 7
    changed = np.asarray(decoder(IMAGE, tokens=other, padding_mask=MASK))
    np.testing.assert_allclose(logits[MASK], changed[MASK], rtol=1e-6)


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="cell must be one of .* received cell='gru'"):
        MultimodalRNNDecoder(10, cell="gru")
    with pytest.raises(ValueError, match="image_conditioning"):
        MultimodalRNNDecoder(10, image_conditioning="concat")
    with pytest.raises(ValueError, match="dropout"):
        MultimodalRNNDecoder(10, dropout=1.5)
    with pytest.raises(ValueError, match="image_normalization must be one of .* received image_normalization='batch'"):
        MultimodalRNNDecoder(10, image_normalization="batch")
