import json

import pytest

from vsa_tf.config import AlignmentConfig, CaptionConfig, save_config
from vsa_tf.data.text import Vocabulary
from vsa_tf.jobs.runs import open_run


def _run_folder(path, config, with_weights=True):
    path.mkdir()
    save_config(config, str(path / "config.json"))
    Vocabulary.build([["a", "red", "square"]], min_count=1).save(str(path / "vocabulary.txt"))
    if with_weights:
        (path / "model.weights.h5").write_bytes(b"")
    return str(path)


def test_open_run_returns_config_vocabulary_and_weights_path(tmp_path):
    run_dir = _run_folder(tmp_path / "run", CaptionConfig(hidden_dim=8))
    config, vocabulary, weights = open_run(run_dir, "caption", CaptionConfig)
    assert config.hidden_dim == 8 and vocabulary.id("red") > 3
    assert weights == str(tmp_path / "run" / "model.weights.h5")


def test_open_run_names_the_folder_in_its_errors(tmp_path):
    alignment_dir = _run_folder(tmp_path / "alignment", AlignmentConfig())
    with pytest.raises(ValueError, match="alignment is a 'alignment' run; expected a 'caption' run"):
        open_run(alignment_dir, "caption", CaptionConfig)
    unfinished = _run_folder(tmp_path / "unfinished", CaptionConfig(), with_weights=False)
    with pytest.raises(ValueError, match="unfinished: model.weights.h5 is missing"):
        open_run(unfinished, "caption", CaptionConfig)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text(json.dumps({"hidden_dim": 8}))
    with pytest.raises(ValueError, match="has no 'kind' field"):
        open_run(str(tmp_path / "broken"), "caption", CaptionConfig)


def test_open_run_reads_a_run_saved_before_the_pooling_field_as_average(tmp_path):
    run_dir = _run_folder(tmp_path / "older", AlignmentConfig())
    with open(f"{run_dir}/config.json") as stream:
        values = json.load(stream)
    del values["pooling"]
    with open(f"{run_dir}/config.json", "w") as stream:
        json.dump(values, stream)
    config, _, _ = open_run(run_dir, "alignment", AlignmentConfig)
    assert config.pooling == "average"
    newer = _run_folder(tmp_path / "newer", CaptionConfig())
    assert open_run(newer, "caption", CaptionConfig)[0].pooling == "flatten"


def test_open_run_names_the_config_file_of_an_invalid_field(tmp_path):
    run_dir = _run_folder(tmp_path / "bad", CaptionConfig())
    with open(f"{run_dir}/config.json") as stream:
        values = json.load(stream)
    values["pooling"] = "max"
    with open(f"{run_dir}/config.json", "w") as stream:
        json.dump(values, stream)
    with pytest.raises(ValueError, match=r"bad/config.json: CaptionConfig.pooling must be one of \['flatten', 'average'\], received 'max'"):
        open_run(run_dir, "caption", CaptionConfig)
