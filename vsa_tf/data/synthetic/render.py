"""Rendering a planned scene as JPEG bytes (numpy + PIL only, no TensorFlow).

Each image draws from its own random stream (``[seed, index, 1]``), so rendering is independent of
the order images are written in and the output is the same bytes for a given seed.
"""

import io

import numpy as np
from PIL import Image
from PIL import ImageDraw

from vsa_tf.data.synthetic.lexicon import COLOR_VALUES


def _unit_polygon(shape):
    if shape == "triangle":
        points = [(0.5, 0.0), (1.0, 1.0), (0.0, 1.0)]
    elif shape == "diamond":
        points = [(0.5, 0.0), (1.0, 0.5), (0.5, 1.0), (0.0, 0.5)]
    elif shape == "cross":
        a, b = 0.33, 0.67
        points = [(a, 0), (b, 0), (b, a), (1, a), (1, b), (b, b), (b, 1), (a, 1), (a, b), (0, b), (0, a), (a, a)]
    elif shape == "star":
        angles = -np.pi / 2 + np.arange(10) * np.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
        xs, ys = radii * np.cos(angles), radii * np.sin(angles)
        xs = (xs - xs.min()) / (xs.max() - xs.min())
        ys = (ys - ys.min()) / (ys.max() - ys.min())
        points = list(zip(xs.tolist(), ys.tolist()))
    else:
        raise ValueError(f"No polygon for shape {shape!r}")
    return points


_UNIT_POLYGONS = {shape: _unit_polygon(shape) for shape in ("triangle", "diamond", "cross", "star")}


def _background(rng, kind, width, height):
    """float32 [height, width, 3] muted background of the given kind."""
    # Two greyish tones (low saturation, so no background reads as one of the object colours).
    base = rng.uniform(60, 200) + rng.uniform(-18, 18, size=3)
    other = np.clip(base.mean() + rng.choice([-1.0, 1.0]) * rng.uniform(25, 60), 40, 220) + rng.uniform(-18, 18, size=3)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    if kind == "gradient":
        angle = rng.uniform(0, 2 * np.pi)
        projection = xs * np.cos(angle) + ys * np.sin(angle)
        weight = (projection - projection.min()) / max(float(np.ptp(projection)), 1.0)
    elif kind == "stripes":
        angle = rng.uniform(0, np.pi)
        period = rng.uniform(8, 24)
        weight = 0.5 + 0.5 * np.sin(2 * np.pi * (xs * np.cos(angle) + ys * np.sin(angle)) / period)
    elif kind == "checker":
        cell = int(rng.integers(8, 24))
        weight = ((xs // cell + ys // cell) % 2).astype(np.float32)
        weight = 0.25 + 0.5 * weight
    elif kind == "blotches":
        coarse = rng.random((int(rng.integers(3, 7)), int(rng.integers(3, 7))), dtype=np.float32)
        weight = np.asarray(
            Image.fromarray((coarse * 255).astype(np.uint8)).resize((width, height), Image.BILINEAR), np.float32
        ) / 255.0
    elif kind == "speckles":
        weight = rng.random((height, width), dtype=np.float32) * 0.6
    else:
        raise ValueError(f"Unknown background {kind!r}")
    return base[None, None, :] * (1 - weight[..., None]) + other[None, None, :] * weight[..., None]


def render_scene(seed, index, scene, quality):
    """JPEG bytes of one scene."""
    rng = np.random.default_rng([seed, index, 1])
    width, height = scene["width"], scene["height"]
    pixels = _background(rng, scene["background"], width, height)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for obj in scene["objects"]:
        color = np.clip(np.asarray(COLOR_VALUES[obj["color"]]) + rng.integers(-18, 19, size=3), 0, 255)
        fill = tuple(int(value) for value in color)
        x0, y0, x1, y1 = obj["box"]
        if obj["shape"] == "circle":
            draw.ellipse([x0, y0, x1 - 1, y1 - 1], fill=fill)
        elif obj["shape"] == "square":
            draw.rectangle([x0, y0, x1 - 1, y1 - 1], fill=fill)
        else:
            side_x, side_y = x1 - 1 - x0, y1 - 1 - y0
            draw.polygon([(x0 + u * side_x, y0 + v * side_y) for u, v in _UNIT_POLYGONS[obj["shape"]]], fill=fill)
    noise = rng.standard_normal((height, width, 3), dtype=np.float32) * rng.uniform(4, 12)
    pixels = np.clip(np.asarray(image, np.float32) + noise, 0, 255).astype(np.uint8)
    stream = io.BytesIO()
    Image.fromarray(pixels).save(stream, format="JPEG", quality=quality)
    return stream.getvalue()
