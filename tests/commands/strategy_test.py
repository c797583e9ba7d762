"""`--strategy` on the training commands: it parses, reaches the job, and trains on two replicas."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers.network import free_ports
from vsa_tf import cli
from vsa_tf.data import synthetic

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Captured(Exception):
    """Raised by the stand-in jobs to stop the command once the job's arguments are recorded."""


def capture(calls):
    def job(*args, **kwargs):
        calls.append(kwargs)
        raise Captured()

    return job


@pytest.mark.parametrize(
    "command, module, function, extra",
    [
        ("train-align", "vsa_tf.jobs.alignment", "train_alignment", ["--out", "run"]),
        ("train-caption", "vsa_tf.jobs.captioning", "train_captioner", ["--out", "run"]),
        ("train-embedding", "vsa_tf.jobs.embedding", "train_embedding", ["--run", "run"]),
        ("train-scnlm", "vsa_tf.jobs.scnlm", "train_scnlm", ["--run", "run", "--embedding-run", "e", "--image-size", "40", "40"]),
    ],
)
@pytest.mark.parametrize("strategy", ["mirrored", "multiworker", None])
def test_strategy_flag_reaches_the_job(monkeypatch, command, module, function, extra, strategy):
    import importlib

    calls = []
    monkeypatch.setattr(importlib.import_module(module), function, capture(calls))
    argv = [command, "--dataset", "d.json", "--images", "images", *extra]
    if strategy is not None:
        argv += ["--strategy", strategy]
    with pytest.raises(Captured):
        cli.main(argv)
    assert calls[0]["strategy"] == (strategy or "default")


def test_unknown_strategy_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as raised:
        cli.main(["train-align", "--dataset", "d.json", "--images", "images", "--out", "run", "--strategy", "tpu"])
    assert raised.value.code == 2
    assert "invalid choice: 'tpu'" in capsys.readouterr().err


DRIVER = """
import json, sys
from vsa_tf import training
training.split_cpu(2)  # before TensorFlow initialises its devices
get_strategy = training.get_strategy
def recording(name):
    strategy = get_strategy(name)
    print(json.dumps({"strategy": name, "replicas": strategy.num_replicas_in_sync}), flush=True)
    return strategy
training.get_strategy = recording
from vsa_tf import cli
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_train_align_runs_mirrored_on_two_logical_cpus(tmp_path):
    world = str(tmp_path / "world")
    synthetic.generate_world(world, num_images=None, split_counts=(8, 0, 2), seed=1, min_side=48, max_side=56,
                             max_objects=2, sentences_per_image=2)
    run = str(tmp_path / "run")
    argv = ["train-align", "--dataset", os.path.join(world, "dataset.json"), "--images", os.path.join(world, "images"),
            "--boxes", os.path.join(world, "boxes.json"), "--out", run, "--image-size", "32", "32", "--max-boxes", "2",
            "--min-word-count", "1", "--region-dim", "4", "--embedding-dim", "3", "--hidden-dim", "3",
            "--batch-size", "8", "--epochs", "2", "--dropout", "0", "--strategy", "mirrored"]
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), TF_CPP_MIN_LOG_LEVEL="3")
    completed = subprocess.run([sys.executable, "-c", DRIVER, *argv], capture_output=True, text=True, timeout=300, env=env)
    assert completed.returncode == 0, completed.stderr[-3000:]
    first = json.loads(completed.stdout.splitlines()[0])
    assert first == {"strategy": "mirrored", "replicas": 2}
    with open(os.path.join(run, "training_status.json")) as stream:
        assert json.load(stream)["status"] == "finished"
    with open(os.path.join(run, "history.csv")) as stream:
        assert len(stream.read().strip().splitlines()) == 3  # header + 2 epochs
    summary = json.loads(completed.stdout[completed.stdout.index('{\n  "run"'):])
    assert summary["test"]["n_images"] == 2


def _h5_arrays(path):
    import h5py

    arrays = {}
    with h5py.File(path, "r") as file:
        file.visititems(lambda name, item: arrays.__setitem__(name, item[()]) if isinstance(item, h5py.Dataset) else None)
    return arrays


@pytest.mark.slow
def test_train_align_multiworker_on_two_local_processes(tmp_path):
    world = str(tmp_path / "world")
    synthetic.generate_world(world, num_images=None, split_counts=(8, 2, 0), seed=1, min_side=48, max_side=56,
                             max_objects=2, sentences_per_image=2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    processes = []
    for index in range(2):
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), TF_CPP_MIN_LOG_LEVEL="3",
                   TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}))
        argv = ["train-align", "--dataset", os.path.join(world, "dataset.json"), "--images", os.path.join(world, "images"),
                "--boxes", os.path.join(world, "boxes.json"), "--out", str(tmp_path / f"run{index}"),
                "--image-size", "32", "32", "--max-boxes", "2", "--min-word-count", "1", "--region-dim", "4",
                "--embedding-dim", "3", "--hidden-dim", "3", "--batch-size", "8", "--epochs", "2", "--dropout", "0",
                "--learning-rate", "0.01", "--strategy", "multiworker"]
        processes.append(subprocess.Popen([sys.executable, "-m", "vsa_tf.cli", *argv], stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True, env=env))
    try:
        for process in processes:
            _, stderr = process.communicate(timeout=300)
            assert process.returncode == 0, stderr[-3000:]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    weights = [_h5_arrays(tmp_path / f"run{index}" / "model.weights.h5") for index in range(2)]
    assert weights[0].keys() == weights[1].keys() and weights[0]
    for name, value in weights[0].items():
        np.testing.assert_array_equal(value, weights[1][name], err_msg=name)
    with open(tmp_path / "run0" / "history.csv") as stream:
        assert len(stream.read().strip().splitlines()) == 3  # header + 2 epochs
