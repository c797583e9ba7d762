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


def test_unknown_stage_and_feature_mode_are_refused(capsys):
    parser = cli.build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["pipeline", "--out", "o", "--stages", "everything"])
    assert "invalid choice: 'everything'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser.parse_args(["pipeline", "--out", "o", "--feature-mode", "fast"])
    assert "invalid choice: 'fast' (choose from 'pixels', 'cached')" in capsys.readouterr().err
