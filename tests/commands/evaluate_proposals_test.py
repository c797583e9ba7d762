import json
import sys

import numpy as np
import pytest
from PIL import Image

from vsa_tf import cli

RECTANGLES = [(8, 10, 40, 30), (50, 6, 90, 56)]


def _world(tmp_path):
    """Three 100 x 100 images with two flat rectangles each; a.png is train, b.png and c.png are val."""
    images = tmp_path / "images"
    images.mkdir()
    pixels = np.full((100, 100, 3), 128, dtype=np.uint8)
    for (x0, y0, x1, y1), color in zip(RECTANGLES, [(230, 20, 20), (20, 200, 30)]):
        pixels[y0:y1, x0:x1] = color
    names = ("a.png", "b.png", "c.png")
    for name in names:
        Image.fromarray(pixels).save(images / name)
    truth = {name: {"width": 100, "height": 100, "objects": [{"box": list(box)} for box in RECTANGLES], "sentences": []} for name in names}
    dataset = {"images": [{"filename": name, "split": split, "sentences": [{"tokens": ["a", "box"]}]}
                          for name, split in zip(names, ("train", "val", "val"))]}
    paths = {"truth": tmp_path / "truth.json", "boxes": tmp_path / "boxes.json", "dataset": tmp_path / "dataset.json"}
    paths["truth"].write_text(json.dumps({"images": truth}))
    paths["dataset"].write_text(json.dumps(dataset))
    # Only a.png and b.png have proposals; b.png's first box is its first rectangle.
    paths["boxes"].write_text(json.dumps({"a.png": [list(RECTANGLES[1])], "b.png": [list(RECTANGLES[0])]}))
    return {key: str(path) for key, path in paths.items()} | {"images": str(images)}


def test_dataset_split_and_limit_choose_the_images(tmp_path, capsys):
    world = _world(tmp_path)
    base = ["evaluate-proposals", "--boxes", world["boxes"], "--truth", world["truth"], "--recall-at", "1", "5"]
    assert cli.main(base + ["--dataset", world["dataset"], "--split", "val"]) == 0
    captured = capsys.readouterr()
    printed = json.loads(captured.out)
    # val = b.png (one rectangle of two found) and c.png (not in the boxes file: no proposals).
    assert printed["proposals"]["num_images"] == 2 and printed["proposals"]["recall_at"]["1"] == 25.0
    assert printed["notes"] == ["selective-search baseline skipped: no --images folder given"]
    assert "note: selective-search baseline skipped: no --images folder given" in captured.err
    assert "selective_search_fast" not in printed["baselines"]
    assert cli.main(base + ["--dataset", world["dataset"], "--split", "val", "--limit", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["proposals"]["recall_at"] == {"1": 50.0, "5": 50.0}
    assert cli.main(base + ["--limit", "1"]) == 0  # without --dataset: the first of the sorted filenames, a.png
    printed = json.loads(capsys.readouterr().out)
    assert printed["proposals"]["num_images"] == 1 and printed["proposals"]["recall_at"]["1"] == 50.0
    assert cli.main(base + ["--limit", "0"]) == 2
    assert "limit must be >= 1 or None, received 0" in capsys.readouterr().err
    assert cli.main(base + ["--dataset", world["dataset"], "--split", "test"]) == 2
    assert "splits must name splits of the dataset ['train', 'val'], received ('test',)" in capsys.readouterr().err


def test_images_add_the_selective_search_baseline(tmp_path, capsys):
    pytest.importorskip("cv2.ximgproc")
    world = _world(tmp_path)
    assert cli.main(["evaluate-proposals", "--boxes", world["boxes"], "--truth", world["truth"], "--images", world["images"],
                     "--recall-at", "1", "100"]) == 0
    printed = json.loads(capsys.readouterr().out)
    baseline = printed["baselines"]["selective_search_fast"]
    assert baseline["num_images"] == printed["proposals"]["num_images"] == 2
    assert baseline["recall_at"]["100"] == 100.0 and "notes" not in printed


def test_images_without_opencv_is_a_note_not_an_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)
    world = _world(tmp_path)
    assert cli.main(["evaluate-proposals", "--boxes", world["boxes"], "--truth", world["truth"], "--images", world["images"]]) == 0
    captured = capsys.readouterr()
    printed = json.loads(captured.out)
    assert sorted(printed["baselines"]) == ["grid_19", "whole_image"]
    assert len(printed["notes"]) == 1 and 'pip install "vsa_tf[bench]"' in printed["notes"][0]
    assert captured.err.count("note: selective-search baseline skipped") == 1
