"""Command-line subcommands: each module exposes `register(subparsers)`; handlers only parse and call the library.

Building the parsers imports no TensorFlow (`vsa-tf --help` stays fast): the handlers import the jobs.
"""

import argparse
import json
import sys

COMMAND_MODULES = (
    "vsa_tf.commands.data",
    "vsa_tf.commands.align",
    "vsa_tf.commands.alignment_eval",
    "vsa_tf.commands.proposals",
    "vsa_tf.commands.caption",
    "vsa_tf.commands.embedding",
    "vsa_tf.commands.export",
    "vsa_tf.commands.demo",
    "vsa_tf.commands.pipeline",
    "vsa_tf.commands.pretrained",
)


# `vsa_tf.training.STRATEGIES`, which imports TensorFlow; `tests/cli_test.py` checks that they are the same.
STRATEGIES = ("default", "mirrored", "multiworker")


def add_strategy_argument(parser):
    """`--strategy {default,mirrored,multiworker}` of every training command."""
    parser.add_argument(
        "--strategy", choices=STRATEGIES, default="default",
        help="tf.distribute strategy: mirrored = every local GPU; multiworker = the machines in TF_CONFIG "
        "(--batch-size is the global batch, split across replicas)",
    )


class _DeprecatedRunOption(argparse.Action):
    """`--run` where a command writes its run folder: stores into `out` and says that `--out` is the name."""
    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{parser.prog}: warning: {option_string} is deprecated here, use --out (the run folder it writes)", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_out_argument(parser, help, deprecated_run=False):
    """`--out`, what the command writes (a new run folder, a file); `--run` always names a run it reads.

    `deprecated_run`: the command took `--run` for the folder it writes (train-embedding, train-scnlm);
    that spelling still works, with a one-line warning on stderr.
    """
    if not deprecated_run:
        parser.add_argument("--out", required=True, help=help)
        return
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--out", help=help)
    group.add_argument("--run", dest="out", action=_DeprecatedRunOption, help=argparse.SUPPRESS)


# `--boxes none` (or an empty value): whole images only. It becomes "" in the DataConfig, which the jobs
# read as "no boxes" and, unlike None (option not given), does not fall back to the run's own boxes.
NO_BOXES = ""
BOXES_HELP = "boxes JSON (filename -> [[x0, y0, x1, y1], ...] pixels, best first); 'none' = whole images only"
# `--proposals RUN` stands wherever `--boxes` does, and excludes it.
PROPOSALS_HELP = "proposals run (vsa-tf train-proposals) whose boxes for the images are used instead of --boxes"


def boxes_argument(value):
    """`--boxes` type: a boxes JSON path, or `NO_BOXES` for 'none'."""
    return NO_BOXES if value.strip().lower() in ("", "none") else value




def print_json(result, json_path=None):
    """Prints `result` as indented JSON and, when `json_path` is given, also writes it there atomically."""
    from vsa_tf.files import atomic_write_text

    text = json.dumps(result, indent=2)
    if json_path:
        atomic_write_text(json_path, text + "\n")
    print(text)
