import json
import sys

import numpy as np
import pytest
from PIL import Image

from vsa_tf.evaluation import proposals, selective_search

# Three flat rectangles on a grey background: selective search's first regions are exactly these.
RECTANGLES = [(8, 10, 40, 30), (50, 6, 90, 56), (20, 60, 70, 90)]  # x0, y0, x1, y1 (end exclusive)
COLORS = [(230, 20, 20), (20, 200, 30), (30, 40, 220)]


def _image(width=100, height=100):
    pixels = np.full((height, width, 3), 128, dtype=np.uint8)
    for (x0, y0, x1, y1), color in zip(RECTANGLES, COLORS):
        pixels[y0:y1, x0:x1] = color
    return pixels


def test_install_hint_when_opencv_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)  # `import cv2` now raises ImportError
    assert not selective_search.is_available()
    with pytest.raises(ImportError, match=r"pip install \"vsa_tf\[bench\]\" \(opencv-contrib-python-headless\)"):
        selective_search.selective_search_boxes(_image())


def test_boxes_are_pixel_xyxy_inside_the_image_and_find_the_rectangles():
    pytest.importorskip("cv2.ximgproc")
    boxes = selective_search.selective_search_boxes(_image(120, 100))
    assert boxes.ndim == 2 and boxes.shape[1] == 4 and len(boxes) >= 3
    assert boxes.dtype == np.float64
    assert np.all(boxes[:, 0] >= 0) and np.all(boxes[:, 1] >= 0)
    assert np.all(boxes[:, 2] <= 120) and np.all(boxes[:, 3] <= 100)
    assert np.all(boxes[:, 2] > boxes[:, 0]) and np.all(boxes[:, 3] > boxes[:, 1])
    # Every flat rectangle is one of the regions, to the pixel (OpenCV's width = x1 - x0).
    best = proposals.box_iou(boxes, np.array(RECTANGLES, dtype=np.float64)).max(axis=0)
    np.testing.assert_allclose(best, 1.0)
    first = selective_search.selective_search_boxes(_image(120, 100), max_boxes=2)
    np.testing.assert_array_equal(first, boxes[:2])  # the first K in OpenCV's order
    np.testing.assert_array_equal(selective_search.selective_search_boxes(_image(120, 100)), boxes)  # seeded: repeatable
    other_order = selective_search.selective_search_boxes(_image(120, 100), seed=5)
    assert sorted(map(tuple, other_order)) == sorted(map(tuple, boxes))  # the seed changes the order, not the set
    large = selective_search.selective_search_boxes(_image(120, 100), min_side=25)
    assert len(large) < len(boxes) and (large[:, 2:] - large[:, :2]).min() >= 25
    np.testing.assert_array_equal(large, boxes[(boxes[:, 2:] - boxes[:, :2]).min(axis=1) >= 25])  # same order, small ones out
    grey = selective_search.selective_search_boxes(_image(120, 100)[..., 0])
    assert grey.shape[1] == 4


def test_errors_name_the_value():
    pytest.importorskip("cv2.ximgproc")
    with pytest.raises(ValueError, match="mode must be 'fast' or 'quality', received 'slow'"):
        selective_search.selective_search_boxes(_image(), mode="slow")
    with pytest.raises(ValueError, match="max_boxes must be >= 1 or None, received 0"):
        selective_search.selective_search_boxes(_image(), max_boxes=0)
    with pytest.raises(ValueError, match=r"needs an \[H, W, 3\] RGB image, received shape \(4, 4, 2\)"):
        selective_search.selective_search_boxes(np.zeros((4, 4, 2), np.uint8))


def test_selective_search_baseline_in_evaluate_proposals(tmp_path):
    pytest.importorskip("cv2.ximgproc")
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(_image()).save(images / "a.png")
    # b.png is stored at half the truth's size: its boxes are scaled onto the truth's 100 x 100 pixels.
    Image.fromarray(_image()).resize((50, 50), Image.NEAREST).save(images / "b.png")
    truth = {
        filename: {"width": 100, "height": 100, "objects": [{"box": list(box)} for box in RECTANGLES], "sentences": []}
        for filename in ("a.png", "b.png")
    }
    boxes = {"a.png": [[0, 0, 100, 100]], "b.png": [[0, 0, 100, 100]]}
    report = proposals.evaluate_proposals(boxes, truth, recall_at=(1, 100), image_root=str(images))
    baseline = report["baselines"][proposals.SELECTIVE_SEARCH]
    assert baseline["num_images"] == 2 and baseline["num_boxes"] == 6
    assert baseline["recall_at"]["100"] == 100.0  # every rectangle is among the first 100 boxes of both copies
    assert baseline["recall_at"]["1"] <= 100 / 3  # one box per image finds at most one rectangle of three
    assert baseline["seconds_per_image"] >= 0
    # The same numbers as scoring `selective_search_proposals` directly: the baseline is the first K boxes.
    direct = proposals.selective_search_proposals(truth, str(images), ["a.png", "b.png"], max_boxes=100)
    assert proposals.proposal_recall(direct, truth, recall_at=(1, 100))["recall_at"] == baseline["recall_at"]
    assert np.all(direct["b.png"][:, 2:] <= 100) and direct["b.png"].max() > 50
    with pytest.raises(ValueError, match="image not found for the selective-search baseline"):
        proposals.selective_search_proposals({"c.png": truth["a.png"]}, str(images))
    json.dumps(report)  # the report is plain JSON
