"""A detector-confidence prior on the word-region scores of eq. 8, for regions that come with scores.

Regions from a detector or a proposal network carry a confidence c_t in (0, 1) each (the `scores` of a
boxes file, e.g. `vsa-tf propose`'s). The alignment model's scores v_t . s_j rank a word's regions by
content only, and among a proposal network's overlapping boxes the best-scoring one is most often a
part or a neighbour of the named object (docs/results.md, "Grounding real phrases"). The prior adds

    ψ^U_j(t) = v_t . s_j + w · σ · logit(c_t)      (t ≥ 1; the whole image, t = 0, gets nothing)

to the MRF's unary terms (eqs. 10-12), σ being the standard deviation of the sentence's scores, so `w`
is unitless: w = 0 is the paper's alignment, and a larger w leans the words towards confident boxes.
Written in numpy like `mrf.mrf_align`, whose input it prepares.
"""

import numpy as np

# Confidences are clipped to [CONFIDENCE_EPSILON, 1 - CONFIDENCE_EPSILON] so that 0 and 1 give finite logits.
CONFIDENCE_EPSILON = 1e-4


def check_confidence_weight(weight):
    """`weight` as a float; a `ValueError` with the received value unless it is a finite number >= 0."""
    if isinstance(weight, bool) or not isinstance(weight, (int, float, np.floating, np.integer)) or not np.isfinite(weight) or weight < 0:
        raise ValueError(f"a confidence weight must be a finite number >= 0, received {weight!r}")
    return float(weight)


def add_confidence_prior(word_region_scores, confidences, weight):
    """Word-region scores with the detector-confidence prior added to the box columns.

    Args:
        word_region_scores: float [N words, M regions], region 0 the whole image, region t >= 1 the
            image's box t - 1 (best first, as the pipelines order them).
        confidences: float [M - 1] or longer: each box's confidence in [0, 1], in the same order (only
            the first M - 1 are read).
        weight: w >= 0 (0 returns the scores unchanged, as a float64 copy).

    Returns:
        float64 [N, M]: scores + w · σ · logit(c) on columns 1..M-1, σ the scores' standard deviation
        (1 when they are all equal).

    Example:
    >>> scores = np.array([[0.0, 1.0, 0.9]])
    >>> add_confidence_prior(scores, [0.2, 0.9], weight=0.0).argmax(axis=1).tolist()
    [1]
    >>> add_confidence_prior(scores, [0.2, 0.9], weight=1.0).argmax(axis=1).tolist()
    [2]

    Reference:
        Karpathy & Fei-Fei, CVPR 2015: eq. 8's region scores and the MRF of eqs. 10-12, whose regions are
        the top-19 detections of an R-CNN; the prior is this project's (the paper does not use the
        detections' confidences beyond picking them).
    """
    weight = check_confidence_weight(weight)
    scores = np.array(word_region_scores, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError(f"word_region_scores must be [words, regions], received shape {scores.shape}")
    num_boxes = scores.shape[1] - 1
    confidences = np.asarray(confidences, dtype=np.float64).reshape(-1)
    if len(confidences) < num_boxes:
        raise ValueError(f"{num_boxes} boxes need as many confidences, received {len(confidences)}")
    confidences = confidences[:num_boxes]
    if not np.all(np.isfinite(confidences)) or np.any(confidences < 0) or np.any(confidences > 1):
        raise ValueError(f"confidences must lie in [0, 1], received {confidences.tolist()}")
    if weight == 0 or num_boxes == 0:
        return scores
    spread = float(scores.std())
    clipped = np.clip(confidences, CONFIDENCE_EPSILON, 1.0 - CONFIDENCE_EPSILON)
    scores[:, 1:] += weight * (spread if spread > 0 else 1.0) * np.log(clipped / (1.0 - clipped))
    return scores
