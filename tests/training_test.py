import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers.network import free_ports

SCRIPT = os.path.join(os.path.dirname(__file__), "helpers", "tiny_training.py")


def run_script(*args, env=None, timeout=180):
    completed = subprocess.run(
        [sys.executable, SCRIPT, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    return completed.returncode, (json.loads(lines[-1]) if lines else None), completed


def test_fit_model_writes_best_weights_history_and_status(tmp_path):
    code, result, completed = run_script(tmp_path / "run", 2)
    assert code == 0, completed.stderr[-2000:]
    assert result["epochs_run"] == 2
    assert (tmp_path / "run" / "model.weights.h5").exists()
    history = (tmp_path / "run" / "history.csv").read_text().splitlines()
    assert history[0].startswith("epoch") and len(history) == 3
    assert json.loads((tmp_path / "run" / "training_status.json").read_text())["status"] == "finished"


@pytest.mark.timeout(600)  # a safety net only: the test waits on the child's output, never on a clock
def test_killed_training_resumes_from_last_backup(tmp_path):
    run_dir = tmp_path / "run"
    # The child blocks after batch 2 of epoch 1 and says so; the kill lands there, mid-epoch, once
    # epoch 0 has ended (and its backup is written).
    stderr = open(tmp_path / "stderr.txt", "w")
    process = subprocess.Popen(
        [sys.executable, SCRIPT, str(run_dir), "4", "--hold-at", "1", "2"],
        stdout=subprocess.PIPE, stderr=stderr, text=True,
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
    assert seen == ["epoch 0 begin", "epoch 0 end", "epoch 1 begin", "holding at epoch 1 batch 2"], (
        seen, (tmp_path / "stderr.txt").read_text()[-2000:])
    assert (run_dir / "backup").exists()
    assert not (run_dir / "training_status.json").exists()
    assert [line.split(",")[0] for line in (run_dir / "history.csv").read_text().splitlines()[1:]] == ["0"]

    code, result, completed = run_script(run_dir, 4)
    assert code == 0, completed.stderr[-2000:]
    # Epoch 0 finished before the kill; the rerun resumes at epoch 1 and runs the remaining 3 epochs.
    assert result["epochs_run"] == 3, result
    epochs_logged = [line.split(",")[0] for line in (run_dir / "history.csv").read_text().splitlines()[1:]]
    assert epochs_logged == ["0", "1", "2", "3"]

    code_fresh, fresh, _ = run_script(tmp_path / "fresh", 4)
    np.testing.assert_allclose(result["kernel"], fresh["kernel"], rtol=1e-5, atol=1e-6)


def test_nan_loss_stops_with_clear_message(tmp_path):
    code, result, completed = run_script(tmp_path / "run", 3, "--poison")
    assert code == 3, completed.stderr[-2000:]
    assert "Training diverged" in result["diverged"] and "learning rate" in result["diverged"]
    status = json.loads((tmp_path / "run" / "training_status.json").read_text())
    assert status["status"] == "diverged"


def test_mirrored_on_two_logical_cpus_matches_single_device(tmp_path):
    code_single, single, completed = run_script(tmp_path / "single", 2)
    assert code_single == 0, completed.stderr[-2000:]
    code_mirrored, mirrored, completed = run_script(tmp_path / "mirrored", 2, "--strategy", "mirrored", "--split-cpu", "2")
    assert code_mirrored == 0, completed.stderr[-2000:]
    np.testing.assert_allclose(single["kernel"], mirrored["kernel"], rtol=1e-4, atol=1e-5)


def test_two_local_workers_end_with_identical_weights(tmp_path):
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    processes = []
    for index in range(2):
        env = dict(os.environ, TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}))
        processes.append(subprocess.Popen(
            [sys.executable, SCRIPT, str(tmp_path / f"worker{index}"), "2", "--strategy", "multiworker"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        ))
    results = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=240)
        assert process.returncode == 0, stderr[-3000:]
        results.append(json.loads([line for line in stdout.splitlines() if line.startswith("{")][-1]))
    assert results[0]["epochs_run"] == 2
    np.testing.assert_allclose(results[0]["kernel"], results[1]["kernel"], rtol=1e-6)
    single_code, single, _ = run_script(tmp_path / "single", 2)
    np.testing.assert_allclose(results[0]["kernel"], single["kernel"], rtol=1e-4, atol=1e-5)


def test_unknown_strategy_is_rejected():
    from vsa_tf import training

    with pytest.raises(ValueError, match="Unknown strategy 'tpu'"):
        training.get_strategy("tpu")
