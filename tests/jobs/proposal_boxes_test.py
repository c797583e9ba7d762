import json
import os

import pytest

from tests.jobs.proposals_test import world  # noqa: F401 (a fixture)
from vsa_tf.data.boxes import read_boxes
from vsa_tf.jobs import proposal_boxes, proposals
from vsa_tf.jobs.run_folder import Run


@pytest.fixture(scope="module")
def proposals_run(world):
    """A tiny trained proposals run (1 epoch) for the tests of proposals used as boxes."""
    run_dir = str(world["root"] / "fixture_run")
    proposals.train_proposals(world["config"].replace(epochs=1), world["data"], run_dir, verbose=0)
    return run_dir


def _split_records(world, splits):
    from vsa_tf.data.readers import read_dataset

    return [record for record in read_dataset(world["data"].dataset).records if record.split in splits]


def test_boxes_from_proposals_writes_the_proposals_and_reuses_them_until_their_source_changes(world, proposals_run, tmp_path, capsys, monkeypatch):
    data = world["data"].replace(boxes=None)
    out = str(tmp_path / "boxes.json")
    assert proposal_boxes.boxes_from_proposals(proposals_run, data, out, splits=("test",)) == out
    expected = proposal_boxes.propose_records(proposals_run, _split_records(world, ("test",)), data.images)
    with open(out) as stream:
        assert json.load(stream) == expected
    assert set(read_boxes(out)) == set(expected)  # the public boxes format
    source = proposal_boxes.boxes_source(out)
    assert source["proposals_run"] == os.path.abspath(proposals_run) and source["num_images"] == len(expected)
    assert "written to" in capsys.readouterr().err

    def no_proposing(*args, **kwargs):
        raise AssertionError("the boxes file should have been reused")

    with monkeypatch.context() as patch:
        patch.setattr(proposal_boxes, "propose_records", no_proposing)
        proposal_boxes.boxes_from_proposals(proposals_run, data, out, splits=("test",))
    assert "reusing the proposals" in capsys.readouterr().err

    proposal_boxes.boxes_from_proposals(proposals_run, data, out, splits=("val", "test"))  # other images: made again
    assert proposal_boxes.boxes_source(out)["num_images"] == len(_split_records(world, ("val", "test"))) > len(expected)
    with open(proposal_boxes.source_path(out)) as stream:
        stale = json.load(stream)
    stale["proposals_weights_sha256"] = "retrained"
    with open(proposal_boxes.source_path(out), "w") as stream:
        json.dump(stale, stream)
    proposal_boxes.boxes_from_proposals(proposals_run, data, out, splits=("val", "test"))  # other weights: made again
    assert proposal_boxes.boxes_source(out)["proposals_weights_sha256"] != "retrained"
    assert "written to" in capsys.readouterr().err

    copy = str(tmp_path / "other_run" / "proposal_boxes.json")  # a file of the same source as data.boxes: copied
    with monkeypatch.context() as patch:
        patch.setattr(proposal_boxes, "propose_records", no_proposing)
        proposal_boxes.boxes_from_proposals(proposals_run, data.replace(boxes=out), copy, splits=("val", "test"))
    assert f"copied from {out}" in capsys.readouterr().err
    assert read_boxes(copy).keys() == read_boxes(out).keys() and proposal_boxes.boxes_source(copy) == proposal_boxes.boxes_source(out)


def test_with_proposal_boxes_refuses_other_boxes_cached_features_and_runs_of_another_kind(world, proposals_run, tmp_path):
    data = world["data"].replace(boxes=None, proposals=proposals_run)
    assert proposal_boxes.with_proposal_boxes(data.replace(proposals=None)) == data.replace(proposals=None)
    with pytest.raises(ValueError, match=r"data.boxes \(.*object_boxes.json\) and data.proposals \(.*fixture_run\) both give"):
        proposal_boxes.with_proposal_boxes(data.replace(boxes=world["data"].boxes))
    with pytest.raises(ValueError, match=r"regions come from cached features \(features\).*not cached from these proposals"):
        proposal_boxes.with_proposal_boxes(data.replace(features="features"))
    # Features cached from these proposals (`cache-features --proposals`): their boxes file beside them is used.
    features = tmp_path / "features"
    proposal_boxes.boxes_from_proposals(proposals_run, data.replace(proposals=None), str(features / "proposal_boxes.json"))
    cached = proposal_boxes.with_proposal_boxes(data.replace(features=str(features)))
    assert cached.boxes == str(features / "proposal_boxes.json") and cached.proposals == os.path.abspath(proposals_run)
    other = tmp_path / "caption_run"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"kind": "caption"}))
    with pytest.raises(ValueError, match=f"{other} is a 'caption' run, not a 'proposals' run"):
        proposal_boxes.with_proposal_boxes(data.replace(proposals=str(other)), out=str(tmp_path / "boxes.json"))
    with pytest.raises(ValueError, match="Run folder not found"):
        proposal_boxes.with_proposal_boxes(data.replace(proposals=str(tmp_path / "nothing")), out=str(tmp_path / "boxes.json"))
    assert not (tmp_path / "boxes.json").exists()


def test_a_training_run_with_proposals_keeps_their_boxes_in_its_folder(world, proposals_run, tmp_path):
    from vsa_tf.config import AlignmentConfig
    from vsa_tf.jobs.alignment import train_alignment

    config = AlignmentConfig(
        data=world["data"].replace(boxes=None, proposals=proposals_run), region_dim=8, embedding_dim=4, hidden_dim=6,
        batch_size=8, epochs=1, dropout=0.0,
    )
    run_dir = str(tmp_path / "alignment")
    result = train_alignment(config, run_dir=run_dir, verbose=0)
    boxes_path = os.path.join(run_dir, proposal_boxes.PROPOSAL_BOXES_FILE)
    saved = Run.open(run_dir).config.data
    assert saved.boxes == boxes_path and saved.proposals == os.path.abspath(proposals_run)
    with open(boxes_path) as stream:
        expected = proposal_boxes.propose_records(proposals_run, _split_records(world, ("train", "val", "test")), world["data"].images)
        assert json.load(stream) == expected
    assert result.test is not None
    # A re-run resumes with the same boxes; a folder trained from other proposals is refused before anything is written.
    train_alignment(config, run_dir=run_dir, verbose=0)
    with pytest.raises(ValueError, match="already holds a 'alignment' run with proposals"):
        train_alignment(config.replace(data=config.data.replace(proposals=str(world["root"] / "run"))), run_dir=run_dir, verbose=0)
