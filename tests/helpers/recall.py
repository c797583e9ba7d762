"""Table-1 recalls computed the plain way, to check `vsa_tf.evaluation.retrieval` and the runs against.

One loop per image or sentence, no shared code with the library: the rank of a true item is 1 plus
the number of wrong items scoring at least as high (ties count against the model, as the library
documents).
"""

import numpy as np


def annotation_ranks(scores, sentence_image):
    """For each image with sentences, the rank of its best true sentence among all sentences."""
    scores, sentence_image = np.asarray(scores, np.float64), np.asarray(sentence_image)
    ranks = []
    for image in range(scores.shape[0]):
        true = sentence_image == image
        if true.any():
            best = scores[image, true].max()
            ranks.append(1 + int(np.sum(scores[image, ~true] >= best)))
    return np.array(ranks)


def search_ranks(scores, sentence_image):
    """For each sentence, the rank of its image among all images."""
    scores, sentence_image = np.asarray(scores, np.float64), np.asarray(sentence_image)
    ranks = []
    for sentence, image in enumerate(sentence_image):
        column = scores[:, sentence]
        ranks.append(1 + int(np.sum(np.delete(column, image) >= column[image])))
    return np.array(ranks)


def recalls(scores, sentence_image):
    """{"image_annotation": {"r1", "r5", "r10", "medr"}, "image_search": {...}}, recalls in percent."""
    result = {}
    for direction, ranks in (("image_annotation", annotation_ranks(scores, sentence_image)),
                             ("image_search", search_ranks(scores, sentence_image))):
        result[direction] = {f"r{level}": 100.0 * float(np.mean(ranks <= level)) for level in (1, 5, 10)}
        result[direction]["medr"] = float(np.floor(np.median(ranks)))
    return result


def assert_same_recalls(metrics, scores, sentence_image):
    """`metrics` (a `retrieval_metrics`-style dict) holds the recalls and median ranks of `scores`."""
    expected = recalls(scores, sentence_image)
    reported = {direction: {key: metrics[direction][key] for key in values} for direction, values in expected.items()}
    assert reported == expected
