"""The fit loop shared by the CLI, the notebooks and the demo.

`fit_model` wraps `model.fit` with what a long run needs: `keras.callbacks.BackupAndRestore` so a
killed run resumes from its last epoch, an atomic "best weights" checkpoint, a CSV history, and a
NaN guard that stops with a clear message while keeping the last good checkpoint.

`get_strategy` builds the `tf.distribute` strategy named on the command line. Keras 3's `model.fit`
does not support `MultiWorkerMirroredStrategy` (keras#20585), so `fit_model` drives the model's own
`train_step` with `strategy.run` over a distributed dataset for that strategy.
"""

import json
import math
import os
import time

import keras
import numpy as np
import tensorflow as tf

from vsa_tf.files import atomic_save_weights
from vsa_tf.config import atomic_write_text
from vsa_tf.models.cross_replica import bools_as_int32

STRATEGIES = ("default", "mirrored", "multiworker")
BEST_WEIGHTS = "model.weights.h5"
HISTORY_FILE = "history.csv"
BACKUP_DIR = "backup"
STATUS_FILE = "training_status.json"


def enable_determinism():
    """Makes every TensorFlow op of this process deterministic (`vsa-tf --deterministic`).

    With `keras.utils.set_random_seed` (every trainer sets the run's seed) a run then repeats bit for
    bit on the same machine. Without it, multi-threaded CPU reductions may sum in another order when the
    machine is loaded, and training amplifies those last-digit differences (docs/results.md). It cannot
    be undone in the process, and `model.fit` then never compiles with XLA (Keras turns XLA off).
    """
    tf.config.experimental.enable_op_determinism()


class TrainingDivergedError(RuntimeError):
    """Raised when the loss became NaN or infinite; the last good checkpoint is kept."""


def get_strategy(name="default"):
    """Returns the `tf.distribute.Strategy` for `name` in {"default", "mirrored", "multiworker"}.

    "mirrored" uses every local GPU (or every logical CPU device when there is no GPU and the CPU has
    been split with `tf.config.set_logical_device_configuration`); "multiworker" reads `TF_CONFIG`.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [device.name for device in gpus] or [device.name for device in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError("strategy 'multiworker' needs the TF_CONFIG environment variable (cluster and task)")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"Unknown strategy {name!r}; expected one of {STRATEGIES}")


def split_cpu(num_devices):
    """Splits the CPU into `num_devices` logical devices (must run before TensorFlow initialises them)."""
    physical = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        physical[0], [tf.config.LogicalDeviceConfiguration() for _ in range(num_devices)]
    )


def is_chief():
    """True on the single-worker path and on worker 0 of a multi-worker cluster."""
    config = json.loads(os.environ.get("TF_CONFIG", "{}"))
    task = config.get("task", {})
    return task.get("type", "worker") in ("chief", "worker") and int(task.get("index", 0)) == 0 and (
        task.get("type") != "worker" or "chief" not in config.get("cluster", {})
    )


class AtomicBestWeights(keras.callbacks.Callback):
    """Saves the weights whenever `monitor` improves, writing a temporary file then renaming it.

    Args:
        path: destination `.weights.h5` file.
        monitor: a key of the epoch logs (e.g. "val_loss" or "val_recall_sum"); absent → every epoch.
        mode: "min" or "max".
    """
    def __init__(self, path, monitor="val_loss", mode="min"):
        super().__init__()
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', received {mode!r}")
        self.path = path
        self.monitor = monitor
        self.mode = mode
        self.best = math.inf if mode == "min" else -math.inf

    @property
    def record_path(self):
        """JSON beside the weights with the best value so far, so a resumed run keeps comparing against it."""
        return self.path + ".json"

    def on_train_begin(self, logs=None):
        if os.path.exists(self.record_path) and os.path.exists(self.path):
            with open(self.record_path, encoding="utf-8") as stream:
                record = json.load(stream)
            if record.get("monitor") == self.monitor and record.get("value") is not None:
                self.best = float(record["value"])

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is not None:
            value = float(value)
            if not math.isfinite(value):
                return
            improved = value < self.best if self.mode == "min" else value > self.best
            if not improved:
                return
            self.best = value
        save_weights_atomically(self.model, self.path)

        record = {"monitor": self.monitor, "value": value, "epoch": int(epoch)}
        atomic_write_text(self.record_path, json.dumps(record) + "\n")


save_weights_atomically = atomic_save_weights  # the name callers know


class PatienceStopping(keras.callbacks.Callback):
    """Stops training when `monitor` has not improved for `patience` epochs; survives a resume.

    Keras' `EarlyStopping` counts the epochs since the best one in memory, so a run resumed by
    `BackupAndRestore` would start counting again. Here the count is the absolute epoch index minus the
    best epoch's, and the best value and epoch are read back from `AtomicBestWeights`' record file.

    Args:
        patience: epochs without improvement before stopping (>= 1).
        monitor: a key of the epoch logs; an epoch without it never counts as an improvement.
        mode: "min" or "max".
        record_path: optional JSON written by `AtomicBestWeights` ({"monitor", "value", "epoch"}).
    """
    def __init__(self, patience, monitor="val_loss", mode="min", record_path=None):
        super().__init__()
        if int(patience) < 1:
            raise ValueError(f"patience must be >= 1, received {patience!r}")
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', received {mode!r}")
        self.patience = int(patience)
        self.monitor = monitor
        self.mode = mode
        self.record_path = record_path
        self.best = math.inf if mode == "min" else -math.inf
        self.best_epoch = -1
        self.stopped_epoch = None

    def on_train_begin(self, logs=None):
        if self.record_path and os.path.exists(self.record_path):
            with open(self.record_path, encoding="utf-8") as stream:
                record = json.load(stream)
            if record.get("monitor") == self.monitor and record.get("value") is not None:
                self.best, self.best_epoch = float(record["value"]), int(record.get("epoch", -1))

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is not None and math.isfinite(float(value)):
            value = float(value)
            if (value < self.best) if self.mode == "min" else (value > self.best):
                self.best, self.best_epoch = value, int(epoch)
                return
        if int(epoch) - self.best_epoch >= self.patience:
            self.stopped_epoch = int(epoch)
            self.model.stop_training = True
            print(
                f"early stopping after epoch {epoch + 1}: {self.monitor} has not improved for {self.patience} epoch(s) "
                f"(best {self.best:.4g} at epoch {self.best_epoch + 1})",
                flush=True,
            )


class NanGuard(keras.callbacks.Callback):
    """Stops training as soon as a batch loss is NaN/inf and remembers why (the best checkpoint stays)."""
    def __init__(self):
        super().__init__()
        self.diverged_at = None

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.diverged_at = {"epoch": getattr(self, "_epoch", None), "batch": int(batch), "loss": float(loss)}
            self.model.stop_training = True

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = int(epoch)


def fit_model(
    model,
    train_dataset,
    validation_dataset=None,
    run_dir=None,
    epochs=1,
    callbacks=None,
    monitor="val_loss",
    monitor_mode="min",
    strategy=None,
    steps_per_epoch=None,
    verbose="auto",
    patience=None,
):
    """Trains `model` (already compiled) with backups, atomic best weights, history and a NaN guard.

    Args:
        model: a compiled `keras.Model` (built inside `strategy.scope()` when a strategy is used).
        train_dataset: a batched `tf.data.Dataset` of feature dicts.
        validation_dataset: optional batched dataset for `val_*` metrics.
        run_dir: the run folder; `backup/`, `history.csv` and `model.weights.h5` go there.
        epochs: total epochs (a resumed run continues up to this count).
        callbacks: extra callbacks (e.g. a retrieval evaluator that adds `val_*` logs).
        monitor, monitor_mode: the log key deciding the best checkpoint.
        strategy: a `tf.distribute.Strategy`; a `MultiWorkerMirroredStrategy` uses a custom loop.
        steps_per_epoch: optional cap on steps per epoch.
        verbose: passed to `model.fit` (progress bar by default).
        patience: stop when `monitor` has not improved for this many epochs (`PatienceStopping`,
            resume-safe); None trains every epoch. Early stopping makes a large `epochs` a safe budget.
    Returns:
        `keras.callbacks.History`-like dict of per-epoch logs.
    Raises:
        TrainingDivergedError: the loss became NaN/inf (the best weights so far stay on disk).
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, received {epochs}")
    if patience is not None and _stopped_before(run_dir, monitor, patience):
        print(f"{run_dir}: training already stopped early ({monitor} last improved more than {patience} epoch(s) "
              "before its last epoch); nothing to train (raise patience to go on)", flush=True)
        return {}
    nan_guard = NanGuard()
    callbacks = _assemble_callbacks(callbacks, run_dir, monitor, monitor_mode, patience, nan_guard)
    started = time.time()
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        history = _fit_multiworker(model, train_dataset, strategy, epochs, steps_per_epoch, callbacks, verbose)
    else:
        history = _fit_keras(model, train_dataset, validation_dataset, strategy, epochs, steps_per_epoch, callbacks, verbose)
    if nan_guard.diverged_at is not None:
        _raise_diverged(nan_guard.diverged_at, run_dir)
    if run_dir is not None:
        _write_status(run_dir, {"status": "finished", "epochs": epochs, "seconds": round(time.time() - started, 2)})
    return history


def _stopped_before(run_dir, monitor, patience):
    """Whether the run in `run_dir` already trained `patience` epochs past its best `monitor` value.

    Read from the best-weights record and the rows of `history.csv`, so a finished run that stopped
    early is not trained one more epoch each time its command is run again.
    """
    if run_dir is None:
        return False
    record_path, history_path = os.path.join(run_dir, BEST_WEIGHTS + ".json"), os.path.join(run_dir, HISTORY_FILE)
    if not (os.path.exists(record_path) and os.path.exists(history_path)):
        return False
    with open(record_path, encoding="utf-8") as stream:
        record = json.load(stream)
    if record.get("monitor") != monitor or record.get("epoch") is None:
        return False
    with open(history_path, encoding="utf-8") as stream:
        epochs_done = max(sum(1 for line in stream if line.strip()) - 1, 0)  # minus the header
    return epochs_done - 1 - int(record["epoch"]) >= int(patience)


def _assemble_callbacks(callbacks, run_dir, monitor, monitor_mode, patience, nan_guard):
    """The callbacks `fit_model` passes on: the caller's, patience stopping, the run folder's, then `nan_guard`.

    Creates `run_dir` when one is given.
    """
    callbacks = list(callbacks or [])
    if patience is not None:  # after the callbacks that add `val_*` logs (e.g. a retrieval evaluator)
        record = os.path.join(run_dir, BEST_WEIGHTS + ".json") if run_dir is not None else None
        callbacks.append(PatienceStopping(patience, monitor=monitor, mode=monitor_mode, record_path=record))
    if run_dir is not None:
        os.makedirs(run_dir, exist_ok=True)
        # BackupAndRestore goes last: an epoch counts as done for a resumed run only once its
        # validation metrics, best weights and history row have been written.
        callbacks = [
            *callbacks,
            AtomicBestWeights(os.path.join(run_dir, BEST_WEIGHTS), monitor=monitor, mode=monitor_mode),
            keras.callbacks.CSVLogger(os.path.join(run_dir, HISTORY_FILE), append=True),
            keras.callbacks.BackupAndRestore(os.path.join(run_dir, BACKUP_DIR), save_freq="epoch", delete_checkpoint=False),
        ]
    callbacks.append(nan_guard)
    return callbacks


def _fit_keras(model, train_dataset, validation_dataset, strategy, epochs, steps_per_epoch, callbacks, verbose):
    """`model.fit` for the default and mirrored strategies; returns its per-epoch logs."""
    if strategy is not None and strategy.num_replicas_in_sync > 1:
        # keras 3.15 averages the first distributed batch to build the model, which fails on bool masks.

        train_dataset = bools_as_int32(train_dataset)
        validation_dataset = None if validation_dataset is None else bools_as_int32(validation_dataset)
    return model.fit(
        train_dataset,
        validation_data=validation_dataset,
        epochs=epochs,
        callbacks=callbacks,
        steps_per_epoch=steps_per_epoch,
        verbose=verbose,
    ).history


def _raise_diverged(diverged_at, run_dir):
    """Raises `TrainingDivergedError` for `NanGuard.diverged_at`, after writing the run's diverged status."""
    message = (
        f"Training diverged: loss {diverged_at['loss']} at epoch {diverged_at['epoch']}, "
        f"batch {diverged_at['batch']}. Lower the learning rate or check the data. "
    )
    if run_dir is not None:
        kept = os.path.join(run_dir, BEST_WEIGHTS)
        message += f"The last good weights are kept at {kept}." if os.path.exists(kept) else "No epoch finished, so no weights were saved."
        _write_status(run_dir, {"status": "diverged", **diverged_at})
    raise TrainingDivergedError(message)


def _write_status(run_dir, status):

    atomic_write_text(os.path.join(run_dir, STATUS_FILE), json.dumps(status, indent=2) + "\n")


def _fit_multiworker(model, train_dataset, strategy, epochs, steps_per_epoch, callbacks, verbose):
    """Custom loop for MultiWorkerMirroredStrategy: `strategy.run(model.train_step)` on each replica.

    Keras 3's `model.fit` rejects this strategy (keras#20585). The model's own `train_step` (its loss,
    gradient clipping and optimizer) runs per replica; gradients are all-reduced by the optimizer
    inside the strategy's replica context. Callbacks get the same epoch/batch hooks as with `fit`.
    """
    distributed = strategy.experimental_distribute_dataset(train_dataset)

    @tf.function
    def distributed_step(batch):
        logs = strategy.run(model.train_step, args=(batch,))
        return {key: strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None) for key, value in logs.items()}

    callback_list = keras.callbacks.CallbackList(callbacks, model=model, add_history=True, add_progbar=verbose != 0,
                                                 verbose=1 if verbose == "auto" else verbose, epochs=epochs,
                                                 steps=steps_per_epoch)
    model.stop_training = False
    callback_list.on_train_begin()
    initial_epoch = int(getattr(model, "_initial_epoch", 0) or 0)
    logs = {}
    for epoch in range(initial_epoch, epochs):
        model.reset_metrics()  # the logged loss is this epoch's mean, as with `model.fit`
        callback_list.on_epoch_begin(epoch)
        epoch_logs = []
        for step, batch in enumerate(distributed):
            if steps_per_epoch is not None and step >= steps_per_epoch:
                break
            callback_list.on_train_batch_begin(step)
            step_logs = {key: float(value) for key, value in distributed_step(batch).items()}
            epoch_logs.append(step_logs)
            callback_list.on_train_batch_end(step, step_logs)
            if model.stop_training:
                break
        logs = {key: float(np.mean([entry[key] for entry in epoch_logs])) for key in (epoch_logs[0] if epoch_logs else {})}
        callback_list.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    callback_list.on_train_end(logs)
    return model.history.history if getattr(model, "history", None) is not None else {}
