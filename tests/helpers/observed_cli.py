"""Runs the `vsa-tf` command line in this process and reports its training progress on stdout.

    python observed_cli.py [--hold-at EPOCH BATCH] -- COMMAND [ARGS ...]

Every `keras.Model.fit` call gets a `tests.helpers.progress.ProgressReporter` as its last callback
(after `vsa_tf.training.fit_model`'s `BackupAndRestore`, so "epoch N end" means epoch N's backup is
on disk). Its lines are the only thing on stdout: the command's own output is sent to stderr, so a
progress bar cannot run into them. Exits with the command's exit code.
"""

import argparse
import inspect
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("--hold-at", nargs=2, type=int, metavar=("EPOCH", "BATCH"))
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command

    report = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # the command's prints and progress bars go to stderr

    import keras

    from tests.helpers.progress import ProgressReporter
    from vsa_tf import cli

    fit = keras.Model.fit
    signature = inspect.signature(fit)

    def observed_fit(self, *fit_args, **fit_kwargs):
        bound = signature.bind(self, *fit_args, **fit_kwargs)
        callbacks = list(bound.arguments.get("callbacks") or [])
        bound.arguments["callbacks"] = [*callbacks, ProgressReporter(report, hold_at=args.hold_at)]
        return fit(*bound.args, **bound.kwargs)

    keras.Model.fit = observed_fit
    return cli.main(command)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    sys.exit(main(sys.argv[1:]))
