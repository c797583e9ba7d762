import json
import os

import pytest

from vsa_tf.config import AlignmentConfig, CaptionConfig, DataConfig, load_config, save_config


@pytest.mark.parametrize(
    "config",
    [
        AlignmentConfig(data=DataConfig(dataset="d.json", images="images"), optimizer="adam", learning_rate=2e-4),
        CaptionConfig(data=DataConfig(dataset="d.json", images="images"), image_normalization="layer"),
    ],
    ids=["alignment", "caption"],
)
def test_round_trip_keeps_the_new_fields(tmp_path, config):
    path = str(tmp_path / "config.json")
    save_config(config, path)
    assert load_config(type(config), path) == config


def test_older_config_files_load_with_defaults(tmp_path):
    # A run folder written before `optimizer` / `image_normalization` existed keeps its old behaviour.
    for config_class, field_name, default in ((AlignmentConfig, "optimizer", "sgd"), (CaptionConfig, "image_normalization", "none")):
        values = config_class().to_dict()
        del values[field_name]
        path = tmp_path / f"{field_name}.json"
        path.write_text(json.dumps(values))
        assert getattr(load_config(config_class, str(path)), field_name) == default


def test_rejects_unknown_choices_with_the_received_value():
    with pytest.raises(ValueError, match="AlignmentConfig.optimizer must be one of \\['sgd', 'adam'\\], received 'lbfgs'"):
        AlignmentConfig(optimizer="lbfgs")
    with pytest.raises(ValueError, match="CaptionConfig.image_normalization must be one of \\['none', 'layer'\\], received 'batch'"):
        CaptionConfig(image_normalization="batch")


def test_data_config_split_options_round_trip_and_default_for_older_files(tmp_path):
    config = AlignmentConfig(data=DataConfig(dataset="captions.json", images="images", split_of_file="train"))
    path = str(tmp_path / "config.json")
    save_config(config, path)
    assert load_config(AlignmentConfig, path).data.split_of_file == "train"
    flickr = DataConfig(dataset="tokens.txt", split_files={"train": "train.txt", "test": "test.txt"})
    assert DataConfig.from_json(flickr.to_json()) == flickr
    values = DataConfig().to_dict()
    del values["split_of_file"], values["split_files"]
    older = DataConfig.from_dict(values)
    assert older.split_of_file is None and older.split_files is None


def test_data_config_rejects_a_bad_split_with_the_received_value():
    with pytest.raises(ValueError, match="DataConfig.split_of_file must be one of \\['train', 'val', 'test'\\] or None, received 'dev'"):
        DataConfig(split_of_file="dev")
    with pytest.raises(ValueError, match="DataConfig.split_files must map splits .* received \\{'restval': 'r.txt'\\}"):
        DataConfig(split_files={"restval": "r.txt"})


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_atomic_writes_give_the_mode_a_plain_open_would(tmp_path, umask, mode):
    from vsa_tf.config import atomic_write_bytes, atomic_write_text

    previous = os.umask(umask)
    try:
        atomic_write_text(str(tmp_path / "a.txt"), "text\n")
        atomic_write_bytes(str(tmp_path / "b.bin"), lambda stream: stream.write(b"\x00"))
        with open(tmp_path / "plain.txt", "w") as stream:
            stream.write("text\n")
    finally:
        os.umask(previous)
    modes = {name: os.stat(tmp_path / name).st_mode & 0o777 for name in ("a.txt", "b.bin", "plain.txt")}
    assert modes == {"a.txt": mode, "b.bin": mode, "plain.txt": mode}
    assert sorted(os.listdir(tmp_path)) == ["a.txt", "b.bin", "plain.txt"]  # no temporary file left
