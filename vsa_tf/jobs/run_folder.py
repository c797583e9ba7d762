"""Run folders: the one place that knows their layout, opens them and loads their models.

A run folder (docs/CONVENTIONS.md) holds `config.json` (the run's config dataclass, with its `kind`
and its `DataConfig`), `vocabulary.txt`, `model.weights.h5` (the best epoch), and what
`vsa_tf.training.fit_model` writes beside them (`backup/`, `history.csv`, `training_status.json`).
An SC-NLM run also keeps `tags.txt` and `structures.json`; a trainer with a test split writes its
scores to `retrieval_test.json`. Every file is written atomically (`vsa_tf.files`).

`Run.load(folder)` rebuilds the model of any kind from the table `MODEL_LOADERS` (the models come from
`vsa_tf.jobs.builders`), so no job module needs another to load a run.
"""

import dataclasses
import json
import os

from vsa_tf import training
from vsa_tf.config import AlignmentConfig, CaptionConfig, EmbeddingConfig, ProposalConfig, SCNLMConfig, save_config
from vsa_tf.data import features as features_lib
from vsa_tf.data import pos_tags as pos_tags_lib
from vsa_tf.data import readers
from vsa_tf.data import validate
from vsa_tf.data.text import Vocabulary
from vsa_tf.files import atomic_write_text
from vsa_tf.jobs import builders

CONFIG_FILE = "config.json"
VOCABULARY_FILE = "vocabulary.txt"
WEIGHTS_FILE = training.BEST_WEIGHTS  # fit_model writes it, with history.csv and backup/
TAGS_FILE = "tags.txt"
STRUCTURES_FILE = "structures.json"
TEST_RETRIEVAL_FILE = "retrieval_test.json"
# A run trained with `data.proposals`: that proposals run's boxes for the dataset, recorded as `data.boxes`.
PROPOSAL_BOXES_FILE = "proposal_boxes.json"
CONFIG_CLASSES = {
    "alignment": AlignmentConfig, "caption": CaptionConfig, "embedding": EmbeddingConfig, "scnlm": SCNLMConfig,
    "proposals": ProposalConfig,
}

# The fields of a config that a re-run into an existing run folder may change. `epochs`: a re-run
# resumes an interrupted run or trains a finished one on up to the new count (BackupAndRestore);
# `patience`: when to stop early (the count survives a resume, `vsa_tf.training.PatienceStopping`);
# `jit_compile`: compiling the step with XLA computes the same model. Every other field shapes the
# model, its vocabulary, its data or its optimisation, so the saved weights would not fit it (or the
# folder would mix two runs).
RESUMABLE_FIELDS = ("epochs", "patience", "jit_compile")
DATA_PATH_FIELDS = ("dataset", "images", "boxes", "proposals", "features")
# How a captions file splits (`DataConfig.split_of_file` / `split_files`): they belong to one file.
SPLIT_OPTION_FIELDS = ("split_of_file", "split_files")


@dataclasses.dataclass
class Run:
    """A run folder opened: its config, its vocabulary and (once loaded) its model with the best weights.

    Attributes:
        folder: the run folder.
        kind: "alignment", "caption", "embedding" or "scnlm" (`config.kind`).
        config: the run's config dataclass (`CONFIG_CLASSES[kind]`), older fields migrated.
        vocabulary: the run's `Vocabulary`.
        model: the model with the best weights, or None for a run only opened.
        extras: what a kind keeps besides (an SC-NLM run: "tags", "structures", "embedding" run).
    """

    folder: str
    kind: str
    config: object
    vocabulary: Vocabulary
    model: object = None
    extras: dict = dataclasses.field(default_factory=dict)

    def path(self, name):
        """The path of the run's file `name`."""
        return os.path.join(self.folder, name)

    @property
    def weights_path(self):
        return self.path(WEIGHTS_FILE)

    @classmethod
    def open(cls, folder, kind=None, features=None):
        """Reads a run's config and vocabulary (no model); errors name the folder.

        `features`: a features folder to read a cached run's feature width from when its config is
        older than `ImageEncoderConfig.feature_dim` (default: the folder the run was trained on).

        Raises:
            ValueError: no such folder, no or an invalid `config.json`, another `kind` than asked.
        """
        folder = os.fspath(folder)
        values = read_config_values(folder)
        if kind is not None and values["kind"] != kind:
            raise ValueError(f"{folder} is a {values['kind']!r} run; expected a {kind!r} run")
        if values["kind"] not in CONFIG_CLASSES:
            raise ValueError(f"{folder}: unknown run kind {values['kind']!r}; expected one of {sorted(CONFIG_CLASSES)}")
        try:
            config = CONFIG_CLASSES[values["kind"]].from_dict(values)  # `from_dict` migrates older runs' fields
        except (TypeError, ValueError) as error:
            raise ValueError(f"Config file {os.path.join(folder, CONFIG_FILE)}: {error}") from None
        vocabulary = Vocabulary.load(os.path.join(folder, VOCABULARY_FILE))
        return cls(folder, values["kind"], _with_feature_dim(config, features), vocabulary)

    @classmethod
    def load(cls, folder, kind=None, features=None):
        """`Run.open`, then the model of the run's kind with its best weights (`MODEL_LOADERS`)."""
        run = cls.open(folder, kind, features)
        if not os.path.exists(run.weights_path):
            raise ValueError(f"{run.folder}: {WEIGHTS_FILE} is missing (training never finished an epoch)")
        extras = _load_extras(run)
        model = MODEL_LOADERS[run.kind](run.config, run.vocabulary, extras)
        model.load_weights(run.weights_path)
        return dataclasses.replace(run, model=model, extras=extras)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def data_config(self, data_config=None):
        """The data to evaluate the run on: `data_config`'s locations with the run's tensor settings.

        None gives the run's own `DataConfig`. Otherwise boxes and words are cut the way the model was
        trained; only the locations (and how the captions file splits, where given) come from the caller.
        """
        run_data = self.config.data
        if data_config is None:
            return run_data
        given_splits = {name: getattr(data_config, name) for name in SPLIT_OPTION_FIELDS if getattr(data_config, name) is not None}
        return with_dataset(
            run_data,
            data_config.dataset,
            images=data_config.images or run_data.images,
            boxes=data_config.boxes if data_config.boxes is not None else run_data.boxes,
            features=data_config.features if data_config.features is not None else run_data.features,
            **given_splits,
        )

    def write_json(self, name, value, sort_keys=False):
        """Writes `value` as the run's JSON file `name` (atomically); returns its path."""
        path = self.path(name)
        write_json(path, value, sort_keys=sort_keys)
        return path


def as_run(run_or_folder, kind=None, features=None):
    """A loaded `Run` from a run folder or from a `Run` (checked to be of `kind` when given).

    `features`: as in `Run.open`, for runs older than `ImageEncoderConfig.feature_dim`.
    """
    if isinstance(run_or_folder, Run):
        if kind is not None and run_or_folder.kind != kind:
            raise ValueError(f"{run_or_folder.folder} is a {run_or_folder.kind!r} run; expected a {kind!r} run")
        return run_or_folder if run_or_folder.model is not None else Run.load(run_or_folder.folder, kind, features)
    if isinstance(run_or_folder, (str, os.PathLike)):
        return Run.load(run_or_folder, kind, features)
    raise ValueError(f"Expected a run folder or a vsa_tf.jobs.run_folder.Run; received {type(run_or_folder).__name__}")


def write_json(path, value, sort_keys=False):
    """`value` as indented JSON at `path`, written atomically."""
    atomic_write_text(path, json.dumps(value, indent=2, sort_keys=sort_keys) + "\n")


def read_config_values(folder):
    """The run's config.json as a dict, with errors that name the folder."""
    path = os.path.join(folder, CONFIG_FILE)
    if not os.path.isdir(folder):
        raise ValueError(f"Run folder not found: {folder}")
    if not os.path.exists(path):
        raise ValueError(f"{folder} is not a vsa_tf run: {CONFIG_FILE} is missing")
    values = readers.load_json(path, CONFIG_FILE)  # malformed JSON or not UTF-8: a ValueError naming it
    if not isinstance(values, dict) or "kind" not in values:
        raise ValueError(f"{path} has no 'kind' field; expected one of {sorted(CONFIG_CLASSES)}")
    return values


def run_kind(folder):
    """The kind of the run in `folder` ("alignment", "caption", "embedding" or "scnlm")."""
    return read_config_values(folder)["kind"]


def feature_mode(config):
    """"cached" or "pixels": how a run of `config` reads images (its image encoder's mode; a config
    without an image side, an SC-NLM's, reads cached features whenever `data.features` is set)."""
    image = getattr(config, "image", None)
    if image is not None:
        return image.mode
    return "cached" if config.data.features else "pixels"


def split_data(run, data_config=None, split="test"):
    """What evaluating a loaded `run` on a split reads: (data config, records, boxes, feature store).

    `data_config` gives the locations (`Run.data_config`); the data is validated for the run's feature
    mode and an empty split is refused, naming the captions file. A `data_config.proposals` run must
    already be resolved into boxes (`vsa_tf.jobs.proposal_boxes.split_data_config`).
    """
    data_config = run.data_config(data_config)
    mode = getattr(run.model, "feature_mode", "cached" if data_config.features else "pixels")
    dataset, boxes, store = validate.load_checked_data(data_config, mode, splits=(split,))
    records = dataset.split(split)
    if not records:
        raise ValueError(f"{data_config.dataset}: the {split!r} split is empty")
    return data_config, records, boxes, store


def _with_feature_dim(config, features=None):
    """Runs saved before `ImageEncoderConfig.feature_dim` existed: the features folder tells their width."""
    image = getattr(config, "image", None)
    features = features or config.data.features
    if image is None or not image.cached or image.feature_dim is not None or not features:
        return config
    return config.replace(image=image.replace(feature_dim=features_lib.FeatureStore(features).dims))


def _load_extras(run):
    if run.kind != "scnlm":
        return {}
    with open(run.path(STRUCTURES_FILE), encoding="utf-8") as stream:
        structures = json.load(stream)
    return {
        "tags": pos_tags_lib.TagVocabulary.load(run.path(TAGS_FILE)),
        "structures": structures,
        "embedding": Run.load(run.config.embedding_run, "embedding"),
    }


# kind -> function(config, vocabulary, extras) returning the built model, ready for `load_weights`.
MODEL_LOADERS = {
    "alignment": lambda config, vocabulary, extras: builders.build_alignment_model(
        config, vocabulary.size, load_backbone_weights=False
    ),
    "caption": lambda config, vocabulary, extras: builders.build_caption_model(
        config, vocabulary.size, load_backbone_weights=False
    ).build_from_dummy(),
    "embedding": lambda config, vocabulary, extras: builders.build_embedding_model(
        config, vocabulary.size, load_backbone_weights=False
    ),
    "scnlm": lambda config, vocabulary, extras: builders.build_scnlm_model(
        config, vocabulary.size, extras["tags"].size, extras["embedding"].config.embedding_dim
    ),
    "proposals": lambda config, vocabulary, extras: builders.build_proposal_model(config, load_backbone_weights=False),
}


# ---------------------------------------------------------------------------------------------
# Writing a run: absolute paths, the same-settings check, the config and vocabulary files


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


def check_same_settings(folder, config, vocabulary=None, resumable=RESUMABLE_FIELDS):
    """Before a training job writes into `folder`: if the folder already holds a run, it must be this run.

    A folder without `config.json` is new. Otherwise the saved config must be of the same kind and
    equal to `config` in every field but `resumable` (the old run's relative data paths are read
    from the current directory, as older runs stored them as typed), and, when `vocabulary` is
    given, the saved `vocabulary.txt` must hold the same words. Nothing is written.

    Raises:
        ValueError: naming the folder and each differing field with its saved and new values.
    """
    if not os.path.exists(os.path.join(folder, CONFIG_FILE)):
        return
    values = read_config_values(folder)
    advice = f"pick another run folder (--out) to train a new run, or delete {folder}"
    if values["kind"] != config.kind:
        raise ValueError(f"{folder} already holds a {values['kind']!r} run, not a {config.kind!r} run; {advice}")
    try:
        saved = type(config).from_dict(values)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{folder} holds a run whose {CONFIG_FILE} does not load ({error}); {advice}") from None
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
            f"{folder} already holds a {config.kind!r} run trained with other settings (saved -> new): "
            f"{'; '.join(differing)}. A re-run into a run folder resumes or extends that run and may change only "
            f"{', '.join(resumable)}; {advice}"
        )
    vocabulary_path = os.path.join(folder, VOCABULARY_FILE)
    if vocabulary is not None and os.path.exists(vocabulary_path):
        saved_words = Vocabulary.load(vocabulary_path).words
        if saved_words != vocabulary.words:
            raise ValueError(
                f"{folder} already holds a run whose {VOCABULARY_FILE} ({len(saved_words)} words) differs from the "
                f"vocabulary of {config.data.dataset} ({len(vocabulary.words)} words): the dataset changed since; {advice}"
            )


def write_run_files(run):
    """Creates the run folder and writes its `config.json` and `vocabulary.txt` (atomically)."""
    os.makedirs(run.folder, exist_ok=True)
    save_config(run.config, run.path(CONFIG_FILE))
    run.vocabulary.save(run.path(VOCABULARY_FILE))


def history_lists(history):
    """A Keras history ({key: per-epoch values}) as plain float lists (JSON-ready)."""
    return {key: [float(value) for value in values] for key, values in dict(history).items()}
