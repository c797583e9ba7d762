"""Run folders: find a run's kind and rebuild its model, whatever job wrote it."""

import importlib
import json
import os

from vsa_tf.data.text import Vocabulary
from vsa_tf.training import BEST_WEIGHTS

# kind -> (module, loader function); each loader takes the run folder and returns a `LoadedRun`-like
# object with at least `.model`, `.vocabulary` and `.config`.
RUN_LOADERS = {
    "alignment": ("vsa_tf.jobs.alignment", "load_alignment_run"),
    "caption": ("vsa_tf.jobs.captioning", "load_caption_run"),
    "embedding": ("vsa_tf.jobs.embedding", "load_embedding_run"),
    "scnlm": ("vsa_tf.jobs.embedding", "load_scnlm_run"),
}
CONFIG_FILE = "config.json"
VOCABULARY_FILE = "vocabulary.txt"


def read_run_config(run_dir):
    """The run's config.json as a dict, with errors that name the folder."""
    path = os.path.join(run_dir, CONFIG_FILE)
    if not os.path.isdir(run_dir):
        raise ValueError(f"Run folder not found: {run_dir}")
    if not os.path.exists(path):
        raise ValueError(f"{run_dir} is not a vsa_tf run: {CONFIG_FILE} is missing")
    try:
        with open(path, encoding="utf-8") as stream:
            config = json.load(stream)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(config, dict) or "kind" not in config:
        raise ValueError(f"{path} has no 'kind' field; expected one of {sorted(RUN_LOADERS)}")
    return config


def _saved_config(values, config_class):
    """`config_class` from a run's saved config.json values (`from_dict` migrates older runs' fields)."""
    return config_class.from_dict(values)


def open_run(run_dir, kind, config_class):
    """The parts every run loader starts from: `(config, vocabulary, weights_path)`.

    Checks that `run_dir` is a run of `kind` and that its best weights exist, with errors that name
    the folder; the caller builds the model and loads `weights_path`.
    """
    values = read_run_config(run_dir)
    if values["kind"] != kind:
        raise ValueError(f"{run_dir} is a {values['kind']!r} run; expected a {kind!r} run")
    try:
        config = _saved_config(values, config_class)
    except (TypeError, ValueError) as error:
        raise ValueError(f"Config file {os.path.join(run_dir, CONFIG_FILE)}: {error}") from None
    vocabulary = Vocabulary.load(os.path.join(run_dir, VOCABULARY_FILE))
    weights_path = os.path.join(run_dir, BEST_WEIGHTS)
    if not os.path.exists(weights_path):
        raise ValueError(f"{run_dir}: {BEST_WEIGHTS} is missing (training never finished an epoch)")
    return config, vocabulary, weights_path


def run_kind(run_dir):
    return read_run_config(run_dir)["kind"]


def load_run(run_dir):
    """Rebuilds the model of any run kind ("alignment", "caption", "embedding", "scnlm")."""
    kind = run_kind(run_dir)
    if kind not in RUN_LOADERS:
        raise ValueError(f"{run_dir}: unknown run kind {kind!r}; expected one of {sorted(RUN_LOADERS)}")
    module_name, function_name = RUN_LOADERS[kind]
    return getattr(importlib.import_module(module_name), function_name)(run_dir)


# ---------------------------------------------------------------------------------------------
# Writing a run: absolute paths, and re-runs into a folder that already holds a run

# The fields of a config that a re-run into an existing run folder may change. `epochs`: a re-run
# resumes an interrupted run or trains a finished one on up to the new count (BackupAndRestore);
# `jit_compile`: compiling the step with XLA computes the same model. Every other field shapes the
# model, its vocabulary, its data or its optimisation, so the saved weights would not fit it (or the
# folder would mix two runs).
RESUMABLE_FIELDS = ("epochs", "jit_compile")
DATA_PATH_FIELDS = ("dataset", "images", "boxes", "features")
# How a captions file splits (`DataConfig.split_of_file` / `split_files`): they belong to one file.
SPLIT_OPTION_FIELDS = ("split_of_file", "split_files")


def _absolute(path):
    return os.path.abspath(os.path.expanduser(path)) if path else path


def absolute_data_paths(data_config):
    """The `DataConfig` with its dataset, images, boxes, features and split list paths made absolute (None/"" kept).

    Training jobs save this form, so a run folder works from any working directory.
    """
    changes = {name: _absolute(getattr(data_config, name)) for name in DATA_PATH_FIELDS}
    if data_config.split_files is not None:
        changes["split_files"] = {split: _absolute(path) for split, path in data_config.split_files.items()}
    return data_config.replace(**changes)


def with_dataset(data_config, dataset=None, **changes):
    """`data_config` reading the captions file `dataset` (None or "": its own), with `changes` applied.

    `split_of_file` / `split_files` describe the config's own file, so another file does not inherit
    them (a Karpathy JSON would refuse them); `changes` may give that file's own.
    """
    if dataset and _absolute(dataset) != _absolute(data_config.dataset):
        data_config = data_config.replace(dataset=dataset, **dict.fromkeys(SPLIT_OPTION_FIELDS))
    return data_config.replace(**changes)


def absolute_paths(config, fields=()):
    """`config` with its `DataConfig` paths, its image encoder's weights file (when it has one) and the
    named path fields (e.g. "word_vectors") made absolute."""
    changes = {name: _absolute(getattr(config, name)) for name in fields}
    if getattr(config, "image", None) is not None:
        changes["image"] = config.image.replace(weights=_absolute(config.image.weights))
    return config.replace(data=absolute_data_paths(config.data), **changes)


def _flatten(values, prefix=""):
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def check_same_run(run_dir, config, vocabulary=None, resumable=RESUMABLE_FIELDS):
    """Before a training job writes into `run_dir`: if the folder already holds a run, it must be this run.

    A folder without `config.json` is new. Otherwise the saved config must be of the same kind and
    equal to `config` in every field but `resumable` (the old run's relative data paths are read
    from the current directory, as older runs stored them as typed), and, when `vocabulary` is
    given, the saved `vocabulary.txt` must hold the same words. Nothing is written.

    Raises:
        ValueError: naming the folder and each differing field with its saved and new values.
    """
    if not os.path.exists(os.path.join(run_dir, CONFIG_FILE)):
        return
    values = read_run_config(run_dir)
    advice = f"pick another run folder (--out; --run for train-embedding and train-scnlm) to train a new run, or delete {run_dir}"
    if values["kind"] != config.kind:
        raise ValueError(f"{run_dir} already holds a {values['kind']!r} run, not a {config.kind!r} run; {advice}")
    try:
        saved = _saved_config(values, type(config))
    except (TypeError, ValueError) as error:
        raise ValueError(f"{run_dir} holds a run whose {CONFIG_FILE} does not load ({error}); {advice}") from None
    saved = saved.replace(data=absolute_data_paths(saved.data))
    # A JSON round trip compares tuples and lists alike, as they are saved.
    old = _flatten(json.loads(saved.to_json()))
    new = _flatten(json.loads(config.to_json()))
    differing = [
        f"{name}: {old.get(name)!r} -> {new.get(name)!r}"
        for name in sorted(set(old) | set(new))
        if name not in resumable and old.get(name) != new.get(name)
    ]
    if differing:
        raise ValueError(
            f"{run_dir} already holds a {config.kind!r} run trained with other settings (saved -> new): "
            f"{'; '.join(differing)}. A re-run into a run folder resumes or extends that run and may change only "
            f"{', '.join(resumable)}; {advice}"
        )
    vocabulary_path = os.path.join(run_dir, VOCABULARY_FILE)
    if vocabulary is not None and os.path.exists(vocabulary_path):
        saved_words = Vocabulary.load(vocabulary_path).words
        if saved_words != vocabulary.words:
            raise ValueError(
                f"{run_dir} already holds a run whose {VOCABULARY_FILE} ({len(saved_words)} words) differs from the "
                f"vocabulary of {config.data.dataset} ({len(vocabulary.words)} words): the dataset changed since; {advice}"
            )
