"""Benchmark: images/s of `cache-features`' extraction beside a PyTorch forward of the same network.

Issue 17's goal: `cache-features` extracts at least as many images per second as the peer, the same
EfficientNet-Lite0 (converted ImageNet weights) run forward in PyTorch (`torch_reference_logits`: the
lukemelas network in eval mode under `torch.no_grad`, CPU), on the same decoded images, in the same process.

The first `--images` train/val images of the dataset are decoded and resized once by the pipeline
`cache-features` uses (`pipelines.images_dataset`: the pixels its extractor sees); then each repeat
times, one after the other (the order alternating between repeats, so both see the machine's load):

- cache_features: `write_region_features` with the frozen Lite0 + RoIAlign extractor, built and traced
  once, into a fresh folder: JPEG decoding, resizing, the backbone, RoIAlign of the whole image and up to
  19 boxes, and the TFRecord writing — the command's work per image, without its one-off model build;
- extractor: the same extractor alone, on the decoded images (backbone + RoIAlign, results on the host);
- torch_forward: the peer, on the same decoded images, batch by batch.

Prints JSON: the medians over `--repeats` of each path's images/s, the ratios to the peer (goal >= 1.0),
every repeat's figures, thread counts and the machine's load (other jobs may share the CPU), plus one cold
`cache_region_features` call (model build and tracing included) for reference.

    .venv/bin/python benchmarks/feature_throughput.py --root /work/shared/data/flickr8k \\
        --weights lite0.weights.h5 --images 200 --repeats 3
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from vsa_tf.config import DataConfig  # noqa: E402
from vsa_tf.data import boxes as boxes_lib  # noqa: E402
from vsa_tf.data import features as features_lib  # noqa: E402
from vsa_tf.data import pipelines  # noqa: E402
from vsa_tf.data import readers  # noqa: E402
from vsa_tf.jobs import features as features_job  # noqa: E402
from vsa_tf.pretrained import conversion  # noqa: E402
from vsa_tf.pretrained import region_features  # noqa: E402

GOAL = 1.0  # cache-features images/s over the peer's


def subset(dataset_path, boxes_path, count, work):
    """(records, boxes, dataset JSON path, boxes JSON path) of the first `count` train/val images."""
    records = [record for record in readers.read_dataset(dataset_path).records if record.split in ("train", "val")]
    records = records[:count]
    boxes = boxes_lib.read_boxes(boxes_path) if boxes_path and os.path.isfile(boxes_path) else {}
    boxes = {record.filename: boxes[record.filename] for record in records if record.filename in boxes}
    subset_dataset = os.path.join(work, "dataset.json")
    entries = [{"filename": record.filename, "split": record.split, "sentences": [{"raw": "a photo"}]} for record in records]
    with open(subset_dataset, "w", encoding="utf-8") as stream:
        json.dump({"images": entries}, stream)
    subset_boxes = os.path.join(work, "boxes.json")
    with open(subset_boxes, "w", encoding="utf-8") as stream:
        json.dump({name: value.tolist() for name, value in boxes.items()}, stream)
    return records, boxes, subset_dataset, subset_boxes


def timed(function):
    """(wall seconds, process CPU seconds, result) of `function()`."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = function()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def measure(root, weights, count, batch_size=16, repeats=3, image_size=(224, 224), max_boxes=19, work=None):
    """The benchmark's result dict (see the module docstring); `root` holds dataset_flickr8k.json, images/, boxes.json."""
    work = work or tempfile.mkdtemp(prefix="feature_throughput_")
    os.makedirs(work, exist_ok=True)
    image_root = os.path.join(root, "images")
    records, boxes, dataset_json, boxes_json = subset(
        os.path.join(root, "dataset_flickr8k.json"), os.path.join(root, "boxes.json"), count, work
    )
    count = len(records)
    config = DataConfig(dataset=dataset_json, images=image_root, boxes=boxes_json, image_size=image_size, max_boxes=max_boxes)
    load_start = os.getloadavg()

    # One cold run of the job, as `vsa-tf cache-features` makes it (Lite0 build, weights, tracing included).
    cold_seconds, _, cold = timed(lambda: features_job.cache_region_features(
        dataset_json, image_root, boxes_json, weights, os.path.join(work, "cold"), image_size=image_size,
        max_boxes=max_boxes, batch_size=batch_size, shard_size=count, progress_seconds=3600,
    ))

    extractor = region_features.build_region_feature_extractor(weights)
    batches = list(pipelines.images_dataset(records, image_root, boxes, config, batch_size))  # the decoded images
    inputs = [{key: batch[key] for key in ("images", "boxes", "region_mask")} for batch in batches]
    images = [batch["images"].numpy() for batch in batches]  # float32 [B, H, W, 3], 0..255
    state_dict = conversion.read_torch_state_dict(conversion.default_state_dict_path())
    import torch

    def cache_features(repeat):
        out = os.path.join(work, f"warm_{repeat}")
        features_lib.write_region_features(records, image_root, boxes, config, extractor, out, shard_size=count, batch_size=batch_size)
        shutil.rmtree(out)

    def extractor_only():
        for batch in inputs:
            np.asarray(extractor(batch))

    def torch_forward():
        for pixels in images:
            conversion.torch_reference_logits(state_dict, pixels)

    # Warm-up: traces the extractor for the full and the last batch shape, warms torch's kernels.
    extractor_only()
    torch_forward()
    paths = {"cache_features": cache_features, "extractor": extractor_only, "torch_forward": torch_forward}
    wall = {name: [] for name in paths}
    cpu = {name: [] for name in paths}
    for repeat in range(repeats):
        names = list(paths) if repeat % 2 == 0 else list(paths)[::-1]
        for name in names:
            function = paths[name]
            seconds, cpu_seconds, _ = timed((lambda: function(repeat)) if name == "cache_features" else function)
            wall[name].append(count / seconds)
            cpu[name].append(cpu_seconds / count)
            print(f"[feature_throughput] repeat {repeat} {name}: {count / seconds:.1f} images/s", file=sys.stderr, flush=True)
    medians = {name: statistics.median(values) for name, values in wall.items()}
    load_end = os.getloadavg()
    notes = []
    if max(load_start[0], load_end[0]) > 0.5 * (os.cpu_count() or 1):
        notes.append(
            f"the machine was shared: 1-minute load average {load_start[0]:.2f} at the start and {load_end[0]:.2f} at the end "
            f"on {os.cpu_count()} CPUs; absolute images/s are low, the paths alternated so their ratio is the figure"
        )
    return {
        "benchmark": "feature_throughput",
        "images": count,
        "image_size": list(image_size),
        "regions": max_boxes + 1,
        "batch_size": batch_size,
        "repeats": repeats,
        "images_per_second": {name: round(value, 2) for name, value in medians.items()},
        "ratio_cache_features_to_torch": round(medians["cache_features"] / medians["torch_forward"], 3),
        "ratio_extractor_to_torch": round(medians["extractor"] / medians["torch_forward"], 3),
        "goal": GOAL,
        "meets_goal": bool(medians["cache_features"] >= GOAL * medians["torch_forward"]),
        "images_per_second_all": {name: [round(value, 2) for value in values] for name, values in wall.items()},
        "cpu_seconds_per_image": {name: round(statistics.median(values), 4) for name, values in cpu.items()},
        "cold_cache_region_features": {"seconds": round(cold_seconds, 2), "images_per_second": cold["images_per_second"]},
        "threads": {
            "torch": torch.get_num_threads(),
            "tf_intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
            "tf_inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
        },
        "cpu_count": os.cpu_count(),
        "load_average_1_5_15_start": [round(value, 2) for value in load_start],
        "load_average_1_5_15_end": [round(value, 2) for value in load_end],
        "notes": notes,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="/work/shared/data/flickr8k", help="folder with dataset_flickr8k.json, images/, boxes.json")
    parser.add_argument("--weights", required=True, help="converted EfficientNet-Lite0 .weights.h5")
    parser.add_argument("--images", type=int, default=200, help="first N train/val images")
    parser.add_argument("--batch-size", type=int, default=16, help="images per call (cache-features' default: 16)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per path (medians reported)")
    parser.add_argument("--image-size", type=int, nargs=2, default=(224, 224), metavar=("HEIGHT", "WIDTH"))
    parser.add_argument("--max-boxes", type=int, default=19)
    parser.add_argument("--work", default=None, help="scratch folder (default: a new temporary folder, removed after)")
    parser.add_argument("--json", dest="json_path", default=None, help="also write the result here")
    args = parser.parse_args(argv)
    if args.images < 1 or args.batch_size < 1 or args.repeats < 1:
        parser.error(f"--images, --batch-size and --repeats must be >= 1, received {args.images}, {args.batch_size}, {args.repeats}")
    work = args.work or tempfile.mkdtemp(prefix="feature_throughput_")
    try:
        result = measure(
            args.root, args.weights, args.images, batch_size=args.batch_size, repeats=args.repeats,
            image_size=tuple(args.image_size), max_boxes=args.max_boxes, work=work,
        )
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(result, indent=2)
    if args.json_path:
        from vsa_tf.files import atomic_write_text

        atomic_write_text(args.json_path, text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
