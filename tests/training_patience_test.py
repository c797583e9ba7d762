"""Early stopping of `fit_model(patience=...)`, including across a resumed run."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from vsa_tf import training


class ScriptedMetric(keras.callbacks.Callback):
    """Logs `val_score` from a fixed list, one value per absolute epoch index."""

    def __init__(self, values):
        super().__init__()
        self.values = values

    def on_epoch_end(self, epoch, logs=None):
        logs["val_score"] = self.values[epoch]


def _model_and_data():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    data = tf.data.Dataset.from_tensor_slices((np.ones((4, 2), "float32"), np.zeros((4, 1), "float32"))).batch(2)
    return model, data


def test_training_stops_after_patience_epochs_without_improvement_and_stays_stopped_on_resume(tmp_path, capsys):
    scores = [1.0, 2.0, 2.0, 1.0, 1.5, 3.0, 3.0, 3.0]
    model, data = _model_and_data()
    history = training.fit_model(model, data, run_dir=str(tmp_path), epochs=8, callbacks=[ScriptedMetric(scores)],
                                 monitor="val_score", monitor_mode="max", patience=2, verbose=0)
    assert history["val_score"] == [1.0, 2.0, 2.0, 1.0]  # best at epoch 2 (index 1), then two epochs without gain
    assert "early stopping after epoch 4: val_score has not improved for 2 epoch(s) (best 2 at epoch 2)" in capsys.readouterr().out
    with open(tmp_path / "model.weights.h5.json", encoding="utf-8") as stream:
        assert json.load(stream) == {"monitor": "val_score", "value": 2.0, "epoch": 1}

    # Run again (e.g. by the same command): it already stopped, so nothing is trained.
    model, data = _model_and_data()
    again = training.fit_model(model, data, run_dir=str(tmp_path), epochs=8, callbacks=[ScriptedMetric(scores)],
                               monitor="val_score", monitor_mode="max", patience=2, verbose=0)
    assert again == {} and "training already stopped early" in capsys.readouterr().out

    # Resumed with more patience: the count is kept, so one more epoch without gain stops it.
    model, data = _model_and_data()
    resumed = training.fit_model(model, data, run_dir=str(tmp_path), epochs=8, callbacks=[ScriptedMetric(scores)],
                                 monitor="val_score", monitor_mode="max", patience=3, verbose=0)
    assert resumed["val_score"] == [1.5]  # the count was not reset by the restart: epoch 5 ends it


def test_patience_stopping_counts_from_the_best_epoch_and_checks_its_arguments():
    stopper = training.PatienceStopping(patience=2, monitor="val_loss", mode="min")
    stopper.set_model(keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)]))
    for epoch, value in enumerate([3.0, 2.0, 2.5, None]):
        stopper.on_epoch_end(epoch, {} if value is None else {"val_loss": value})
    assert (stopper.best, stopper.best_epoch, stopper.stopped_epoch) == (2.0, 1, 3)
    with pytest.raises(ValueError, match="patience must be >= 1, received 0"):
        training.PatienceStopping(patience=0)
    with pytest.raises(ValueError, match="mode must be 'min' or 'max', received 'up'"):
        training.PatienceStopping(patience=1, mode="up")
