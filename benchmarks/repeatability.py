"""Benchmark: is a training run repeatable, and what does `vsa-tf --deterministic` cost?

Trains the same small alignment model (a generated synthetic world, one epoch, seed 0) `--repeats` times
in fresh processes, each time with and without TensorFlow's op determinism (the two modes take turns, so
both see the same machine load), and prints JSON: per mode the first epoch's training loss of every run
(all equal = repeatable), the SHA-256 of the initial weights (equal = the seeding is complete), and the
median wall seconds of the training call; the deterministic / default time ratio is the cost.

The non-repeatable runs come from multi-threaded CPU reductions whose order follows the load, so run it
beside other work (or `--load N` busy processes) to see the default mode drift.

    .venv/bin/python benchmarks/repeatability.py --repeats 3 --encoder brnn
    .venv/bin/python benchmarks/repeatability.py --repeats 3 --encoder bag_of_words --load 2
"""

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# One training run in a fresh process: prints {"initial_sha256", "loss", "seconds"} as its last line.
CHILD = r"""
import hashlib, json, sys, time
import numpy as np
from vsa_tf import training
if sys.argv[3] == "deterministic":
    training.enable_determinism()
from vsa_tf.config import AlignmentConfig, DataConfig
from vsa_tf.jobs import alignment, builders

world, out, _, encoder = sys.argv[1:5]
config = AlignmentConfig(
    data=DataConfig(dataset=world + "/dataset.json", images=world + "/images", boxes=world + "/boxes.json",
                    image_size=(48, 64), min_word_count=1),
    sentence_encoder=encoder, epochs=1, patience=0, region_dim=32, hidden_dim=32, embedding_dim=16, batch_size=20, seed=0,
)
digests = []
build = builders.build_alignment_model

def recording_build(*args, **kwargs):
    model = build(*args, **kwargs)
    digest = hashlib.sha256()
    for weight in model.weights:
        digest.update(np.asarray(weight).tobytes())
    digests.append(digest.hexdigest())
    return model

alignment.build_alignment_model = recording_build
start = time.perf_counter()
alignment.train_alignment(config, run_dir=out, verbose=0)
seconds = time.perf_counter() - start
loss = float(open(out + "/history.csv").read().splitlines()[1].split(",")[1])
print(json.dumps({"initial_sha256": digests[0], "loss": loss, "seconds": seconds}))
"""


def busy():
    """A CPU-bound loop: the `--load` processes."""
    value = 0
    while True:
        value = (value * 31 + 7) % 1_000_003


def run_child(world, out, mode, encoder):
    environment = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), TF_CPP_MIN_LOG_LEVEL="3")
    completed = subprocess.run(
        [sys.executable, "-c", CHILD, world, out, mode, encoder], capture_output=True, text=True, env=environment, check=False
    )
    if completed.returncode != 0:
        raise RuntimeError(f"the {mode} run failed: {completed.stderr[-2000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per mode (default 3)")
    parser.add_argument("--encoder", default="brnn", choices=("brnn", "bag_of_words"))
    parser.add_argument("--images", type=int, default=60, help="training images of the generated world (val and test: 10 each)")
    parser.add_argument("--load", type=int, default=0, help="busy processes started beside the runs (default 0)")
    parser.add_argument("--work", default=None, help="folder for the world and the runs (default: a temp folder)")
    args = parser.parse_args()
    if args.repeats < 1 or args.images < 1 or args.load < 0:
        parser.error(f"--repeats and --images must be >= 1 and --load >= 0, received {args.repeats}, {args.images}, {args.load}")

    from vsa_tf.data import synthetic

    work = args.work or tempfile.mkdtemp(prefix="vsa_tf-repeatability-")
    world = os.path.join(work, "world")
    if not os.path.exists(os.path.join(world, "dataset.json")):
        synthetic.generate_world(world, num_images=None, seed=0, split_counts={"train": args.images, "val": 10, "test": 10})
    load = [multiprocessing.Process(target=busy, daemon=True) for _ in range(args.load)]
    for process in load:
        process.start()
    load_start = os.getloadavg()
    runs = {"default": [], "deterministic": []}
    try:
        for repeat in range(args.repeats):
            order = ("default", "deterministic") if repeat % 2 == 0 else ("deterministic", "default")
            for mode in order:
                runs[mode].append(run_child(world, os.path.join(work, f"{mode}_{repeat}"), mode, args.encoder))
    finally:
        for process in load:
            process.terminate()
    load_end = os.getloadavg()
    modes = {}
    for mode, results in runs.items():
        modes[mode] = {
            "losses": [result["loss"] for result in results],
            "repeatable": len({result["loss"] for result in results}) == 1,
            "initial_weights_identical": len({result["initial_sha256"] for result in results}) == 1,
            "median_seconds": round(statistics.median(result["seconds"] for result in results), 2),
            "seconds": [round(result["seconds"], 2) for result in results],
        }
    ratio = modes["deterministic"]["median_seconds"] / modes["default"]["median_seconds"]
    print(json.dumps({
        "benchmark": "repeatability",
        "encoder": args.encoder,
        "train_images": args.images,
        "repeats": args.repeats,
        "busy_processes": args.load,
        "load_average": [round(load_start[0], 2), round(load_end[0], 2)],
        "modes": modes,
        "deterministic_time_ratio": round(ratio, 3),
        "peer": "the same runs without --deterministic, alternating with them",
    }, indent=2))


if __name__ == "__main__":
    main()
