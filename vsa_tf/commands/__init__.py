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
