"""`vsa-tf` command line: argument parsing only; every subcommand calls a library function.

Each module listed in `vsa_tf.commands.COMMAND_MODULES` exposes `register(subparsers)`, which adds
its subcommands and sets `handler=function(args) -> exit code` on each.
"""

import os

# Before anything imports TensorFlow: hide its C++ INFO/WARNING/ERROR log lines (e.g. "failed call
# to cuInit: ... (303)" on a machine with no GPU, which is logged at ERROR); Python errors still
# show. setdefault: `TF_CPP_MIN_LOG_LEVEL=0 vsa-tf ...` brings them back.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import argparse
import importlib
import sys

from vsa_tf import __version__
from vsa_tf.commands import COMMAND_MODULES


def build_parser():
    parser = argparse.ArgumentParser(
        prog="vsa-tf",
        description="Deep visual-semantic alignments, captioning and joint embeddings in Keras/TensorFlow.",
    )
    parser.add_argument("--version", action="version", version=f"vsa-tf {__version__}")
    parser.add_argument(
        "--deterministic", action="store_true",
        help="run TensorFlow ops deterministically (tf.config.experimental.enable_op_determinism): with the same seed "
             "a training run repeats exactly on the same machine, even under CPU load; some ops run slower",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name == module_name:
                continue  # that command group is not part of this build
            raise
        module.register(subparsers)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    if args.deterministic:
        from vsa_tf import training

        training.enable_determinism()
    try:
        return int(args.handler(args) or 0)
    except ValueError as error:
        # Library functions raise ValueError with a message naming the file/field; show it without a traceback.
        print(f"vsa-tf {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
