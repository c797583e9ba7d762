"""Decompression bombs for tests: tiny, well-formed JPEG/PNG files whose headers declare huge sizes."""

import io
import struct
import zlib

import numpy as np
from PIL import Image


def _png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bomb(width=30_000, height=30_000):
    """A ~100-byte PNG: IHDR says width x height (8-bit RGB) with a valid CRC; the IDAT holds one
    compressed row only, so a decoder would allocate the full image before noticing the cut."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    row = zlib.compress(b"\x00" + b"\x00" * 3 * min(width, 16))
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", row) + _png_chunk(b"IEND", b"")


def jpeg_bomb(width=30_000, height=30_000):
    """A small 16 x 16 baseline JPEG whose SOF0 height and width are patched to the given size."""
    stream = io.BytesIO()
    Image.fromarray(np.full((16, 16, 3), 128, np.uint8)).save(stream, format="JPEG")
    data = bytearray(stream.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)  # marker (2), length (2), precision (1)
    return bytes(data)


def uniform_jpeg(width, height, colour=(90, 140, 200)):
    """A JPEG of one uniform colour (compresses to a few tens of kB even at 4,000 x 4,000)."""
    stream = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(stream, format="JPEG", quality=50)
    return stream.getvalue()
