"""The decompression-bomb limit: an image declaring more than `MAX_IMAGE_PIXELS` pixels is refused
from its header, before anything is decoded.

A small file can declare 30,000 x 30,000 pixels (a PNG of 100 bytes, a patched JPEG of 700): decoding
it would allocate 2.7 GB. Two checks read only the header:
- `check_image_file(path)` (Python, `vsa-tf validate` and every training job's data check): a
  `ValueError` naming the file, its declared size and the limit.
- `pixel_limit_assert(image_bytes, index)` (graph ops, for the exported serving signatures and any
  tf.data decode): `tf.image.extract_jpeg_shape` for a JPEG, the IHDR width and height for a PNG
  (`tf.strings.substr` + big-endian `tf.io.decode_raw`); stock ops only, so TF Serving runs it.
"""

import os
import struct

import tensorflow as tf

# Decompression-bomb limit: 50 megapixels (150 MB decoded RGB) is above every image of Flickr8k/30k and
# COCO (640 px) and of 8K photos, while a small file declaring 30,000 x 30,000 (2.7 GB decoded) is refused.
MAX_IMAGE_PIXELS = 50_000_000
_JPEG_MAGIC = b"\xff\xd8"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (they carry the frame size): C0-CF except DHT (C4), JPG (C8), DAC (CC).
_JPEG_FRAME_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def header_size(path):
    """(width, height) a JPEG or PNG file declares in its header, read without decoding; None otherwise.

    PNG: the IHDR chunk (bytes 16-24, big-endian). JPEG: the first start-of-frame segment, reached by
    skipping the segments before it (only their 4-byte headers are read, so a large EXIF block costs
    nothing). Truncated or malformed headers give None: decoding then reports the file as broken.
    """
    with open(path, "rb") as stream:
        head = stream.read(24)
        if head.startswith(_PNG_MAGIC):
            if len(head) < 24 or head[12:16] != b"IHDR":
                return None
            width, height = struct.unpack(">II", head[16:24])
            return width, height
        if not head.startswith(_JPEG_MAGIC):
            return None
        stream.seek(2)
        while True:
            marker = stream.read(2)
            while len(marker) == 2 and marker[0] == 0xFF and marker[1] == 0xFF:  # fill bytes
                marker = marker[1:] + stream.read(1)
            if len(marker) < 2 or marker[0] != 0xFF or marker[1] in (0xD9, 0xDA):  # end, or scan data first
                return None
            if 0xD0 <= marker[1] <= 0xD7 or marker[1] == 0x01:  # markers without a length
                continue
            length_bytes = stream.read(2)
            if len(length_bytes) < 2:
                return None
            (length,) = struct.unpack(">H", length_bytes)
            if marker[1] in _JPEG_FRAME_MARKERS:
                frame = stream.read(5)  # precision, height, width
                if len(frame) < 5:
                    return None
                height, width = struct.unpack(">HH", frame[1:5])
                return width, height
            if length < 2:
                return None
            stream.seek(length - 2, os.SEEK_CUR)


def check_image_file(path, max_pixels=MAX_IMAGE_PIXELS):
    """Refuses, before any decoding, an image whose header declares more than ``max_pixels`` pixels.

    Returns:
        the declared (width, height), or None for a format whose header is not read here (not JPEG/PNG).

    Raises:
        ValueError: naming the file, its declared size and the limit (a decompression bomb).
    """
    size = header_size(path)
    if size is not None and size[0] * size[1] > max_pixels:
        raise ValueError(
            f"{path}: image declares {size[0]}x{size[1]} = {size[0] * size[1]:,} pixels, over the limit of "
            f"{max_pixels:,} (MAX_IMAGE_PIXELS); refused before decoding (a decompression bomb?)"
        )
    return size


def declared_pixels(image_bytes):
    """tf.string scalar -> int64 scalar: width x height a JPEG (`tf.image.extract_jpeg_shape`, headers
    only) or PNG (IHDR, big-endian uint32 at bytes 16-24) declares, without decoding; 0 for anything else."""
    is_jpeg = tf.equal(tf.strings.substr(image_bytes, 0, len(_JPEG_MAGIC)), _JPEG_MAGIC)
    is_png = tf.equal(tf.strings.substr(image_bytes, 0, len(_PNG_MAGIC)), _PNG_MAGIC)

    def jpeg_pixels():
        shape = tf.cast(tf.image.extract_jpeg_shape(image_bytes), tf.int64)  # [height, width, channels]
        return shape[0] * shape[1]

    def png_pixels():
        # Zero-padded to 8 bytes so that a cut header reads as 0 x 0 (the decode then reports it).
        header = tf.strings.substr(tf.strings.join([tf.strings.substr(image_bytes, 16, 8), "\0" * 8]), 0, 8)
        width_height = tf.cast(tf.io.decode_raw(header, tf.int32, little_endian=False), tf.int64)  # [2]
        return width_height[0] * width_height[1]

    return tf.cond(is_jpeg, jpeg_pixels, lambda: tf.cond(is_png, png_pixels, lambda: tf.constant(0, tf.int64)))


def pixel_limit_assert(image_bytes, index, max_pixels=MAX_IMAGE_PIXELS):
    """An Assert op failing with InvalidArgument, before any decoding, when the encoded image
    ``image_bytes`` (element ``index`` of a batch) declares more than ``max_pixels`` pixels."""
    pixels = declared_pixels(image_bytes)
    return tf.debugging.Assert(
        pixels <= max_pixels,
        [
            "image_bytes: element",
            index,
            "declares",
            pixels,
            f"pixels, over the limit of MAX_IMAGE_PIXELS = {max_pixels}; refused before decoding",
        ],
    )
