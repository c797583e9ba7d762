import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tests.export.conftest import IMAGE_SIZE, MAX_BOXES, MAX_PROPOSALS, make_run_folders, proposal_run_folder
from vsa_tf.export import layout
from vsa_tf.jobs import export
from vsa_tf.jobs.run_folder import Run


@pytest.fixture(scope="module")
def run_folders(tmp_path_factory):
    from vsa_tf.data.text import Vocabulary

    return make_run_folders(str(tmp_path_factory.mktemp("runs")), Vocabulary(["a", "red", "blue", "circle", "square"]))


def test_export_models_writes_both_versions_with_assets_and_configs(run_folders, tmp_path):
    alignment_dir, caption_dir = run_folders
    out = str(tmp_path / "saved_models")
    result = export.export_models(alignment_dir, caption_dir, out_dir=out, beam=2)
    assert result["aligner"]["version"] == result["captioner"]["version"] == 1
    assert sorted(os.listdir(out)) == ["aligner", "batching.config", "captioner", "models.config"]
    assert sorted(result["captioner"]["signatures"]) == ["caption_regions", "serving_default"]
    assert result["captioner"]["signatures"]["serving_default"]["outputs"]["captions"] == "string [?, 2]"
    assert "align" in result["aligner"]["signatures"]

    assets = os.path.join(out, "captioner", "1", "assets.extra")
    assert sorted(os.listdir(assets)) == ["config.json", "export.json", "vocabulary.txt"]
    with open(os.path.join(assets, "config.json")) as stream:
        assert json.load(stream) == json.load(open(os.path.join(caption_dir, "config.json")))
    with open(os.path.join(assets, "vocabulary.txt")) as stream:
        assert stream.read() == open(os.path.join(caption_dir, "vocabulary.txt")).read()
    with open(os.path.join(assets, "export.json")) as stream:
        info = json.load(stream)
    assert info["beam"] == 2 and info["model"] == "captioner" and info["source_run"] == os.path.abspath(caption_dir)
    with open(os.path.join(out, "aligner", "1", "assets.extra", "export.json")) as stream:
        assert json.load(stream)["max_boxes"] == MAX_BOXES

    # The exported captioner carries the run's trained weights (loaded the way every job loads runs).
    loaded = tf.saved_model.load(result["captioner"]["path"])
    exported = sorted(float(np.sum(variable.numpy())) for variable in loaded.trainable_variables)
    trained = sorted(float(np.sum(np.asarray(weight))) for weight in Run.load(caption_dir).model.trainable_weights)
    np.testing.assert_allclose(exported, trained, rtol=1e-6)


def write_small_saved_model(signatures, path):
    """A stand-in for the real (slow) tracing: a small SavedModel, enough for the version logic."""
    module = tf.Module()
    module.run = tf.function(lambda values: {"doubled": values * 2.0}, input_signature=[tf.TensorSpec([None], tf.float32)], autograph=False)
    tf.saved_model.save(module, path, signatures={"serving_default": module.run})


def test_versions_are_never_overwritten_silently(run_folders, tmp_path, monkeypatch):
    monkeypatch.setattr(export, "export_captioner", write_small_saved_model)
    monkeypatch.setattr(export, "export_aligner", write_small_saved_model)
    alignment_dir, caption_dir = run_folders
    out = str(tmp_path / "saved_models")
    export.export_models(caption_run=caption_dir, out_dir=out, version=3)
    before = os.path.getmtime(os.path.join(out, "captioner", "3", "saved_model.pb"))
    with pytest.raises(ValueError, match=r"captioner/3 already exists; pass overwrite=True"):
        export.export_models(alignment_dir, caption_dir, out_dir=out, version=3)
    assert not os.path.exists(os.path.join(out, "aligner"))  # refused before exporting anything
    assert os.path.getmtime(os.path.join(out, "captioner", "3", "saved_model.pb")) == before
    result = export.export_models(alignment_dir, caption_dir, out_dir=out)  # next free version
    assert result["captioner"]["version"] == 4 and layout.existing_versions(out, "aligner") == [4]
    result = export.export_models(caption_run=caption_dir, out_dir=out, version=3, overwrite=True)
    assert result["captioner"]["path"] == os.path.join(out, "captioner", "3")


def test_wrong_run_kinds_are_rejected(run_folders, tmp_path):
    alignment_dir, caption_dir = run_folders
    with pytest.raises(ValueError, match="is a 'caption' run; expected a 'alignment' run"):
        export.export_models(alignment_run=caption_dir, out_dir=str(tmp_path))
    with pytest.raises(ValueError, match="needs an alignment run, a caption run, or both"):
        export.export_models(out_dir=str(tmp_path))


def folder_listing(root):
    return sorted(os.path.relpath(os.path.join(folder, name), root) for folder, folders, files in os.walk(root) for name in folders + files)


def test_a_missing_caption_run_writes_nothing(run_folders, tmp_path, monkeypatch):
    monkeypatch.setattr(export, "export_aligner", write_small_saved_model)
    alignment_dir, _ = run_folders
    out = str(tmp_path / "saved_models")
    with pytest.raises(ValueError, match="nope"):
        export.export_models(alignment_dir, str(tmp_path / "nope"), out_dir=out)
    assert not os.path.exists(out)


def test_a_failure_while_writing_the_second_model_leaves_the_folder_as_it_was(run_folders, tmp_path, monkeypatch):
    monkeypatch.setattr(export, "export_captioner", write_small_saved_model)
    monkeypatch.setattr(export, "export_aligner", write_small_saved_model)
    alignment_dir, caption_dir = run_folders
    out = str(tmp_path / "saved_models")
    export.export_models(alignment_dir, caption_dir, out_dir=out, version=1)
    before = folder_listing(out)

    def fail(signatures, path):
        os.makedirs(path)
        raise OSError("disk full")

    monkeypatch.setattr(export, "export_captioner", fail)
    for overwrite, version in ((False, None), (True, 1)):
        with pytest.raises(OSError, match="disk full"):
            export.export_models(alignment_dir, caption_dir, out_dir=out, version=version, overwrite=overwrite)
        assert folder_listing(out) == before  # no aligner/2, aligner/1 not replaced, no staging left
    monkeypatch.setattr(export, "export_captioner", write_small_saved_model)
    result = export.export_models(alignment_dir, caption_dir, out_dir=out)
    assert layout.existing_versions(out, "aligner") == layout.existing_versions(out, "captioner") == [1, 2]
    assert result["aligner"]["version"] == 2


def test_exported_files_get_ordinary_permissions(run_folders, tmp_path, monkeypatch):
    monkeypatch.setattr(export, "export_captioner", write_small_saved_model)
    _, caption_dir = run_folders
    out = str(tmp_path / "saved_models")
    previous = os.umask(0o022)
    try:
        result = export.export_models(caption_run=caption_dir, out_dir=out)
        export.write_export_summary(result, str(tmp_path / "export.json"))
    finally:
        os.umask(previous)
    assets = os.path.join(result["captioner"]["path"], layout.ASSETS_EXTRA)
    written = [result["models_config"], result["batching_config"], str(tmp_path / "export.json")]
    written += [os.path.join(assets, name) for name in os.listdir(assets)]
    assert {path: oct(os.stat(path).st_mode & 0o777) for path in written} == {path: "0o644" for path in written}


def test_export_with_a_proposals_run_adds_the_proposal_signatures(run_folders, tmp_path, capsys):
    alignment_dir, caption_dir = run_folders
    # The proposals run shares the caption run's backbone (the same weights), not the alignment run's.
    caption_backbone = Run.load(caption_dir).model.feature_extractor.backbone_layer
    proposals_dir = proposal_run_folder(str(tmp_path / "proposals"), backbone=caption_backbone)
    out = str(tmp_path / "saved_models")
    result = export.export_models(alignment_dir, caption_dir, out_dir=out, beam=2, proposals_run=proposals_dir)
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: aligner: the proposals run's backbone is not the aligner's (weights differ); "
        "the exported graph runs both backbones per image"
    ]
    captioner = result["captioner"]["signatures"]
    assert sorted(captioner) == ["caption_proposals", "caption_regions", "serving_default"]
    assert captioner["caption_proposals"]["inputs"] == {"image_bytes": "string [?]"}
    assert captioner["caption_proposals"]["outputs"]["boxes"] == f"float [?, {MAX_PROPOSALS}, 4]"
    assert captioner["caption_proposals"]["outputs"]["captions"] == f"string [?, {MAX_PROPOSALS}, 2]"
    aligner = result["aligner"]["signatures"]
    assert {"encode_image_proposals", "score_proposals", "align_proposals"} <= set(aligner)
    assert aligner["align_proposals"]["inputs"] == {"beta": "float [?]", "image_bytes": "string [?]", "sentences": "string [?]"}
    assert aligner["encode_image_proposals"]["outputs"]["region_scores"] == f"float [?, {MAX_BOXES + 1}]"
    for name, shared in (("captioner", True), ("aligner", False)):
        with open(os.path.join(out, name, "1", "assets.extra", "export.json")) as stream:
            info = json.load(stream)
        assert info["shared_backbone"] is shared and info["proposals_run"] == os.path.abspath(proposals_dir)
        assert info["max_proposals"] == MAX_PROPOSALS


def test_a_proposals_run_of_another_image_size_is_refused_before_writing(run_folders, tmp_path):
    alignment_dir, caption_dir = run_folders
    proposals_dir = proposal_run_folder(str(tmp_path / "proposals"), image_size=(48, 40))
    out = str(tmp_path / "saved_models")
    for runs in ((None, caption_dir), (alignment_dir, None)):
        with pytest.raises(ValueError, match=rf"proposals run {proposals_dir} has data.image_size \[48, 40\] but .* run .* has "
                           rf"\[{IMAGE_SIZE[0]}, {IMAGE_SIZE[1]}\]"):
            export.export_models(*runs, out_dir=out, proposals_run=proposals_dir)
    assert not os.path.exists(out)
    with pytest.raises(ValueError, match="is a 'caption' run; expected a 'proposals' run"):
        export.export_models(caption_run=caption_dir, out_dir=out, proposals_run=caption_dir)
