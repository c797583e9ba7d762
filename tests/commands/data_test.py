import json
import os

import numpy as np
from PIL import Image

from vsa_tf import cli

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures")


def test_synth_then_validate(tmp_path, capsys):
    out = str(tmp_path / "world")
    assert cli.main(["synth", "--out", out, "--images", "10", "--seed", "3"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["images"] == 10
    argv = ["validate", "--dataset", f"{out}/dataset.json", "--images", f"{out}/images", "--boxes", f"{out}/boxes.json"]
    assert cli.main(argv + ["--json", "--min-word-count", "1"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["images"] == 10
    assert sum(split["sentences"] for split in result["splits"].values()) == summary["sentences"]
    assert result["boxes"]["images_with_boxes"] == 10
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "dataset synthetic: 10 images" in printed and "boxes: 10 images with boxes" in printed
    # A second synth into the same folder needs --overwrite.
    assert cli.main(["synth", "--out", out, "--images", "10", "--seed", "3"]) == 2
    assert cli.main(["synth", "--out", out, "--images", "10", "--seed", "3", "--overwrite"]) == 0


def test_validate_reports_every_problem_and_exits_non_zero(tmp_path, capsys):
    for name in ("a.jpg", "b.png"):
        Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(tmp_path / name)
    (tmp_path / "d.jpg").write_bytes(b"\xff\xd8 broken")
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({"a.jpg": [[0, 0, 50, 10]], "zz.jpg": [[0, 0, 1, 1]]}))
    argv = ["validate", "--dataset", os.path.join(FIXTURES, "karpathy_small.json"), "--images", str(tmp_path)]
    assert cli.main(argv + ["--boxes", str(boxes)]) == 1
    errors = capsys.readouterr().err
    assert "val2014/COCO_val2014_000000000042.jpg: image file not found" in errors
    assert "d.jpg: image cannot be decoded" in errors
    assert "a.jpg: box 0 [0.0, 0.0, 50.0, 10.0] lies outside the 40x30 image" in errors
    assert "zz.jpg" not in errors  # a key of an image outside the dataset is no problem
    assert "3 problem(s) found" in errors


def test_validate_malformed_json(tmp_path, capsys):
    argv = ["validate", "--dataset", os.path.join(FIXTURES, "malformed.json"), "--images", str(tmp_path)]
    assert cli.main(argv) == 1
    assert "malformed.json: malformed JSON" in capsys.readouterr().err


def test_validate_notes_boxes_of_other_images_and_takes_boxes_none(tmp_path, capsys):
    out = str(tmp_path / "world")
    assert cli.main(["synth", "--out", out, "--images", "10", "--seed", "3"]) == 0
    capsys.readouterr()
    with open(f"{out}/boxes.json") as stream:
        boxes = json.load(stream)
    boxes["train2014/elsewhere.jpg"] = [[0, 0, 4, 4]]
    (tmp_path / "more_boxes.json").write_text(json.dumps(boxes))
    argv = ["validate", "--dataset", f"{out}/dataset.json", "--images", f"{out}/images", "--min-word-count", "1"]
    assert cli.main(argv + ["--boxes", str(tmp_path / "more_boxes.json")]) == 0
    assert "boxes: note: 1 keys name images not in this dataset (ignored)" in capsys.readouterr().out
    assert cli.main(argv + ["--boxes", "none"]) == 0
    assert "boxes: none given (whole image only)" in capsys.readouterr().out


def test_convert_dataset_gives_a_coco_file_its_split(tmp_path, capsys):
    coco = {"images": [{"id": 7, "file_name": "a.jpg"}], "annotations": [{"image_id": 7, "caption": "A tri-colored dog's toy."}]}
    (tmp_path / "captions.json").write_text(json.dumps(coco))
    out = str(tmp_path / "dataset.json")
    argv = ["convert-dataset", "--dataset", str(tmp_path / "captions.json"), "--out", out]
    assert cli.main(argv) == 2
    assert "give it with --split-of-file" in capsys.readouterr().err
    assert cli.main(argv + ["--split-of-file", "val"]) == 0
    with open(out) as stream:
        [image] = json.load(stream)["images"]
    assert image["split"] == "val"
    assert image["sentences"] == [{"raw": "A tri-colored dog's toy.", "tokens": ["a", "tri", "colored", "dog", "s", "toy"]}]


def test_data_options_of_the_training_commands():
    parser = cli.build_parser()
    base = ["train-align", "--dataset", "d", "--images", "i", "--out", "o"]
    args = parser.parse_args(base + ["--feature-normalization", "l2", "--no-restval-to-train", "--boxes", "none"])
    assert args.feature_normalization == "l2"
    from vsa_tf.commands import align

    config = align._data_config(args)
    assert config.restval_to_train is False and config.boxes is None
    args = parser.parse_args(["evaluate-retrieval", "--run", "r", "--boxes", "None"])
    assert align._data_config(args, for_training=False).boxes == ""  # clears the run's boxes
    for command in (["train-caption", "--dataset", "d", "--images", "i", "--out", "o"], ["train-embedding", "--dataset", "d", "--images", "i", "--run", "r"]):
        assert parser.parse_args(command + ["--no-restval-to-train"]).restval_to_train is False
