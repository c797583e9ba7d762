"""Caching region features: the frozen pretrained backbone runs once over a dataset's images.

    vsa-tf cache-features --dataset D --images DIR --boxes B --weights W --out FEATURES

`cache_region_features` reads the dataset, builds the EfficientNet-Lite0 + RoIAlign extractor of
`vsa_tf.pretrained.region_features` and hands both to `vsa_tf.data.features.write_region_features`,
which writes the sharded TFRecords and, last, `index.json`. Progress (images done, images/s, time left)
goes to stderr while it runs. The folder is written in one pass: an interrupted run leaves no index,
and running the command again starts from the first image.
"""

import sys
import time

import numpy as np

from vsa_tf.config import DataConfig
from vsa_tf.data import boxes as boxes_lib
from vsa_tf.data import readers
from vsa_tf.data.features import write_region_features
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

    Returns:
        dict: the features index fields `count`, `regions`, `dims`, the number of `shards`, plus
        `seconds` and `images_per_second`.
    """
    image_size = tuple(int(side) for side in image_size)
    if len(image_size) != 2 or min(image_size) < efficientnet_lite.FEATURE_STRIDE:
        raise ValueError(
            f"image_size must be (height, width), each >= {efficientnet_lite.FEATURE_STRIDE}; received {image_size}"
        )
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
    extractor = region_features.build_region_feature_extractor(
        weights_path, pool_size=pool_size, feature_model=feature_model
    )
    progress = ExtractionProgress(len(records), every_seconds=progress_seconds)
    start = time.perf_counter()
    index = write_region_features(
        records, image_root, boxes, config, progress.wrap(extractor), out_dir, shard_size=shard_size, batch_size=batch_size
    )
    seconds = time.perf_counter() - start
    return {
        "count": index["count"],
        "regions": index["regions"],
        "dims": index["dims"],
        "shards": len(index["shards"]),
        "seconds": round(seconds, 2),
        "images_per_second": round(index["count"] / seconds, 2),
    }
