"""Kill-and-resume of a real training command, and fail-fast validation before anything is written."""

import csv
import json
import os
import signal
import subprocess
import sys

import pytest

from tests.helpers.recall import assert_same_recalls
from vsa_tf.data import synthetic

OBSERVED_CLI = os.path.join(os.path.dirname(os.path.dirname(__file__)), "helpers", "observed_cli.py")


def _train_command(world, run_dir, epochs):
    return [
        sys.executable, "-m", "vsa_tf", "train-align",
        "--dataset", str(world / "dataset.json"), "--images", str(world / "images"), "--boxes", str(world / "boxes.json"),
        "--out", str(run_dir), "--image-size", "32", "32", "--region-dim", "8", "--embedding-dim", "8",
        "--hidden-dim", "8", "--batch-size", "4", "--epochs", str(epochs), "--min-word-count", "1", "--max-boxes", "3",
    ]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("world") / "world"
    synthetic.generate_world(str(out), num_images=None, seed=1, split_counts={"train": 40, "val": 6, "test": 6},
                             min_side=48, max_side=64)
    return out


@pytest.mark.timeout(900)  # a safety net only: the test waits on the child's output, never on a clock
def test_sigkill_mid_epoch_then_rerun_resumes(world, tmp_path):
    run_dir = tmp_path / "run"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    # The same command under tests/helpers/observed_cli.py, which reports the epochs on stdout and blocks
    # after the first batch of epoch 1 (epoch 0's backup is on disk by then): the kill lands mid-epoch.
    stderr = open(tmp_path / "stderr.txt", "w")
    process = subprocess.Popen(
        [sys.executable, OBSERVED_CLI, "--hold-at", "1", "0", "--", *_train_command(world, run_dir, 5)[3:]],
        stdout=subprocess.PIPE, stderr=stderr, text=True, env=env,
    )
    try:
        seen = []
        for line in iter(process.stdout.readline, ""):  # "" once the child has exited
            seen.append(line.strip())
            if line.startswith("holding"):
                break
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
        process.stdout.close()
        stderr.close()
    assert seen == ["epoch 0 begin", "epoch 0 end", "epoch 1 begin", "holding at epoch 1 batch 0"], (
        seen, (tmp_path / "stderr.txt").read_text()[-3000:])
    metadata = run_dir / "backup" / "training_metadata.json"
    assert json.loads(metadata.read_text())["epoch"] == 1  # epochs done: the rerun starts at epoch 1
    assert not (run_dir / "training_status.json").exists()

    rerun = subprocess.run(_train_command(world, run_dir, 5), capture_output=True, text=True, env=env, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    with open(run_dir / "history.csv", newline="") as stream:
        epochs = [int(row["epoch"]) for row in csv.DictReader(stream)]
    # Epoch 0 from the killed run, 1-4 from the rerun, which continued where the backup left off.
    assert epochs == [0, 1, 2, 3, 4]
    status = json.loads((run_dir / "training_status.json").read_text())
    assert status["status"] == "finished"

    from vsa_tf.jobs import alignment

    # The run's retrieval metrics are those of its saved weights' scores, ranked here independently.
    metrics = alignment.evaluate_retrieval(str(run_dir), split="test")
    scores, sentence_image, _ = alignment.retrieval_scores(str(run_dir), split="test")
    assert metrics["n_images"] == 6 and metrics["n_sentences"] == len(sentence_image) == scores.shape[1]
    assert_same_recalls(metrics, scores, sentence_image)


def test_bad_dataset_fails_before_anything_is_written(tmp_path):
    dataset = tmp_path / "dataset.json"
    dataset.write_text(json.dumps({"images": [{"filename": "../escape.jpg", "split": "train", "sentences": [{"raw": "a cat"}]}]}))
    (tmp_path / "images").mkdir()
    run_dir = tmp_path / "run"
    completed = subprocess.run(
        [sys.executable, "-m", "vsa_tf", "train-align", "--dataset", str(dataset), "--images", str(tmp_path / "images"),
         "--out", str(run_dir), "--epochs", "1"],
        capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode != 0
    assert "escape.jpg" in completed.stderr
    assert not run_dir.exists()
