"""Decompression bombs are refused from their headers, before decoding: `image_limits` and `validate`."""

import json
import struct

import pytest
import tensorflow as tf
from PIL import Image

from tests.helpers import image_bombs
from vsa_tf.data import image_limits
from vsa_tf.data import validate


def test_header_sizes_of_real_and_forged_files(tmp_path):
    for name, data, size in (
        ("bomb.png", image_bombs.png_bomb(30_000, 30_000), (30_000, 30_000)),
        ("bomb.jpg", image_bombs.jpeg_bomb(30_000, 20_000), (30_000, 20_000)),
        ("small.jpg", image_bombs.uniform_jpeg(40, 30), (40, 30)),
        ("text.jpg", b"not an image at all", None),
        ("cut.png", image_bombs.png_bomb()[:20], None),
    ):
        (tmp_path / name).write_bytes(data)
        assert image_limits.header_size(str(tmp_path / name)) == size, name
    # The forged files are well-formed as far as a header reader can tell: PIL reports the same size.
    with Image.open(tmp_path / "small.jpg") as image:
        assert image.size == (40, 30)


def test_jpeg_size_is_found_after_a_large_exif_block(tmp_path):
    data = image_bombs.jpeg_bomb(30_000, 30_000)
    app1 = b"\xff\xe1" + struct.pack(">H", 60_002) + b"Exif\x00\x00" + b"\x00" * 59_994
    (tmp_path / "exif.jpg").write_bytes(data[:2] + app1 + data[2:])
    assert image_limits.header_size(str(tmp_path / "exif.jpg")) == (30_000, 30_000)


@pytest.mark.parametrize("name, data", [("bomb.png", image_bombs.png_bomb()), ("bomb.jpg", image_bombs.jpeg_bomb())])
def test_check_image_file_names_the_file_the_size_and_the_limit(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    assert len(data) < 1_000  # the bomb is tiny: a raised error, not a slow decode, is what the test sees
    with pytest.raises(ValueError, match=rf"{name}: image declares 30000x30000 = 900,000,000 pixels, over the limit of 50,000,000"):
        image_limits.check_image_file(str(path))
    assert image_limits.check_image_file(str(path), max_pixels=10**9) == (30_000, 30_000)


def test_validate_refuses_bombs_before_decoding(tmp_path, monkeypatch):
    images = tmp_path / "images"
    images.mkdir()
    (images / "bomb.png").write_bytes(image_bombs.png_bomb())
    (images / "bomb.jpg").write_bytes(image_bombs.jpeg_bomb())
    (images / "fine.jpg").write_bytes(image_bombs.uniform_jpeg(20, 10))
    entries = [
        {"filename": name, "split": "train", "sentences": [{"raw": "a red circle"}]}
        for name in ("bomb.png", "bomb.jpg", "fine.jpg")
    ]
    dataset_path = tmp_path / "dataset.json"
    dataset_path.write_text(json.dumps({"images": entries}))
    opened = []
    original_open = validate.Image.open

    def recording_open(path, *args, **kwargs):
        opened.append(str(path))
        return original_open(path, *args, **kwargs)

    monkeypatch.setattr(validate.Image, "open", recording_open)
    with pytest.raises(validate.DatasetError) as caught:
        validate.validate_dataset(str(dataset_path), str(images))
    problems = caught.value.problems
    assert len(problems) == 2, problems
    for name in ("bomb.png", "bomb.jpg"):
        (problem,) = [problem for problem in problems if name in problem]
        assert "declares 30000x30000" in problem and "limit of 50,000,000" in problem
    assert opened and all(path.endswith("fine.jpg") for path in opened)  # PIL never opened a bomb


def test_declared_pixels_reads_jpeg_and_png_headers_only():
    cases = [
        (image_bombs.png_bomb(30_000, 30_000), 900_000_000),
        (image_bombs.jpeg_bomb(30_000, 20_000), 600_000_000),
        (image_bombs.png_bomb(40, 30), 1_200),
        (image_bombs.uniform_jpeg(17, 45), 765),
        (b"hello world", 0),
        (image_bombs.png_bomb()[:18], 0),  # a cut IHDR reads as 0 x 0; the decode then reports the file
    ]
    for data, pixels in cases:
        assert int(image_limits.declared_pixels(tf.constant(data))) == pixels


def test_pixel_limit_assert_runs_in_a_tf_data_map():
    """The graph check as a tf.data pipeline would use it: the bomb fails at its element, by name."""
    elements = [image_bombs.uniform_jpeg(8, 8), image_bombs.png_bomb()]

    def checked(encoded, index):
        with tf.control_dependencies([image_limits.pixel_limit_assert(encoded, index)]):
            return tf.strings.length(encoded)

    dataset = tf.data.Dataset.from_tensor_slices((elements, tf.range(2))).map(checked)
    iterator = iter(dataset)
    assert int(next(iterator)) == len(elements[0])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"(?s)element.{0,12}\b1\b.{0,12}declares.{0,12}900000000"):
        next(iterator)

