"""Run folders: find a run's kind and rebuild its model, whatever job wrote it."""

import importlib
import json
import os

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


# Fields added after runs were first written, with the value those older runs were trained with
# (a config.json without the field predates it; new runs always write every field).
DEFAULTS_OF_OLDER_RUNS = {"pooling": "average"}


def open_run(run_dir, kind, config_class):
    """The parts every run loader starts from: `(config, vocabulary, weights_path)`.

    Checks that `run_dir` is a run of `kind` and that its best weights exist, with errors that name
    the folder; the caller builds the model and loads `weights_path`.
    """
    import dataclasses

    from vsa_tf.data.text import Vocabulary
    from vsa_tf.training import BEST_WEIGHTS

    values = read_run_config(run_dir)
    if values["kind"] != kind:
        raise ValueError(f"{run_dir} is a {values['kind']!r} run; expected a {kind!r} run")
    fields = {field.name for field in dataclasses.fields(config_class)}
    values = {**{name: value for name, value in DEFAULTS_OF_OLDER_RUNS.items() if name in fields}, **values}
    try:
        config = config_class.from_dict(values)
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
