import io

import numpy as np
import pytest
from PIL import Image

from vsa_tf.data import synthetic
from vsa_tf.data.synthetic import render

SCENE = {
    "width": 64,
    "height": 48,
    "background": "checker",
    "objects": [{"box": [8, 8, 28, 28], "shape": "square", "color": "red", "size": "small"}],
}


@pytest.mark.parametrize("background", synthetic.BACKGROUNDS)
def test_render_scene_is_a_deterministic_jpeg(background):
    scene = {**SCENE, "background": background}
    data = render.render_scene(0, 0, scene, 90)
    assert data == render.render_scene(0, 0, scene, 90)
    assert data != render.render_scene(0, 1, scene, 90)
    with Image.open(io.BytesIO(data)) as picture:
        assert picture.format == "JPEG" and picture.mode == "RGB" and picture.size == (64, 48)


def test_objects_are_drawn_in_their_colour():
    pixels = np.asarray(Image.open(io.BytesIO(render.render_scene(0, 0, SCENE, 95))), np.float32)
    inside = pixels[12:24, 12:24].mean(axis=(0, 1))  # the red square, away from its edges
    assert np.abs(inside - np.asarray(synthetic.COLOR_VALUES["red"])).max() < 40


def test_unknown_background():
    with pytest.raises(ValueError, match="'plaid'"):
        render.render_scene(0, 0, {**SCENE, "background": "plaid"}, 90)
