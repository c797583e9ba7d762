import json
import os

import numpy as np
import pytest

from vsa_tf import cli
from vsa_tf.data.synthetic import generate_world


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("caption_cli")
    generate_world(str(root / "world"), num_images=16, seed=1, min_side=48, max_side=64)
    return root


def test_train_caption_caption_and_evaluate(world, capsys, monkeypatch):
    dataset, images, run = str(world / "world" / "dataset.json"), str(world / "world" / "images"), str(world / "run")
    code = cli.main(
        ["train-caption", "--dataset", dataset, "--images", images, "--out", run, "--image-size", "32", "32",
         "--min-word-count", "1", "--epochs", "1", "--batch-size", "32", "--hidden-dim", "8", "--backbone", "simple",
         "--image-normalization", "layer", "--dropout", "0.1"]
    )
    assert code == 0
    with open(os.path.join(run, "config.json")) as stream:
        config = json.load(stream)
    assert config["kind"] == "caption" and config["hidden_dim"] == 8 and config["data"]["image_size"] == [32, 32]
    assert config["image"]["normalization"] == "layer" and config["dropout"] == 0.1
    capsys.readouterr()

    image = os.path.join(images, sorted(os.listdir(images))[0])
    out = str(world / "captions.json")
    assert cli.main(["caption", "--run", run, image, "--beam", "2", "--json", out]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(image + ":")
    with open(out) as stream:
        assert json.load(stream)[0]["image"] == image

    from vsa_tf.evaluation import captions as caption_metrics

    monkeypatch.setattr(caption_metrics, "caption_scores", lambda references, candidates: {"Bleu_1": float(len(candidates))})
    report = str(world / "report.json")
    assert cli.main(["evaluate-captions", "--run", run, "--dataset", dataset, "--images", images, "--split", "test", "--beam", "1", "--json", report]) == 0
    with open(report) as stream:
        values = json.load(stream)
    assert values["beam"] == 1 and values["model"]["Bleu_1"] == values["num_images"]
    assert np.isfinite(values["verbatim_fraction"])


def test_errors_are_one_line_with_exit_code_2(tmp_path, capsys):
    assert cli.main(["caption", "--run", str(tmp_path / "nothing"), "image.jpg"]) == 2
    assert "Run folder not found" in capsys.readouterr().err
    assert cli.main(["train-caption", "--dataset", "d.json", "--images", "images", "--features", "features", "--out",
                     str(tmp_path / "run"), "--cnn-from-alignment", str(tmp_path / "alignment_run")]) == 2
    assert "cnn_from_alignment gives the captioner a CNN on pixels" in capsys.readouterr().err
    assert cli.main(["train-caption", "--dataset", "d.json", "--images", "images", "--out", str(tmp_path / "run"), "--fine-tune-cnn"]) == 2
    assert "fine_tune_cnn trains the CNN taken from an alignment run; give cnn_from_alignment too" in capsys.readouterr().err
    assert cli.main(["evaluate-captions", "--run", str(tmp_path), "--dataset", "d.json"]) == 2
    assert "give both --dataset and --images" in capsys.readouterr().err
