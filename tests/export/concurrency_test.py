"""The loaded exported captioner and aligner serve 8 threads at once: good answers equal the sequential
ones, and each bad request fails alone with its own error, leaving the others unaffected."""

import concurrent.futures
import re

import numpy as np
import tensorflow as tf

from tests.export.conftest import assert_outputs_equal
from tests.helpers import image_bombs

THREADS = 8
REPEATS = 3  # each request runs this many times, shuffled among the others


def build_requests(images):
    """[(name, model "captioner"|"aligner", signature, inputs, expected error pattern or None)]."""
    large = image_bombs.uniform_jpeg(4_000, 4_000)  # 16 MP: under the limit, decoded for real
    long_sentence = " ".join(["a red circle left of a small blue square"] * 500)  # 4,500 words
    boxes = tf.constant([[[2, 3, 20, 25], [-1, -1, -1, -1]], [[0, 0, 10, 10], [5, 5, 15, 18]]], tf.float32)
    two_images = tf.constant(images[:2])
    return [
        ("caption two images", "captioner", "serving_default", {"image_bytes": two_images}, None),
        ("caption a JPEG", "captioner", "serving_default", {"image_bytes": tf.constant([images[2]])}, None),
        ("caption 4000x4000", "captioner", "serving_default", {"image_bytes": tf.constant([large])}, None),
        ("caption empty batch", "captioner", "serving_default", {"image_bytes": tf.constant([], tf.string)}, None),
        ("caption regions", "captioner", "caption_regions", {"image_bytes": two_images, "boxes": boxes}, None),
        ("encode long sentences", "aligner", "encode_text", {"sentences": tf.constant([long_sentence, "a red circle"])}, None),
        ("encode empty text batch", "aligner", "encode_text", {"sentences": tf.constant([], tf.string)}, None),
        ("encode two images", "aligner", "encode_image", {"image_bytes": two_images}, None),
        ("encode 4000x4000", "aligner", "encode_image", {"image_bytes": tf.constant([large])}, None),
        ("score", "aligner", "score",
         {"image_bytes": two_images, "boxes": boxes, "sentences": tf.constant([[long_sentence, "a blue square"]] * 2)}, None),
        ("caption non-image", "captioner", "serving_default",
         {"image_bytes": tf.constant([images[0], b"GIF89a not an image"])}, r"(?s)element.{0,12}\b1\b.{0,12}is not a JPEG or PNG"),
        ("caption bomb", "captioner", "serving_default",
         {"image_bytes": tf.constant([image_bombs.png_bomb()])}, r"(?s)element.{0,12}\b0\b.{0,12}declares.{0,12}900000000.{0,4}pixels"),
        ("encode non-image", "aligner", "encode_image",
         {"image_bytes": tf.constant([b"hello world", images[1]])}, r"(?s)element.{0,12}\b0\b.{0,12}is not a JPEG or PNG"),
        ("encode bomb", "aligner", "encode_image",
         {"image_bytes": tf.constant([images[1], image_bombs.jpeg_bomb()])}, r"(?s)element.{0,12}\b1\b.{0,12}declares.{0,12}900000000.{0,4}pixels"),
        ("score truncated JPEG", "aligner", "score",
         {"image_bytes": tf.constant([images[2][: len(images[2]) // 2]]), "boxes": tf.zeros([1, 0, 4]),
          "sentences": tf.constant([["a red circle"]])}, r"(?i)jpeg|image"),
    ]


def call(models, request):
    """Runs one request; returns ("ok", numpy outputs) or ("error", exception)."""
    _, model, signature, inputs, _ = request
    try:
        outputs = models[model].signatures[signature](**inputs)
    except tf.errors.OpError as error:
        return "error", error
    return "ok", {key: value.numpy() for key, value in outputs.items()}


def test_eight_threads_mixing_good_and_bad_requests(loaded_captioner, loaded_aligner, images):
    models = {"captioner": loaded_captioner, "aligner": loaded_aligner}
    requests = build_requests(images)
    sequential = [call(models, request) for request in requests]
    for request, (status, result) in zip(requests, sequential):
        name, *_, error_pattern = request
        assert status == ("ok" if error_pattern is None else "error"), (name, result)
    assert sequential[2][1]["captions"].shape == (1, 3) and sequential[3][1]["captions"].shape == (0, 3)
    assert sequential[5][1]["word_embeddings"].shape[:2] == (2, 6)  # 4,500 words truncated to max_words

    order = np.random.RandomState(0).permutation(np.repeat(np.arange(len(requests)), REPEATS))
    with concurrent.futures.ThreadPoolExecutor(max_workers=THREADS) as pool:
        results = list(pool.map(lambda index: (index, call(models, requests[index])), order))

    assert len(results) == len(requests) * REPEATS
    for index, (status, result) in results:
        name, *_, error_pattern = requests[index]
        if error_pattern is None:
            assert status == "ok", (name, result)
            assert_outputs_equal(result, sequential[index][1])
        else:
            assert status == "error", name
            # Its own error (the element and cause of this request), of the type the sequential call raised.
            assert type(result) is type(sequential[index][1]), (name, type(result))
            assert re.search(error_pattern, result.message), (name, result.message[:300])
