"""The training skeleton (`vsa_tf.jobs.trainer.train`) with a tiny task: order of steps, files, result, refusals."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from vsa_tf.config import AlignmentConfig, CaptionConfig, DataConfig
from vsa_tf.data.records import ImageRecord, Sentence
from vsa_tf.jobs import trainer
from vsa_tf.jobs.run_folder import Run


class _Dataset:
    """The part of a `CaptionDataset` the skeleton reads: `split(name)`."""

    def __init__(self, records):
        self.records = records

    def split(self, name):
        return [record for record in self.records if record.split == name]


class _LinearTask(trainer.TrainingTask):
    """A one-weight regression model standing in for a real model: y = 3 x."""

    kind = "alignment"
    config_class = AlignmentConfig

    def __init__(self, fail_loading=False):
        self.fail_loading = fail_loading
        self.calls = []

    def load_data(self, config):
        self.calls.append("load_data")
        if self.fail_loading:
            raise ValueError("dataset.json: image 3 has no sentences")
        records = [
            ImageRecord("a.jpg", 0, "train", [Sentence(["a", "red", "circle"])]),
            ImageRecord("b.jpg", 1, "train", [Sentence(["a", "blue", "circle"])]),
            ImageRecord("c.jpg", 2, "test", [Sentence(["a", "red", "square"])]),
        ]
        return trainer.TrainingData(_Dataset(records))

    def build_datasets(self, run, data):
        self.calls.append("build_datasets")
        assert os.path.exists(run.path("config.json")) and os.path.exists(run.path("vocabulary.txt"))
        inputs = np.linspace(-1, 1, 32, dtype="float32")[:, None]
        batches = tf.data.Dataset.from_tensor_slices((inputs, 3 * inputs)).batch(8)
        return batches, batches

    def build_model(self, run, train_batches):
        self.calls.append("build_model")
        model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")])
        model.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
        return model

    def evaluate(self, run, data):
        self.calls.append("evaluate")
        return {"weight": float(run.model.layers[0].kernel.numpy()[0, 0]), "test_images": len(data.split("test"))}


def _config(tmp_path, **changes):
    data = DataConfig(dataset=str(tmp_path / "dataset.json"), images=str(tmp_path / "images"), min_word_count=1)
    return AlignmentConfig(data=data, epochs=3, **changes)


def test_train_runs_the_steps_in_order_and_returns_a_training_result(tmp_path):
    task = _LinearTask()
    folder = str(tmp_path / "run")
    result = trainer.train(task, _config(tmp_path), folder, verbose=0)
    assert task.calls == ["load_data", "build_datasets", "build_model", "evaluate"]
    assert isinstance(result, trainer.TrainingResult) and isinstance(result.run, Run)
    assert result.run.folder == folder and result.run.kind == "alignment" and result.run.model is not None
    assert len(result.history["loss"]) == 3 and result.history["loss"][-1] < result.history["loss"][0]
    assert result.history == json.loads(json.dumps(result.history))  # plain floats
    # The test report is that of the best weights, saved as the task's test file.
    assert result.test["test_images"] == 1 and abs(result.test["weight"] - 3.0) < 0.5
    with open(os.path.join(folder, "retrieval_test.json")) as stream:
        assert json.load(stream) == result.test
    assert Run.open(folder).vocabulary.words == result.run.vocabulary.words
    assert "red" in result.run.vocabulary.words and "square" not in result.run.vocabulary.words  # train split only
    saved = Run.open(folder).config
    assert saved.data.dataset == str(tmp_path / "dataset.json") and saved.epochs == 3


def test_train_writes_nothing_when_the_data_is_refused(tmp_path):
    folder = tmp_path / "run"
    with pytest.raises(ValueError, match="image 3 has no sentences"):
        trainer.train(_LinearTask(fail_loading=True), _config(tmp_path), str(folder), verbose=0)
    assert not folder.exists()


def test_train_refuses_another_config_type_a_missing_folder_and_other_settings(tmp_path):
    with pytest.raises(ValueError, match="needs a AlignmentConfig, received CaptionConfig"):
        trainer.train(_LinearTask(), CaptionConfig(), str(tmp_path / "run"))
    with pytest.raises(ValueError, match="needs a run folder, received None"):
        trainer.train(_LinearTask(), _config(tmp_path), None)
    folder = str(tmp_path / "run")
    trainer.train(_LinearTask(), _config(tmp_path), folder, verbose=0)
    before = {name: os.path.getmtime(os.path.join(folder, name)) for name in ("config.json", "vocabulary.txt")}
    with pytest.raises(ValueError, match=r"region_dim: 256 -> 48"):
        trainer.train(_LinearTask(), _config(tmp_path, region_dim=48), folder, verbose=0)
    assert {name: os.path.getmtime(os.path.join(folder, name)) for name in before} == before
    # More epochs into the same folder extends the run.
    extended = trainer.train(_LinearTask(), _config(tmp_path).replace(epochs=4), folder, verbose=0)
    assert extended.run.config.epochs == 4


def test_train_saves_the_given_data_config_in_place_of_the_configs_and_refuses_another_type(tmp_path):
    folder = str(tmp_path / "run")
    other = DataConfig(dataset=str(tmp_path / "other.json"), images=str(tmp_path / "images"), min_word_count=1, max_words=7)
    result = trainer.train(_LinearTask(), _config(tmp_path), folder, verbose=0, data_config=other)
    assert result.run.config.data.dataset == str(tmp_path / "other.json") and result.run.config.data.max_words == 7
    assert Run.open(folder).config.data == result.run.config.data
    with pytest.raises(ValueError, match="data_config must be a DataConfig, received dict"):
        trainer.train(_LinearTask(), _config(tmp_path), str(tmp_path / "run2"), data_config={"dataset": "d.json"})
    assert not (tmp_path / "run2").exists()


class _StuckTask(_LinearTask):
    """The regression task with a learning rate of 0: the val loss never improves after the first epoch."""

    def build_model(self, run, train_batches):
        model = super().build_model(run, train_batches)
        model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")
        return model


def test_train_stops_after_the_configs_patience_and_a_rerun_may_change_it(tmp_path):
    folder = str(tmp_path / "run")
    result = trainer.train(_StuckTask(), _config(tmp_path, patience=2).replace(epochs=10), folder, verbose=0)
    assert len(result.history["loss"]) == 3  # the best epoch, then 2 without improvement
    # `patience` may change between runs into one folder; the count goes on from the best epoch (the first).
    trainer.train(_StuckTask(), _config(tmp_path, patience=4).replace(epochs=10), folder, verbose=0)
    with open(os.path.join(folder, "history.csv")) as stream:
        assert [line.split(",")[0] for line in stream.read().split()[1:]] == ["0", "1", "2", "3", "4"]
    everything = trainer.train(_StuckTask(), _config(tmp_path, patience=0).replace(epochs=6), str(tmp_path / "all"), verbose=0)
    assert len(everything.history["loss"]) == 6
