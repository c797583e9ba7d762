"""`cache_region_features` killed with SIGKILL mid-run, then rerun: same index, byte-identical shards, only the rest redone."""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.pretrained.tiny_efficientnet import tiny_feature_model
from tests.pretrained.tiny_efficientnet import write_tiny_weights
from vsa_tf.jobs import features
from vsa_tf.pretrained import region_features

REPOSITORY = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARD_FILES = [f"features-{shard:05d}-of-00004.tfrecord" for shard in range(4)]
SETTINGS = dict(image_size=(64, 64), max_boxes=2, batch_size=1, shard_size=2, progress_seconds=0)

# The child caches with one image per extractor call and, from its 6th call on (the 2nd image of shard 2),
# blocks until it is killed: shards 0 and 1 are finished, shard 2 is half written to its temporary file.
CHILD = """
import sys, threading
from tests.pretrained.tiny_efficientnet import tiny_feature_model
from vsa_tf.jobs import features
from vsa_tf.pretrained import region_features

root, out, weights = sys.argv[1:4]
build = region_features.build_region_feature_extractor

def build_blocking(*args, **kwargs):
    extractor, calls = build(*args, **kwargs), []
    def blocking(batch):
        calls.append(1)
        if len(calls) >= 6:
            print("blocked", flush=True)  # the parent's cue: shards 0 and 1 done, shard 2 under way
            threading.Event().wait()  # until SIGKILL
        return extractor(batch)
    return blocking

region_features.build_region_feature_extractor = build_blocking
features.cache_region_features(
    root + "/dataset.json", root + "/images", root + "/boxes.json", weights, out,
    feature_model=tiny_feature_model(weights), **{settings},
)
"""


def write_world(root, count=8):
    (root / "images").mkdir(parents=True)
    rng = np.random.default_rng(1)
    entries = []
    for index in range(count):
        name = f"image_{index}.png"
        Image.fromarray(rng.integers(0, 255, (64, 48, 3), dtype=np.uint8)).save(root / "images" / name)
        entries.append({"filename": name, "imgid": index, "split": "train", "sentences": [{"tokens": ["a"], "raw": "A."}]})
    (root / "dataset.json").write_text(json.dumps({"images": entries}))
    (root / "boxes.json").write_text(json.dumps({"image_3.png": [[0, 0, 20, 30]], "image_6.png": [[10, 5, 40, 60]]}))
    return root


def wait_until_blocked(process, stderr_path):
    """Reads the child's stdout until it says it is blocked (an event, not a clock); fails if it exits first."""
    for line in process.stdout:
        if line.strip() == "blocked":
            return
    process.wait()
    pytest.fail(f"the caching process exited ({process.returncode}) before blocking: {stderr_path.read_text()}")


def test_a_run_killed_with_sigkill_resumes_to_the_store_of_one_run(tmp_path, monkeypatch):
    root = write_world(tmp_path / "world")
    weights = write_tiny_weights(tmp_path / "tiny.weights.h5")
    out = tmp_path / "killed"
    child = CHILD.replace("{settings}", repr(SETTINGS))
    environment = dict(os.environ, PYTHONPATH=REPOSITORY + os.pathsep + os.environ.get("PYTHONPATH", ""))
    stderr_path = tmp_path / "child.stderr"  # a file, not a pipe: the progress bar cannot fill it and block the child
    with open(stderr_path, "w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-c", child, str(root), str(out), weights], cwd=REPOSITORY, env=environment,
            stdout=subprocess.PIPE, stderr=stderr, text=True,
        )
    try:
        wait_until_blocked(process, stderr_path)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        process.stdout.close()
    assert process.returncode == -signal.SIGKILL
    assert sorted(name for name in os.listdir(out) if name.endswith(".tfrecord")) == [
        ".tmp-features-00002-of-00004.tfrecord", *SHARD_FILES[:2]
    ]
    assert not (out / "index.json").exists()
    kept = {name: (out / name).read_bytes() for name in SHARD_FILES[:2]}
    kept_times = {name: os.stat(out / name).st_mtime_ns for name in SHARD_FILES[:2]}

    # The rerun extracts only shards 2 and 3 (4 images) and leaves the finished files untouched.
    extracted = []
    build = region_features.build_region_feature_extractor

    def build_counting(*args, **kwargs):
        extractor = build(*args, **kwargs)
        return lambda batch: extracted.append(int(batch["images"].shape[0])) or extractor(batch)

    monkeypatch.setattr(region_features, "build_region_feature_extractor", build_counting)
    arguments = (str(root / "dataset.json"), str(root / "images"), str(root / "boxes.json"), weights)
    resumed = features.cache_region_features(*arguments, str(out), feature_model=tiny_feature_model(weights), **SETTINGS)
    assert sum(extracted) == 4 and resumed["extracted_images"] == 4
    assert (resumed["reused_shards"], resumed["written_shards"], resumed["complete"]) == (2, 2, True)
    assert {name: os.stat(out / name).st_mtime_ns for name in SHARD_FILES[:2]} == kept_times
    assert not (out / ".tmp-features-00002-of-00004.tfrecord").exists()

    one_run = tmp_path / "one_run"
    features.cache_region_features(*arguments, str(one_run), feature_model=tiny_feature_model(weights), **SETTINGS)
    assert (out / "index.json").read_text() == (one_run / "index.json").read_text()
    for name in SHARD_FILES:
        assert (out / name).read_bytes() == (one_run / name).read_bytes(), name
    assert all(kept[name] == (one_run / name).read_bytes() for name in SHARD_FILES[:2])
