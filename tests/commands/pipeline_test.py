"""`vsa-tf pipeline`: its options are PipelineConfig fields and its stage list is the job's."""

import pytest

from vsa_tf import cli, config
from vsa_tf.commands import pipeline as pipeline_command
from vsa_tf.commands.config_arguments import config_from_arguments


def test_stage_names_are_the_jobs():
    from vsa_tf.jobs import pipeline

    assert pipeline_command.STAGE_NAMES == tuple(stage.name for stage in pipeline.ALL_STAGES)


def test_options_become_the_pipeline_config():
    args = cli.build_parser().parse_args(
        ["pipeline", "--dataset", "d.json", "--images", "images", "--boxes", "b.json", "--out", "o",
         "--feature-mode", "cached", "--backbone-weights", "lite0.weights.h5", "--stages", "alignment", "report"]
    )
    pipeline_config = config_from_arguments(args, config.PipelineConfig)
    assert (pipeline_config.data.dataset, pipeline_config.data.boxes) == ("d.json", "b.json")
    assert (pipeline_config.feature_mode, pipeline_config.backbone_weights) == ("cached", "lite0.weights.h5")
    assert args.stages == ["alignment", "report"]


def test_backbone_weights_choose_cached_features_unless_the_mode_is_given():
    parser = cli.build_parser()
    base = ["pipeline", "--dataset", "d.json", "--images", "images", "--out", "o"]
    chosen = {
        extra_tuple: config_from_arguments(parser.parse_args(base + list(extra_tuple)), config.PipelineConfig).resolved_feature_mode
        for extra_tuple in [(), ("--backbone-weights", "w.weights.h5"), ("--backbone-weights", "w.weights.h5", "--feature-mode", "pixels")]
    }
    assert list(chosen.values()) == ["pixels", "cached", "pixels"]


def test_cached_features_get_the_cached_image_size_unless_one_is_chosen(tmp_path):
    parser = cli.build_parser()
    base = ["pipeline", "--dataset", "d.json", "--images", "images", "--out", "o"]
    sizes = [
        pipeline_command.pipeline_config_from_arguments(parser.parse_args(base + extra)).data.image_size
        for extra in ([], ["--backbone-weights", "w.weights.h5"], ["--backbone-weights", "w.weights.h5", "--image-size", "224", "320"],
                      ["--backbone-weights", "w.weights.h5", "--feature-mode", "pixels"])
    ]
    assert sizes == [(128, 128), config.CACHED_FEATURE_IMAGE_SIZE, (224, 320), (128, 128)]
    assert config.CACHED_FEATURE_IMAGE_SIZE == (448, 448)
    # A --config file's image size is the file's, whatever the mode.
    saved = config.PipelineConfig(backbone_weights="w.weights.h5", data=config.DataConfig(image_size=(256, 256)))
    path = tmp_path / "pipeline_config.json"
    path.write_text(saved.to_json())
    from_file = pipeline_command.pipeline_config_from_arguments(parser.parse_args(base + ["--config", str(path)]))
    assert from_file.data.image_size == (256, 256)
    # The command that made an existing folder resumes it: its saved image size is kept.
    out = tmp_path / "F8K"
    out.mkdir()
    from vsa_tf.jobs.pipeline import CONFIG_FILE

    config.save_config(saved, str(out / CONFIG_FILE))
    rerun = ["pipeline", "--dataset", "d.json", "--images", "images", "--out", str(out), "--backbone-weights", "w.weights.h5"]
    assert pipeline_command.pipeline_config_from_arguments(parser.parse_args(rerun)).data.image_size == (256, 256)
    # A synthetic world and quick runs keep their sizes (their proposal anchors are sized for them).
    for extra in (["--world", "20", "5", "5"], ["--quick"]):
        chosen = pipeline_command.pipeline_config_from_arguments(parser.parse_args(
            ["pipeline", "--out", "o", "--backbone-weights", "w.weights.h5"] + extra))
        assert chosen.data.image_size != config.CACHED_FEATURE_IMAGE_SIZE, extra


def test_unknown_stage_and_feature_mode_are_refused(capsys):
    parser = cli.build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["pipeline", "--out", "o", "--stages", "everything"])
    assert "invalid choice: 'everything'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser.parse_args(["pipeline", "--out", "o", "--feature-mode", "fast"])
    assert "invalid choice: 'fast' (choose from 'pixels', 'cached')" in capsys.readouterr().err
