import argparse

import pytest

from vsa_tf.commands import embedding


def _parser():
    parser = argparse.ArgumentParser()
    embedding.register(parser.add_subparsers(dest="command"))
    return parser


def test_subcommands_parse():
    parser = _parser()
    args = parser.parse_args(
        ["arithmetic", "--run", "r", "--dataset", "d", "--images", "i", "--image", "x.jpg", "--minus", "blue", "--plus", "red", "--out", "s.png"]
    )
    assert args.handler is embedding.run_arithmetic and args.minus == ["blue"] and args.plus == ["red"] and args.top == 5
    args = parser.parse_args(["train-embedding", "--dataset", "d", "--images", "i", "--run", "r", "--encoder", "linear"])
    assert args.handler is embedding.run_train_embedding and args.encoder == "linear"
    args = parser.parse_args(["train-scnlm", "--run", "r", "--embedding-run", "e"])
    assert args.handler is embedding.run_train_scnlm and args.dataset is None
    assert parser.parse_args(["generate-scnlm", "--run", "r", "--sample"]).sample


def test_missing_run_is_a_clean_error(capsys):
    from vsa_tf import cli

    code = cli.main(["arithmetic", "--run", "/nonexistent-run", "--dataset", "d", "--images", "i", "--image", "x"])
    assert code == 2
    assert "Run folder not found" in capsys.readouterr().err


def test_encoder_choice_is_checked():
    with pytest.raises(SystemExit):
        _parser().parse_args(["train-embedding", "--dataset", "d", "--images", "i", "--run", "r", "--encoder", "gru"])


def test_train_scnlm_takes_the_embedding_runs_image_size(monkeypatch, tmp_path):
    import json

    from vsa_tf import cli
    from vsa_tf.jobs import scnlm as scnlm_job
    from vsa_tf.jobs.run_folder import Run
    from vsa_tf.jobs.trainer import TrainingResult

    run = tmp_path / "embedding"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"kind": "embedding", "data": {"image_size": [64, 96]}}))
    configs = []
    monkeypatch.setattr(
        scnlm_job, "train_scnlm", lambda config, run_dir, **kwargs: configs.append(config) or TrainingResult(Run(run_dir, "scnlm", config, None), {}, None)
    )
    argv = ["train-scnlm", "--dataset", "d.json", "--images", "images", "--run", str(tmp_path / "scnlm"), "--embedding-run", str(run)]
    assert cli.main(argv) == 0
    assert configs[-1].data.image_size == (64, 96) and configs[-1].data.dataset == "d.json"
    assert cli.main(argv + ["--image-size", "40", "48"]) == 0
    assert configs[-1].data.image_size == (40, 48)


def test_scnlm_image_side_must_match_the_embedding_run():
    from vsa_tf.config import DataConfig
    from vsa_tf.jobs import scnlm as scnlm_job

    trained = DataConfig(dataset="d.json", images="i", image_size=(64, 96))
    scnlm_job._check_same_image_side(trained.replace(dataset="other.json"), trained, "runs/e")
    with pytest.raises(ValueError, match=r"data.image_size \(128, 128\) differs .* runs/e .* \(64, 96\)"):
        scnlm_job._check_same_image_side(trained.replace(image_size=(128, 128)), trained, "runs/e")
    # Cached features carry no image size to compare.
    scnlm_job._check_same_image_side(trained.replace(image_size=(128, 128), features="f"), trained.replace(features="f"), "runs/e")
