"""`vsa-tf --help` in a fresh process: every subcommand listed, no TensorFlow imported, no TensorFlow log line."""

import os
import subprocess
import sys

from vsa_tf import cli
from vsa_tf import commands

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Builds the parser and every subcommand's help, then reports the heavy modules that got imported.
PROBE = """
import contextlib, io, sys
import vsa_tf.cli
parser = vsa_tf.cli.build_parser()
[subparsers] = [action for action in parser._actions if action.__class__.__name__ == "_SubParsersAction"]
for command in subparsers.choices:
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            parser.parse_args([command, "--help"])
        except SystemExit:
            pass
print(" ".join(name for name in ("tensorflow", "keras") if name in sys.modules) or "none")
"""


def _run(*arguments):
    # TF_CPP_MIN_LOG_LEVEL left as the user's (unset): importing TensorFlow would print its C++ log lines.
    env = {name: value for name, value in os.environ.items() if name != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, *arguments], capture_output=True, text=True, timeout=120, env=env)


def _command_names():
    [subparsers] = [action for action in cli.build_parser()._actions if action.__class__.__name__ == "_SubParsersAction"]
    return list(subparsers.choices)


def test_building_every_parser_imports_neither_tensorflow_nor_keras():
    completed = _run("-c", PROBE)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "none"


def test_help_lists_every_subcommand_and_prints_no_tensorflow_line():
    completed = _run("-m", "vsa_tf", "--help")
    assert completed.returncode == 0, completed.stderr
    names = _command_names()
    assert len(names) > 20
    for name in names:
        assert f"    {name} " in completed.stdout or f"    {name}\n" in completed.stdout, name
    for line in completed.stderr.splitlines():
        assert "tensorflow" not in line.lower() and "I0000" not in line, line


def test_the_strategies_are_the_training_modules():
    from vsa_tf import training

    assert commands.STRATEGIES == training.STRATEGIES


def test_deterministic_turns_on_op_determinism_before_the_command_runs(tmp_path):
    # A fresh process: op determinism cannot be turned off once on. The command fails (no such dataset)
    # after the flag took effect; the probe then reads TensorFlow's switch.
    probe = (
        "import sys, vsa_tf.cli\n"
        f"code = vsa_tf.cli.main(['--deterministic', 'validate', '--dataset', {str(tmp_path / 'missing.json')!r}, '--images', '.'])\n"
        "from tensorflow.python.framework import config\n"
        "print(code, config.is_op_determinism_enabled())\n"
    )
    completed = _run("-c", probe)
    assert completed.stdout.split()[-2:] == ["1", "True"], completed.stderr[-2000:]  # validate: 1 = problems found
    assert "missing.json" in completed.stdout + completed.stderr
