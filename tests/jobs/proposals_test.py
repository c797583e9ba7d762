import json
import os

import numpy as np
import pytest

from vsa_tf.config import DataConfig, ImageEncoderConfig, ProposalConfig
from vsa_tf.data.boxes import read_boxes
from vsa_tf.data.synthetic import generate_world
from vsa_tf.evaluation.proposals import evaluate_proposals
from vsa_tf.jobs import proposals
from vsa_tf.jobs.run_folder import Run


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("proposals")
    folder = str(root / "world")
    generate_world(folder, num_images=24, seed=0, min_side=48, max_side=64)
    with open(os.path.join(folder, "truth.json")) as stream:
        truth = json.load(stream)["images"]
    boxes_path = str(root / "object_boxes.json")  # the true object boxes as the training boxes file
    with open(boxes_path, "w") as stream:
        json.dump({name: [obj["box"] for obj in image["objects"]] for name, image in truth.items()}, stream)
    data = DataConfig(dataset=os.path.join(folder, "dataset.json"), images=os.path.join(folder, "images"), boxes=boxes_path,
                      image_size=(32, 32), min_word_count=1, max_boxes=4)
    config = ProposalConfig(image=ImageEncoderConfig(filters=(4, 8, 8), frozen=True), anchor_sizes=(8, 16, 32), filters=8,
                            batch_size=8, epochs=2, samples_per_image=32, max_proposals=5)
    return {"root": root, "world": folder, "data": data, "config": config}


def test_training_writes_a_loadable_run_and_proposals_in_the_boxes_format(world, capsys):
    run_dir = str(world["root"] / "run")
    result = proposals.train_proposals(world["config"], world["data"], run_dir, verbose=0)
    assert len(result.history["loss"]) == 2
    report = result.test
    assert set(report) == {"proposals", "baselines"} and report["proposals"]["num_boxes"] > 0
    with open(os.path.join(run_dir, proposals.TEST_FILE)) as stream:
        assert json.load(stream) == report
    loaded = Run.load(run_dir)
    assert loaded.kind == "proposals" and loaded.config.max_proposals == 5
    images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(loaded.model({"images": images})[0]), np.asarray(result.run.model({"images": images})[0]), rtol=1e-5)

    out = str(world["root"] / "proposed.json")
    proposed = proposals.propose_boxes(run_dir, splits=("test",), out=out)
    parsed = read_boxes(out)  # the public boxes format, best first
    assert set(parsed) == set(proposed) and all(0 < len(boxes) <= 5 for boxes in parsed.values())
    for filename, boxes in parsed.items():
        assert boxes.min() >= 0 and np.all(boxes[:, 2] > boxes[:, 0])
        scores = proposed[filename]["scores"]
        assert scores == sorted(scores, reverse=True)
    scored = evaluate_proposals(out, os.path.join(world["world"], "truth.json"))
    assert scored["proposals"]["num_images"] == len(parsed)
    assert "proposals for" in capsys.readouterr().err

    # More proposals than the run keeps, with its own NMS: the first five are the run's own.
    more = proposals.propose_boxes(run_dir, splits=("test",), max_proposals=12, nms_iou_threshold=0.7)
    assert any(len(more[name]["boxes"]) > 5 for name in more)
    for filename, entry in proposed.items():
        assert more[filename]["boxes"][: len(entry["boxes"])] == entry["boxes"]
    with pytest.raises(ValueError, match="max_proposals must be >= 1, received 0"):
        proposals.propose_boxes(run_dir, splits=("test",), max_proposals=0)


def test_a_run_with_the_second_stage_saves_loads_and_proposes_its_refined_boxes(world, tmp_path):
    from vsa_tf.layers.box_refinement_head import BoxRefinementHead

    run_dir = str(tmp_path / "refined")
    result = proposals.train_proposals(world["config"].replace(refine_boxes=True, epochs=1), world["data"], run_dir, verbose=0)
    loaded = Run.load(run_dir)
    assert loaded.config.refine_boxes and isinstance(loaded.model.refinement, BoxRefinementHead)
    images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    for got, want in zip(loaded.model.propose({"images": images}), result.run.model.propose({"images": images})):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-4)
    proposed = proposals.propose_boxes(run_dir, splits=("test",))
    assert proposed and all(entry["scores"] == sorted(entry["scores"], reverse=True) for entry in proposed.values())


def test_training_refuses_a_missing_boxes_file_boxes_outside_the_train_split_and_an_odd_image_size(world, tmp_path):
    with pytest.raises(ValueError, match="learns from a boxes file: give data.boxes"):
        proposals.train_proposals(world["config"], world["data"].replace(boxes=None), str(tmp_path / "a"), verbose=0)
    with open(os.path.join(world["world"], "dataset.json")) as stream:
        test_images = [image["filename"] for image in json.load(stream)["images"] if image["split"] != "train"]
    only_test = tmp_path / "test_boxes.json"
    only_test.write_text(json.dumps({name: [[1, 1, 20, 20]] for name in test_images}))
    with pytest.raises(ValueError, match="no boxes for any train-split image"):
        proposals.train_proposals(world["config"], world["data"].replace(boxes=str(only_test)), str(tmp_path / "b"), verbose=0)
    with pytest.raises(ValueError, match=r"data.image_size \(30, 32\) must be a multiple of the backbone's stride 4"):
        proposals.train_proposals(world["config"], world["data"].replace(image_size=(30, 32)), str(tmp_path / "c"), verbose=0)
    assert not any((tmp_path / name).exists() for name in ("a", "b", "c"))


def test_config_checks_its_fields():
    with pytest.raises(ValueError, match="ProposalConfig.image.mode must be 'pixels'"):
        ProposalConfig(image=ImageEncoderConfig(mode="cached"))
    with pytest.raises(ValueError, match="anchor_sizes and aspect_ratios must be positive, received \\(\\) and"):
        ProposalConfig(anchor_sizes=())
    with pytest.raises(ValueError, match="ProposalConfig.max_proposals must be >= 1, received 0"):
        ProposalConfig(max_proposals=0)


def test_a_fresh_run_on_an_alignment_runs_cnn_starts_from_that_cnn(world, tmp_path):
    from vsa_tf.config import AlignmentConfig
    from vsa_tf.jobs.alignment import train_alignment

    alignment_config = AlignmentConfig(
        data=world["data"], image=ImageEncoderConfig(filters=(4, 8, 8)), region_dim=8, embedding_dim=4, hidden_dim=6,
        batch_size=8, epochs=1, dropout=0.0, patience=0,
    )
    alignment = train_alignment(alignment_config, run_dir=str(tmp_path / "alignment"), verbose=0)
    run_dir = str(tmp_path / "proposals")  # a fresh folder: the CNN file is written before the feature maps are computed
    result = proposals.train_proposals(world["config"].replace(epochs=1), world["data"], run_dir, verbose=0,
                                       cnn_from_alignment=str(tmp_path / "alignment"))
    assert os.path.exists(os.path.join(run_dir, proposals.ALIGNMENT_CNN_FILE))
    images = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    cnn = alignment.run.model.region_encoder.feature_extractor.backbone_layer
    np.testing.assert_allclose(np.asarray(result.run.model.feature_map(images)), np.asarray(cnn(images)), rtol=1e-4, atol=1e-5)
