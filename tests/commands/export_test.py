import os
import subprocess
import sys

import pytest

from tests.export.conftest import make_run_folders, proposal_run_folder
from vsa_tf import cli
from vsa_tf.jobs import export as export_job

REPOSITORY = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def run_folders(tmp_path_factory):
    from vsa_tf.data.text import Vocabulary

    return make_run_folders(str(tmp_path_factory.mktemp("runs")), Vocabulary(["a", "red", "blue", "circle"]))


def test_export_command_writes_both_models_and_prints_signatures(run_folders, tmp_path, capsys):
    alignment_dir, caption_dir = run_folders
    out = str(tmp_path / "saved_models")
    summary = str(tmp_path / "export.json")
    code = cli.main(
        ["export", "--run", alignment_dir, "--caption-run", caption_dir, "--out", out, "--version", "2", "--beam", "2", "--json", summary]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert f"captioner: {os.path.join(out, 'captioner', '2')}" in printed
    assert "serving_default(image_bytes: string [?]) -> captions: string [?, 2], scores: float [?, 2]" in printed
    assert "align(beta: float [?], boxes: float [?, ?, 4], image_bytes: string [?], sentences: string [?])" in printed
    assert os.path.exists(os.path.join(out, "aligner", "2", "saved_model.pb")) and os.path.exists(summary)
    assert os.path.exists(os.path.join(out, "models.config")) and os.path.exists(os.path.join(out, "batching.config"))


def fast_export(signatures, path):
    import tensorflow as tf

    module = tf.Module()
    module.run = tf.function(lambda values: {"same": values}, input_signature=[tf.TensorSpec([None], tf.float32)], autograph=False)
    tf.saved_model.save(module, path, signatures={"serving_default": module.run})


def test_export_command_errors_are_one_line_with_exit_code_2(run_folders, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(export_job, "export_captioner", fast_export)
    alignment_dir, caption_dir = run_folders
    out = str(tmp_path / "saved_models")
    assert cli.main(["export", "--run", caption_dir, "--out", out, "--version", "1"]) == 0  # a caption run alone
    capsys.readouterr()
    assert cli.main(["export", "--run", caption_dir, "--out", out, "--version", "1"]) == 2
    assert "captioner/1 already exists; pass overwrite=True (--overwrite)" in capsys.readouterr().err
    assert cli.main(["export", "--run", caption_dir, "--out", out, "--version", "1", "--overwrite"]) == 0
    capsys.readouterr()
    assert cli.main(["export", "--run", caption_dir, "--caption-run", caption_dir, "--out", out]) == 2
    assert "is a caption run; give the alignment run as --run" in capsys.readouterr().err
    assert cli.main(["export", "--run", str(tmp_path / "missing"), "--out", out]) == 2
    assert "Run folder not found" in capsys.readouterr().err


def test_export_command_takes_a_proposals_run(run_folders, tmp_path, capsys, monkeypatch):
    seen = {}

    def record(signatures, path):
        seen[path] = signatures
        fast_export(signatures, path)

    monkeypatch.setattr(export_job, "export_captioner", record)
    _, caption_dir = run_folders
    out = str(tmp_path / "saved_models")
    proposals_dir = proposal_run_folder(str(tmp_path / "proposals"))
    assert cli.main(["export", "--run", caption_dir, "--proposals-run", proposals_dir, "--out", out]) == 0
    (signatures,) = seen.values()
    assert signatures.proposals is not None and signatures.proposals.max_proposals == 4
    assert "warning: captioner: the proposals run's backbone is not the captioner's (weights differ)" in capsys.readouterr().err
    other = proposal_run_folder(str(tmp_path / "other"), image_size=(48, 40))
    assert cli.main(["export", "--run", caption_dir, "--proposals", other, "--out", out]) == 2
    assert "has data.image_size [48, 40] but caption run" in capsys.readouterr().err


@pytest.mark.slow
def test_export_script_on_a_synthetic_world_run(tmp_path):
    """`scripts/export_savedmodel.py` on runs trained (briefly) on the synthetic world."""
    from vsa_tf.config import AlignmentConfig, CaptionConfig, DataConfig, ImageEncoderConfig
    from vsa_tf.data.synthetic import generate_world
    from vsa_tf.jobs import alignment, captioning

    world = str(tmp_path / "world")
    generate_world(world, num_images=24, seed=0)
    data = DataConfig(
        dataset=os.path.join(world, "dataset.json"),
        images=os.path.join(world, "images"),
        boxes=os.path.join(world, "boxes.json"),
        image_size=(32, 32),
        min_word_count=1,
        max_boxes=4,
    )
    alignment_config = AlignmentConfig(region_dim=8, embedding_dim=8, hidden_dim=8, image=ImageEncoderConfig(filters=(4, 8)), batch_size=8, epochs=1)
    alignment.train_alignment(alignment_config, data, str(tmp_path / "align"), verbose=0)
    caption_config = CaptionConfig(hidden_dim=8, embedding_dim=8, image=ImageEncoderConfig(filters=(4, 8)), batch_size=8, epochs=1, max_length=8)
    captioning.train_captioner(caption_config, data, str(tmp_path / "caption"), verbose=0)
    out = str(tmp_path / "saved_models")
    result = subprocess.run(
        [sys.executable, os.path.join(REPOSITORY, "scripts", "export_savedmodel.py"), "--run", str(tmp_path / "align"), "--caption-run",
         str(tmp_path / "caption"), "--out", out, "--version", "1"],
        capture_output=True, text=True, timeout=900, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "captioner: " in result.stdout and "aligner: " in result.stdout
    for name in ("captioner", "aligner"):
        assert os.path.exists(os.path.join(out, name, "1", "saved_model.pb"))
