"""`--proposals RUN` wherever `--boxes` is: training, commands on a run, `caption` on photos, `cache-features`."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from tests.commands.pretrained_test import tiny_lite0  # noqa: F401 (a fixture)
from vsa_tf import cli
from vsa_tf.config import DataConfig, ImageEncoderConfig, ProposalConfig
from vsa_tf.data.features import FeatureStore
from vsa_tf.data.synthetic import generate_world
from vsa_tf.jobs import proposal_boxes, proposals

TINY_ALIGN = ["--image-size", "32", "32", "--max-boxes", "3", "--min-word-count", "1", "--region-dim", "8", "--embedding-dim", "4",
              "--hidden-dim", "6", "--batch-size", "8", "--epochs", "1", "--dropout", "0"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny synthetic world and a proposals run trained on it for one epoch."""
    root = tmp_path_factory.mktemp("proposal_options")
    folder = str(root / "world")
    generate_world(folder, num_images=16, seed=1, min_side=48, max_side=64)
    data = DataConfig(dataset=f"{folder}/dataset.json", images=f"{folder}/images", boxes=f"{folder}/boxes.json",
                      image_size=(32, 32), min_word_count=1)
    config = ProposalConfig(image=ImageEncoderConfig(filters=(4, 8), frozen=True), anchor_sizes=(8, 16), filters=4,
                            batch_size=8, epochs=1, max_proposals=4)
    proposals.train_proposals(config, data, str(root / "proposals"), verbose=0)
    photo = str(root / "photo.jpg")  # an image of no dataset, with no boxes file
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8)).save(photo)
    return {"root": root, "proposals": str(root / "proposals"), "photo": photo,
            "data": ["--dataset", data.dataset, "--images", data.images]}


def test_train_align_and_align_take_proposals(world, tmp_path, capsys):
    run = str(tmp_path / "alignment")
    assert cli.main(["train-align", *world["data"], "--proposals", world["proposals"], "--out", run, *TINY_ALIGN]) == 0
    with open(os.path.join(run, "config.json")) as stream:
        data = json.load(stream)["data"]
    assert data["boxes"] == os.path.join(run, "proposal_boxes.json") and data["proposals"] == world["proposals"]
    assert os.path.exists(os.path.join(run, "proposal_boxes.source.json"))
    capsys.readouterr()

    snippets = str(tmp_path / "snippets.json")
    assert cli.main(["align", "--run", run, "--proposals", world["proposals"], "--split", "val", "--out", snippets]) == 0
    assert "proposals of" in capsys.readouterr().err  # made in the temp folder for the val split
    with open(snippets) as stream:
        assert json.load(stream)
    assert cli.main(["align", "--run", run, "--proposals", world["proposals"], "--split", "val", "--out", snippets]) == 0
    assert "reusing the proposals" in capsys.readouterr().err

    # Another kind of run as --proposals: one line naming the folder and the kind found.
    assert cli.main(["evaluate-retrieval", "--run", run, "--proposals", run]) == 2
    assert f"{run} is a 'alignment' run, not a 'proposals' run" in capsys.readouterr().err


def test_caption_prints_region_captions_of_the_proposals_of_a_photo(world, tmp_path, capsys):
    run = str(tmp_path / "caption")
    assert cli.main(["train-caption", *world["data"], "--out", run, "--image-size", "32", "32", "--min-word-count", "1",
                     "--epochs", "1", "--batch-size", "32", "--hidden-dim", "8", "--backbone", "simple"]) == 0
    capsys.readouterr()
    out = str(tmp_path / "captions.json")
    assert cli.main(["caption", "--run", run, "--proposals", world["proposals"], world["photo"], "--beam", "1", "--json", out]) == 0
    lines = capsys.readouterr().out.splitlines()
    with open(out) as stream:
        results = json.load(stream)
    expected = proposal_boxes.propose_image_files(world["proposals"], [world["photo"]])[world["photo"]]
    assert 0 < len(results) == len(lines) == len(expected["boxes"]) <= 4
    assert [result["box"] for result in results] == expected["boxes"]
    assert [result["proposal_score"] for result in results] == expected["scores"]
    for line, result in zip(lines, results):
        assert line.startswith(world["photo"] + " [") and f"(proposal {result['proposal_score']:.3f}): {result['caption']}" in line

    assert cli.main(["caption", "--run", run, "--proposals", world["proposals"], "--max-boxes", "1", world["photo"]]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1
    assert cli.main(["caption", "--run", run, "--proposals", run, world["photo"]]) == 2
    assert f"{run} is a 'caption' run, not a 'proposals' run" in capsys.readouterr().err


@pytest.mark.parametrize("command", [
    ["train-align", "--dataset", "d.json", "--images", "i", "--out", "r"],
    ["align", "--run", "r", "--out", "s.json"],
    ["caption", "--run", "r", "photo.jpg"],
    ["cache-features", "--dataset", "d.json", "--images", "i", "--weights", "w.h5", "--out", "f"],
])
def test_boxes_and_proposals_exclude_each_other(command, capsys):
    with pytest.raises(SystemExit) as raised:
        cli.main([*command, "--boxes", "b.json", "--proposals", "p"])
    assert raised.value.code == 2
    assert "argument --proposals: not allowed with argument --boxes" in capsys.readouterr().err


def test_cache_features_pools_the_proposals(world, tmp_path, capsys, tiny_lite0):  # noqa: F811
    out = tmp_path / "features"
    assert cli.main(["cache-features", *world["data"], "--proposals", world["proposals"], "--weights", tiny_lite0, "--out", str(out),
                     "--image-size", "64", "64", "--max-boxes", "2", "--splits", "test", "--batch-size", "4"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["boxes"] == str(out / "proposal_boxes.json") and summary["regions"] == 3
    with open(out / "proposal_boxes.json") as stream:
        boxes = json.load(stream)
    store = FeatureStore(str(out))
    assert sorted(store.filenames) == sorted(boxes)
    _, mask = store.load(sorted(boxes))
    np.testing.assert_array_equal(mask.sum(axis=1), [1 + min(2, len(boxes[name]["boxes"])) for name in sorted(boxes)])
