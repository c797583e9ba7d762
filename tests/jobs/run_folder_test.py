import json

import pytest

from vsa_tf.config import AlignmentConfig, CaptionConfig, save_config
from vsa_tf.data.text import Vocabulary
from vsa_tf.jobs.run_folder import Run, absolute_data_paths, as_run, check_same_settings, with_dataset


def _run_folder(path, config, with_weights=True):
    path.mkdir()
    save_config(config, str(path / "config.json"))
    Vocabulary.build([["a", "red", "square"]], min_count=1).save(str(path / "vocabulary.txt"))
    if with_weights:
        (path / "model.weights.h5").write_bytes(b"")
    return str(path)


def test_open_run_returns_config_vocabulary_and_weights_path(tmp_path):
    run_dir = _run_folder(tmp_path / "run", CaptionConfig(hidden_dim=8))
    run = Run.open(run_dir, "caption")
    assert run.kind == "caption" and run.config.hidden_dim == 8 and run.vocabulary.id("red") > 3
    assert run.weights_path == str(tmp_path / "run" / "model.weights.h5") and run.model is None
    assert Run.open(run_dir).kind == "caption"  # the kind comes from config.json


def test_open_run_names_the_folder_in_its_errors(tmp_path):
    alignment_dir = _run_folder(tmp_path / "alignment", AlignmentConfig())
    with pytest.raises(ValueError, match="alignment is a 'alignment' run; expected a 'caption' run"):
        Run.open(alignment_dir, "caption")
    with pytest.raises(ValueError, match="alignment is a 'alignment' run; expected a 'caption' run"):
        as_run(alignment_dir, "caption")
    unfinished = _run_folder(tmp_path / "unfinished", CaptionConfig(), with_weights=False)
    with pytest.raises(ValueError, match="unfinished: model.weights.h5 is missing"):
        Run.load(unfinished, "caption")
    with pytest.raises(ValueError, match="Run folder not found: .*nowhere"):
        Run.open(str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match="Expected a run folder or a vsa_tf.jobs.run_folder.Run; received int"):
        as_run(3)
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "config.json").write_text(json.dumps({"kind": "detector"}))
    with pytest.raises(ValueError, match=r"unknown run kind 'detector'"):
        Run.open(str(tmp_path / "odd"))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text(json.dumps({"hidden_dim": 8}))
    with pytest.raises(ValueError, match="has no 'kind' field"):
        Run.open(str(tmp_path / "broken"), "caption")
    (tmp_path / "latin1").mkdir()
    (tmp_path / "latin1" / "config.json").write_bytes('{"kind": "caption", "note": "café"}'.encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1/config.json: not UTF-8 text"):
        Run.open(str(tmp_path / "latin1"), "caption")


def test_open_run_reads_a_run_saved_before_the_pooling_field_as_average(tmp_path):
    run_dir = _run_folder(tmp_path / "older", AlignmentConfig())
    with open(f"{run_dir}/config.json") as stream:
        values = json.load(stream)
    image = values.pop("image")  # older runs saved flat image fields, and before those, no `pooling`
    values.update(feature_mode=image["mode"], backbone=image["backbone"], backbone_filters=image["filters"], pool_size=image["pool_size"])
    with open(f"{run_dir}/config.json", "w") as stream:
        json.dump(values, stream)
    config = Run.open(run_dir, "alignment").config
    assert config.image.pooling == "average"
    newer = _run_folder(tmp_path / "newer", CaptionConfig())
    assert Run.open(newer, "caption").config.image.pooling == "flatten"


def test_open_run_names_the_config_file_of_an_invalid_field(tmp_path):
    run_dir = _run_folder(tmp_path / "bad", CaptionConfig())
    with open(f"{run_dir}/config.json") as stream:
        values = json.load(stream)
    values["image"]["pooling"] = "max"
    with open(f"{run_dir}/config.json", "w") as stream:
        json.dump(values, stream)
    with pytest.raises(ValueError, match=r"bad/config.json: ImageEncoderConfig.pooling must be one of \['flatten', 'average'\], received 'max'"):
        Run.open(run_dir, "caption")


def _file_states(folder):
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file()}


def test_check_same_settings_refuses_other_settings_and_writes_nothing(tmp_path):
    from vsa_tf.config import DataConfig

    data = DataConfig(dataset=str(tmp_path / "d.json"), images=str(tmp_path / "images"))
    run = tmp_path / "cap"
    _run_folder(run, CaptionConfig(data=data, hidden_dim=32, epochs=2))
    before = _file_states(run)
    check_same_settings(str(tmp_path / "new"), CaptionConfig(hidden_dim=48))  # no run there yet
    check_same_settings(str(run), CaptionConfig(data=data, hidden_dim=32, epochs=5))  # resumes / extends
    with pytest.raises(ValueError, match=r"cap already holds a 'caption' run .*hidden_dim: 32 -> 48.*pick another run folder \(--out"):
        check_same_settings(str(run), CaptionConfig(data=data, hidden_dim=48, epochs=2))
    with pytest.raises(ValueError, match=r"data.min_word_count: 5 -> 1"):
        check_same_settings(str(run), CaptionConfig(data=data.replace(min_word_count=1), hidden_dim=32))
    with pytest.raises(ValueError, match=r"already holds a 'caption' run, not a 'alignment' run"):
        check_same_settings(str(run), AlignmentConfig(data=data))
    with pytest.raises(ValueError, match=r"vocabulary.txt \(3 words\) differs"):
        check_same_settings(str(run), CaptionConfig(data=data, hidden_dim=32), Vocabulary.build([["a", "cat"]], min_count=1))
    check_same_settings(str(run), CaptionConfig(data=data, hidden_dim=32), Vocabulary.build([["a", "red", "square"]], min_count=1))
    assert _file_states(run) == before


def test_check_same_settings_reads_an_older_runs_relative_paths_from_the_working_directory(tmp_path, monkeypatch):
    from vsa_tf.config import DataConfig

    monkeypatch.chdir(tmp_path)
    relative = DataConfig(dataset="d.json", images="images", boxes=None, features=None)
    absolute = absolute_data_paths(relative)
    assert absolute.dataset == str(tmp_path / "d.json") and absolute.images == str(tmp_path / "images")
    assert absolute.boxes is None and absolute.features is None
    run = _run_folder(tmp_path / "old", AlignmentConfig(data=relative))
    check_same_settings(run, AlignmentConfig(data=absolute))
    with pytest.raises(ValueError, match=r"region_dim: 256 -> 48"):
        check_same_settings(run, AlignmentConfig(data=absolute, region_dim=48))


def test_split_options_get_absolute_paths_and_stay_with_their_captions_file(tmp_path, monkeypatch):
    from vsa_tf.config import DataConfig

    monkeypatch.chdir(tmp_path)
    flickr = absolute_data_paths(DataConfig(dataset="tokens.txt", split_files={"train": "lists/train.txt"}))
    assert flickr.split_files == {"train": str(tmp_path / "lists" / "train.txt")}
    coco = absolute_data_paths(DataConfig(dataset="captions.json", split_of_file="train"))
    assert with_dataset(coco, "captions.json", images="elsewhere").split_of_file == "train"  # the run's own file
    assert with_dataset(coco, None).split_of_file == "train"
    other = with_dataset(coco, "karpathy.json")  # another file does not inherit the run's split
    assert other.dataset == "karpathy.json" and other.split_of_file is None and other.split_files is None
    assert with_dataset(coco, "val.json", split_of_file="val").split_of_file == "val"


def test_feature_mode_follows_the_image_encoder_or_else_the_data():
    from vsa_tf.config import DataConfig, ImageEncoderConfig, SCNLMConfig
    from vsa_tf.jobs.run_folder import feature_mode

    assert feature_mode(AlignmentConfig(image=ImageEncoderConfig(mode="cached"))) == "cached"
    assert feature_mode(AlignmentConfig(data=DataConfig(features="f"))) == "pixels"  # the encoder decides
    assert feature_mode(SCNLMConfig(data=DataConfig(features="f"))) == "cached"
    assert feature_mode(SCNLMConfig()) == "pixels"
