"""Benchmark: peak memory and images/s of cached-feature training and evaluation vs the store's size.

For each size N a generated world is written once (under --work): `dataset.json` (N images,
--sentences captions of --words words each: 1 x 5 by default, COCO's 5 x 10 with `--sentences 5
--words 10`; the last 1,000 images are val 500 + test 500, the rest train), a tiny PNG per image
(the jobs validate that every image exists) and a feature store of N images x R regions x D
dims (random; small D by default so 120K images fit on disk: the streaming path is what is measured,
not the bytes). Then two child processes, each reporting its own peak RSS (VmHWM):

- train: `train_alignment` of a tiny cached alignment model (h = 16, batch 100) for one epoch over
  the train split, with its val R@K callback and test-split retrieval (500 images each);
- evaluate: the trained run streams every train-split image through `images_dataset` (record order)
  and `encode_images`, keeping a checksum only, then scores the test split (`retrieval_scores`).

Memory is flat in N when the features stream; the old in-memory path held 2 x N x R x D x 4 bytes
(reported as `old_path_feature_bytes`) on top of that.

    .venv/bin/python benchmarks/feature_streaming.py --images 10000 40000 120000 [--regions 2 --dims 8]
    .venv/bin/python benchmarks/feature_streaming.py --child train --world W --batch-size 100   (one phase)
"""

import argparse
import io
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HELD_OUT_IMAGES = 1000  # val 500 + test 500
WORDS = ["a", "red", "green", "blue", "square", "circle", "left", "right", "of", "big"]
def peak_rss_bytes():
    """This process's peak resident set (VmHWM of /proc/self/status) in bytes."""
    with open("/proc/self/status") as stream:
        for line in stream:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise ValueError("/proc/self/status has no VmHWM line")


def generate_world(folder, num_images, regions, dims, dtype="float32", shard_size=1000, seed=0, sentences=1, words=5):
    """Writes dataset.json, images/ and features/ for `num_images` images (skipped when already complete)."""
    import numpy as np
    from PIL import Image

    from vsa_tf.data import features

    if os.path.isfile(os.path.join(folder, "features", "index.json")):
        return folder
    if num_images <= HELD_OUT_IMAGES:
        raise ValueError(f"--images must exceed {HELD_OUT_IMAGES} (val + test), received {num_images}")
    os.makedirs(os.path.join(folder, "images"), exist_ok=True)
    encoded = io.BytesIO()
    Image.new("RGB", (8, 8), (120, 120, 120)).save(encoded, format="PNG")  # every image: the same tiny PNG
    rng = np.random.default_rng(seed)
    images = []
    for index in range(num_images):
        filename = f"image_{index:06d}.png"
        with open(os.path.join(folder, "images", filename), "wb") as stream:
            stream.write(encoded.getvalue())
        split = "train" if index < num_images - HELD_OUT_IMAGES else ("val" if index % 2 else "test")
        captions = []
        for _ in range(sentences):
            tokens = [WORDS[word] for word in rng.integers(0, len(WORDS), size=words)]
            captions.append({"tokens": tokens, "raw": " ".join(tokens).capitalize() + "."})
        images.append({"filename": filename, "imgid": index, "split": split, "sentences": captions})
    with open(os.path.join(folder, "dataset.json"), "w") as stream:
        json.dump({"dataset": "generated", "images": images}, stream)

    def examples():
        mask = np.ones(regions, bool)
        for index in range(num_images):
            yield images[index]["filename"], rng.normal(size=(regions, dims)).astype(np.float32), mask

    features.write_store(os.path.join(folder, "features"), examples(), num_images, regions, dims, dtype=dtype, shard_size=shard_size)
    return folder


def _configs(world, batch_size):
    from vsa_tf.config import AlignmentConfig, DataConfig, ImageEncoderConfig
    from vsa_tf.data.features import FeatureStore

    store = FeatureStore(os.path.join(world, "features"))
    data = DataConfig(
        dataset=os.path.join(world, "dataset.json"), images=os.path.join(world, "images"),
        features=os.path.join(world, "features"), max_boxes=store.regions - 1, max_words=6, min_word_count=1,
    )
    image = ImageEncoderConfig(mode="cached", feature_dim=store.dims, normalization="l2")
    config = AlignmentConfig(
        data=data, image=image, region_dim=16, embedding_dim=8, hidden_dim=8, batch_size=batch_size, epochs=1, patience=0,
    )
    return config, store


def run_child(phase, world, batch_size):
    """One phase in this process -> {"seconds", "images", "images_per_second", "peak_rss_mb", ...}."""
    import numpy as np

    from vsa_tf.data import pipelines, readers
    from vsa_tf.jobs import alignment

    config, store = _configs(world, batch_size)
    run_dir = os.path.join(world, "run")
    # This read is not timed (the job's own read is). The train phase keeps only the count (the job
    # reads its own copy); the evaluate phase keeps the train records until its retrieval step.
    train_records = readers.read_dataset(config.data.dataset).split("train")
    num_images = len(train_records)
    if phase == "train":
        del train_records
    started = time.perf_counter()
    result = {"phase": phase}
    if phase == "train":
        if os.path.isdir(run_dir):
            import shutil

            shutil.rmtree(run_dir)
        alignment.train_alignment(config, run_dir=run_dir, verbose=0)
    elif phase == "evaluate":
        run = alignment.load_alignment_run(run_dir)
        checksum, count = 0.0, 0
        for batch in pipelines.images_dataset(train_records, config.data.images, None, config.data, batch_size, features=store):
            vectors, mask = run.model.encode_images(batch, training=False)
            checksum += float(np.asarray(vectors).sum())
            count += int(mask.shape[0])
        if count != num_images:
            raise ValueError(f"evaluation streamed {count} images, expected {num_images}")
        del train_records  # retrieval_scores reads the dataset itself
        scores, _, _ = alignment.retrieval_scores(run_dir, config.data, "test")
        result.update({"checksum": checksum, "test_scores_shape": list(scores.shape)})
    else:
        raise ValueError(f"phase must be 'train' or 'evaluate', received {phase!r}")
    seconds = time.perf_counter() - started
    result.update({
        "images": num_images, "seconds": round(seconds, 2), "images_per_second": round(num_images / seconds, 1),
        "peak_rss_mb": round(peak_rss_bytes() / 2**20, 1),
    })
    return result


def measure(world, phase, batch_size):
    """Runs one phase in a fresh Python process; its JSON result (the last stdout line)."""
    command = [sys.executable, os.path.abspath(__file__), "--child", phase, "--world", world, "--batch-size", str(batch_size)]
    completed = subprocess.run(command, capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({completed.returncode}):\n{completed.stderr[-4000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, nargs="+", default=[10_000, 40_000, 120_000])
    parser.add_argument("--regions", type=int, default=2)
    parser.add_argument("--dims", type=int, default=8)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16"])
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--sentences", type=int, default=1, help="captions per image (COCO: 5)")
    parser.add_argument("--words", type=int, default=5, help="words per caption (COCO: ~10)")
    parser.add_argument("--work", default="/tmp/feature_streaming_bench")
    parser.add_argument("--child", choices=["train", "evaluate"], help=argparse.SUPPRESS)
    parser.add_argument("--world", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(run_child(args.child, args.world, args.batch_size)))
        return 0
    rows = []
    for count in args.images:
        text = "" if (args.sentences, args.words) == (1, 5) else f"_{args.sentences}x{args.words}w"
        world = os.path.join(args.work, f"{count}_{args.regions}x{args.dims}_{args.dtype}{text}")
        started = time.perf_counter()
        generate_world(world, count, args.regions, args.dims, args.dtype, sentences=args.sentences, words=args.words)
        store_bytes = sum(os.path.getsize(os.path.join(world, "features", name)) for name in os.listdir(os.path.join(world, "features")))
        row = {
            "store_images": count, "sentences": args.sentences, "words": args.words, "regions": args.regions, "dims": args.dims, "dtype": args.dtype,
            "store_mb": round(store_bytes / 2**20, 1), "generate_seconds": round(time.perf_counter() - started, 1),
            "old_path_feature_bytes": 2 * count * args.regions * args.dims * 4,
        }
        for phase in ("train", "evaluate"):
            result = measure(world, phase, args.batch_size)
            row[phase] = {key: result[key] for key in ("images", "seconds", "images_per_second", "peak_rss_mb")}
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    print(json.dumps({"batch_size": args.batch_size, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
