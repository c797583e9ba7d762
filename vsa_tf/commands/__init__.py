"""Command-line subcommands: each module exposes `register(subparsers)`; handlers only parse and call the library."""

COMMAND_MODULES = (
    "vsa_tf.commands.data",
    "vsa_tf.commands.align",
    "vsa_tf.commands.alignment_eval",
    "vsa_tf.commands.caption",
    "vsa_tf.commands.embedding",
    "vsa_tf.commands.export",
    "vsa_tf.commands.demo",
    "vsa_tf.commands.pretrained",
)


def add_strategy_argument(parser):
    """`--strategy {default,mirrored,multiworker}` of every training command."""
    from vsa_tf.training import STRATEGIES

    parser.add_argument(
        "--strategy", choices=STRATEGIES, default="default",
        help="tf.distribute strategy: mirrored = every local GPU; multiworker = the machines in TF_CONFIG "
        "(--batch-size is the global batch, split across replicas)",
    )


# `--boxes none` (or an empty value): whole images only. It becomes "" in the DataConfig, which the jobs
# read as "no boxes" and, unlike None (option not given), does not fall back to the run's own boxes.
NO_BOXES = ""
BOXES_HELP = "boxes JSON (filename -> [[x0, y0, x1, y1], ...] pixels, best first); 'none' = whole images only"


def boxes_argument(value):
    """`--boxes` type: a boxes JSON path, or `NO_BOXES` for 'none'."""
    return NO_BOXES if value.strip().lower() in ("", "none") else value


def add_split_arguments(parser, of_run=False):
    """`--split-of-file` and `--split-files TRAIN VAL TEST`: how a captions file splits (`DataConfig.split_of_file`
    / `split_files`). With `of_run`, a command on an existing run keeps the run's for its own captions file."""
    from vsa_tf.data.records import SPLITS

    default = " (default: the run's for its own captions file, else" if of_run else " (default:"
    parser.add_argument(
        "--split-of-file", choices=SPLITS, default=None,
        help="COCO captions JSON whose name does not say its split: the split of all its images"
        + default + " from the file name, e.g. captions_val2014 -> val)",
    )
    parser.add_argument(
        "--split-files", nargs=3, default=None, metavar=("TRAIN", "VAL", "TEST"),
        help="Flickr token file: image list files of each split ('-' = none)"
        + default + " Flickr_8k.*Images.txt beside it)",
    )


def split_options(args):
    """`{"split_of_file": ..., "split_files": {split: path}}` of the `add_split_arguments` given (the others left out)."""
    from vsa_tf.data import readers

    options = {}
    if getattr(args, "split_of_file", None) is not None:
        options["split_of_file"] = args.split_of_file
    if getattr(args, "split_files", None) is not None:
        options["split_files"] = readers.split_files_argument(args.split_files)
    return options
