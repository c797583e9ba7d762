import dataclasses
import json
import os

import numpy as np
import pytest
from PIL import Image

from vsa_tf.data import readers
from vsa_tf.data import validate

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures")


def make_images(root, filenames, size=(40, 30)):
    for filename in filenames:
        path = os.path.join(root, filename)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        Image.fromarray(np.full((size[1], size[0], 3), 128, np.uint8)).save(path)


@pytest.fixture
def world(tmp_path):
    dataset = readers.read_karpathy_json(os.path.join(FIXTURES, "karpathy_small.json"))
    make_images(str(tmp_path), [record.filename for record in dataset.records])
    return dataset, str(tmp_path)


def test_summary(world):
    dataset, root = world
    summary = validate.validate_dataset(dataset, root, boxes=os.path.join(FIXTURES, "boxes_plain.json"), min_word_count=2)
    assert summary["images"] == 4
    assert summary["splits"] == {
        "train": {"images": 2, "sentences": 4},
        "val": {"images": 1, "sentences": 1},
        "test": {"images": 1, "sentences": 1},
    }
    # Train words with count >= 2: a (4), red (2), circle (2), square (2).
    assert summary["vocabulary_size"] == 4
    assert summary["boxes"] == {"images_with_boxes": 2, "min": 0, "mean": 0.5, "max": 2, "keys_not_in_dataset": 0}


def test_dataset_path_accepted(world):
    _, root = world
    summary = validate.validate_dataset(os.path.join(FIXTURES, "karpathy_small.json"), root)
    assert summary["boxes"] is None and summary["dataset"] == "tiny"


def test_every_problem_listed(world, tmp_path):
    dataset, root = world
    os.remove(os.path.join(root, "d.jpg"))
    with open(os.path.join(root, "b.png"), "wb") as stream:
        stream.write(b"not an image at all")
    first, second = dataset.records[0].sentences  # a read dataset's captions change by assigning a new list
    dataset.records[0].sentences = [first, dataclasses.replace(second, tokens=[])]
    dataset.records[2].filename = "../escape.jpg"
    boxes_path = tmp_path / "boxes.json"
    boxes_path.write_text(
        json.dumps({"a.jpg": [[0, 0, 10, 10], [5, 5, 45, 20], [3, 3, 3, 9]], "ghost.jpg": [[0, 0, 1, 1]]})
    )
    with pytest.raises(validate.DatasetError) as caught:
        validate.validate_dataset(dataset, root, boxes=str(boxes_path))
    problems = caught.value.problems
    expected = [
        "a.jpg: caption 1 is empty",
        "b.png: image cannot be decoded",
        "../escape.jpg: filename escapes the image root",
        "d.jpg: image file not found",
        "boxes.json: a.jpg: box 2 is degenerate",
        "boxes.json: a.jpg: box 1 [5.0, 5.0, 45.0, 20.0] lies outside the 40x30 image",
    ]
    for message in expected:
        assert sum(message in problem for problem in problems) == 1, (message, problems)
    assert len(problems) == len(expected)
    assert isinstance(caught.value, ValueError)
    assert "6 problem(s)" in str(caught.value)


def test_malformed_dataset_and_boxes_json(world, tmp_path):
    dataset, root = world
    with pytest.raises(validate.DatasetError, match=r"malformed\.json: malformed JSON"):
        validate.validate_dataset(os.path.join(FIXTURES, "malformed.json"), root)
    with pytest.raises(validate.DatasetError, match=r"malformed\.json: malformed JSON"):
        validate.validate_dataset(dataset, root, boxes=os.path.join(FIXTURES, "malformed.json"))


def test_resolve_image_path(tmp_path):
    root = str(tmp_path)
    assert validate.resolve_image_path(root, "val2014/x.jpg") == os.path.join(root, "val2014/x.jpg")
    with pytest.raises(ValueError, match="/etc/passwd: absolute image paths are not allowed"):
        validate.resolve_image_path(root, "/etc/passwd")
    with pytest.raises(ValueError, match=r"a/\.\./\.\./x\.jpg: filename escapes the image root"):
        validate.resolve_image_path(root, "a/../../x.jpg")
    os.symlink("/tmp", os.path.join(root, "link"))
    with pytest.raises(ValueError, match=r"link/x\.jpg: filename escapes the image root .* \(resolves to"):
        validate.resolve_image_path(root, "link/x.jpg")


def test_load_checked(world):
    from vsa_tf.config import DataConfig

    _, root = world
    config = DataConfig(
        dataset=os.path.join(FIXTURES, "karpathy_small.json"), images=root,
        boxes=os.path.join(FIXTURES, "boxes_plain.json"), min_word_count=1,
    )
    dataset, boxes, summary = validate.load_checked(config)
    assert len(dataset.records) == 4 and set(boxes) == {"a.jpg", "b.png"}
    assert summary["splits"]["train"]["images"] == 2
    _, boxes, summary = validate.load_checked(config.replace(boxes=None, restval_to_train=False))
    assert boxes is None and summary["splits"]["restval"] == {"images": 1, "sentences": 2}
    with pytest.raises(validate.DatasetError, match="nowhere.json: dataset file not found"):
        validate.load_checked(config.replace(dataset="nowhere.json"))
    os.remove(os.path.join(root, "a.jpg"))
    with pytest.raises(validate.DatasetError, match="a.jpg: image file not found"):
        validate.load_checked(config)


def test_boxes_of_images_outside_the_dataset_are_ignored_but_checked(world, tmp_path):
    dataset, root = world
    boxes_path = tmp_path / "boxes.json"  # one file for train+val+more, as COCO's or Flickr8k's full boxes.json
    boxes_path.write_text(json.dumps({"a.jpg": [[0, 0, 10, 10]], "val2014/other.jpg": [[0, 0, 5, 5]], "x.jpg": []}))
    summary = validate.validate_dataset(dataset, root, boxes=str(boxes_path))
    assert summary["boxes"]["images_with_boxes"] == 1 and summary["boxes"]["keys_not_in_dataset"] == 2
    boxes_path.write_text(json.dumps({"a.jpg": [[0, 0, 10, 10]], "other.jpg": [[5, 5, 1, 9]], "": []}))
    with pytest.raises(validate.DatasetError) as caught:
        validate.validate_dataset(dataset, root, boxes=str(boxes_path))
    assert len(caught.value.problems) == 2
    assert "boxes.json: other.jpg: box 0 is degenerate" in caught.value.problems[0]
    assert "a key is the empty string" in caught.value.problems[1]
    # "" (`--boxes none`) means whole images only, not a file name.
    assert validate.validate_dataset(dataset, root, boxes="")["boxes"] is None


def test_a_truncated_jpeg_is_a_problem_naming_the_file(world):
    dataset, root = world
    path = os.path.join(root, "a.jpg")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (120, 160, 3), np.uint8)).save(path, quality=90)
    with open(path, "rb") as stream:
        data = stream.read()
    assert validate.validate_dataset(dataset, root)["images"] == 4
    for cut in (len(data) // 2, len(data) - 2):  # mid-scan, and only the end-of-image marker missing
        with open(path, "wb") as stream:
            stream.write(data[:cut])
        with Image.open(path) as image:
            image.verify()  # what the check used to be: it does not notice
        with pytest.raises(validate.DatasetError) as caught:
            validate.validate_dataset(dataset, root)
        [problem] = caught.value.problems
        assert problem.startswith(f"{path}: image cannot be decoded (OSError: image file is truncated")


def test_load_checked_reads_the_optional_split_fields(tmp_path):
    from vsa_tf.config import DataConfig

    coco = tmp_path / "captions.json"  # no split in the name
    coco.write_text(json.dumps({"images": [{"id": 7, "file_name": "a.jpg"}], "annotations": [{"image_id": 7, "caption": "A dog."}]}))
    make_images(str(tmp_path), ["a.jpg"])
    config = DataConfig(dataset=str(coco), images=str(tmp_path), min_word_count=1)
    with pytest.raises(validate.DatasetError, match="give it with --split-of-file"):
        validate.load_checked(config)

    dataset, _, summary = validate.load_checked(config.replace(split_of_file="val"))
    assert summary["splits"]["val"] == {"images": 1, "sentences": 1}


def test_load_checked_data_needs_cached_features_only_for_the_splits_it_reads(world, tmp_path):
    from vsa_tf.config import DataConfig
    from vsa_tf.data import features

    _, root = world
    store = tmp_path / "features"
    features.write_store(str(store), [("d.jpg", np.ones((2, 3), np.float32), np.array([True, False]))], 1, 2, 3)
    config = DataConfig(dataset=os.path.join(FIXTURES, "karpathy_small.json"), images=root, features=str(store), min_word_count=1)
    with pytest.raises(ValueError, match=r"no cached features for 3 image\(s\)"):
        validate.load_checked_data(config, "cached")
    dataset, _, loaded = validate.load_checked_data(config, "cached", splits=("test",))  # an evaluation of the test split
    assert [record.filename for record in dataset.split("test")] == ["d.jpg"] and "d.jpg" in loaded
    with pytest.raises(ValueError, match=r"no cached features for 1 image\(s\), e\.g\. \['val2014/COCO_val2014_000000000042\.jpg'\]"):
        validate.load_checked_data(config, "cached", splits=("val",))
