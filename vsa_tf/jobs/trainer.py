"""One training skeleton for every model, like a `Task` of tensorflow/models `official/core`.

`train(task, config, folder)` runs the steps every trainer shares, in this order:

    [the boxes of `data.proposals` into the folder] → validate the data → build the vocabulary → check
    the folder (same settings) → save config + vocabulary → build the datasets → build and compile the
    model in the strategy's scope → fit (`vsa_tf.training.fit_model`: backups, best weights, history,
    early stopping after `config.patience` epochs without a better monitored value) → load the best
    weights → evaluate on the test split → `TrainingResult`

A `TrainingTask` subclass fills in what differs between models (its model, datasets, callbacks and
test evaluation); a new model's trainer is a task of a few methods, never another driver.
"""

import dataclasses
import os

import keras

from vsa_tf import training
from vsa_tf.config import DataConfig
from vsa_tf.data import records as records_lib
from vsa_tf.data import text as text_lib
from vsa_tf.data import validate
from vsa_tf.jobs import proposal_boxes, run_folder
from vsa_tf.jobs.run_folder import Run


@dataclasses.dataclass
class TrainingResult:
    """What every trainer returns.

    Attributes:
        run: the trained `Run`, its model holding the best weights.
        history: {log key: [per-epoch values]} of this training (`loss`, `val_*`, ...).
        test: the test-split evaluation (also saved in the run folder), or None.
    """

    run: Run
    history: dict
    test: dict = None


@dataclasses.dataclass
class TrainingData:
    """The validated data of a training job: the dataset, its splits, boxes and cached features."""

    dataset: object
    boxes: dict = None
    store: object = None
    extras: dict = dataclasses.field(default_factory=dict)

    def split(self, name):
        return self.dataset.split(name)


class TrainingTask:
    """What one model's trainer adds to `train`; override the methods that differ.

    Attributes:
        kind: the run kind the task writes (`config.kind`).
        config_class: the config dataclass it trains from.
        test_file: the run file `evaluate` is saved to.
        path_fields: config fields besides the data paths saved as absolute paths.
        folder: the run folder, set by `train` before `prepare`.
    """

    kind = None
    config_class = None
    test_file = run_folder.TEST_RETRIEVAL_FILE
    path_fields = ()
    folder = None

    def prepare(self, config):
        """Checks the config and returns it with absolute paths (run before any data is read)."""
        return run_folder.absolute_paths(config, self.path_fields)

    def load_data(self, config):
        """The validated data (`TrainingData`); a `ValueError` lists every problem, nothing is written yet."""
        dataset, boxes, store = validate.load_checked_data(config.data, run_folder.feature_mode(config))
        if not dataset.split("train"):
            raise ValueError(f"{config.data.dataset}: the train split is empty")
        return TrainingData(dataset, boxes, store)

    def record_data(self, config, data):
        """The config to save, given the data (e.g. the width of the cached features)."""
        return config

    def build_vocabulary(self, config, data):
        """The vocabulary of the train split's words (count >= `data.min_word_count`)."""
        return text_lib.Vocabulary.from_counts(records_lib.word_counts(data.split("train")), min_count=config.data.min_word_count)

    def build_datasets(self, run, data):
        """(train batches, validation batches or None)."""
        raise NotImplementedError

    def write_files(self, run, data):
        """Writes the task's own run files (after config and vocabulary, before the model is built)."""

    def build_model(self, run, train_batches):
        """The compiled model (called inside the strategy's scope)."""
        raise NotImplementedError

    def callbacks(self, run, data, validation_batches):
        """(extra callbacks, monitored log key, "min" or "max") deciding the best weights."""
        return [], ("val_loss" if validation_batches is not None else "loss"), "min"

    def run_extras(self, data):
        """The `Run.extras` of the trained run (what `Run.load` would find beside the model)."""
        return {}

    def evaluate(self, run, data):
        """The test-split report saved as `test_file`, or None (no test split, or nothing to report)."""
        return None


def with_data(config, data_config):
    """`config` reading `data_config` (a `DataConfig`) instead of its own data; None keeps it."""
    if data_config is None:
        return config
    if not isinstance(data_config, DataConfig):
        raise ValueError(f"data_config must be a DataConfig, received {type(data_config).__name__}")
    return config.replace(data=data_config)


def with_proposal_boxes(config, folder):
    """`config` whose `data.boxes` are its `data.proposals` run's, written into the run folder; unchanged without one.

    The boxes go to `folder/PROPOSAL_BOXES_FILE` (reused when a resumed run's file came from the same
    proposals run and images), so the run folder holds the boxes it was trained on, and the saved config
    records that file as `data.boxes` and the proposals run as `data.proposals`. It is the one file
    written before the data is validated: a folder holding another run, or one trained from other
    proposals, is refused first.
    """
    if not config.data.proposals:
        return config
    if os.path.exists(os.path.join(folder, run_folder.CONFIG_FILE)):
        saved = run_folder.read_config_values(folder)
        saved_proposals = saved.get("data", {}).get("proposals")
        if saved["kind"] != config.kind or saved_proposals is None or os.path.abspath(saved_proposals) != config.data.proposals:
            raise ValueError(
                f"{folder} already holds a {saved['kind']!r} run with proposals {saved_proposals!r}, not a {config.kind!r} run "
                f"with proposals {config.data.proposals!r}; pick another run folder (--out), or delete {folder}"
            )
    boxes_path = os.path.abspath(os.path.join(folder, run_folder.PROPOSAL_BOXES_FILE))
    return config.replace(data=proposal_boxes.with_proposal_boxes(config.data, out=boxes_path))


def train(task, config, folder, verbose="auto", strategy="default", steps_per_epoch=None, data_config=None):
    """Trains `task`'s model from `config` into the run folder `folder`.

    A folder that already holds a run is resumed or extended only when the new config equals the saved
    one but for `run_folder.RESUMABLE_FIELDS` (and the vocabulary is the same); otherwise a `ValueError`
    names the differing fields and nothing is written.

    Args:
        task: a `TrainingTask`.
        config: the task's config dataclass.
        folder: the run folder.
        verbose: `model.fit` verbosity.
        strategy: "default", "mirrored", "multiworker" (`vsa_tf.training.get_strategy`) or a
            `tf.distribute.Strategy`; `config.batch_size` is the global batch, split across replicas.
        steps_per_epoch: optional cap on the steps of an epoch.
        data_config: a `DataConfig` replacing `config.data` (and saved in its place); None keeps it.

    Returns:
        a `TrainingResult`.
    """
    if not isinstance(config, task.config_class):
        raise ValueError(f"Training a {task.kind!r} run needs a {task.config_class.__name__}, received {type(config).__name__}")
    config = with_data(config, data_config)
    if not folder:
        raise ValueError(f"Training a {task.kind!r} run needs a run folder, received {folder!r}")
    # First: MultiWorkerMirroredStrategy must be created before TensorFlow runs any op.
    strategy = training.get_strategy(strategy) if isinstance(strategy, str) else strategy
    task.folder = str(folder)
    config = task.prepare(config)
    config = with_proposal_boxes(config, folder)
    data = task.load_data(config)
    config = task.record_data(config, data)
    vocabulary = task.build_vocabulary(config, data)
    run_folder.check_same_settings(folder, config, vocabulary)

    keras.utils.set_random_seed(config.seed)
    run = Run(str(folder), task.kind, config, vocabulary)
    run_folder.write_run_files(run)
    task.write_files(run, data)  # first: a task's datasets may read them (the proposal job's frozen CNN)
    train_batches, validation_batches = task.build_datasets(run, data)
    with strategy.scope():
        model = task.build_model(run, train_batches)
    callbacks, monitor, monitor_mode = task.callbacks(run, data, validation_batches)
    history = training.fit_model(
        model, train_batches, validation_batches, run_dir=run.folder, epochs=config.epochs, callbacks=callbacks,
        monitor=monitor, monitor_mode=monitor_mode, steps_per_epoch=steps_per_epoch, verbose=verbose, strategy=strategy,
        patience=config.patience or None,
    )
    run = run.replace(model=model, extras=task.run_extras(data))
    if os.path.exists(run.weights_path):  # the best epoch's weights
        model.load_weights(run.weights_path)
    test = task.evaluate(run, data)
    if test is not None:
        run.write_json(task.test_file, test)
    return TrainingResult(run, run_folder.history_lists(history), test)
