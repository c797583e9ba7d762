"""Caching region features: the frozen pretrained backbone runs once over a dataset's images.

    vsa-tf cache-features --dataset D --images DIR --boxes B --weights W --out FEATURES

`cache_region_features` reads the dataset, builds the EfficientNet-Lite0 + RoIAlign extractor of
`vsa_tf.pretrained.region_features` and hands both to `vsa_tf.data.features.cache_region_shards`,
which writes the sharded TFRecords and, last, `index.json`. Progress (images done, images/s, time left)
goes to stderr while it runs. Caching resumes: a rerun with the same settings (after a crash or `kill -9`)
keeps every finished shard and extracts only the others; with `num_parts` / `part_index`
(`--num-shards N --shard-index I`) several processes or machines cache disjoint shards into one folder,
and the one that finishes the last shard writes `index.json` (`merge_region_features` verifies and writes
it on request). Settings that change the features (weights, image size, boxes, pool size, batch and shard
size, the images) are fingerprinted; a rerun with other settings is refused, naming what differs.
"""

import hashlib
import os
import sys
import time

import numpy as np

from vsa_tf.config import DataConfig
from vsa_tf.data import boxes as boxes_lib
from vsa_tf.data import readers
from vsa_tf.data.features import cache_region_shards
from vsa_tf.files import file_sha256
from vsa_tf.pretrained import efficientnet_lite
from vsa_tf.pretrained import region_features

PROGRESS_SECONDS = 30.0  # at most one progress line per this many seconds (and one at the end)


def format_duration(seconds):
    """`3725.2` -> `"1h02m05s"`, `65` -> `"1m05s"`, `4` -> `"4s"`; `"?"` when unknown (NaN or infinite)."""
    if not np.isfinite(seconds):
        return "?"
    minutes, seconds = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{seconds:02d}s"
    if minutes:
        return f"{minutes}m{seconds:02d}s"
    return f"{seconds}s"


class ExtractionProgress:
    """Counts the images that pass through an extractor and prints `done/total, images/s, ETA`.

    Args:
        total: images the run will cover.
        every_seconds: least time between two progress lines; the last batch always prints one.
        stream: where the lines go; `None` means `sys.stderr` (stdout carries the JSON summary).
    """

    def __init__(self, total, every_seconds=PROGRESS_SECONDS, stream=None):
        self.total = int(total)
        self.every_seconds = float(every_seconds)
        self.stream = stream
        self.done = 0
        self.started = time.perf_counter()
        self.last_report = self.started

    def start(self, total, shards_kept=0):
        """Sets the images still to extract (those of unfinished shards) and restarts the clock."""
        self.total = int(total)
        self.started = self.last_report = time.perf_counter()
        if shards_kept:
            print(
                f"cache-features: resuming, {shards_kept} finished shard(s) kept, {self.total} images to extract",
                file=self.stream or sys.stderr, flush=True,
            )

    def wrap(self, extractor):
        """`extractor` with counting: same batch dict in, the same features out (as a numpy array)."""

        def counted(batch):
            features = np.asarray(extractor(batch), dtype=np.float32)  # waits for the batch to finish
            self.done += int(batch["images"].shape[0])
            now = time.perf_counter()
            if self.done >= self.total or now - self.last_report >= self.every_seconds:
                self.report(now)
            return features

        return counted

    def report(self, now):
        elapsed = now - self.started
        rate = self.done / elapsed if elapsed > 0 else float("nan")
        remaining = (self.total - self.done) / rate if rate > 0 else float("nan")
        percent = 100.0 * self.done / max(self.total, 1)
        print(
            f"cache-features: {self.done}/{self.total} images ({percent:.0f}%), {rate:.1f} images/s, "
            f"elapsed {format_duration(elapsed)}, ETA {format_duration(remaining)}",
            file=self.stream or sys.stderr,
            flush=True,
        )
        self.last_report = now


def cache_region_features(
    dataset_path,
    image_root,
    boxes_path,
    weights_path,
    out_dir,
    image_size=(224, 224),
    max_boxes=19,
    splits=("train", "val", "test"),
    limit=None,
    batch_size=16,
    shard_size=1000,
    pool_size=2,
    feature_model=None,
    progress_seconds=PROGRESS_SECONDS,
    num_parts=1,
    part_index=0,
    restart=False,
    region_mode="roi_align",
    crop_size=112,
    dtype="float32",
):
    """Runs the frozen pretrained backbone over a dataset's images once and writes sharded TFRecords.

    Args:
        dataset_path: captions file (any format `vsa_tf.data.readers.read_dataset` reads).
        image_root: folder the dataset's filenames resolve in.
        boxes_path: optional boxes JSON (filename -> pixel boxes, best first); `None` = whole image only.
        weights_path: EfficientNet-Lite0 `.weights.h5` file.
        out_dir: features folder to write (`index.json` + `features-*.tfrecord`).
        image_size: (height, width) the images are resized to; sides should be multiples of 32.
        max_boxes: boxes kept per image (R = max_boxes + 1 with the whole image).
        splits: which splits' images to cover.
        limit: optional cap on the number of images (timing runs).
        batch_size: images per backbone call.
        shard_size: images per TFRecord file.
        pool_size: RoIAlign bins per side.
        feature_model: optional feature model replacing the pretrained one (tests).
        progress_seconds: least time between two progress lines on stderr.
        num_parts, part_index: cache only the shards k with k % num_parts == part_index (one part of a
            dataset cached by several processes into one folder).
        restart: delete what an earlier caching run left in `out_dir` instead of resuming it.
        region_mode: "roi_align" (one backbone pass per image, regions pooled from its map) or "crop"
            (each region cropped, resized to `crop_size` and run through the backbone: the paper's R-CNN
            features; `vsa_tf.pretrained.region_features`).
        crop_size: side of the resized crops of region_mode "crop".
        dtype: "float32", or "float16" (half the disk and I/O, read back as float32).

    Returns:
        dict: `count`, `regions`, `dims`, the number of `shards` of the whole store, `complete` (the
        index is written), `written_shards` / `reused_shards` (this part's), `missing_shards` (other
        parts' unfinished shards, first 20), `extracted_images`, `seconds`, `images_per_second`
        (of the extracted images).
    """
    image_size = tuple(int(side) for side in image_size)
    if len(image_size) != 2 or min(image_size) < efficientnet_lite.FEATURE_STRIDE:
        raise ValueError(
            f"image_size must be (height, width), each >= {efficientnet_lite.FEATURE_STRIDE}; received {image_size}"
        )
    warning = image_size_warning(image_size) if feature_model is None else None  # a handed-in model is the caller's
    if warning:
        print(warning, file=sys.stderr, flush=True)
    dataset = readers.read_dataset(dataset_path)
    records = [record for record in dataset.records if record.split in splits]
    if limit is not None:
        records = records[: int(limit)]
    if not records:
        raise ValueError(f"{dataset_path}: no images in splits {list(splits)}")
    boxes = boxes_lib.read_boxes(boxes_path) if boxes_path else {}
    config = DataConfig(
        dataset=dataset_path, images=image_root, boxes=boxes_path, image_size=image_size, max_boxes=max_boxes
    )
    settings = {
        "weights": weights_fingerprint(weights_path),
        "feature_model": None if feature_model is None else model_fingerprint(feature_model),
        "pool_size": int(pool_size),
        "region_mode": region_mode,
        "crop_size": int(crop_size) if region_mode == "crop" else None,
    }
    extractor = region_features.build_region_feature_extractor(
        weights_path, pool_size=pool_size, feature_model=feature_model, region_mode=region_mode, crop_size=crop_size
    )
    progress = ExtractionProgress(len(records), every_seconds=progress_seconds)
    start = time.perf_counter()
    result = cache_region_shards(
        records, image_root, boxes, config, progress.wrap(extractor), out_dir, shard_size=shard_size,
        batch_size=batch_size, settings=settings, num_parts=num_parts, part_index=part_index, restart=restart,
        on_start=progress.start, dtype=dtype,
    )
    seconds = time.perf_counter() - start
    return {
        "count": len(records),
        "regions": result.regions,
        "dims": result.dims,
        "shards": max(1, -(-len(records) // int(shard_size))),
        "complete": result.index is not None,
        "written_shards": len(result.written_shards),
        "reused_shards": len(result.reused_shards),
        "missing_shards": result.missing_shards[:20],
        "extracted_images": result.extracted_images,
        "seconds": round(seconds, 2),
        "images_per_second": round(result.extracted_images / seconds, 2),
    }


# EfficientNet-Lite0's ImageNet input side: smaller images give it coarser maps than it was trained on.
PRETRAINED_IMAGE_SIDE = 224


def image_size_warning(image_size):
    """The warning for caching the pretrained Lite0's features of images smaller than its ImageNet input, or None."""
    if min(int(side) for side in image_size) >= PRETRAINED_IMAGE_SIDE:
        return None
    return (
        f"warning: image_size {tuple(int(side) for side in image_size)} is smaller than EfficientNet-Lite0's ImageNet input "
        f"({PRETRAINED_IMAGE_SIDE} x {PRETRAINED_IMAGE_SIDE}); its maps get coarse and its region features weaker "
        f"(--image-size {PRETRAINED_IMAGE_SIDE} {PRETRAINED_IMAGE_SIDE} keeps them)"
    )


def model_fingerprint(model):
    """sha256 of a built model's weight values, in order (a feature model handed in instead of a weights file)."""
    digest = hashlib.sha256()
    for weight in model.weights:
        digest.update(np.ascontiguousarray(np.asarray(weight), np.float32).tobytes())
    return digest.hexdigest()


def weights_fingerprint(weights_path):
    """`{"sha256", "bytes"}` of a weights file (the same on every machine it is copied to); None without one.

    Raises:
        ValueError: when `weights_path` is given but is not a file.
    """
    if weights_path is None:
        return None
    if not os.path.isfile(weights_path):
        raise ValueError(f"weights file not found: {weights_path!r}")
    return {"sha256": file_sha256(weights_path), "bytes": os.path.getsize(weights_path)}
