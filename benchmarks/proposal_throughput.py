"""Benchmark: the extra cost per image of region proposals over `cache-features` without them.

Issue 15's goal: proposals cost at most 20 % more time per image than the cache-features path alone.
Both paths run on the same decoded images (random 0..255 pixels: the cost does not depend on the
content), in the same process, alternating, with one backbone pass per image each:

- features: backbone -> RoIAlign of the whole image + `--boxes` fixed boxes (what `vsa-tf cache-features`
  computes per batch: `vsa_tf.pretrained.region_features`, or `RegionFeatureExtractor` for "simple");
- features + proposals: backbone -> the proposal head (`ProposalModel.propose` on the same feature map:
  3 x 3 conv, objectness and deltas, decoding, NMS, top 19) -> RoIAlign of the whole image + the
  proposals, the deployed graph's order (the region features wait for the NMS).

The ProposalModel has the default `ProposalConfig` shape (anchors, 128 filters, 19 proposals, NMS 0.7,
the stride-16 map tapped from the backbone pass where its output is at stride 32) with random weights: the weights do not change the cost. Image decoding and the TFRecord writing of
`cache-features` are left out of both: they would add the same time to both and hide the ratio, so the
ratio here is the strict one (an upper bound on the end-to-end ratio).

Prints JSON: median wall-clock seconds per image of each path over `--repeats` timed passes (the two
paths take turns batch by batch, so both see the same load), images/s, their ratio, the 1.20 limit and
whether the ratio meets it, plus the machine's load (trainings may share it). The same medians in process
CPU seconds (`cpu_ratio`: work done, less sensitive to other processes) are given beside.

    .venv/bin/python benchmarks/proposal_throughput.py --images 32 --repeats 3
    .venv/bin/python benchmarks/proposal_throughput.py --backbone efficientnet_lite_b0 \\
        --backbone-weights lite0.weights.h5 --images 256 --image-size 224 224
"""

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from vsa_tf import config as config_lib  # noqa: E402
from vsa_tf.layers.backbones import BACKBONE_NAMES, build_backbone  # noqa: E402
from vsa_tf.layers.roi_pooling import RoIAlign  # noqa: E402
from vsa_tf.models.proposal_model import ProposalModel  # noqa: E402

RATIO_LIMIT = 1.20  # issue 15: at most 20 % more time per image


def build_paths(backbone_name, weights_path, image_size, pool_size=2, filters=None, feature_stride="default"):
    """(features(images, boxes, mask), features_and_proposals(images), proposal model) as compiled graphs.

    `filters`: channels of the proposal head's 3 x 3 convolution (default: `ProposalConfig`'s).
    `feature_stride`: the map the head reads, as `ProposalConfig.feature_stride` (default: its default, 16:
    the stride-16 map tapped from the same backbone pass where the backbone's output is coarser).
    """
    height, width = image_size
    backbone = build_backbone(backbone_name, weights_path, trainable=False, input_shape=(height, width, 3))
    roi_align = RoIAlign(pool_size=pool_size, pooling="average", name="roi_align")
    defaults = config_lib.ProposalConfig()
    feature_stride = defaults.feature_stride if feature_stride == "default" else feature_stride
    stride = backbone.stride if feature_stride is None else min(int(feature_stride), backbone.stride)
    layer = backbone.layer_at_stride(stride)
    proposal_model = ProposalModel(
        image_size=(height, width), feature_stride=stride, anchor_sizes=defaults.anchor_sizes,
        aspect_ratios=defaults.aspect_ratios, filters=filters or defaults.filters, max_proposals=defaults.max_proposals,
        nms_iou_threshold=defaults.nms_iou_threshold, seed=defaults.seed, name="proposal_model",
    )
    proposal_map, _ = backbone.maps(np.zeros((1, height, width, 3), np.float32), layer, training=False)  # builds the backbone
    proposal_model({"feature_map": np.zeros(proposal_map.shape, np.float32)})
    scale = tf.constant([1.0 / height, 1.0 / width, 1.0 / height, 1.0 / width])

    @tf.function(reduce_retracing=True)
    def features(images, boxes, region_mask):
        feature_map = backbone(images, training=False)  # [B, h, w, C]
        return roi_align(feature_map, boxes, region_mask=region_mask)  # [B, R, C]

    @tf.function(reduce_retracing=True)
    def features_and_proposals(images):
        # One backbone pass: the head's map (tapped on the way, or the output itself) and the output.
        proposal_map, feature_map = backbone.maps(images, layer, training=False)
        proposals, scores, counts = proposal_model.propose({"feature_map": proposal_map})  # [B, K, 4] xyxy pixels, [B, K], [B]
        batch = tf.shape(proposals)[0]
        # Region 0 is the whole image, then the proposals as rel_yxyx; padding rows (beyond `counts`) are masked.
        relative = tf.gather(proposals, [1, 0, 3, 2], axis=-1) * scale  # [B, K, 4]
        whole = tf.tile(tf.constant([[[0.0, 0.0, 1.0, 1.0]]]), [batch, 1, 1])
        boxes = tf.concat([whole, relative], axis=1)  # [B, K + 1, 4]
        mask = tf.concat([tf.ones([batch, 1], tf.bool), tf.sequence_mask(counts, tf.shape(proposals)[1])], axis=1)
        return roi_align(feature_map, boxes, region_mask=mask), scores  # [B, K + 1, C], [B, K]

    return features, features_and_proposals, proposal_model


def fixed_boxes(batch_size, count, rng):
    """float32 [B, count + 1, 4] rel_yxyx (whole image first) and its all-True mask: `cache-features`' regions."""
    corners = np.sort(rng.uniform(0.0, 1.0, (batch_size, count, 2, 2)), axis=2)  # per axis: low, high
    boxes = np.stack([corners[..., 0, 0], corners[..., 0, 1], corners[..., 1, 0], corners[..., 1, 1]], axis=-1)
    whole = np.tile([[[0.0, 0.0, 1.0, 1.0]]], (batch_size, 1, 1))
    return np.concatenate([whole, boxes], axis=1).astype(np.float32), np.ones((batch_size, count + 1), bool)


def run_batch(function, arguments):
    """(wall seconds, process CPU seconds) of one call, its results brought to the host as cache-features does."""
    wall, cpu = time.perf_counter(), time.process_time()
    for output in tf.nest.flatten(function(*arguments)):
        output.numpy()
    return time.perf_counter() - wall, time.process_time() - cpu


def interleaved_pass(paths, first):
    """{path: [wall seconds, CPU seconds]} of one pass over all batches, the paths taking turns batch by batch.

    Interleaving per batch (a fraction of a second) rather than per pass makes both paths run under the same
    load of a shared machine; which path goes first alternates from batch to batch, starting with `first`.
    """
    names = list(paths)
    totals = {name: [0.0, 0.0] for name in names}
    batch_count = len(next(iter(paths.values()))[1])
    for index in range(batch_count):
        order = names if (index + first) % 2 == 0 else names[::-1]
        for name in order:
            function, batches = paths[name]
            wall, cpu = run_batch(function, batches[index])
            totals[name][0] += wall
            totals[name][1] += cpu
    return totals


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="simple", choices=BACKBONE_NAMES)
    parser.add_argument("--backbone-weights", default=None, help="local weights file (default: random weights, same cost)")
    parser.add_argument("--images", type=int, default=64, help="images per timed pass")
    parser.add_argument("--image-size", type=int, nargs=2, default=(224, 224), metavar=("HEIGHT", "WIDTH"))
    parser.add_argument("--batch-size", type=int, default=16, help="images per call (cache-features' default: 16)")
    parser.add_argument("--boxes", type=int, default=19, help="fixed boxes per image in the features path")
    parser.add_argument("--filters", type=int, default=None, help="proposal head channels (default: ProposalConfig's, 256)")
    parser.add_argument(
        "--feature-stride", type=int, default=None,
        help="stride of the map the head reads (default: ProposalConfig's, 16; the backbone's own stride for its output map)",
    )
    parser.add_argument(
        "--repeats", type=int, default=5, help="timed passes over the images (the paths interleaved batch by batch); medians are reported"
    )
    parser.add_argument("--note", action="append", default=[], help="add a note to the output (repeatable)")
    args = parser.parse_args()
    if args.images < 1 or args.batch_size < 1 or args.repeats < 1:
        parser.error(f"--images, --batch-size and --repeats must be >= 1, received {args.images}, {args.batch_size}, {args.repeats}")

    rng = np.random.default_rng(0)
    height, width = args.image_size
    load_start = os.getloadavg()
    features, features_and_proposals, proposal_model = build_paths(
        args.backbone, args.backbone_weights, (height, width), filters=args.filters,
        feature_stride="default" if args.feature_stride is None else args.feature_stride,
    )
    image_batches = [
        rng.uniform(0.0, 255.0, (min(args.batch_size, args.images - start), height, width, 3)).astype(np.float32)
        for start in range(0, args.images, args.batch_size)
    ]
    feature_batches = [(images, *fixed_boxes(len(images), args.boxes, rng)) for images in image_batches]
    proposal_batches = [(images,) for images in image_batches]
    paths = {"features": (features, feature_batches), "features_and_proposals": (features_and_proposals, proposal_batches)}
    interleaved_pass(paths, 0)  # warm-up: traces each graph for the batch shapes (a full and maybe a last partial batch)

    wall = {name: [] for name in paths}
    cpu = {name: [] for name in paths}
    for repeat in range(args.repeats):
        for name, (wall_seconds, cpu_seconds) in interleaved_pass(paths, repeat).items():
            wall[name].append(wall_seconds / args.images)
            cpu[name].append(cpu_seconds / args.images)
    medians = {name: statistics.median(values) for name, values in wall.items()}
    cpu_medians = {name: statistics.median(values) for name, values in cpu.items()}
    ratio = medians["features_and_proposals"] / medians["features"]
    cpu_ratio = cpu_medians["features_and_proposals"] / cpu_medians["features"]
    # Per-pass ratios: their spread says how much the shared machine's load moved.
    paired = [with_proposals / alone for alone, with_proposals in zip(wall["features"], wall["features_and_proposals"])]
    load_end = os.getloadavg()
    notes = list(args.note)
    if max(load_start[0], load_end[0]) > 0.5 * (os.cpu_count() or 1):
        notes.append(
            f"the machine was shared: 1-minute load average {load_start[0]:.2f} at the start and {load_end[0]:.2f} at the end "
            f"on {os.cpu_count()} CPUs; absolute images/s are low; the two paths took turns batch by batch, so their ratio is the figure"
        )
    result = {
        "benchmark": "proposal_throughput",
        "backbone": args.backbone,
        "backbone_weights": args.backbone_weights,
        "feature_stride": proposal_model.feature_stride,
        "anchors": int(len(proposal_model.anchors)),
        "proposal_filters": proposal_model.filters,
        "max_proposals": proposal_model.max_proposals,
        "image_size": [height, width],
        "images": args.images,
        "batch_size": args.batch_size,
        "fixed_boxes": args.boxes,
        "repeats": args.repeats,
        "seconds_per_image": {name: round(value, 5) for name, value in medians.items()},
        "images_per_second": {name: round(1.0 / value, 2) for name, value in medians.items()},
        "seconds_per_image_all": {name: [round(value, 5) for value in values] for name, values in wall.items()},
        "ratio": round(ratio, 3),
        "paired_ratios": [round(value, 3) for value in paired],
        "cpu_seconds_per_image": {name: round(value, 5) for name, value in cpu_medians.items()},
        "cpu_ratio": round(cpu_ratio, 3),
        "ratio_limit": RATIO_LIMIT,
        "passes": bool(ratio <= RATIO_LIMIT),
        "device": "GPU" if tf.config.list_logical_devices("GPU") else "CPU",
        "cpu_count": os.cpu_count(),
        "load_average_1_5_15_start": [round(value, 2) for value in load_start],
        "load_average_1_5_15_end": [round(value, 2) for value in load_end],
        "notes": notes,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
