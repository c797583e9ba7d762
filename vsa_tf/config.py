"""Typed dataclass configs with JSON round-trip, saved beside every checkpoint.

Each config documents its fields in an ``Attributes:`` block. ``save_config`` writes atomically
(temp file + rename) so a crash never leaves a half-written config next to a checkpoint.
"""

import dataclasses
import json
import math
import os
import typing

from vsa_tf.data.records import SPLITS as DATA_SPLITS
from vsa_tf.files import atomic_write_bytes, atomic_write_text, default_file_mode  # noqa: F401 (re-exported)


class ConfigMixin:
    """JSON round-trip shared by every config dataclass."""

    def to_dict(self):
        return dataclasses.asdict(self)

    def to_json(self):
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values):
        if not isinstance(values, dict):
            raise ValueError(f"{cls.__name__}: expected a JSON object, received {type(values).__name__}: {values!r}")
        values = cls.migrate(values)
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown field(s) {unknown}; known fields are {sorted(known)}")
        _check_value_types(cls, values)
        return cls(**values)

    @classmethod
    def migrate(cls, values):
        """Saved values of an older version of this config in today's form (the default: unchanged)."""
        return values

    @classmethod
    def from_json(cls, text):
        return cls.from_dict(json.loads(text))

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


def _scalar_matches(expected, value):
    """Whether a JSON value fits an `int`, `float` (finite), `bool` or `str` annotation."""
    if expected is bool:
        return isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected is float:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return False
        try:
            return math.isfinite(value)
        except OverflowError:  # an integer beyond any float
            return False
    return isinstance(value, str)


def _check_value_types(cls, values):
    """Refuses a value of the wrong JSON type for a scalar field (`int`, `float`, `bool`, `str`, their
    `Optional` and tuples of them): without it `"max_boxes": "x"` or `"learning_rate": NaN` in a
    config file would load and fail, or silently misbehave, far from the file. Nested configs and
    other annotations are left to their own `__post_init__` checks.
    """
    hints = typing.get_type_hints(cls)
    scalars = (int, float, bool, str)
    for name, value in values.items():
        expected = hints.get(name)
        arguments = typing.get_args(expected)
        if typing.get_origin(expected) is typing.Union and type(None) in arguments and len(arguments) == 2:
            if value is None:
                continue
            expected = next(argument for argument in arguments if argument is not type(None))
            arguments = typing.get_args(expected)
        if expected in scalars:
            ok = _scalar_matches(expected, value)
        elif typing.get_origin(expected) is tuple and arguments and all(
            argument in scalars or argument is Ellipsis for argument in arguments
        ):
            element_types = [arguments[0]] * len(value) if arguments[-1] is Ellipsis else list(arguments)
            ok = (
                isinstance(value, (list, tuple))
                and len(value) == len(element_types)
                and all(_scalar_matches(element, item) for element, item in zip(element_types, value))
            )
        else:
            continue
        if not ok:
            raise ValueError(f"{cls.__name__}.{name} must be {_type_name(expected)}, received {value!r:.80}")


def _type_name(annotation):
    return annotation.__name__ if isinstance(annotation, type) else str(annotation).replace("typing.", "")


def save_config(config, path):
    """Saves a config dataclass as JSON at ``path`` atomically."""
    atomic_write_text(path, config.to_json() + "\n")


def load_config(config_class, path):
    """Loads a config dataclass from a JSON file, naming the file in any error."""
    try:
        with open(path, encoding="utf-8") as stream:
            values = json.load(stream)
    except FileNotFoundError:
        raise ValueError(f"Config file not found: {path}") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"Config file {path} is not valid JSON: {error}") from None
    except UnicodeDecodeError as error:
        raise ValueError(f"Config file {path} is not UTF-8 text: {error}") from None
    try:
        return config_class.from_dict(values)
    except (TypeError, ValueError, OverflowError) as error:  # OverflowError: int() of a JSON 1e999
        raise ValueError(f"Config file {path}: {error}") from None


@dataclasses.dataclass
class DataConfig(ConfigMixin):
    """Where a dataset lives and how it is turned into tensors.

    Attributes:
        dataset: path of the captions file (Karpathy split JSON, COCO captions JSON or Flickr8k token txt).
        images: image root folder; every filename in the dataset resolves inside it.
        boxes: optional region boxes JSON (filename -> list of [x0, y0, x1, y1] pixel boxes, best first).
        proposals: optional proposals run (`vsa-tf train-proposals`) whose boxes are used instead of a
            boxes file given by hand: a training job writes them into its run folder
            (`proposal_boxes.json`) and records that file as `boxes`, keeping this path as provenance.
        image_size: (height, width) images are resized to before the CNN.
        max_boxes: detector boxes kept per image (the paper's 19); the whole image is added as region 0.
        max_words: sentences are truncated to this many words.
        min_word_count: words seen fewer times in the train split map to the unknown token.
        restval_to_train: whether Karpathy's `restval` split joins `train`.
        features: optional folder of cached region features (sharded TFRecords) used instead of pixels.
        split_of_file: COCO captions JSON whose name does not say its split (e.g. `captions.json`):
            "train", "val" or "test", the split of all its images; None takes it from the file name
            (`captions_val2014.json` -> val). Only a COCO captions JSON accepts it.
        split_files: Flickr token file (`.txt`/`.token`): `{"train"|"val"|"test": image list file}`,
            one filename a line (a split left out has no images); None reads Flickr8k's
            `Flickr_8k.{train,dev,test}Images.txt` beside the token file. Only a token file accepts it.
    """

    dataset: str = ""
    images: str = ""
    boxes: typing.Optional[str] = None
    proposals: typing.Optional[str] = None
    image_size: typing.Tuple[int, int] = (128, 128)
    max_boxes: int = 19
    max_words: int = 16
    min_word_count: int = 5
    restval_to_train: bool = True
    features: typing.Optional[str] = None
    split_of_file: typing.Optional[str] = None
    split_files: typing.Optional[typing.Dict[str, str]] = None

    def __post_init__(self):
        self.image_size = tuple(self.image_size)
        if self.split_of_file is not None and self.split_of_file not in DATA_SPLITS:
            raise ValueError(f"DataConfig.split_of_file must be one of {list(DATA_SPLITS)} or None, received {self.split_of_file!r}")
        if self.split_files is not None:
            if not isinstance(self.split_files, dict) or not all(
                split in DATA_SPLITS and isinstance(path, str) and path for split, path in self.split_files.items()
            ):
                raise ValueError(
                    f"DataConfig.split_files must map splits among {list(DATA_SPLITS)} to image list paths, "
                    f"received {self.split_files!r}"
                )
            self.split_files = dict(self.split_files)


def _data_config(value):
    """A nested DataConfig given as a dataclass or as the dict read back from JSON."""
    if isinstance(value, DataConfig):
        return value
    if isinstance(value, dict):
        return DataConfig.from_dict(value)
    raise ValueError(f"data: expected a DataConfig or a JSON object, received {type(value).__name__}: {value!r}")


# Values a config.json field had before it existed: those runs were trained with them.
POOLING_OF_OLDER_RUNS = "average"
IMAGE_MODES = ("pixels", "cached")
IMAGE_POOLINGS = ("flatten", "average")
IMAGE_NORMALIZATIONS = ("none", "l2", "layer")


@dataclasses.dataclass
class ImageEncoderConfig(ConfigMixin):
    """The image side shared by the alignment model, the captioner and the joint embedding.

    One object builds the one `vsa_tf.layers.region_features.RegionFeatureExtractor` (pixel mode) and
    tells a model how wide cached features are, so every model reads its image settings from here.

    Attributes:
        mode: "pixels" (backbone + RoIAlign on the images) or "cached" (precomputed region features
            from `DataConfig.features`).
        backbone: CNN in pixel mode (a name of `vsa_tf.layers.backbones.BACKBONE_NAMES`).
        weights: optional local weights file the backbone starts from (nothing is downloaded); a
            trained run's own weights file holds the backbone too, so loading a run never reads it.
        frozen: whether the backbone's weights stay fixed.
        filters: block widths of the built-in "simple" backbone.
        pool_size: RoIAlign bins per side.
        pooling: how the RoIAlign bins become a region's feature: "flatten" (all pool_size**2 bins
            concatenated, so layout and shape survive, as Fast R-CNN feeds fc6) or "average" (one
            C-vector; keeps colour and texture but loses shape). Pixel mode only. Runs saved before
            the field existed used "average" and still load as such.
        feature_dim: size D of a region's feature in cached mode; training jobs record it from the
            features folder, so a run folder loads without that folder.
        normalization: of a region's feature before the model's projection: "none"; "l2" (divide by
            its L2 norm: pretrained features are large, EfficientNet-Lite0's 1280-d ReLU6 features
            have norm ~28, which makes the summed ranking loss ~1e6 per batch of 100; the alignment
            model and the embedding); "layer" (LayerNormalization of CNN(I) before W_hi; the
            captioner, so b_v stays at the scale of W_hx x_1).
    """

    mode: str = "pixels"
    backbone: str = "simple"
    weights: typing.Optional[str] = None
    frozen: bool = False
    filters: typing.Tuple[int, ...] = (32, 64, 128, 128)
    pool_size: int = 2
    pooling: str = "flatten"
    feature_dim: typing.Optional[int] = None
    normalization: str = "none"

    def __post_init__(self):
        self.filters = tuple(int(count) for count in self.filters)
        for field_name, allowed in (("mode", IMAGE_MODES), ("pooling", IMAGE_POOLINGS), ("normalization", IMAGE_NORMALIZATIONS)):
            if getattr(self, field_name) not in allowed:
                raise ValueError(f"ImageEncoderConfig.{field_name} must be one of {list(allowed)}, received {getattr(self, field_name)!r}")
        if int(self.pool_size) < 1:
            raise ValueError(f"ImageEncoderConfig.pool_size must be >= 1, received {self.pool_size!r}")
        if self.feature_dim is not None and int(self.feature_dim) < 1:
            raise ValueError(f"ImageEncoderConfig.feature_dim must be >= 1 or None, received {self.feature_dim!r}")
        if not self.filters or min(self.filters) < 1:
            raise ValueError(f"ImageEncoderConfig.filters must be positive widths, received {self.filters!r}")

    @property
    def cached(self):
        return self.mode == "cached"

    def check_normalization(self, owner, allowed):
        """Raises a ValueError naming `owner` when `normalization` is not among `allowed`."""
        if self.normalization not in allowed:
            raise ValueError(f"{owner}: image normalization must be one of {list(allowed)}, received {self.normalization!r}")


def image_encoder_config(value):
    """An `ImageEncoderConfig` given as one, as the dict read back from JSON, or None (the default)."""
    if value is None:
        return ImageEncoderConfig()
    if isinstance(value, ImageEncoderConfig):
        return value
    if isinstance(value, dict):
        return ImageEncoderConfig.from_dict(value)
    raise ValueError(f"image: expected an ImageEncoderConfig or a JSON object, received {type(value).__name__}: {value!r}")


# Flat fields of configs written before `ImageEncoderConfig` -> its field names.
_FLAT_IMAGE_FIELDS = {
    "feature_mode": "mode",
    "backbone": "backbone",
    "backbone_weights": "weights",
    "backbone_frozen": "frozen",
    "backbone_filters": "filters",
    "pool_size": "pool_size",
    "pooling": "pooling",
    "feature_dim": "feature_dim",
    "feature_normalization": "normalization",
    "image_normalization": "normalization",
}


def migrate_flat_image_fields(values, dropped=()):
    """Saved config values with the flat image fields of older runs folded into a nested `image`.

    Runs written before `ImageEncoderConfig` stored `feature_mode`, `backbone*`, `pool_size`,
    `pooling`, `feature_dim` and `*_normalization` beside the model's other fields; runs older still
    had no `pooling` and were trained with "average". Values that already hold `image` are returned
    unchanged. `dropped`: fields older configs had that no longer exist (their values are ignored).
    """
    if any(name in values for name in dropped):
        values = {name: value for name, value in values.items() if name not in dropped}
    if "image" in values or not any(name in values for name in _FLAT_IMAGE_FIELDS):
        return values
    values, image = dict(values), {"pooling": POOLING_OF_OLDER_RUNS}
    for name in _FLAT_IMAGE_FIELDS:
        if name in values:
            image[_FLAT_IMAGE_FIELDS[name]] = values.pop(name)
    if "mode" not in image:  # the joint embedding chose cached features whenever data.features was set
        image["mode"] = "cached" if (values.get("data") or {}).get("features") else "pixels"
    values["image"] = image
    return values


# Fields added after runs were saved without them -> the value those runs were trained with
# (none stopped early; no captioner pretrained its CNN on the alignment objective; every alignment
# model was trained with SGD before `optimizer` existed).
FIELDS_OF_OLDER_RUNS = {"patience": 0, "image_pretraining": "none", "optimizer": "sgd", "upsampling": 1, "horizontal_flip": False,
                        "feature_stride": None, "alignment_optimizer": "sgd", "alignment_learning_rate": 1e-4,
                        "alignment_hardest_negative": False, "alignment_warmup_epochs": 0, "refine_boxes": False}
IMAGE_PRETRAININGS = ("alignment", "none")
GROUNDING_BETAS = (0.0, 0.5, 1.0, 2.0, 5.0)  # the MRF smoothing values every grounding table reports
ALIGNMENT_OPTIMIZERS = ("sgd", "adam")


def fill_fields_of_older_runs(values, fields=("patience",)):
    """Saved config values with each of `fields` that they lack set to its `FIELDS_OF_OLDER_RUNS` value.

    A run saved before a field existed was trained with that value, and its config says so once loaded.
    """
    missing = [name for name in fields if name not in values]
    if not missing:
        return values
    return {**values, **{name: FIELDS_OF_OLDER_RUNS[name] for name in missing}}


def check_patience(owner, patience):
    """Raises a ValueError naming `owner` unless `patience` is an int >= 0 (0: no early stopping)."""
    if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
        raise ValueError(f"{owner}.patience must be an integer >= 0 (0 = train every epoch), received {patience!r}")


@dataclasses.dataclass
class EmbeddingConfig(ConfigMixin):
    """Joint image-sentence embedding of Kiros et al. 2014 (section 2), trained with the ranking loss.

    Attributes:
        kind: always "embedding" (the run folder's kind, read by `vsa_tf.jobs.run_folder.Run.open`).
        data: where the dataset lives and how it becomes tensors.
        encoder: sentence encoder, "lstm" (last LSTM hidden state) or "linear" (normalised sum of
            word vectors, the one the paper uses for multimodal arithmetic).
        embedding_dim: K, the size of the joint space (the paper: 1024).
        word_dim: size of the word vectors fed to the LSTM (ignored by the linear encoder, whose
            word vectors live in the joint space).
        margin: alpha of the pairwise ranking loss (the paper: 0.2).
        image: the image side (`ImageEncoderConfig`; cached mode reads `data.features`).
        word_vectors: optional pretrained word vectors file (read by `vsa_tf.data.word_vectors`)
            that initialises the word embeddings; None trains them from scratch.
        batch_size: pairs per batch; the other pairs of the batch are the contrastive terms.
        epochs: passes over the training pairs.
        learning_rate: Adam step size.
        clip_norm: global gradient norm clip (the paper clips at 2).
        patience: stop when the val loss has not improved for this many epochs; 0 trains every epoch.
        seed: shuffling and initialisation seed.
    """

    kind: str = "embedding"
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    encoder: str = "lstm"
    embedding_dim: int = 256
    word_dim: int = 128
    margin: float = 0.2
    image: ImageEncoderConfig = dataclasses.field(default_factory=ImageEncoderConfig)
    word_vectors: typing.Optional[str] = None
    batch_size: int = 64
    epochs: int = 10
    learning_rate: float = 2e-3
    clip_norm: float = 2.0
    patience: int = 5
    seed: int = 0

    @classmethod
    def migrate(cls, values):
        return fill_fields_of_older_runs(migrate_flat_image_fields(values, dropped=()))

    def __post_init__(self):
        self.data = _data_config(self.data)
        self.image = image_encoder_config(self.image)
        self.image.check_normalization("EmbeddingConfig", ("none",))
        check_patience("EmbeddingConfig", self.patience)
        if self.kind != "embedding":
            raise ValueError(f"EmbeddingConfig.kind must be 'embedding', received {self.kind!r}")
        if self.encoder not in ("lstm", "linear"):
            raise ValueError(f"EmbeddingConfig.encoder must be 'lstm' or 'linear', received {self.encoder!r}")
        if self.embedding_dim < 1 or self.word_dim < 1:
            raise ValueError(
                f"EmbeddingConfig: embedding_dim and word_dim must be >= 1, received "
                f"{self.embedding_dim} and {self.word_dim}"
            )


SCNLM_TAGGERS = ("truth", "lexicon", "spacy")


@dataclasses.dataclass
class SCNLMConfig(ConfigMixin):
    """Structure-content neural language model of Kiros et al. 2014 (section 4.3).

    Attributes:
        kind: always "scnlm".
        data: the dataset (the same one the embedding run was trained on).
        embedding_run: run folder of the joint embedding whose image vectors are the content u.
        context_size: n - 1, the previous words the log-bilinear model sees (the paper: 5).
        structure_size: k, forward structure context t_n..t_{n+k} (k + 1 tags; the paper: 5).
        word_dim: size of the (folded) word representations r.
        tag_dim: size of the part-of-speech tag vectors t_i.
        factor_dim: F, number of factors of the 3-way factored output tensor.
        tagger: where part-of-speech tags come from (one of `SCNLM_TAGGERS`): "truth" (the synthetic
            world's truth.json, falling back to "lexicon" for sentences without tags), "lexicon" (the
            rule-based tagger of `vsa_tf.data.pos_tags`) or "spacy" (spaCy's `en_core_web_sm` 3.8.0 from
            the optional extra `vsa_tf[tagger]`, for real sentences; docs/data.md).
        truth: optional truth.json of the synthetic world (used by tagger "truth").
        batch_size: sentences per batch.
        epochs: passes over the training sentences.
        learning_rate: Adam step size.
        patience: stop when the val loss has not improved for this many epochs; 0 trains every epoch.
        seed: shuffling, initialisation and structure-sampling seed.
    """

    kind: str = "scnlm"
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    embedding_run: str = ""
    context_size: int = 5
    structure_size: int = 5
    word_dim: int = 128
    tag_dim: int = 32
    factor_dim: int = 128
    tagger: str = "truth"
    truth: typing.Optional[str] = None
    batch_size: int = 64
    epochs: int = 10
    learning_rate: float = 2e-3
    patience: int = 5
    seed: int = 0

    @classmethod
    def migrate(cls, values):
        return fill_fields_of_older_runs(values)

    def __post_init__(self):
        self.data = _data_config(self.data)
        check_patience("SCNLMConfig", self.patience)
        if self.kind != "scnlm":
            raise ValueError(f"SCNLMConfig.kind must be 'scnlm', received {self.kind!r}")
        if self.tagger not in SCNLM_TAGGERS:
            raise ValueError(f"SCNLMConfig.tagger must be one of {SCNLM_TAGGERS}, received {self.tagger!r}")
        if self.context_size < 1 or self.structure_size < 0:
            raise ValueError(
                f"SCNLMConfig: context_size must be >= 1 and structure_size >= 0, received "
                f"{self.context_size} and {self.structure_size}"
            )


@dataclasses.dataclass
class AlignmentConfig(ConfigMixin):
    """Alignment model of Karpathy & Fei-Fei 2015 (section 3.1): region encoder, BRNN, ranking loss.

    Attributes:
        kind: always "alignment" (the run folder's kind, read by `vsa_tf.jobs.run_folder.Run.open`).
        data: where the dataset lives and how it becomes tensors.
        image: the image side (`ImageEncoderConfig`): pixels or cached features, backbone, RoIAlign
            bins, and "none" or "l2" normalisation of each cached region feature ("l2", the default,
            keeps the scores of large pretrained features O(1), so the margin of 1 matters: on
            Flickr8k's cached EfficientNet-Lite0 features the val recall sum after 6 epochs is 214 with
            it and 114 without, docs/results.md; pixel-mode regions are never normalised).
        region_dim: h, the size of the multimodal space (the paper: 1000).
        embedding_dim: size of the word vectors x_t (the paper: 300).
        hidden_dim: size of the BRNN states (the paper: 300-600).
        sentence_encoder: "brnn" (eqs. 2-6) or "bag_of_words" (the ablation).
        score: "max" (eq. 8) or "defrag" (eq. 7).
        margin: margin of the ranking loss (eq. 9; the paper: 1).
        hardest_negative: use only the hardest negative of each row/column (VSE++).
        warmup_epochs: epochs of the summed loss before switching to the hardest negative.
        optimizer: "adam" (AdamW when weight_decay > 0; the default: its steps do not grow with the
            summed loss, and it led the sweep of benchmarks/default_settings.py on synthetic worlds of
            new seeds, docs/results.md) or "sgd" (the paper's SGD with momentum).
        learning_rate: step size: 1e-3 with Adam (the default). With SGD the loss is summed over the
            batch's B(B-1) pairs, so it must be small (1e-3 kills the ReLUs of the from-scratch backbone
            at batch 50-100; 1e-4 trains).
        momentum: SGD momentum (the paper: 0.9).
        clip_value: element-wise gradient clipping (the paper: 5).
        dropout: dropout rate on every non-recurrent connection.
        weight_decay: decoupled weight decay of the optimizer.
        batch_size: image-sentence pairs per batch (the paper: 100).
        epochs: the most passes over the training pairs (with `patience`, a budget rather than a count).
        patience: stop when the val recall sum has not improved for this many epochs; 0 trains every epoch.
        seed: shuffling and initialisation seed.
        word_vectors: optional pretrained word vectors file that initialises the word embedding.
        freeze_word_vectors: keep pretrained word vectors fixed.
        jit_compile: whether `model.fit` compiles the train step with XLA.
    """

    kind: str = "alignment"
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    image: ImageEncoderConfig = dataclasses.field(default_factory=lambda: ImageEncoderConfig(normalization="l2"))
    region_dim: int = 256
    embedding_dim: int = 300
    hidden_dim: int = 300
    sentence_encoder: str = "brnn"
    score: str = "max"
    margin: float = 1.0
    hardest_negative: bool = False
    warmup_epochs: int = 0
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    momentum: float = 0.9
    clip_value: float = 5.0
    dropout: float = 0.25
    weight_decay: float = 1e-5
    batch_size: int = 100
    epochs: int = 30
    patience: int = 5
    seed: int = 0
    word_vectors: typing.Optional[str] = None
    freeze_word_vectors: bool = False
    jit_compile: bool = False

    @classmethod
    def migrate(cls, values):
        return fill_fields_of_older_runs(migrate_flat_image_fields(values, dropped=("beta",)), ("patience", "optimizer"))

    def __post_init__(self):
        self.data = _data_config(self.data)
        self.image = image_encoder_config(self.image)
        self.image.check_normalization("AlignmentConfig", ("none", "l2"))
        check_patience("AlignmentConfig", self.patience)
        choices = {
            "kind": ("alignment",),
            "sentence_encoder": ("brnn", "bag_of_words"),
            "score": ("max", "defrag"),
            "optimizer": ALIGNMENT_OPTIMIZERS,
        }
        for field_name, allowed in choices.items():
            if getattr(self, field_name) not in allowed:
                raise ValueError(f"AlignmentConfig.{field_name} must be one of {list(allowed)}, received {getattr(self, field_name)!r}")
        for field_name in ("region_dim", "embedding_dim", "hidden_dim", "batch_size", "epochs"):
            if int(getattr(self, field_name)) < 1:
                raise ValueError(f"AlignmentConfig.{field_name} must be >= 1, received {getattr(self, field_name)!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"AlignmentConfig.dropout must be in [0, 1), received {self.dropout!r}")
        if self.batch_size < 2:
            raise ValueError(f"AlignmentConfig.batch_size must be >= 2 (the batch supplies the negatives), received {self.batch_size!r}")


@dataclasses.dataclass
class CaptionConfig(ConfigMixin):
    """Multimodal RNN caption generator of Karpathy & Fei-Fei 2015 (section 3.2, eqs. 13-15).

    Attributes:
        kind: always "caption" (the run folder's kind, read by `vsa_tf.jobs.run_folder.Run.open`).
        data: where the dataset lives and how it becomes tensors (the image side uses R = 1).
        image: the image side (`ImageEncoderConfig`): pixels (backbone + RoIAlign of the whole image or
            the snippet's box) or cached whole-image features (full-frame runs only; `feature_dim`
            recorded at training time), and "layer" (the default) or "none" (the paper's eq. 13 as
            written) normalisation of CNN(I) before W_hi. "layer" keeps b_v at the scale of W_hx x_1
            whatever the CNN's feature scale: with "none", a captioner on a pretrained CNN wrote 1
            distinct greedy caption for 64 val images after 4 epochs, with "layer" 38 (docs/results.md).
        hidden_dim: size of the hidden state h_t (the paper: 512).
        embedding_dim: size of the word embeddings x_t.
        cell: "rnn" (the ReLU RNN of eq. 14) or "lstm" (for comparison).
        activate_inputs: pass b_v and W_hx x_t through the activation first (the paper's remark).
        image_conditioning: "bias" (b_v added at the first step, eq. 14) or "input" (the image as an
            extra input before START, Vinyals et al.).
        dropout: dropout on every non-recurrent connection (image feature, word embeddings, output).
        learning_rate: RMSprop step size.
        rho: RMSprop decay of the squared-gradient average.
        clip_value: element-wise gradient clipping (the paper: 5).
        batch_size: image-sentence pairs per batch.
        epochs: the most passes over the training pairs (with `patience`, a budget rather than a count).
        patience: stop when the val loss has not improved for this many epochs; 0 trains every epoch.
        image_pretraining: how a from-scratch CNN in pixel mode (no `image.weights`, no alignment run
            given) learns to see: "alignment" (the default) first trains an alignment model (eqs. 1-9,
            `image_pretraining_config`) on the same data and keeps its CNN fixed under the captioner
            (fine-tuned at this learning rate, the features collapsed again); "none" trains the CNN from the image bias of eq. 14 alone, which on synthetic worlds of
            new seeds wrote one sentence for nearly every image (docs/results.md).
        image_pretraining_epochs: epoch budget of that alignment model (its patience applies).
        beam_size: beam width used by `caption` and `evaluate-captions` (the paper: 7).
        max_length: most tokens generated after START, END included (17 = 16 words + END).
        length_normalization: exponent alpha of the beam length penalty ((5 + length) / 6) ** alpha; 0 = off.
        region_captions: set when trained on (region, snippet) pairs from a snippets file.
        seed: shuffling and initialisation seed.
        jit_compile: whether `model.fit` compiles the train step with XLA.
    """

    kind: str = "caption"
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    image: ImageEncoderConfig = dataclasses.field(default_factory=lambda: ImageEncoderConfig(normalization="layer"))
    hidden_dim: int = 512
    embedding_dim: int = 256
    cell: str = "rnn"
    activate_inputs: bool = False
    image_conditioning: str = "bias"
    dropout: float = 0.5
    learning_rate: float = 1e-3
    rho: float = 0.9
    clip_value: float = 5.0
    batch_size: int = 100
    epochs: int = 20
    patience: int = 5
    image_pretraining: str = "alignment"
    image_pretraining_epochs: int = 15
    beam_size: int = 7
    max_length: int = 17
    length_normalization: float = 0.0
    region_captions: bool = False
    seed: int = 0
    jit_compile: bool = False

    @classmethod
    def migrate(cls, values):
        return fill_fields_of_older_runs(migrate_flat_image_fields(values, dropped=()), ("patience", "image_pretraining"))

    def __post_init__(self):
        self.data = _data_config(self.data)
        self.image = image_encoder_config(self.image)
        self.image.check_normalization("CaptionConfig", ("none", "layer"))
        check_patience("CaptionConfig", self.patience)
        choices = {
            "kind": ("caption",),
            "cell": ("rnn", "lstm"),
            "image_conditioning": ("bias", "input"),
            "image_pretraining": IMAGE_PRETRAININGS,
        }
        for field_name, allowed in choices.items():
            if getattr(self, field_name) not in allowed:
                raise ValueError(f"CaptionConfig.{field_name} must be one of {list(allowed)}, received {getattr(self, field_name)!r}")
        for field_name in ("hidden_dim", "embedding_dim", "batch_size", "epochs", "image_pretraining_epochs", "beam_size", "max_length"):
            if int(getattr(self, field_name)) < 1:
                raise ValueError(f"CaptionConfig.{field_name} must be >= 1, received {getattr(self, field_name)!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"CaptionConfig.dropout must be in [0, 1), received {self.dropout!r}")
        if self.length_normalization < 0:
            raise ValueError(f"CaptionConfig.length_normalization must be >= 0, received {self.length_normalization!r}")


@dataclasses.dataclass
class ProposalConfig(ConfigMixin):
    """Class-agnostic region proposal network (Ren et al. 2015, the RPN of Faster R-CNN) on the image encoder's map.

    Attributes:
        kind: always "proposals".
        data: the dataset; `data.boxes` (required) are the boxes the proposals learn to find, and
            `data.max_boxes` of them are kept per image.
        image: the backbone whose feature map the proposals are laid on (pixel mode; a trained CNN:
            `weights`, or an alignment run's CNN given to `train_proposals`). `frozen` (the default)
            computes every training image's feature map once and trains the head on those.
        anchor_sizes: square anchor sides in pixels of the resized image (`data.image_size`).
        aspect_ratios: anchor height / width ratios.
        filters: channels of the head's 3 x 3 convolution (the paper: 256 for ZF). 128 keeps proposals within
            20 % of the time of the backbone pass they share on EfficientNet-Lite0 at stride 16 (1.13x against
            1.25x for 256, `benchmarks/proposal_throughput.py`) for 1 point of Flickr8k recall at 19 (70.6 % vs
            71.6 %, docs/results.md).
        feature_stride: the stride of the backbone map the head reads: 16 taps the last stride-16 map of a
            stride-32 backbone (EfficientNet's, MobileNetV2's) from the same pass that computes the region
            features' map, as Faster R-CNN reads VGG16's stride-16 conv5; a backbone whose output is
            already at this stride or finer (the simple CNN, VGG16, ResNet50) uses its output, as does
            a stride equal to the backbone's (32 for EfficientNet). None (runs saved before the field
            existed): the output map.
        upsampling: the head resizes the backbone's map by this factor (bilinear) before its convolution,
            so anchors are laid at stride / upsampling (16 on EfficientNet's stride-32 map) from the same
            backbone pass as the region features.
        horizontal_flip: train on mirrored copies too (each epoch flips half the examples; with a frozen
            backbone the cached feature map is mirrored, which an ImageNet CNN trained with flips
            approximates well).
        refine_boxes: add the second stage of a two-stage detector (`BoxRefinementHead`, trained with the
            RPN): each proposal's box is regressed from the RoI features of the box and its surroundings
            towards the training box it overlaps most (IoU >= 0.3), so proposals that cover part of an
            object, or overlap it loosely, move onto it.
        positive_iou, negative_iou: anchor labels (the paper: 0.7 and 0.3).
        samples_per_image: anchors sampled per image for the loss (the paper: 256).
        positive_fraction: most positives among them (the paper: 0.5).
        max_proposals: proposals kept per image after NMS (the alignment model's 19 detections).
        nms_iou_threshold: NMS overlap (the paper: 0.7).
        learning_rate: Adam step size.
        batch_size: images per batch.
        epochs: the most passes over the training images.
        patience: stop when the val recall of the kept proposals has not improved for this many epochs; 0 trains every epoch.
        seed: shuffling, initialisation and anchor-sampling seed.
    """

    kind: str = "proposals"
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    image: ImageEncoderConfig = dataclasses.field(default_factory=lambda: ImageEncoderConfig(frozen=True))
    anchor_sizes: typing.Tuple[float, ...] = (16.0, 32.0, 64.0, 128.0)
    aspect_ratios: typing.Tuple[float, ...] = (0.5, 1.0, 2.0)
    filters: int = 128
    feature_stride: typing.Optional[int] = 16
    upsampling: int = 1
    horizontal_flip: bool = False
    refine_boxes: bool = False
    positive_iou: float = 0.7
    negative_iou: float = 0.3
    samples_per_image: int = 256
    positive_fraction: float = 0.5
    max_proposals: int = 19
    nms_iou_threshold: float = 0.7
    learning_rate: float = 1e-3
    batch_size: int = 16
    epochs: int = 30
    patience: int = 5
    seed: int = 0

    def __post_init__(self):
        self.data = _data_config(self.data)
        self.image = image_encoder_config(self.image)
        self.anchor_sizes = tuple(float(size) for size in self.anchor_sizes)
        self.aspect_ratios = tuple(float(ratio) for ratio in self.aspect_ratios)
        if self.kind != "proposals":
            raise ValueError(f"ProposalConfig.kind must be 'proposals', received {self.kind!r}")
        if self.image.cached:
            raise ValueError("ProposalConfig.image.mode must be 'pixels': proposals are laid on the backbone's feature map")
        if not self.anchor_sizes or min(self.anchor_sizes) <= 0 or not self.aspect_ratios or min(self.aspect_ratios) <= 0:
            raise ValueError(
                f"ProposalConfig: anchor_sizes and aspect_ratios must be positive, received {self.anchor_sizes!r} and {self.aspect_ratios!r}"
            )
        for field_name in ("filters", "upsampling", "samples_per_image", "max_proposals", "batch_size", "epochs"):
            if int(getattr(self, field_name)) < 1:
                raise ValueError(f"ProposalConfig.{field_name} must be >= 1, received {getattr(self, field_name)!r}")
        if self.feature_stride is not None and int(self.feature_stride) < 1:
            raise ValueError(f"ProposalConfig.feature_stride must be >= 1 or None, received {self.feature_stride!r}")
        check_patience("ProposalConfig", self.patience)
        for field_name in ("horizontal_flip", "refine_boxes"):
            if not isinstance(getattr(self, field_name), bool):
                raise ValueError(f"ProposalConfig.{field_name} must be True or False, received {getattr(self, field_name)!r}")

    @classmethod
    def migrate(cls, values):
        return fill_fields_of_older_runs(values, ("upsampling", "horizontal_flip", "feature_stride", "refine_boxes"))


@dataclasses.dataclass
class PipelineSettings(ConfigMixin):
    """Model sizes and budgets of the main job's stages, shared by `DemoConfig` and `PipelineConfig`.

    Attributes:
        seed: seed of the world and of every model.
        alignment_epochs, caption_epochs, embedding_epochs: training epochs of each model.
        alignment_batch_size, caption_batch_size: pairs per batch.
        alignment_optimizer, alignment_learning_rate: the alignment models' optimizer ("sgd" or "adam") and
            step size. The demo keeps the paper's SGD at 1e-4, with which its figures were measured;
            `PipelineConfig` on a dataset defaults to `train-align`'s Adam at 1e-3 (issue 14).
        alignment_hardest_negative, alignment_warmup_epochs: the alignment models' ranking loss keeps only
            the hardest negative of each row and column (VSE++) after `alignment_warmup_epochs` epochs of the
            paper's summed loss (eq. 9). The demo keeps the summed loss; `PipelineConfig` on a dataset uses
            hardest negatives after 2 epochs (Flickr8k val: recall sum 265.2 / 260.9 over two seeds against
            249.2, box-only grounding at beta = 0 56.4 against 55.0; docs/results.md "Grounding real phrases").
        region_dim: h of the alignment model.
        pool_size: RoIAlign bins per side of the alignment model's regions and the captioners' images
            (concatenated, not averaged: 3 x 3 bins of the stride-8 map keep each object's shape).
        caption_hidden: hidden size of the multimodal RNN.
        caption_max_words: words of a training sentence the captioners keep (the world's longest sentence
            has 24). Cut at 16, the 12 % of sentences listing three or four objects taught the captioner
            to end a sentence mid-phrase, and beam search preferred those endings (seed 0, 300 test
            images: beam 7 / greedy CIDEr 0.796 / 0.864 at 16 words, 0.877 / 0.845 at 24).
        caption_learning_rate: RMSprop step size of the captioners.
        fine_tune_caption_cnn: train the alignment model's CNN further with each captioner; False keeps it
            fixed, as `train-caption` does by default, and the captioners run the CNN forward only (twice as
            fast, but the demo world's test CIDEr at beam 7 fell from 0.85 to 0.69, docs/results.md).
        betas: MRF smoothness values whose alignment accuracy is reported.
        snippet_beta: β of the snippets the region captioner trains on.
        beam_size: beam width of caption generation and of the exported captioner.
        caption_eval_images: evaluation images captioned for Tables 2-3 (all when None).
        run_embedding: whether to train the joint embedding and run the arithmetic demo.
        proposal_anchor_sizes: anchor sides (pixels of `image_size`) of the learned region proposals. The
            world's objects, resized to 64 x 96, are 9-27 pixels across (1st-99th percentile of the
            square root of their area) and squashed to height / width 0.4-1.2: hence these sizes and
            `proposal_aspect_ratios`.
        proposal_aspect_ratios: anchor height / width ratios of the learned proposals.
        proposal_epochs: epochs of the proposal network (on the BRNN's frozen CNN: feature maps computed once).
        proposal_caption_images: test images whose objects are captioned from the generator's boxes and from
            the learned proposals (each object from its best-overlapping box).
        quick: a smoke-sized run (used by the test suite).
    """

    seed: int = 0
    alignment_epochs: int = 8
    caption_epochs: int = 15
    embedding_epochs: int = 6
    alignment_batch_size: int = 50
    alignment_optimizer: str = "sgd"
    alignment_learning_rate: float = 1e-4
    alignment_hardest_negative: bool = False
    alignment_warmup_epochs: int = 0
    caption_batch_size: int = 64
    region_dim: int = 256
    pool_size: int = 3
    caption_hidden: int = 256
    caption_learning_rate: float = 3e-4
    caption_max_words: int = 24
    betas: typing.Tuple[float, ...] = GROUNDING_BETAS
    snippet_beta: float = 1.0
    beam_size: int = 7
    caption_eval_images: typing.Optional[int] = 300
    run_embedding: bool = True
    proposal_anchor_sizes: typing.Tuple[float, ...] = (10.0, 14.0, 20.0, 28.0)
    proposal_aspect_ratios: typing.Tuple[float, ...] = (0.5, 0.75, 1.0)
    proposal_epochs: int = 10
    proposal_caption_images: int = 100
    quick: bool = False
    fine_tune_caption_cnn: bool = True

    def __post_init__(self):
        rate = self.alignment_learning_rate
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate) or rate <= 0:
            raise ValueError(f"{type(self).__name__}.alignment_learning_rate must be a finite number > 0, received {rate!r}")
        if self.alignment_optimizer not in ALIGNMENT_OPTIMIZERS:
            raise ValueError(
                f"{type(self).__name__}.alignment_optimizer must be one of {list(ALIGNMENT_OPTIMIZERS)}, received {self.alignment_optimizer!r}"
            )
        warmup = self.alignment_warmup_epochs
        if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
            raise ValueError(f"{type(self).__name__}.alignment_warmup_epochs must be an integer >= 0, received {warmup!r}")
        if not isinstance(self.alignment_hardest_negative, bool):
            raise ValueError(
                f"{type(self).__name__}.alignment_hardest_negative must be True or False, received {self.alignment_hardest_negative!r}"
            )
        self.betas = tuple(self.betas)
        self.proposal_anchor_sizes = tuple(float(size) for size in self.proposal_anchor_sizes)
        self.proposal_aspect_ratios = tuple(float(ratio) for ratio in self.proposal_aspect_ratios)


# Values of `DemoConfig.quick_config()`: a run of a few minutes on 2 CPU cores.
QUICK_SETTINGS = dict(
    alignment_epochs=2, alignment_warmup_epochs=1, caption_epochs=1, embedding_epochs=1, alignment_batch_size=32, caption_batch_size=32,
    region_dim=32, caption_hidden=32, betas=(0.0, 1.0, 5.0), beam_size=3, caption_eval_images=20,
    proposal_anchor_sizes=(7.0, 10.0, 14.0, 20.0), proposal_epochs=2, proposal_caption_images=6, quick=True,
)


@dataclasses.dataclass
class DemoConfig(PipelineSettings):
    """Sizes and budgets of the demo: the main job (`PipelineConfig`) on a synthetic world it generates.

    Attributes:
        out_dir: working folder (world, runs, figures, stage markers); a rerun skips the finished stages.
        saved_models: TF Serving model base folder; each demo run exports the next version.
        report_dir: where `index.html` and its figures are written (replaced atomically).
        train_images, val_images, test_images: split sizes of the synthetic world.
        image_size: (height, width) the images are resized to.
    """

    out_dir: str = "demo_runs/latest"
    saved_models: str = "saved_models"
    report_dir: str = "report"
    train_images: int = 800
    val_images: int = 100
    test_images: int = 1000
    image_size: typing.Tuple[int, int] = (64, 96)

    def __post_init__(self):
        super().__post_init__()
        self.image_size = tuple(self.image_size)

    @classmethod
    def quick_config(cls, **overrides):
        """A run that finishes in a few minutes on 2 CPU cores (numbers are only a smoke check)."""
        values = dict(QUICK_SETTINGS, train_images=160, val_images=30, test_images=60, image_size=(48, 64))
        values.update(overrides)
        return cls(**values)

    def pipeline_config(self):
        """The `PipelineConfig` this demo runs: its world generated as the first stage, same settings and seeds."""
        settings = {field.name: getattr(self, field.name) for field in dataclasses.fields(PipelineSettings)}
        return PipelineConfig(
            data=DataConfig(image_size=self.image_size, min_word_count=1 if self.quick else 5),
            world=(self.train_images, self.val_images, self.test_images), compare_proposals=True,
            saved_models=self.saved_models, report_dir=self.report_dir, **settings,
        )


PIPELINE_FEATURE_MODES = ("pixels", "cached")
# Image size of the cached features when the command is not given one: twice the backbone's 224 x 224
# ImageNet input, so its stride-32 map is 14 x 14 and a box's RoI features are its own (word-box grounding
# on Flickr8k val rises 5-7 points over 224 at every beta, retrieval unchanged: docs/results.md "Grounding").
CACHED_FEATURE_IMAGE_SIZE = (448, 448)


@dataclasses.dataclass
class PipelineConfig(PipelineSettings):
    """The main job on a dataset (`vsa_tf.jobs.pipeline`), saved as `OUT/pipeline_config.json`.

    Attributes:
        data: the dataset (Karpathy JSON, Flickr token file or COCO captions JSON), its images and its
            regions: a boxes file (`boxes`) or a proposals run (`proposals`); `features` is set by the pipeline.
        truth: optional truth JSON (the synthetic world's format) for grounding, binding and region
            caption evaluations; without it those evaluations are left out.
        world: (train, val, test) image counts of a synthetic world generated as the first stage into
            OUT/world (it then stands for `data.dataset`, `data.images`, `data.boxes` and `truth`); None
            = the dataset given.
        train_proposals: train a proposal network in the pipeline on `data.boxes`, whose proposals become
            the regions of every later stage.
        feature_mode: "pixels" (the CNN trained with the alignment model) or "cached" (region features of
            the frozen pretrained backbone `backbone_weights`, computed once by the features stage: the
            paper's fixed CNN features, and the only mode that fits a real dataset on a CPU); None = "cached"
            when `backbone_weights` is given, else "pixels" (the built-in small CNN).
        backbone_weights: local EfficientNet-Lite0 `.weights.h5` (ImageNet): the pixel-mode CNN starts
            from it, the cached features come from it; None = the built-in small CNN from scratch.
        bag_of_words: also train the bag-of-words ablation of the alignment model.
        compare_proposals: learned proposals against the boxes file on the test split (needs `truth`
            and pixel mode; the demo's proposals stage).
        saved_models: TF Serving model base folder of the export stage; None = OUT/saved_models.
        report_dir: folder of the HTML report; None = OUT/report.
    """

    # A dataset nobody tuned for gets the `train-align` command's measured defaults (Adam 1e-3, batch 100;
    # docs/results.md "Command defaults") for 20 epochs: on Flickr8k val the BRNN's recall sum is 245.6 at 20.
    alignment_epochs: int = 20
    alignment_batch_size: int = 100
    alignment_optimizer: str = "adam"
    alignment_learning_rate: float = 1e-3
    alignment_hardest_negative: bool = True
    alignment_warmup_epochs: int = 2
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    truth: typing.Optional[str] = None
    world: typing.Optional[typing.Tuple[int, int, int]] = None
    train_proposals: bool = False
    feature_mode: typing.Optional[str] = None
    backbone_weights: typing.Optional[str] = None
    bag_of_words: bool = True
    compare_proposals: bool = False
    saved_models: typing.Optional[str] = None
    report_dir: typing.Optional[str] = None

    @classmethod
    def migrate(cls, values):
        # Pipelines saved before the alignment optimizer was a setting trained their aligners with SGD at 1e-4,
        # those saved before the hardest-negative setting with the summed loss.
        return fill_fields_of_older_runs(
            values, ("alignment_optimizer", "alignment_learning_rate", "alignment_hardest_negative", "alignment_warmup_epochs")
        )

    def with_cached_image_size(self, saved_config=None):
        """This config with `data.image_size` = `CACHED_FEATURE_IMAGE_SIZE` when it runs cached features on a dataset.

        For callers that did not choose an image size (`vsa-tf pipeline` without `--image-size` or
        `--config`): the pixel-mode default (128 x 128, the small CNN's) is too coarse for a pretrained
        backbone's region features. Unchanged: pixel mode, a synthetic world and quick runs (whose
        proposal anchors are sized for the world at 64 x 96). ``saved_config``: the path of an
        existing pipeline folder's config, whose image size is kept, so rerunning the command that made
        a folder resumes it.
        """
        if self.resolved_feature_mode != "cached" or self.world is not None or self.quick:
            return self
        image_size = CACHED_FEATURE_IMAGE_SIZE
        if saved_config is not None and os.path.isfile(saved_config):
            image_size = load_config(PipelineConfig, saved_config).data.image_size
        return self.replace(data=self.data.replace(image_size=tuple(image_size)))

    @property
    def resolved_feature_mode(self):
        """The feature mode the pipeline runs in: `feature_mode`, or for None "cached" with backbone weights, else "pixels"."""
        if self.feature_mode is not None:
            return self.feature_mode
        return "cached" if self.backbone_weights else "pixels"

    def __post_init__(self):
        super().__post_init__()
        self.data = _data_config(self.data)
        if self.world is not None:
            self.world = tuple(int(count) for count in self.world)
            if len(self.world) != 3 or min(self.world) < 0:
                raise ValueError(f"PipelineConfig.world must be (train, val, test) image counts, received {self.world!r}")
        if self.feature_mode is not None and self.feature_mode not in PIPELINE_FEATURE_MODES:
            raise ValueError(f"PipelineConfig.feature_mode must be one of {list(PIPELINE_FEATURE_MODES)}, received {self.feature_mode!r}")
        if self.train_proposals and (self.data.proposals or (self.world is None and not self.data.boxes)):
            raise ValueError(
                f"PipelineConfig.train_proposals learns from a boxes file: give data.boxes, not a proposals run "
                f"(boxes {self.data.boxes!r}, proposals {self.data.proposals!r})"
            )
        if self.compare_proposals and (self.resolved_feature_mode != "pixels" or (self.world is None and not self.truth)):
            raise ValueError(
                f"PipelineConfig.compare_proposals needs pixel mode and a truth file "
                f"(feature_mode {self.resolved_feature_mode!r}, truth {self.truth!r})"
            )
