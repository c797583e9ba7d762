import json

import numpy as np
import pytest

from vsa_tf.align import snippets
from vsa_tf.data import boxes as boxes_lib


def _regions(detector_boxes, width, height):
    return boxes_lib.image_regions(detector_boxes, width, height)[0]


def test_maximal_runs_with_boxes_in_pixels():
    boxes = _regions([[10, 10, 50, 40], [60, 0, 100, 30]], width=100, height=80)
    result = snippets.snippets_from_alignment(
        np.array([1, 1, 0, 2, 2, -1]), ["a", "red", "ball", "blue", "cube"], "images/x.png", 3, boxes
    )
    assert [(s["start"], s["end"], s["region"]) for s in result] == [(0, 2, 1), (2, 3, 0), (3, 5, 2)]
    assert result[0]["words"] == ["a", "red"]
    assert result[1]["box"] == [0.0, 0.0, 100.0, 80.0]
    assert result[2]["box"] == [60.0, 0.0, 100.0, 30.0]
    assert all(s["filename"] == "images/x.png" and s["sentence"] == 3 for s in result)


def test_negative_assignments_are_skipped():
    boxes = _regions(np.zeros([0, 4]), 10, 10)
    result = snippets.snippets_from_alignment([0, -1, 0], ["a", "b", "c"], "f", 0, boxes)
    assert [(s["start"], s["end"]) for s in result] == [(0, 1), (2, 3)]


def test_normalized_boxes_to_pixels():
    pixels = snippets.pixel_boxes_from_normalized([[0.5, 0.25, 1.0, 0.75]], width=200, height=100)
    np.testing.assert_allclose(pixels, [[50.0, 50.0, 150.0, 100.0]])


def test_write_read_round_trip(tmp_path):
    boxes = _regions([[1, 2, 3, 4]], 10, 10)
    items = snippets.snippets_from_alignment([0, 1], ["a", "b"], "f.png", 0, boxes)
    path = tmp_path / "snippets.json"
    snippets.write_snippets(path, items)
    assert snippets.read_snippets(path) == items
    assert [p.name for p in tmp_path.iterdir()] == ["snippets.json"]  # no temporary left behind


def test_alignment_errors():
    boxes = _regions([], 10, 10)
    with pytest.raises(ValueError, match="2 words but only 1 assignments"):
        snippets.snippets_from_alignment([0], ["a", "b"], "f", 0, boxes)
    with pytest.raises(ValueError, match="out of range for 1 regions"):
        snippets.snippets_from_alignment([0, 3], ["a", "b"], "f", 0, boxes)


@pytest.mark.parametrize(
    "content, message",
    [
        ({"x": 1}, "expected a JSON list"),
        ([{"filename": "f"}], r"entry 0: missing field\(s\)"),
        ([{"filename": "f", "sentence": 0, "start": 2, "end": 1, "words": [], "region": 0, "box": [0, 0, 1, 1]}],
         "`end` must be greater than `start`"),
        ([{"filename": "f", "sentence": 0, "start": 0, "end": 2, "words": ["a"], "region": 0, "box": [0, 0, 1, 1]}],
         "`words` has 1 entries"),
        ([{"filename": "f", "sentence": 0, "start": 0, "end": 1, "words": ["a"], "region": -1, "box": [0, 0, 1, 1]}],
         "`region` must be an integer >= 0, received -1"),
        ([{"filename": "f", "sentence": 0, "start": 0, "end": 1, "words": ["a"], "region": 0, "box": [0, 0, 1]}],
         "`box` must be 4 finite numbers"),
    ],
)
def test_read_errors_name_file_entry_and_field(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ValueError, match=message) as info:
        snippets.read_snippets(path)
    assert str(path) in str(info.value)


def test_read_missing_and_invalid_json(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        snippets.read_snippets(tmp_path / "none.json")
    (tmp_path / "broken.json").write_text("[{")
    with pytest.raises(ValueError, match="not valid JSON"):
        snippets.read_snippets(tmp_path / "broken.json")
