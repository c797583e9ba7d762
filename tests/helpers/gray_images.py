"""Tiny train-split image folders for feature-caching tests: flat gray PNGs, one two-word sentence each."""

import numpy as np
from PIL import Image

from vsa_tf.data import records as records_lib


def write_gray_images(folder, count, brightness_step, size=(30, 20)):
    """Writes `image_i.png` (width x height `size`, gray level `brightness_step * i`) for i < `count` into
    `folder` and returns their train-split `ImageRecord`s (image_id = i)."""
    records = []
    for index in range(count):
        filename = f"image_{index}.png"
        Image.fromarray(np.full((size[1], size[0], 3), brightness_step * index, np.uint8)).save(folder / filename)
        records.append(records_lib.ImageRecord(filename, index, "train", [records_lib.Sentence(["a", "b"])]))
    return records
