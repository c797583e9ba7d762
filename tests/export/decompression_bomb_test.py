"""Decompression bombs are refused inside the exported graphs, from the header, before decoding."""

import numpy as np
import pytest
import tensorflow as tf

from tests.export.conftest import image_bytes
from tests.helpers import image_bombs
from vsa_tf.export import preprocessing

LIMIT_MESSAGE = r"(?s)image_bytes: element.{0,12}\b1\b.{0,12}declares.{0,12}900000000.{0,12}pixels, over the limit of MAX_IMAGE_PIXELS = 50000000"


@pytest.mark.parametrize("bomb", [image_bombs.png_bomb(), image_bombs.jpeg_bomb()], ids=["png", "jpeg"])
def test_decode_images_refuses_a_bomb_naming_the_element_and_the_limit(bomb):
    good = image_bytes(8, 8, 0)
    with pytest.raises(tf.errors.InvalidArgumentError, match=LIMIT_MESSAGE):
        preprocessing.decode_images(tf.constant([good, bomb]), (8, 8))


def test_an_image_under_the_limit_still_decodes():
    data = image_bombs.uniform_jpeg(4_000, 4_000)  # 16 MP: under the 50 MP limit
    images, heights, widths = preprocessing.decode_images(tf.constant([data]), (8, 8))
    assert (int(heights[0]), int(widths[0])) == (4_000, 4_000)
    np.testing.assert_allclose(images[0].numpy().mean(axis=(0, 1)), (90, 140, 200), atol=3)


@pytest.mark.parametrize("bomb", [image_bombs.png_bomb(), image_bombs.jpeg_bomb()], ids=["png", "jpeg"])
def test_exported_signatures_refuse_bombs(loaded_captioner, loaded_aligner, images, bomb):
    batch = tf.constant([images[0], bomb])
    with pytest.raises(tf.errors.InvalidArgumentError, match=LIMIT_MESSAGE):
        loaded_captioner.signatures["serving_default"](image_bytes=batch)
    with pytest.raises(tf.errors.InvalidArgumentError, match=LIMIT_MESSAGE):
        loaded_aligner.signatures["encode_image"](image_bytes=batch)
