import os

import numpy as np
import pytest
from PIL import Image

from vsa_tf.visualize.proposals import PROPOSAL_COLORS, plot_proposals


@pytest.fixture
def image_path(tmp_path):
    path = str(tmp_path / "scene.png")
    pixels = np.full((60, 90, 3), 128, np.uint8)
    pixels[10:30, 20:40] = (255, 255, 0)
    Image.fromarray(pixels).save(path)
    return path


def _has_color(pixels, hex_color, tolerance=30):
    rgb = np.array([int(hex_color[index: index + 2], 16) for index in (1, 3, 5)])
    return bool(np.any(np.abs(pixels - rgb).sum(axis=-1) < tolerance))


def test_writes_a_png_of_the_grid_size_with_the_boxes_drawn(image_path, tmp_path):
    out = str(tmp_path / "figures" / "proposals.png")
    items = [
        {"image": image_path, "boxes": [[20, 10, 40, 30], [0, 0, 45, 30]], "scores": [0.9, 0.4], "truth": [[20, 10, 40, 30]]},
        {"image": image_path, "boxes": [[50, 30, 80, 55]], "title": "no scores"},
        {"image": image_path, "boxes": []},
        {"image": image_path, "boxes": [[1, 1, 5, 5]]},
    ]
    assert plot_proposals(items, out, columns=3, panel_size=(2.0, 1.5), dpi=50) == out
    with Image.open(out) as figure:
        assert figure.format == "PNG"
        assert figure.size == (3 * 2.0 * 50, 2 * 1.5 * 50)  # 3 columns x 2 rows of 2 x 1.5 inch panels
        pixels = np.asarray(figure.convert("RGB")).astype(int)
    assert _has_color(pixels, PROPOSAL_COLORS[0]) and _has_color(pixels, PROPOSAL_COLORS[1])
    assert os.listdir(tmp_path / "figures") == ["proposals.png"]  # no temporary left


def test_draws_only_the_top_proposals(image_path, tmp_path):
    out = str(tmp_path / "top.png")
    plot_proposals([{"image": image_path, "boxes": [[20, 10, 40, 30], [0, 0, 45, 30]]}], out, top=1, dpi=80)
    with Image.open(out) as figure:
        pixels = np.asarray(figure.convert("RGB")).astype(int)
        assert figure.size == (int(3.2 * 80), int(2.4 * 80))
    assert _has_color(pixels, PROPOSAL_COLORS[0]) and not _has_color(pixels, PROPOSAL_COLORS[1])


def test_errors(image_path, tmp_path):
    out = str(tmp_path / "x.png")
    with pytest.raises(ValueError, match="at least one item"):
        plot_proposals([], out)
    with pytest.raises(ValueError, match="top must be >= 1, received 0"):
        plot_proposals([{"image": image_path, "boxes": []}], out, top=0)
    with pytest.raises(ValueError, match=r"item 0: every box of `truth` must be \[x0, y0, x1, y1\], received \[1, 2\]"):
        plot_proposals([{"image": image_path, "boxes": [], "truth": [[1, 2]]}], out)
    with pytest.raises(ValueError, match="item 0: 1 scores for 2 boxes"):
        plot_proposals([{"image": image_path, "boxes": [[0, 0, 5, 5], [1, 1, 6, 6]], "scores": [0.5]}], out)
    with pytest.raises(ValueError, match="Image file not found"):
        plot_proposals([{"image": str(tmp_path / "missing.png"), "boxes": []}], out)
    assert not os.path.exists(out)
