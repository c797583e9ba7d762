"""What a perfect captioner of the synthetic world would decode, by MAP and by greedy search.

The world's sentences for a scene come from a known distribution (`vsa_tf.data.synthetic.sentences`),
so the captions a model that had learned it perfectly would give are known without training one.
Scoring them against the references tells whether the world rewards the most probable sentence at
all: with a one-object template for scenes of several objects, exact MAP decoding scored CIDEr 1.51
against 2.10 for greedy decoding on the demo's test images, which is why that template was removed.
"""

import collections

import numpy as np

from vsa_tf.data.synthetic import sentences as synthetic_sentences
from vsa_tf.data.synthetic.lexicon import BACKGROUND_WORDS, BACKGROUNDS


def _scene_of(image_truth):
    """The scene (background and objects) that the sentence distribution reads, from a truth.json image."""
    try:
        scene = {
            "background": image_truth["background"],
            "objects": [
                {"box": list(obj["box"]), "shape": obj["shape"], "color": obj["color"], "size": obj["size"]}
                for obj in image_truth["objects"]
            ],
        }
    except (KeyError, TypeError) as error:
        raise ValueError(
            "image_truth must be a truth.json image entry with a background and objects "
            f"(box, shape, color, size); missing or malformed: {error!r}"
        ) from error
    if not scene["objects"]:
        raise ValueError("image_truth has no objects; the synthetic world has 1 to 4 per image")
    if scene["background"] not in BACKGROUND_WORDS:
        raise ValueError(f"image_truth background must be one of {BACKGROUNDS}; received {scene['background']!r}")
    return scene


def caption_oracle(image_truth, samples=2000, seed=0):
    """What a perfect captioner would decode for one synthetic image, by MAP and by greedy search.

    This draws ``samples`` sentences from the world's sentence distribution for the image and
    returns its most frequent sentence (what exact MAP decoding, which beam search approximates,
    gives for a model that has learned the distribution perfectly) and the sentence built by taking,
    word after word, the most frequent next word after the words chosen so far (what greedy decoding
    gives for that model).

    Args:
        image_truth: one entry of ``truth.json["images"]``; its ``objects`` (each ``box``, ``shape``,
            ``color``, ``size``) and ``background`` are read.
        samples: sentences to draw (at least 1).
        seed: integer seed of the draws.

    Returns:
        dict with "mode" and "greedy" (token lists) and "mode_frequency" (the mode's share of the
        draws).

    Example:

    >>> image = {"background": "stripes",
    ...          "objects": [{"box": [0, 0, 10, 10], "shape": "circle", "color": "red", "size": "small"}]}
    >>> oracle = caption_oracle(image, samples=200, seed=0)
    >>> "circle" in oracle["mode"] and "circle" in oracle["greedy"]
    True
    """
    if samples < 1:
        raise ValueError(f"samples must be >= 1; received {samples}")
    scene = _scene_of(image_truth)
    rng = np.random.default_rng([seed, 11])
    draws = [tuple(synthetic_sentences.one_sentence(rng, scene).tokens) for _ in range(samples)]
    # most_common breaks ties by first occurrence, so the result depends only on the seed.
    (mode, mode_count), = collections.Counter(draws).most_common(1)
    prefix, pool = (), draws
    while True:
        # None stands for END: the sentence stops after the prefix.
        next_counts = collections.Counter(draw[len(prefix)] if len(draw) > len(prefix) else None for draw in pool)
        (token, _), = next_counts.most_common(1)
        if token is None:
            break
        prefix += (token,)
        pool = [draw for draw in pool if draw[: len(prefix)] == prefix]
    return {"mode": list(mode), "greedy": list(prefix), "mode_frequency": mode_count / samples}
