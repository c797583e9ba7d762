"""Benchmark: the full image×sentence score matrix of eq. 8 (`evaluation.retrieval.score_matrix`).

Prints JSON with the seconds taken, the achieved GFLOP/s (2·I·R·S·W·h flops, the matmuls), the
float32 matmul peak of this machine measured in the same run (`tf.matmul` on 4096×4096, best of
several), their ratio, and the peak resident memory. Target: ratio >= 0.8 and peak memory < 4 GB.
On a shared machine the best-of peak may come from a quiet moment the long run never sees, so the
run also reports `paired_ratios`: slices of the matrix each compared with a matmul timed right after.

    .venv/bin/python benchmarks/bench_scoring.py --images 1000 --sentences 5000
    .venv/bin/python benchmarks/bench_scoring.py --images 5000 --sentences 25000   # COCO 5K (+ its five 1K folds)
"""

import argparse
import json
import os
import resource
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from vsa_tf.evaluation import retrieval  # noqa: E402

TARGET_RATIO = 0.8
MEMORY_LIMIT_BYTES = 4 * 1024**3


def matmul_peak_gflops(size=4096, repeats=5):
    """Best-of-`repeats` float32 GFLOP/s of one size×size matmul (after a warm-up)."""
    left = tf.random.normal([size, size], seed=1)
    right = tf.random.normal([size, size], seed=2)
    matmul = tf.function(lambda a, b: tf.reduce_sum(tf.matmul(a, b)[:1, :1]))
    matmul(left, right).numpy()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(left, right).numpy()
        best = min(best, time.perf_counter() - start)
    return 2.0 * size**3 / best / 1e9


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--sentences", type=int, default=5000)
    parser.add_argument("--regions", type=int, default=20)
    parser.add_argument("--words", type=int, default=12)
    parser.add_argument("--hidden", type=int, default=1000)
    parser.add_argument("--image-tile", type=int, default=None, help="default: score_matrix's default")
    parser.add_argument("--sentence-tile", type=int, default=None, help="default: score_matrix's default")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs of the whole matrix (best is kept)")
    parser.add_argument(
        "--paired-chunks",
        type=int,
        default=5,
        help="also score the sentences in this many slices, each followed by a 4096x4096 matmul timing, "
        "so that each slice is compared with the peak measured under the same load (0 to skip)",
    )
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    region_vectors = rng.standard_normal((args.images, args.regions, args.hidden), dtype=np.float32)
    word_vectors = rng.standard_normal((args.sentences, args.words, args.hidden), dtype=np.float32)
    region_mask = np.ones([args.images, args.regions], dtype=bool)
    word_mask = np.ones([args.sentences, args.words], dtype=bool)
    # Realistic masks: some images have fewer detections, sentences have 8..words words.
    region_mask[:, args.regions // 2 :] = rng.random((args.images, args.regions - args.regions // 2)) < 0.8
    lengths = rng.integers(min(8, args.words), args.words + 1, size=args.sentences)
    word_mask = np.arange(args.words)[None, :] < lengths[:, None]
    tiles = {}
    if args.image_tile:
        tiles["image_tile"] = args.image_tile
    if args.sentence_tile:
        tiles["sentence_tile"] = args.sentence_tile

    peak_before = matmul_peak_gflops()
    # Warm-up on a small slice traces the tile function once for these tile shapes.
    retrieval.score_matrix(region_vectors[:2], region_mask[:2], word_vectors[:2], word_mask[:2], **tiles)
    seconds = float("inf")
    for _ in range(args.repeats):
        start = time.perf_counter()
        scores = retrieval.score_matrix(region_vectors, region_mask, word_vectors, word_mask, **tiles)
        seconds = min(seconds, time.perf_counter() - start)
    peak_after = matmul_peak_gflops()
    peak = max(peak_before, peak_after)

    # On a shared machine the load changes during the run; pairing each slice with a matmul timing
    # taken right after it gives a ratio measured under (nearly) the same load.
    paired_ratios = []
    for chunk in np.array_split(np.arange(args.sentences), max(args.paired_chunks, 0) or 1)[: args.paired_chunks]:
        start = time.perf_counter()
        retrieval.score_matrix(region_vectors, region_mask, word_vectors[chunk], word_mask[chunk], **tiles)
        chunk_seconds = time.perf_counter() - start
        chunk_gflops = 2.0 * args.images * args.regions * len(chunk) * args.words * args.hidden / chunk_seconds / 1e9
        paired_ratios.append(chunk_gflops / matmul_peak_gflops(repeats=2))

    # The ranks and recalls of the evaluation (with >= 5,000 images also the COCO protocol's five 1K folds,
    # read from sub-blocks of the same matrix): the rest of an evaluation's time after the scores.
    sentence_image = np.arange(args.sentences) * args.images // args.sentences
    start = time.perf_counter()
    report = retrieval.retrieval_report(scores, sentence_image)
    report_seconds = time.perf_counter() - start

    flops = 2.0 * args.images * args.regions * args.sentences * args.words * args.hidden
    achieved = flops / seconds / 1e9
    peak_memory_bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    load_average = os.getloadavg()
    result = {
        "benchmark": "score_matrix",
        "images": args.images,
        "sentences": args.sentences,
        "regions": args.regions,
        "words": args.words,
        "hidden": args.hidden,
        "tiles": tiles or "default",
        "seconds": round(seconds, 3),
        "report_seconds": round(report_seconds, 3),
        "coco_1k_protocol": "coco_1k" in report,  # the five 1K folds were scored from this matrix
        "gflops": round(achieved, 1),
        "matmul_peak_gflops": round(peak, 1),
        "matmul_peak_gflops_before_after": [round(peak_before, 1), round(peak_after, 1)],
        "ratio_to_peak": round(achieved / peak, 3),
        "target_ratio": TARGET_RATIO,
        "peak_memory_gb": round(peak_memory_bytes / 1024**3, 3),
        "memory_limit_gb": MEMORY_LIMIT_BYTES / 1024**3,
        "paired_ratios": [round(value, 3) for value in paired_ratios],
        "paired_ratio_median": round(float(np.median(paired_ratios)), 3) if paired_ratios else None,
        "meets_target": bool(achieved / peak >= TARGET_RATIO and peak_memory_bytes < MEMORY_LIMIT_BYTES),
        "cpu_count": os.cpu_count(),
        "load_average_1_5_15": [round(value, 2) for value in load_average],
        "checksum": float(np.float64(scores).sum()),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
