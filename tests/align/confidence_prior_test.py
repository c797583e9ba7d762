import numpy as np
import pytest

from vsa_tf.align import mrf
from vsa_tf.align.confidence_prior import CONFIDENCE_EPSILON, add_confidence_prior, check_confidence_weight


def test_the_prior_adds_weight_times_the_scores_spread_times_the_logit_to_the_boxes_only():
    scores = np.array([[0.0, 1.0, 0.9], [0.5, 0.2, 0.1]])
    confidences = [0.2, 0.9, 0.99]  # longer than the boxes: the first two are read
    out = add_confidence_prior(scores, confidences, 0.5)
    spread = scores.std()
    np.testing.assert_allclose(out[:, 0], scores[:, 0])  # the whole image gets no prior
    np.testing.assert_allclose(out[:, 1], scores[:, 1] + 0.5 * spread * np.log(0.2 / 0.8))
    np.testing.assert_allclose(out[:, 2], scores[:, 2] + 0.5 * spread * np.log(0.9 / 0.1))
    assert out[0].argmax() == 2 and scores[0].argmax() == 1  # the confident box overtakes the first word's best
    np.testing.assert_array_equal(add_confidence_prior(scores, confidences, 0), scores)
    # The MRF reads the adjusted unaries: at beta 0 its labels are their argmax.
    assert mrf.mrf_align(out, 0.0).tolist() == out.argmax(axis=1).tolist()


def test_equal_scores_use_a_unit_spread_and_extreme_confidences_stay_finite():
    out = add_confidence_prior(np.ones((2, 3)), [0.0, 1.0], 1.0)
    edge = np.log((1 - CONFIDENCE_EPSILON) / CONFIDENCE_EPSILON)
    np.testing.assert_allclose(out, [[1.0, 1.0 - edge, 1.0 + edge]] * 2)
    np.testing.assert_array_equal(add_confidence_prior(np.ones((1, 1)), [], 2.0), [[1.0]])  # whole image only


@pytest.mark.parametrize("weight", [-0.5, float("nan"), float("inf"), True, "1"])
def test_bad_weights_are_refused_with_the_value(weight):
    with pytest.raises(ValueError, match=r"a confidence weight must be a finite number >= 0, received"):
        check_confidence_weight(weight)
    with pytest.raises(ValueError, match=r"received " + repr(weight).replace("(", r"\(")[:6]):
        add_confidence_prior(np.zeros((1, 2)), [0.5], weight)


def test_bad_scores_and_confidences_are_refused():
    with pytest.raises(ValueError, match=r"2 boxes need as many confidences, received 1"):
        add_confidence_prior(np.zeros((1, 3)), [0.5], 1.0)
    with pytest.raises(ValueError, match=r"confidences must lie in \[0, 1\], received \[1.5\]"):
        add_confidence_prior(np.zeros((1, 2)), [1.5], 1.0)
    with pytest.raises(ValueError, match=r"must be \[words, regions\], received shape \(3,\)"):
        add_confidence_prior(np.zeros(3), [0.5, 0.5], 1.0)
