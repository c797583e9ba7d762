"""Benchmark: training steps/s of the alignment model at the paper's sizes, XLA off vs on.

One step = forward + ranking loss + backward + SGD (momentum 0.9, element-wise clip at 5, weight
decay) on a batch of 100 image-sentence pairs: cached 20 x 4096-d region features, h = 1000,
vocabulary 8,800, word embedding 300, BRNN hidden 600, sentences of 8-16 words (padded to 16).

FLOP utilisation: useful FLOPs of a step (matmuls only; the region projection needs no input
gradient, so it counts 2x its forward FLOPs, every other matmul 3x) divided by the step time, against
the float32 matmul peak measured in the same run with `tf.matmul` on 4096 x 4096.

Peer: a PyTorch eager implementation of exactly this step runs at ~490 ms/step on this machine class
(issue 3). Prints JSON with the ratio peer_ms / our ms (> 1 = faster than the peer).

    .venv/bin/python benchmarks/bench_train_align.py --steps 5
    .venv/bin/python benchmarks/bench_train_align.py --steps 5 --bfloat16   # also Keras' "mixed_bfloat16" (XLA off)

With --bfloat16 the same step also runs under the "mixed_bfloat16" dtype policy (bfloat16 compute, float32
weights; the CPU's AVX-512 BF16 through oneDNN), and `bfloat16_speedup` is float32 ms / bfloat16 ms, both
without XLA, measured in the same run.
"""

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from vsa_tf.config import ImageEncoderConfig  # noqa: E402
from vsa_tf.models.alignment_model import AlignmentModel  # noqa: E402

PEER_MS_PER_STEP = 490.0
SIZES = {"batch": 100, "regions": 20, "feature_dim": 4096, "region_dim": 1000, "vocabulary": 8800,
         "embedding_dim": 300, "hidden_dim": 600, "max_words": 16, "min_words": 8}


def step_flops(sizes):
    batch, regions, words = sizes["batch"], sizes["regions"], sizes["max_words"]
    region_dim, hidden, embedding = sizes["region_dim"], sizes["hidden_dim"], sizes["embedding_dim"]
    projection = 2 * batch * regions * sizes["feature_dim"] * region_dim
    sentence = 2 * batch * words * (embedding * hidden + 2 * hidden * hidden + hidden * region_dim)
    scores = 2 * batch * regions * batch * words * region_dim
    return 2 * projection + 3 * (sentence + scores)


def matmul_peak(size=4096, repeats=3):
    """Best float32 GFLOP/s of `tf.matmul` on size x size."""
    left = tf.random.normal((size, size))
    right = tf.random.normal((size, size))
    tf.matmul(left, right).numpy()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        tf.matmul(left, right).numpy()
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best / 1e9


def make_batch(sizes, seed=0):
    random = np.random.default_rng(seed)
    lengths = random.integers(sizes["min_words"], sizes["max_words"] + 1, sizes["batch"])
    tokens = random.integers(4, sizes["vocabulary"], (sizes["batch"], sizes["max_words"])).astype("int32")
    token_mask = np.arange(sizes["max_words"])[None, :] < lengths[:, None]
    tokens[~token_mask] = 0
    return {
        "region_features": random.normal(size=(sizes["batch"], sizes["regions"], sizes["feature_dim"])).astype("float32"),
        "region_mask": np.ones((sizes["batch"], sizes["regions"]), bool),
        "tokens": tokens,
        "token_mask": token_mask,
        "image_id": np.arange(sizes["batch"], dtype="int64"),
    }


def time_training(jit_compile, steps, warmup, sizes, dtype_policy="float32"):
    keras.utils.clear_session()
    keras.config.set_dtype_policy(dtype_policy)
    try:
        return _time_training(jit_compile, steps, warmup, sizes, dtype_policy)
    finally:
        keras.config.set_dtype_policy("float32")


def _time_training(jit_compile, steps, warmup, sizes, dtype_policy):
    keras.utils.set_random_seed(0)
    model = AlignmentModel(
        vocabulary_size=sizes["vocabulary"], region_dim=sizes["region_dim"],
        image_encoder=ImageEncoderConfig(mode="cached", feature_dim=sizes["feature_dim"]),
        embedding_dim=sizes["embedding_dim"], hidden_dim=sizes["hidden_dim"], dropout=0.5,
    )
    model.compile_for_training(learning_rate=1e-6, momentum=0.9, clip_value=5.0, weight_decay=1e-5, jit_compile=jit_compile)
    batch = {key: tf.constant(value) for key, value in make_batch(sizes).items()}
    for _ in range(warmup):
        loss = model.train_on_batch(batch)
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        loss = model.train_on_batch(batch)
        times.append(time.perf_counter() - started)
    return {"ms_per_step_median": 1000 * float(np.median(times)), "ms_per_step_min": 1000 * float(np.min(times)),
            "loss": float(loss), "dtype_policy": dtype_policy}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--bfloat16", action="store_true", help="also time the mixed_bfloat16 policy (XLA off)")
    args = parser.parse_args()

    flops = step_flops(SIZES)
    result = {"sizes": SIZES, "gflop_per_step": flops / 1e9, "peer_ms_per_step": PEER_MS_PER_STEP,
              "cpu_count": os.cpu_count(), "load_average_start": os.getloadavg()[0]}
    for jit_compile in (False, True):
        # The peak is measured right before each timing: on a shared machine it moves with the load.
        peak = matmul_peak()
        timing = time_training(jit_compile, args.steps, args.warmup, SIZES)
        seconds = timing["ms_per_step_median"] / 1000
        timing.update({
            "matmul_peak_gflops": peak,
            "steps_per_second": 1.0 / seconds,
            "achieved_gflops": flops / seconds / 1e9,
            "fraction_of_matmul_peak": flops / seconds / 1e9 / peak,
            "speed_vs_peer": PEER_MS_PER_STEP / timing["ms_per_step_median"],
        })
        result["jit_compile_on" if jit_compile else "jit_compile_off"] = timing
    if args.bfloat16:
        timing = time_training(False, args.steps, args.warmup, SIZES, dtype_policy="mixed_bfloat16")
        timing["steps_per_second"] = 1000.0 / timing["ms_per_step_median"]
        result["mixed_bfloat16"] = timing
        result["bfloat16_speedup"] = result["jit_compile_off"]["ms_per_step_median"] / timing["ms_per_step_median"]
    best = min(result["jit_compile_off"]["ms_per_step_median"], result["jit_compile_on"]["ms_per_step_median"])
    result["best_ms_per_step"] = best
    result["meets_peer"] = best <= PEER_MS_PER_STEP
    result["load_average_end"] = os.getloadavg()[0]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
