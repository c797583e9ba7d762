"""Command-line options generated from the config dataclasses of `vsa_tf.config`.

`add_config_arguments(parser, AlignmentConfig)` adds one option per field, the nested `data` and `image`
configs flattened (`--dataset`, `--image-size`, `--feature-mode`, `--pooling`), with the field's type,
choices and default and the help of its class's `Attributes:` block, plus `--config FILE`.
`config_from_arguments(args, AlignmentConfig)` builds the config: the `--config` file (else `base`,
else the defaults), then every option given on the command line.

Each option's argparse default is None, so an option left out never overrides the file: the help shows
the dataclass default instead. Only `vsa_tf.config` is imported here (no TensorFlow): `vsa-tf --help`
builds every parser.
"""

import argparse
import dataclasses
import inspect
import re
import typing

from vsa_tf import config as config_lib
from vsa_tf.commands import BOXES_HELP, NO_BOXES, PROPOSALS_HELP, boxes_argument

# Nested configs whose fields become options of the outer config: `data` fields keep their own names
# (`--dataset`, `--max-words`), any other nested config's fields get its name as a prefix (`--image-...`)
# unless FLAG_NAMES spells them.
UNPREFIXED_NESTED = ("data",)

# Flags that are not the derived `--field-name`: the spellings users and scripts know. The first is the
# option's name (and its `args` attribute); the others are aliases.
FLAG_NAMES = {
    "image.mode": ("--feature-mode",),
    "image.backbone": ("--backbone",),
    "image.weights": ("--backbone-weights",),
    "image.frozen": ("--freeze-backbone",),
    "image.filters": ("--backbone-filters",),
    "image.pool_size": ("--pool-size",),
    "image.pooling": ("--pooling",),
    # train-align called it --feature-normalization, train-caption --image-normalization.
    "image.normalization": ("--feature-normalization", "--image-normalization"),
    # DemoConfig: --out is what a command writes, everywhere.
    "out_dir": ("--out",),
    "report_dir": ("--report",),
    "run_embedding": ("--embedding",),  # and --no-embedding
}

# Fields that are no options: constants, or values the training jobs record themselves.
NOT_OPTIONS = (
    "kind",
    "image.feature_dim",  # read from the features folder
    "region_captions",  # set by train-caption --snippets
)

# Allowed values of the fields that `vsa_tf.config` checks: its constants where it has them, else the
# values its `__post_init__` accepts (`test_choices_are_the_values_the_configs_accept` keeps them equal).
# Each config class keeps only the values it accepts (`_accepted`), e.g. `image.normalization`.
FIELD_CHOICES = {
    "image.mode": config_lib.IMAGE_MODES,
    "image.pooling": config_lib.IMAGE_POOLINGS,
    "image.normalization": config_lib.IMAGE_NORMALIZATIONS,
    "data.split_of_file": config_lib.DATA_SPLITS,
    "sentence_encoder": ("brnn", "bag_of_words"),
    "score": ("max", "defrag"),
    "optimizer": config_lib.ALIGNMENT_OPTIMIZERS,
    "alignment_optimizer": config_lib.ALIGNMENT_OPTIMIZERS,
    "cell": ("rnn", "lstm"),
    "image_conditioning": ("bias", "input"),
    "image_pretraining": config_lib.IMAGE_PRETRAININGS,
    "encoder": ("lstm", "linear"),
    "tagger": config_lib.SCNLM_TAGGERS,
    "feature_mode": config_lib.PIPELINE_FEATURE_MODES,
}

# Options whose command-line form is not the field's type.
FIELD_OPTIONS = {
    "data.boxes": {"type": boxes_argument, "help": BOXES_HELP},
    "data.proposals": {
        "metavar": "RUN",
        "help": PROPOSALS_HELP + " (a training run writes them into its folder as proposal_boxes.json and records "
        "them as its data.boxes); not with --boxes",
    },
    "data.split_files": {
        "nargs": 3,
        "metavar": ("TRAIN", "VAL", "TEST"),
        "help": "Flickr token file: the image list file of each split ('-' = none); by default "
        "Flickr_8k.{train,dev,test}Images.txt beside it",
    },
    "data.image_size": {"metavar": ("HEIGHT", "WIDTH")},
    "image_size": {"metavar": ("HEIGHT", "WIDTH")},
}

# Fields of which a command line gives at most one (an argparse mutually exclusive group); giving one
# drops the other's value from a --config file.
EXCLUSIVE_FIELDS = ("data.boxes", "data.proposals")

# `args` attribute holding the field paths a command needs (set by `add_config_arguments(required=...)`).
REQUIRED_DEST = "config_required_fields"


# Nested configs by the name their fields are known under in the tables above, wherever they appear
# (nested in a model's config, or a command's only config as `DataConfig` is for `validate`).
NESTED_NAMES = {config_lib.DataConfig: "data", config_lib.ImageEncoderConfig: "image"}


@dataclasses.dataclass(frozen=True)
class ConfigOption:
    """One command-line option of a config field.

    Attributes:
        path: the field's path from the config given to `add_config_arguments`, e.g. "image.pooling".
        key: the field's name in the tables of this module: "data.<name>" or "image.<name>" for the
            fields of those configs, else `path`.
        flags: option strings, the name first.
        field: the `dataclasses.Field`.
        owner: the dataclass declaring the field (whose docstring documents it).
    """

    path: str
    key: str
    flags: typing.Tuple[str, ...]
    field: dataclasses.Field
    owner: type

    @property
    def dest(self):
        return self.flags[0][2:].replace("-", "_")


def config_options(config_class):
    """Every `ConfigOption` of `config_class`, nested dataclass fields flattened, in declaration order."""
    options = []
    for field in dataclasses.fields(config_class):
        if dataclasses.is_dataclass(field.type):
            for inner in dataclasses.fields(field.type):
                options.append(_option(f"{field.name}.{inner.name}", field.type, inner, field.name))
        else:
            options.append(_option(field.name, config_class, field, None))
    return [option for option in options if option.key not in NOT_OPTIONS]


def _option(path, owner, field, outer):
    nested = NESTED_NAMES.get(owner)
    key = f"{nested}.{field.name}" if nested else path
    if key in FLAG_NAMES:
        return ConfigOption(path, key, FLAG_NAMES[key], field, owner)
    prefix = "" if outer is None or outer in UNPREFIXED_NESTED else outer + "_"
    return ConfigOption(path, key, ("--" + (prefix + field.name).replace("_", "-"),), field, owner)


def attribute_help(config_class):
    """{field name: its text} from the `Attributes:` block of the class docstring (one line each).

    An entry naming several fields (`train_images, val_images: split sizes.`) documents each of them.
    Fields inherited from a config base class keep the base class's text.
    """
    texts = {}
    for base in reversed(config_class.__mro__[1:]):
        if dataclasses.is_dataclass(base):
            texts.update(_own_attribute_help(base))
    texts.update(_own_attribute_help(config_class))
    return texts


def _own_attribute_help(config_class):
    lines = inspect.cleandoc(config_class.__doc__ or "").splitlines()
    if "Attributes:" not in (line.strip() for line in lines):
        return {}
    start = [line.strip() for line in lines].index("Attributes:")
    block_indent = len(lines[start]) - len(lines[start].lstrip())
    texts, names = {}, []
    for line in lines[start + 1:]:
        indent = len(line) - len(line.lstrip())
        if line.strip() and indent <= block_indent:
            break  # the next section
        entry = re.match(r"(\w+(?:, \w+)*): (.*)", line.strip())
        if entry and indent == block_indent + 4:
            names = entry.group(1).split(", ")
            for name in names:
                texts[name] = entry.group(2)
        elif line.strip():
            for name in names:
                texts[name] += " " + line.strip()
    return texts


def add_config_arguments(
    parser, config_class, fields=None, exclude=(), required=(), config_file=True, default_help=None
):
    """Adds an option for every field of `config_class` (nested `data` / `image` fields flattened).

    Args:
        parser: the subcommand's `argparse.ArgumentParser`.
        config_class: a config dataclass of `vsa_tf.config`.
        fields: optional field paths to add ("dataset", "image.pooling"; data fields of `DataConfig`
            itself have no prefix); default: all but `NOT_OPTIONS` and `exclude`.
        exclude: field paths to leave out (e.g. those a command's job sets itself).
        required: field paths the command needs; `config_from_arguments` raises a `ValueError`
            naming the option when neither the command line nor the `--config` file sets them.
        config_file: whether to add `--config FILE` (a JSON file of `config_class`, e.g. a run's config.json).
        default_help: the defaults to show: a text for every option ("the run's"), or
            {field path: text}; default: the dataclass defaults.

    Returns:
        the `ConfigOption`s added.
    """
    option_help = {}
    options = [
        option for option in config_options(config_class)
        if (fields is None or option.path in fields) and option.path not in exclude
    ]
    if fields is not None:
        unknown = sorted(set(fields) - {option.path for option in options} - set(exclude))
        if unknown:
            raise ValueError(f"{config_class.__name__} has no option for field(s) {unknown}")
    if config_file:
        parser.add_argument(
            "--config", default=None, metavar="FILE",
            help=f"JSON file of a {config_class.__name__} to start from (e.g. a run's config.json); "
            "options given on the command line override its values",
        )
    groups = {}
    exclusive_keys = set(EXCLUSIVE_FIELDS) if set(EXCLUSIVE_FIELDS) <= {option.key for option in options} else set()
    exclusive_group = None
    for option in options:
        owner = option.owner
        if owner not in option_help:
            option_help[owner] = attribute_help(owner)
        if owner not in groups:
            if owner is config_class:
                groups[owner] = parser
            else:
                title = f"{option.path.split('.')[0]} ({owner.__name__})"
                groups[owner] = parser.add_argument_group(title, _summary(owner))
        if isinstance(default_help, dict):
            shown = default_help.get(option.path)
        else:
            shown = default_help
        text = option_help[owner].get(option.field.name, "")
        container = groups[owner]
        if option.key in exclusive_keys:
            exclusive_group = exclusive_group or groups[owner].add_mutually_exclusive_group()
            container = exclusive_group
        container.add_argument(
            *option.flags, **_argument_options(config_class, option, text, shown, option.path in required)
        )
    parser.set_defaults(**{REQUIRED_DEST: tuple(required)})
    return options


def config_from_arguments(args, config_class, base=None, for_run=False):
    """The `config_class` config of the parsed `args`.

    Starts from the `--config` file when one was given, else from `base`, else from the defaults, and
    sets every option that was given on the command line. Another `--dataset` than the starting one's
    drops its split options (`vsa_tf.jobs.run_folder.with_dataset`): they describe the other file.

    Args:
        args: the `argparse.Namespace` of a parser given `add_config_arguments(parser, config_class)`.
        config_class: that config class.
        base: optional starting config (e.g. the data of the run a command reads).
        for_run: the values describe the data of an existing run: `--boxes none` stays `NO_BOXES`
            ("no boxes", not the run's); otherwise it becomes None.

    Raises:
        ValueError: a `required` field is not set, naming its option; an invalid `--config` file or value.
    """
    from vsa_tf.jobs.run_folder import with_dataset

    config_file = getattr(args, "config", None)
    if config_file:
        start = config_lib.load_config(config_class, config_file)
    else:
        start = base if base is not None else config_class()
    given, paths = {}, {}
    for option in config_options(config_class):
        paths[option.key] = option.path
        value = getattr(args, option.dest, None)
        if value is not None:
            given[option.path] = _field_value(option, value, for_run)
    chosen = [key for key in EXCLUSIVE_FIELDS if paths.get(key) in given]  # at most one: argparse excludes the others
    for key in chosen:
        given.update({paths[other]: None for other in EXCLUSIVE_FIELDS if other != key and other in paths})
    top = {path: value for path, value in given.items() if "." not in path}
    nested = {}
    for path, value in given.items():
        if "." in path:
            outer, name = path.split(".", 1)
            nested.setdefault(outer, {})[name] = value
    for outer, changes in nested.items():
        inner = getattr(start, outer)
        if isinstance(inner, config_lib.DataConfig):
            top[outer] = with_dataset(inner, changes.pop("dataset", None), **changes)
        else:
            top[outer] = inner.replace(**changes)
    if config_class is config_lib.DataConfig and "dataset" in top:
        config = with_dataset(start, top.pop("dataset"), **top)
    else:
        config = start.replace(**top)
    _check_required(config, config_class, getattr(args, REQUIRED_DEST, ()), config_file)
    return config


def _check_required(config, config_class, required, config_file):
    flags = {option.path: option.flags[0] for option in config_options(config_class)}
    missing = [path for path in required if not _value_at(config, path)]
    if missing:
        them = "them" if len(missing) > 1 else "it"
        where = f"; {config_file} does not set {them} either" if config_file else f" (or a --config file that sets {them})"
        raise ValueError(f"give {' and '.join(flags[path] for path in missing)}{where}")


def _value_at(config, path):
    for name in path.split("."):
        config = getattr(config, name)
    return config


def _field_value(option, value, for_run):
    """A parsed option's value as its field holds it."""
    if option.key == "data.split_files":
        from vsa_tf.data import readers

        return readers.split_files_argument(value)
    if option.key == "data.boxes" and value == NO_BOXES and not for_run:
        return None  # a new config: no boxes
    return tuple(value) if isinstance(value, list) else value


def _argument_options(config_class, option, text, shown_default, required):
    """The `add_argument` keywords of `option`: type, nargs or action, choices, default None and help."""
    field_type = _without_optional(option.field.type)
    keywords = {"default": None, "dest": option.dest}
    if field_type is bool:
        keywords["action"] = argparse.BooleanOptionalAction
    elif typing.get_origin(field_type) is tuple:
        item_types = typing.get_args(field_type)
        keywords["type"] = item_types[0]
        keywords["nargs"] = "+" if item_types[-1] is Ellipsis else len(item_types)
    elif field_type in (int, float, str):
        keywords["type"] = field_type
    if option.key in FIELD_CHOICES:
        keywords["choices"] = _accepted(config_class, option.path, FIELD_CHOICES[option.key])
    keywords.update(FIELD_OPTIONS.get(option.key, {}))
    text = keywords.pop("help", text).rstrip(".")
    if required:
        text += " (required)"
    elif shown_default is not None:
        text += f" (default: {shown_default})"
    else:
        text += _default_text(option, config_class)
    keywords["help"] = text.replace("%", "%%")  # argparse formats help with %
    return keywords


def _accepted(config_class, path, values):
    """The `values` of field `path` that `config_class` accepts (its `__post_init__` checks them)."""
    accepted = []
    for value in values:
        try:
            _replaced(config_class(), path, value)
        except ValueError:
            continue
        accepted.append(value)
    return accepted


def _replaced(config, path, value):
    name, _, rest = path.partition(".")
    if rest:
        return config.replace(**{name: _replaced(getattr(config, name), rest, value)})
    return config.replace(**{name: value})


def _default_text(option, config_class):
    """" (default: ...)" of `option` in a default `config_class`, whose nested defaults may differ from
    the nested class's own (a `CaptionConfig`'s image is layer-normalised, an `ImageEncoderConfig` is not)."""
    field = option.field
    default = _default_of_path(config_class, option.path)
    if default is dataclasses.MISSING:
        if field.default is not dataclasses.MISSING:
            default = field.default
        elif field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        else:
            return ""
    if default is None or default == "":
        return ""
    if isinstance(default, bool):
        flag = option.flags[0]
        return f" (default: {flag if default else '--no-' + flag[2:]})"
    if isinstance(default, tuple):
        return " (default: " + " ".join(str(value) for value in default) + ")"
    return f" (default: {default})"


def _default_of_path(config_class, path):
    """The value at `path` ("image.frozen") of `config_class()`, or MISSING when it has no defaults."""
    try:
        value = config_class()
    except (TypeError, ValueError):
        return dataclasses.MISSING
    for name in path.split("."):
        value = getattr(value, name, dataclasses.MISSING)
    return value


def _summary(config_class):
    return inspect.cleandoc(config_class.__doc__ or "").split("\n", 1)[0]


def _without_optional(field_type):
    if typing.get_origin(field_type) is typing.Union:
        others = [item for item in typing.get_args(field_type) if item is not type(None)]
        if len(others) == 1:
            return others[0]
    return field_type


def run_data_config(args, run_dir, fields):
    """The data an evaluation command reads: None (the run's own) when no option of `fields` is given, else
    the run's saved `DataConfig` with the given options (`--dataset` and `--images` come together)."""
    if args.dataset is None and args.images is None:
        if not any(getattr(args, name, None) is not None for name in fields):
            return None
    elif args.dataset is None or args.images is None:
        raise ValueError("give both --dataset and --images, or neither (to use the run's own)")
    from vsa_tf.jobs.run_folder import read_config_values  # TensorFlow: only when a command runs

    base = config_lib.DataConfig.from_dict(read_config_values(run_dir).get("data", {}))
    return config_from_arguments(args, config_lib.DataConfig, base=base, for_run=True)
