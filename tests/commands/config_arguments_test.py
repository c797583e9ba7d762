"""Options generated from the config dataclasses (`vsa_tf.commands.config_arguments`)."""

import json

import pytest

from vsa_tf import cli
from vsa_tf import config
from vsa_tf.commands import config_arguments
from vsa_tf.commands.config_arguments import config_from_arguments

TRAIN = ["train-align", "--dataset", "d.json", "--images", "images", "--out", "run"]


def _subparser(command):
    parser = cli.build_parser()
    [subparsers] = [action for action in parser._actions if action.__class__.__name__ == "_SubParsersAction"]
    return subparsers.choices[command]


def _help(command):
    return " ".join(_subparser(command).format_help().split())  # one line: help wraps at the terminal width


def test_help_shows_the_fields_default_choices_and_docstring_text():
    text = _help("train-align")
    assert "--region-dim REGION_DIM h, the size of the multimodal space (the paper: 1000) (default: 256)" in text
    assert "--sentence-encoder {brnn,bag_of_words}" in text and "(default: brnn)" in text
    assert "--image-size HEIGHT WIDTH (height, width) images are resized to before the CNN (default: 128 128)" in text
    assert "--freeze-backbone, --no-freeze-backbone whether the backbone's weights stay fixed (default: --no-freeze-backbone)" in text
    assert "--dataset DATASET path of the captions file" in text and "(required)" in text
    # Image-encoder and data fields are in groups named after their config.
    assert "image (ImageEncoderConfig):" in text and "data (DataConfig):" in text
    # Fields the jobs set themselves are no options.
    assert "--kind" not in text and "--feature-dim" not in text
    assert "--region-captions" not in _help("train-caption") and "--feature-mode" not in _help("train-caption")


def test_a_docstring_entry_naming_several_fields_documents_each():
    texts = config_arguments.attribute_help(config.DemoConfig)
    assert texts["train_images"] == texts["test_images"] == "split sizes of the synthetic world."
    assert texts["caption_max_words"].startswith("words of a training sentence the captioners keep")
    assert "12 %" in _help("demo")  # argparse would choke on an unescaped %


def test_options_left_out_keep_the_defaults_and_given_ones_set_nested_fields():
    parser = cli.build_parser()
    alignment = config_from_arguments(parser.parse_args(TRAIN), config.AlignmentConfig)
    assert alignment == config.AlignmentConfig(data=config.DataConfig(dataset="d.json", images="images"))
    args = parser.parse_args(TRAIN + ["--pooling", "average", "--pool-size", "3", "--backbone-filters", "4", "8",
                                      "--image-size", "40", "48", "--score", "defrag", "--freeze-backbone"])
    alignment = config_from_arguments(args, config.AlignmentConfig)
    assert alignment.image == config.ImageEncoderConfig(pooling="average", pool_size=3, filters=(4, 8), frozen=True, normalization="l2")
    assert alignment.data.image_size == (40, 48) and alignment.score == "defrag"


def test_a_bool_field_has_a_no_form():
    parser = cli.build_parser()
    args = parser.parse_args(TRAIN + ["--no-restval-to-train", "--no-jit-compile", "--hardest-negative"])
    alignment = config_from_arguments(args, config.AlignmentConfig)
    assert alignment.data.restval_to_train is False and alignment.jit_compile is False and alignment.hardest_negative
    demo = config_from_arguments(parser.parse_args(["demo", "--no-embedding"]), config.DemoConfig)
    assert demo.run_embedding is False


def test_the_config_file_then_the_options_given(tmp_path):
    saved = config.AlignmentConfig(
        data=config.DataConfig(dataset="saved.json", images="saved_images", split_of_file="val"),
        image=config.ImageEncoderConfig(frozen=True, normalization="l2"),
        region_dim=32, epochs=3,
    )
    path = tmp_path / "config.json"
    config.save_config(saved, str(path))
    parser = cli.build_parser()
    args = parser.parse_args(["train-align", "--config", str(path), "--out", "run", "--epochs", "5", "--no-freeze-backbone"])
    alignment = config_from_arguments(args, config.AlignmentConfig)
    assert alignment.epochs == 5 and alignment.image.frozen is False  # given
    assert alignment.region_dim == 32 and alignment.image.normalization == "l2"  # the file's
    assert alignment.data.dataset == "saved.json" and alignment.data.split_of_file == "val"
    assert alignment.margin == config.AlignmentConfig().margin  # neither: the default
    # Another captions file does not inherit the file's split options: they describe the saved one.
    args = parser.parse_args(["train-align", "--config", str(path), "--out", "run", "--dataset", "other.json"])
    assert config_from_arguments(args, config.AlignmentConfig).data.split_of_file is None


def test_an_unknown_choice_names_the_option_and_the_value(capsys):
    with pytest.raises(SystemExit) as raised:
        cli.main(TRAIN + ["--pooling", "max"])
    assert raised.value.code == 2
    error = capsys.readouterr().err
    assert "argument --pooling: invalid choice: 'max' (choose from 'flatten', 'average')" in error


def test_each_model_lists_the_image_normalizations_it_accepts(capsys):
    parser = cli.build_parser()
    assert parser.parse_args(TRAIN + ["--feature-normalization", "l2"]).feature_normalization == "l2"
    with pytest.raises(SystemExit):
        parser.parse_args(TRAIN + ["--image-normalization", "layer"])
    assert "invalid choice: 'layer' (choose from 'none', 'l2')" in capsys.readouterr().err
    args = parser.parse_args(["train-caption", "--dataset", "d", "--images", "i", "--out", "o", "--image-normalization", "layer"])
    assert config_from_arguments(args, config.CaptionConfig).image.normalization == "layer"


def test_choices_are_the_values_the_configs_accept():
    classes = (config.AlignmentConfig, config.CaptionConfig, config.EmbeddingConfig, config.SCNLMConfig, config.PipelineConfig)
    for key, values in config_arguments.FIELD_CHOICES.items():
        paths = {cls: option.path for cls in classes for option in config_arguments.config_options(cls) if option.key == key}
        assert paths, key
        for cls, path in paths.items():
            assert not config_arguments._accepted(cls, path, ("no such value",)), (cls.__name__, key)
        # Each value is accepted by some config: the table lists nothing that every config refuses.
        accepted = {value for cls, path in paths.items() for value in config_arguments._accepted(cls, path, values)}
        assert accepted == set(values), key


def test_required_fields_are_named_when_missing(tmp_path, capsys):
    assert cli.main(["train-align", "--images", "images", "--out", str(tmp_path / "run")]) == 2
    assert "vsa-tf train-align: error: give --dataset (or a --config file that sets it)" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_boxes_none_is_no_boxes_in_a_new_config_and_not_the_runs_on_a_run():
    parser = cli.build_parser()
    assert config_from_arguments(parser.parse_args(TRAIN + ["--boxes", "none"]), config.AlignmentConfig).data.boxes is None
    args = parser.parse_args(["evaluate-retrieval", "--run", "r", "--boxes", "none"])
    assert config_from_arguments(args, config.DataConfig, for_run=True).boxes == ""


def test_split_files_become_the_data_configs_mapping():
    args = cli.build_parser().parse_args(TRAIN + ["--split-files", "train.txt", "-", "test.txt"])
    assert config_from_arguments(args, config.AlignmentConfig).data.split_files == {"train": "train.txt", "test": "test.txt"}


def test_demo_quick_starts_from_the_quick_config():
    args = cli.build_parser().parse_args(["demo", "--quick", "--out", "somewhere", "--seed", "2", "--betas", "0", "1"])
    demo = config_from_arguments(args, config.DemoConfig, base=config.DemoConfig.quick_config())
    assert demo == config.DemoConfig.quick_config(out_dir="somewhere", seed=2, betas=(0.0, 1.0))


@pytest.mark.parametrize("command, extra", [("train-embedding", []), ("train-scnlm", ["--embedding-run", "e"])])
def test_run_is_a_deprecated_alias_of_out_where_a_command_writes_a_run(command, extra, capsys):
    parser = cli.build_parser()
    args = parser.parse_args([command, "--dataset", "d", "--images", "i", "--run", "r", *extra])
    assert args.out == "r"
    [warning] = capsys.readouterr().err.splitlines()
    assert warning == f"vsa-tf {command}: warning: --run is deprecated here, use --out (the run folder it writes)"
    assert parser.parse_args([command, "--dataset", "d", "--images", "i", "--out", "o", *extra]).out == "o"
    assert capsys.readouterr().err == ""
    with pytest.raises(SystemExit):
        parser.parse_args([command, "--dataset", "d", "--images", "i", *extra])
    assert "one of the arguments --out is required" in capsys.readouterr().err
    assert "--run" not in _help(command)


def test_train_embedding_config_from_a_file_with_the_deprecated_run(tmp_path, monkeypatch):
    from vsa_tf.jobs import embedding as embedding_job
    from vsa_tf.jobs.run_folder import Run
    from vsa_tf.jobs.trainer import TrainingResult

    path = tmp_path / "embedding.json"
    config.save_config(config.EmbeddingConfig(data=config.DataConfig(dataset="d.json", images="i"), encoder="linear"), str(path))
    calls = []
    monkeypatch.setattr(
        embedding_job, "train_embedding",
        lambda config, run_dir, **kwargs: calls.append((config, run_dir)) or TrainingResult(Run(run_dir, "embedding", config, None), {}, None),
    )
    assert cli.main(["train-embedding", "--config", str(path), "--run", "r", "--pooling", "average"]) == 0
    [(embedding, run_dir)] = calls
    assert run_dir == "r" and embedding.encoder == "linear" and embedding.image.pooling == "average"
    assert json.loads(path.read_text())["image"]["pooling"] == "flatten"  # the file is only read
