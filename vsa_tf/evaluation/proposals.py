"""Region proposal recall: the share of ground-truth boxes that one of an image's top K proposals covers.

A ground-truth box counts as found at K when one of the first K proposals of its image (best first, as a
boxes JSON stores them) has IoU >= `iou_threshold` with it (0.5, the detection convention). The same
numbers are given for proposal-free baselines measured on the same images: the whole image alone, a
fixed grid of 19 boxes (`grid_boxes`) and, when the images are at hand and OpenCV's contrib modules are
installed (the optional `bench` extra), OpenCV's selective search in "fast" mode, its first K boxes
(`selective_search_proposals`).

The IoU is numpy here, not `keras.utils.bounding_boxes.compute_iou`: an evaluation runs once over ragged
per-image box sets of a few dozen boxes, where building tensors per image would cost more than the maths.
"""

import os
import time

import numpy as np

from vsa_tf.data import boxes as boxes_lib
from vsa_tf.data import readers
from vsa_tf.evaluation.alignment import read_truth
from vsa_tf.evaluation import selective_search  # imports OpenCV (optional) only when a baseline is asked for

RECALL_AT = (1, 5, 10, 19, 50, 100)
DEFAULT_IOU_THRESHOLD = 0.5
SELECTIVE_SEARCH = "selective_search_fast"  # the baseline's name in `evaluate_proposals` reports


def box_iou(first, second):
    """IoU of every pair of pixel [x0, y0, x1, y1] boxes: float64 [N, 4] x [M, 4] -> [N, M]."""
    first = np.asarray(first, dtype=np.float64).reshape(-1, 4)
    second = np.asarray(second, dtype=np.float64).reshape(-1, 4)
    x0 = np.maximum(first[:, None, 0], second[None, :, 0])
    y0 = np.maximum(first[:, None, 1], second[None, :, 1])
    x1 = np.minimum(first[:, None, 2], second[None, :, 2])
    y1 = np.minimum(first[:, None, 3], second[None, :, 3])
    intersection = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_first = (first[:, 2] - first[:, 0]) * (first[:, 3] - first[:, 1])
    area_second = (second[:, 2] - second[:, 0]) * (second[:, 3] - second[:, 1])
    union = area_first[:, None] + area_second[None, :] - intersection
    return np.where(union > 0, intersection / np.where(union > 0, union, 1.0), 0.0)


def grid_boxes(width, height):
    """The fixed 19-box grid baseline of a width x height image, largest first.

    The whole image, its left / right / top / bottom halves, the 2 x 2 quarters, the central box of half
    the width and height, and the 3 x 3 ninths: 1 + 4 + 4 + 1 + 9 = 19 boxes, one per detection slot.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"grid_boxes needs a positive image size, received width={width!r}, height={height!r}")
    fractions = [(0.0, 0.0, 1.0, 1.0), (0.0, 0.0, 0.5, 1.0), (0.5, 0.0, 1.0, 1.0), (0.0, 0.0, 1.0, 0.5), (0.0, 0.5, 1.0, 1.0)]
    fractions += [(column / 2, row / 2, (column + 1) / 2, (row + 1) / 2) for row in range(2) for column in range(2)]
    fractions.append((0.25, 0.25, 0.75, 0.75))
    fractions += [(column / 3, row / 3, (column + 1) / 3, (row + 1) / 3) for row in range(3) for column in range(3)]
    return np.asarray(fractions, dtype=np.float64) * np.array([width, height, width, height], dtype=np.float64)


def proposal_recall(proposals, truth_images, recall_at=RECALL_AT, iou_threshold=DEFAULT_IOU_THRESHOLD, filenames=None):
    """Recall (%) of the truth's object boxes among each image's top-K proposals.

    Args:
        proposals: {filename: [n, 4] pixel boxes, best first}; an image without an entry has no proposals.
        truth_images: the truth's `images` dict (`vsa_tf.evaluation.alignment.read_truth`).
        recall_at: the K values.
        iou_threshold: least IoU with a proposal for a box to count as found.
        filenames: the images to evaluate (default: every truth image).

    Returns:
        {"recall_at": {"K": % of boxes found} (string keys, as JSON writes them), "num_boxes", "num_images",
        "iou_threshold"}.
    """
    recall_at = _checked_ks(recall_at)
    if not 0.0 < float(iou_threshold) <= 1.0:
        raise ValueError(f"iou_threshold must be in (0, 1], received {iou_threshold!r}")
    filenames = sorted(truth_images) if filenames is None else list(filenames)
    unknown = [filename for filename in filenames if filename not in truth_images]
    if unknown:
        raise ValueError(f"{len(unknown)} image(s) are not in the truth, e.g. {unknown[:3]}")
    found, total = np.zeros(len(recall_at), dtype=np.int64), 0
    for filename in filenames:
        truth_boxes = np.asarray([obj["box"] for obj in truth_images[filename]["objects"]], dtype=np.float64).reshape(-1, 4)
        if not len(truth_boxes):
            continue
        total += len(truth_boxes)
        candidates = np.asarray(proposals.get(filename, np.zeros((0, 4))), dtype=np.float64).reshape(-1, 4)
        if not len(candidates):
            continue
        covered = box_iou(candidates[: max(recall_at)], truth_boxes) >= float(iou_threshold)  # [proposals, truth]
        # first_hit[j]: the rank (0-based) of the first proposal that covers truth box j, or inf.
        first_hit = np.where(covered.any(axis=0), covered.argmax(axis=0), np.inf)
        found += np.array([(first_hit < k).sum() for k in recall_at])
    return {
        "recall_at": {str(k): round(100.0 * float(count) / total, 2) if total else None for k, count in zip(recall_at, found)},
        "num_boxes": int(total),
        "num_images": len(filenames),
        "iou_threshold": float(iou_threshold),
    }


def baseline_proposals(truth_images, name, filenames=None):
    """{filename: boxes} of a proposal-free baseline: "whole_image" or "grid_19" (`grid_boxes`)."""
    if name not in BASELINES:
        raise ValueError(f"baseline must be one of {sorted(BASELINES)}, received {name!r}")
    filenames = sorted(truth_images) if filenames is None else filenames
    return {filename: BASELINES[name](truth_images[filename]["width"], truth_images[filename]["height"]) for filename in filenames}


BASELINES = {
    "whole_image": lambda width, height: np.array([[0.0, 0.0, width, height]]),
    "grid_19": grid_boxes,
}


def selective_search_proposals(truth_images, image_root, filenames=None, max_boxes=max(RECALL_AT), min_side=0):
    """{filename: boxes} of OpenCV's selective search ("fast" mode) run on the images themselves.

    Args:
        truth_images: the truth's `images` dict; its `width` and `height` give the pixels the boxes are
            returned in (an image file of another size has its boxes scaled onto the truth's size).
        image_root: the folder of the images (each opened through `readers.resolve_image_path`).
        filenames: the images (default: every truth image).
        max_boxes: the first this many boxes of each image, in OpenCV's order.
        min_side: drop boxes with a shorter side under this many pixels of the image file first (0: none).

    Raises:
        ImportError: OpenCV's contrib modules are not installed (`pip install "vsa_tf[bench]"`).
    """
    filenames = sorted(truth_images) if filenames is None else filenames
    result = {}
    for filename in filenames:
        path = readers.resolve_image_path(image_root, filename)
        if not os.path.isfile(path):
            raise ValueError(f"{path}: image not found for the selective-search baseline (image folder {image_root!r})")
        pixels = selective_search.read_rgb(path)
        boxes = selective_search.selective_search_boxes(pixels, max_boxes=max_boxes, mode="fast", min_side=min_side)
        height, width = pixels.shape[:2]
        scale = np.array([truth_images[filename]["width"] / width, truth_images[filename]["height"] / height] * 2)
        result[filename] = boxes * scale
    return result


def dataset_filenames(dataset, splits, truth_images):
    """The truth's images among a dataset's `splits`, in the dataset's order.

    Args:
        dataset: a captions file path (`readers.read_dataset`) or a `CaptionDataset`.
        splits: split names, e.g. ("val",).
        truth_images: the truth's `images` dict.
    """
    splits = (splits,) if isinstance(splits, str) else tuple(splits)
    records = readers.read_dataset(dataset).records if isinstance(dataset, str) else dataset.records
    known = {record.split for record in records}
    unknown = [split for split in splits if split not in known]
    if not splits or unknown:
        raise ValueError(f"splits must name splits of the dataset {sorted(known)}, received {splits!r}")
    filenames = [record.filename for record in records if record.split in splits and record.filename in truth_images]
    if not filenames:
        raise ValueError(f"the truth has none of the images of split(s) {splits!r}: nothing to evaluate")
    return filenames


def evaluate_proposals(
    boxes,
    truth,
    recall_at=RECALL_AT,
    iou_threshold=DEFAULT_IOU_THRESHOLD,
    filenames=None,
    image_root=None,
    dataset=None,
    splits=("val",),
    limit=None,
):
    """Proposal recall of a boxes JSON (path or parsed dict) against a truth.json, beside the baselines.

    Args:
        boxes: a boxes JSON path (`vsa_tf.data.boxes.read_boxes`), {filename: [n, 4]} best first, or
            {filename: {"boxes": [n, 4], "scores": [n]}} (the boxes file's object form, sorted by score).
        truth: a truth.json path or its `images` dict.
        recall_at, iou_threshold, filenames: as `proposal_recall`; `filenames` defaults to the truth
            images the boxes file has an entry for (so a boxes file of one split is scored on that split).
        image_root: the images' folder; when given, OpenCV's selective search ("fast", first
            max(recall_at) boxes) is a third baseline (needs the `bench` extra, else ImportError).
        dataset: a captions file (path or `CaptionDataset`): when given (and `filenames` is not), the
            images evaluated are the truth's images of its `splits`, in the dataset's order; an image the
            boxes file lacks then counts as one without proposals.
        splits: the dataset splits evaluated (only with `dataset`).
        limit: evaluate only the first this many of the images (sorted filenames, or the dataset's order).

    Returns:
        {"proposals": recall report, "baselines": {"whole_image": ..., "grid_19": ...,
        "selective_search_fast": ... (with image_root)}}, every report on the same images.
    """
    proposals = boxes_lib.read_boxes(boxes) if isinstance(boxes, str) else _boxes_of(boxes)
    truth_images = read_truth(truth) if isinstance(truth, str) else truth
    if limit is not None and int(limit) < 1:
        raise ValueError(f"limit must be >= 1 or None, received {limit!r}")
    if filenames is None and dataset is not None:
        filenames = dataset_filenames(dataset, splits, truth_images)
    elif filenames is None:
        filenames = sorted(filename for filename in truth_images if filename in proposals)
        if not filenames:
            raise ValueError("the boxes name none of the truth's images: nothing to evaluate")
    if limit is not None:
        filenames = list(filenames)[: int(limit)]
    report = {"proposals": proposal_recall(proposals, truth_images, recall_at, iou_threshold, filenames), "baselines": {}}
    for name in BASELINES:
        baseline = baseline_proposals(truth_images, name, filenames)
        report["baselines"][name] = proposal_recall(baseline, truth_images, recall_at, iou_threshold, filenames)
    if image_root is not None:
        started = time.perf_counter()
        baseline = selective_search_proposals(truth_images, image_root, filenames, max_boxes=max(_checked_ks(recall_at)))
        seconds = time.perf_counter() - started
        report["baselines"][SELECTIVE_SEARCH] = proposal_recall(baseline, truth_images, recall_at, iou_threshold, filenames)
        report["baselines"][SELECTIVE_SEARCH]["seconds_per_image"] = round(seconds / max(len(filenames), 1), 4)
    return report


def _boxes_of(entries):
    """{filename: float [n, 4]} best first from boxes given as arrays or as {"boxes", "scores"} objects."""
    result = {}
    for filename, entry in entries.items():
        if isinstance(entry, dict):
            boxes = np.asarray(entry["boxes"], dtype=np.float64).reshape(-1, 4)
            if entry.get("scores") is not None:
                boxes = boxes[np.argsort(-np.asarray(entry["scores"], dtype=np.float64), kind="stable")]
            entry = boxes
        result[filename] = np.asarray(entry, dtype=np.float64).reshape(-1, 4)
    return result


def _checked_ks(recall_at):
    values = tuple(int(k) for k in recall_at)
    if not values or min(values) < 1:
        raise ValueError(f"recall_at must be K values >= 1, received {tuple(recall_at)!r}")
    return values
