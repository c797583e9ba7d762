import json
import os

import numpy as np
import pytest
import tensorflow as tf

from vsa_tf.data import boxes

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures")


def write_json(path, data):
    path.write_text(json.dumps(data))
    return str(path)


def test_read_plain_boxes():
    result = boxes.read_boxes(os.path.join(FIXTURES, "boxes_plain.json"))
    assert set(result) == {"a.jpg", "b.png"}
    assert result["a.jpg"].dtype == np.float32
    np.testing.assert_array_equal(result["a.jpg"], [[2, 3, 30, 20], [0, 0, 10, 10]])
    assert result["b.png"].shape == (0, 4)


def test_read_scored_boxes_sorted_best_first():
    result = boxes.read_boxes(os.path.join(FIXTURES, "boxes_scored.json"))
    np.testing.assert_array_equal(result["a.jpg"], [[2, 3, 30, 20], [5, 5, 6, 6], [0, 0, 10, 10]])


def test_read_box_scores_best_first_and_only_of_scored_entries(tmp_path):
    scores = boxes.read_box_scores(os.path.join(FIXTURES, "boxes_scored.json"))
    assert list(scores) == ["a.jpg"] and scores["a.jpg"].dtype == np.float32
    np.testing.assert_allclose(scores["a.jpg"], [0.9, 0.5, 0.2])  # the order of read_boxes' rows
    assert boxes.read_box_scores(os.path.join(FIXTURES, "boxes_plain.json")) == {}  # plain lists carry no scores
    mixed = write_json(tmp_path / "mixed.json", {"p.jpg": [[0, 0, 4, 4]], "s.jpg": {"boxes": [[0, 0, 4, 4], [1, 1, 3, 3]], "scores": [0.2, 0.7]}})
    np.testing.assert_allclose(boxes.read_box_scores(mixed)["s.jpg"], [0.7, 0.2])
    np.testing.assert_array_equal(boxes.read_boxes(mixed)["s.jpg"][0], [1, 1, 3, 3])  # box row 0 is the 0.7 one
    bad = write_json(tmp_path / "bad_scores.json", {"x.jpg": {"boxes": [[0, 0, 5, 5]], "scores": ["high"]}})
    with pytest.raises(ValueError, match=r"bad_scores\.json: x\.jpg: 'scores' must be finite numbers"):
        boxes.read_box_scores(bad)


@pytest.mark.parametrize(
    "entry, message",
    [
        ([[0, 0, 5]], r"x\.jpg: box 0 must be 4 numbers"),
        ([[0, 0, 5, 5], [4, 4, 4, 9]], r"x\.jpg: box 1 is degenerate"),
        ({"boxes": [[0, 0, 5, 5]], "scores": [1, 2]}, r"x\.jpg: 'scores' must be a list as long as 'boxes' \(1\)"),
        ({"rects": []}, r"x\.jpg: object form needs a 'boxes' field"),
        ("nope", r"x\.jpg: boxes must be a list"),
    ],
)
def test_bad_boxes_name_file_and_problem(tmp_path, entry, message):
    path = write_json(tmp_path / "bad_boxes.json", {"x.jpg": entry})
    with pytest.raises(ValueError, match=r"bad_boxes\.json: " + message):
        boxes.read_boxes(path)


def test_malformed_boxes_json(tmp_path):
    path = tmp_path / "boxes.json"
    path.write_text("{[")
    with pytest.raises(ValueError, match=r"boxes\.json: malformed JSON"):
        boxes.read_boxes(str(path))


def test_top_k_and_padding():
    by_filename = {"a": np.arange(12, dtype=np.float32).reshape(3, 4)}
    np.testing.assert_array_equal(boxes.top_k_boxes(by_filename["a"], 2), by_filename["a"][:2])
    padded, counts = boxes.padded_pixel_boxes(by_filename, ["a", "missing"], 4)
    assert padded.shape == (2, 4, 4)
    np.testing.assert_array_equal(counts, [3, 0])
    np.testing.assert_array_equal(padded[0, 3], [0, 0, 0, 0])


def test_region_boxes_whole_image_first_normalised_and_masked():
    pixel = tf.constant([[10.0, 20.0, 30.0, 60.0], [0.0, 0.0, 200.0, 50.0], [0.0, 0.0, 0.0, 0.0]])
    regions, mask = boxes.region_boxes(pixel, tf.constant(2), tf.constant(80), tf.constant(100))
    # rel_yxyx: y / height 80, x / width 100; the second box is clipped to the image.
    np.testing.assert_allclose(
        regions.numpy(),
        [[0, 0, 1, 1], [0.25, 0.1, 0.75, 0.3], [0, 0, 0.625, 1], [0, 0, 0, 0]],
        atol=1e-6,
    )
    np.testing.assert_array_equal(mask.numpy(), [True, True, True, False])


def test_flip_boxes():
    flipped = boxes.flip_boxes_horizontally(tf.constant([[0.1, 0.2, 0.5, 0.6], [0, 0, 0, 0]]), tf.constant([True, False]))
    np.testing.assert_allclose(flipped.numpy(), [[0.1, 0.4, 0.5, 0.8], [0, 0, 0, 0]], atol=1e-6)


def test_outside_image():
    found = boxes.outside_image_problems([[0, 0, 10, 10], [5, 5, 120, 20], [-5, 0, 3, 3]], width=100, height=50)
    assert [index for index, _ in found] == [1, 2]


def test_image_regions_match_pipeline_regions():
    pixel = np.array([[10, 20, 30, 60], [0, 0, 200, 50]], np.float32)
    regions, mask = boxes.image_regions(pixel, width=100, height=80, max_boxes=3)
    np.testing.assert_array_equal(regions, [[0, 0, 100, 80], [10, 20, 30, 60], [0, 0, 100, 50], [0, 0, 0, 0]])
    np.testing.assert_array_equal(mask, [True, True, True, False])
    normalised, _ = boxes.region_boxes(tf.constant(pixel[:3]), tf.constant(2), tf.constant(80), tf.constant(100))
    # Region i in pixels, normalised, is region i of the pipeline.
    y0x0y1x1 = regions[:3][:, [1, 0, 3, 2]] / np.array([80, 100, 80, 100], np.float32)
    np.testing.assert_allclose(normalised.numpy()[:3], y0x0y1x1, atol=1e-6)
