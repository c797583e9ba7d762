import json

import numpy as np
import pytest

from vsa_tf.evaluation import proposals


def _brute_force_iou(a, b):
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def _random_boxes(rng, count, size=100.0):
    corners = rng.uniform(0, size, (count, 2, 2))
    low, high = corners.min(axis=1), corners.max(axis=1) + 1.0
    return np.concatenate([low, high], axis=1)


def test_box_iou_matches_a_loop_over_pairs():
    rng = np.random.default_rng(0)
    first, second = _random_boxes(rng, 5), _random_boxes(rng, 7)
    expected = np.array([[_brute_force_iou(a, b) for b in second] for a in first])
    np.testing.assert_allclose(proposals.box_iou(first, second), expected, rtol=1e-12)
    assert proposals.box_iou([[0, 0, 2, 2]], [[1, 1, 3, 3]])[0, 0] == pytest.approx(1 / 7)
    assert proposals.box_iou([[0, 0, 1, 1]], [[5, 5, 6, 6]])[0, 0] == 0.0


def test_grid_has_19_boxes_inside_the_image_largest_first():
    grid = proposals.grid_boxes(200, 100)
    assert grid.shape == (19, 4)
    assert grid.min() >= 0 and grid[:, 2].max() == 200 and grid[:, 3].max() == 100
    areas = (grid[:, 2] - grid[:, 0]) * (grid[:, 3] - grid[:, 1])
    assert np.all(np.diff(areas) <= 1e-6) and areas[0] == 200 * 100
    with pytest.raises(ValueError, match="positive image size, received width=0, height=5"):
        proposals.grid_boxes(0, 5)


def test_recall_against_a_brute_force_count():
    rng = np.random.default_rng(1)
    truth, boxes = {}, {}
    for index in range(12):
        objects = _random_boxes(rng, int(rng.integers(0, 5)))
        truth[f"{index}.jpg"] = {"width": 101, "height": 101, "objects": [{"box": box.tolist()} for box in objects], "sentences": []}
        if index != 3:  # one image has no proposals at all
            boxes[f"{index}.jpg"] = np.concatenate([objects + rng.normal(0, 4, objects.shape), _random_boxes(rng, 30)])[rng.permutation(len(objects) + 30)]
    report = proposals.proposal_recall(boxes, truth, recall_at=(1, 5, 19, 100), iou_threshold=0.5)
    total = sum(len(image["objects"]) for image in truth.values())
    assert report["num_boxes"] == total and report["num_images"] == 12
    for k in (1, 5, 19, 100):
        found = sum(
            any(_brute_force_iou(candidate, obj["box"]) >= 0.5 for candidate in boxes.get(filename, [])[:k])
            for filename, image in truth.items() for obj in image["objects"]
        )
        assert report["recall_at"][str(k)] == round(100.0 * found / total, 2)
    values = [report["recall_at"][str(k)] for k in (1, 5, 19, 100)]
    assert values == sorted(values) and values[-1] > values[0]


def test_evaluate_proposals_scores_the_boxes_files_images_beside_the_baselines(tmp_path):
    truth = {
        "a.jpg": {"width": 100, "height": 50, "objects": [{"box": [0, 0, 100, 50]}, {"box": [0, 0, 50, 25]}], "sentences": []},
        "b.jpg": {"width": 90, "height": 90, "objects": [{"box": [60, 60, 90, 90]}], "sentences": []},
        "c.jpg": {"width": 90, "height": 90, "objects": [{"box": [1, 1, 9, 9]}], "sentences": []},  # not in the boxes file
    }
    truth_path = tmp_path / "truth.json"
    truth_path.write_text(json.dumps({"images": truth}))
    boxes_path = tmp_path / "boxes.json"
    boxes_path.write_text(json.dumps({"a.jpg": {"boxes": [[10, 10, 20, 20], [0, 0, 50, 25]], "scores": [0.1, 0.9]}, "b.jpg": [[61, 61, 90, 90]]}))
    report = proposals.evaluate_proposals(str(boxes_path), str(truth_path), recall_at=(1, 2))
    assert report["proposals"]["num_images"] == 2 and report["proposals"]["num_boxes"] == 3
    # a.jpg: the higher-scored box (the quarter) comes first; the whole image is never proposed.
    assert report["proposals"]["recall_at"] == {"1": round(200 / 3, 2), "2": round(200 / 3, 2)}
    assert report["baselines"]["whole_image"]["recall_at"] == {"1": round(100 / 3, 2), "2": round(100 / 3, 2)}
    grid = report["baselines"]["grid_19"]
    assert grid["recall_at"]["1"] == round(100 / 3, 2) and grid["num_boxes"] == 3
    assert proposals.proposal_recall({}, truth, recall_at=(19,))["recall_at"] == {"19": 0.0}


def test_errors_name_the_value():
    truth = {"a.jpg": {"width": 10, "height": 10, "objects": [{"box": [0, 0, 5, 5]}], "sentences": []}}
    with pytest.raises(ValueError, match="recall_at must be K values >= 1, received \\(0, 5\\)"):
        proposals.proposal_recall({}, truth, recall_at=(0, 5))
    with pytest.raises(ValueError, match="iou_threshold must be in \\(0, 1\\], received 1.5"):
        proposals.proposal_recall({}, truth, iou_threshold=1.5)
    with pytest.raises(ValueError, match="1 image\\(s\\) are not in the truth, e.g. \\['z.jpg'\\]"):
        proposals.proposal_recall({}, truth, filenames=["z.jpg"])
    with pytest.raises(ValueError, match="baseline must be one of \\['grid_19', 'whole_image'\\], received 'random'"):
        proposals.baseline_proposals(truth, "random")
    with pytest.raises(ValueError, match="the boxes name none of the truth's images"):
        proposals.evaluate_proposals({"b.jpg": np.zeros((0, 4))}, truth)


def test_dataset_filenames_keep_the_datasets_order_and_the_truths_images(tmp_path):
    from vsa_tf.data.records import CaptionDataset, ImageRecord

    records = [ImageRecord(filename=name, image_id=index, split=split, sentences=[])
               for index, (name, split) in enumerate([("z.jpg", "val"), ("a.jpg", "train"), ("m.jpg", "val"), ("q.jpg", "val")])]
    dataset = CaptionDataset(records=records)
    image = {"width": 10, "height": 10, "objects": [{"box": [0, 0, 10, 10]}], "sentences": []}
    truth = {name: image for name in ("z.jpg", "a.jpg", "m.jpg")}
    assert proposals.dataset_filenames(dataset, ("val",), truth) == ["z.jpg", "m.jpg"]  # q.jpg: not in the truth
    assert proposals.dataset_filenames(dataset, "train", truth) == ["a.jpg"]
    # Images of the split the boxes file lacks count as images without proposals; `limit` keeps the first N.
    report = proposals.evaluate_proposals({"m.jpg": [[0, 0, 10, 10]]}, truth, recall_at=(1,), dataset=dataset, splits=("val",))
    assert report["proposals"]["num_images"] == 2 and report["proposals"]["recall_at"] == {"1": 50.0}
    limited = proposals.evaluate_proposals({"m.jpg": [[0, 0, 10, 10]]}, truth, recall_at=(1,), dataset=dataset, limit=1)
    assert limited["proposals"]["num_images"] == 1 and limited["proposals"]["recall_at"] == {"1": 0.0}
    assert "selective_search_fast" not in report["baselines"]
    with pytest.raises(ValueError, match="splits must name splits of the dataset \\['train', 'val'\\], received \\('test',\\)"):
        proposals.dataset_filenames(dataset, ("test",), truth)
    with pytest.raises(ValueError, match="the truth has none of the images of split\\(s\\) \\('val',\\)"):
        proposals.dataset_filenames(dataset, ("val",), {"a.jpg": truth["a.jpg"]})
