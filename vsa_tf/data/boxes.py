"""Region boxes: the boxes JSON file, top-K selection and the model's padded normalised regions.

On disk: `{filename: [[x0, y0, x1, y1], ...]}` pixel boxes best first, or
`{filename: {"boxes": [...], "scores": [...]}}` (then sorted by decreasing score).
In the batches: region 0 is the whole image, then the top `max_boxes` boxes, as normalised
`[y0, x0, y1, x1]` (Keras "rel_yxyx", what `tf.image.crop_and_resize` takes), padded with zero rows
to R = max_boxes + 1 and a boolean mask. Normalising by the decoded size is consistent with the
pipeline's resize because that resize stretches the whole image (no crop, no letterbox).
"""

import math

import keras
import numpy as np
import tensorflow as tf

from vsa_tf.data import readers

WHOLE_IMAGE_BOX = (0.0, 0.0, 1.0, 1.0)


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _is_finite(value):
    """Whether a number stays finite as the float32 boxes are stored in (JSON allows 1e308 and 400-digit integers)."""
    try:
        return math.isfinite(value) and abs(value) <= _FLOAT32_MAX
    except OverflowError:
        return False


def _as_float(value):
    """float(value), +-inf for an integer too large for a float (a flagged problem, kept for the indices)."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def parse_boxes(data, source="boxes"):
    """Parsed boxes JSON -> ({filename: float32 [n, 4]}, [problems as "source: problem"])."""
    result, _, problems = _parse_boxes_and_scores(data, source)
    return result, problems


def _parse_boxes_and_scores(data, source):
    """`parse_boxes`, and {filename: float32 [n] scores} of the entries that give them, in the boxes' order."""
    problems = []
    if not isinstance(data, dict):
        return {}, {}, [f"{source}: expected a JSON object mapping filename -> boxes, received {type(data).__name__}"]
    result, result_scores = {}, {}
    for filename, entry in data.items():
        scores = None
        if isinstance(entry, dict):
            if "boxes" not in entry:
                problems.append(f"{source}: {filename}: object form needs a 'boxes' field, has {sorted(entry)}")
                continue
            scores = entry.get("scores")
            entry = entry["boxes"]
        if not isinstance(entry, list):
            problems.append(f"{source}: {filename}: boxes must be a list of [x0, y0, x1, y1], received {entry!r:.80}")
            continue
        good = True
        for index, box in enumerate(entry):
            if (
                not isinstance(box, (list, tuple))
                or len(box) != 4
                or not all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in box)
            ):
                problems.append(
                    f"{source}: {filename}: box {index} must be 4 numbers [x0, y0, x1, y1], received {box!r:.80}"
                )
                good = False
            elif not all(_is_finite(value) for value in box):
                problems.append(f"{source}: {filename}: box {index} has a non-finite coordinate (NaN, infinity or beyond float32): {box}")
            elif box[2] <= box[0] or box[3] <= box[1]:
                problems.append(f"{source}: {filename}: box {index} is degenerate (x1 <= x0 or y1 <= y0): {box}")
        if scores is not None:
            if not isinstance(scores, list) or len(scores) != len(entry):
                problems.append(
                    f"{source}: {filename}: 'scores' must be a list as long as 'boxes' ({len(entry)}), "
                    f"received {scores!r:.80}"
                )
                good = False
            elif not all(isinstance(value, (int, float)) and _is_finite(value) for value in scores):
                problems.append(f"{source}: {filename}: 'scores' must be finite numbers, received {scores!r:.80}")
                good = False
        if not good:
            continue
        # Degenerate or non-finite boxes stay in the (problem-flagged) result so that validation
        # can still check the others against the image size with their original indices.
        with np.errstate(over="ignore"):  # a flagged coordinate beyond float32 becomes inf
            array = np.asarray([[_as_float(value) for value in box] for box in entry], dtype=np.float32).reshape(-1, 4)
        if scores is not None:
            order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
            array = array[order]
            result_scores[filename] = np.asarray(scores, dtype=np.float32)[order]
        result[filename] = array
    return result, result_scores, problems


def read_boxes(path):
    """Reads and validates a boxes JSON file -> {filename: float32 [n, 4] pixel x0, y0, x1, y1}, best first."""
    result, problems = parse_boxes(readers.load_json(path, "boxes JSON"), source=path)
    if problems:
        raise ValueError("\n".join(problems))
    return result


def read_box_scores(path):
    """The confidences of a boxes JSON in the object form -> {filename: float32 [n]}, best first like `read_boxes`.

    Images given as a plain list of boxes carry no scores and are not in the result (a file of plain
    lists, e.g. human-drawn boxes, gives {}). The file is validated as `read_boxes` does.
    """
    _, scores, problems = _parse_boxes_and_scores(readers.load_json(path, "boxes JSON"), source=path)
    if problems:
        raise ValueError("\n".join(problems))
    return scores


def outside_image_problems(boxes, width, height, tolerance=1.0):
    """Indices and boxes of ``boxes`` [n, 4] (pixels) lying outside a width x height image (± tolerance)."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    outside = (
        (boxes[:, 0] < -tolerance)
        | (boxes[:, 1] < -tolerance)
        | (boxes[:, 2] > width + tolerance)
        | (boxes[:, 3] > height + tolerance)
    )
    return [(int(index), boxes[index].tolist()) for index in np.flatnonzero(outside)]


def top_k_boxes(boxes, max_boxes):
    """The first ``max_boxes`` rows (boxes are stored best first) as float32 [min(n, K), 4]."""
    if max_boxes < 0:
        raise ValueError(f"max_boxes must be >= 0, received {max_boxes}")
    return np.asarray(boxes, dtype=np.float32).reshape(-1, 4)[:max_boxes]


def padded_pixel_boxes(boxes_by_filename, filenames, max_boxes):
    """Top-K pixel boxes of each filename padded to K -> (float32 [N, K, 4], int32 [N] box counts)."""
    padded = np.zeros((len(filenames), max_boxes, 4), dtype=np.float32)
    counts = np.zeros((len(filenames),), dtype=np.int32)
    boxes_by_filename = boxes_by_filename or {}
    for row, filename in enumerate(filenames):
        kept = top_k_boxes(boxes_by_filename.get(filename, np.zeros((0, 4))), max_boxes)
        padded[row, : len(kept)] = kept
        counts[row] = len(kept)
    return padded, counts


def image_regions(boxes, width, height, max_boxes=None):
    """Pixel regions of one image as the models index them -> (float32 [K + 1, 4] x0, y0, x1, y1, bool [K + 1]).

    Row 0 is the whole image, then the top ``max_boxes`` boxes (None: all of them) clipped to the
    image, zero-padded; region i here is region i of the pipelines' `boxes`, so an aligned region
    index turns back into its box. The boxes are clipped because the pipeline clips the normalised
    boxes to [0, 1] (`normalize_boxes`) before pooling: the clipped box is the region the model saw,
    and it is the box a snippet records and a region captioner pools again.

    Example:
    >>> regions, mask = image_regions([[10, 10, 50, 40]], width=100, height=80, max_boxes=2)
    >>> regions.tolist(), mask.tolist()
    ([[0.0, 0.0, 100.0, 80.0], [10.0, 10.0, 50.0, 40.0], [0.0, 0.0, 0.0, 0.0]], [True, True, False])
    """
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    max_boxes = len(boxes) if max_boxes is None else max_boxes
    kept = top_k_boxes(boxes, max_boxes)
    regions = np.zeros((max_boxes + 1, 4), dtype=np.float32)
    regions[0] = (0.0, 0.0, width, height)
    regions[1 : len(kept) + 1] = np.clip(kept, 0.0, [width, height, width, height])
    mask = np.arange(max_boxes + 1) <= len(kept)
    return regions, mask


def normalize_boxes(pixel_boxes, height, width):
    """Pixel `xyxy` [..., 4] -> normalised `rel_yxyx` [..., 4] clipped to [0, 1] (tf, graph-safe)."""
    relative = keras.utils.bounding_boxes.convert_format(
        tf.cast(pixel_boxes, tf.float32), source="xyxy", target="rel_yxyx", height=height, width=width
    )
    return tf.clip_by_value(relative, 0.0, 1.0)


def region_boxes(pixel_boxes, box_count, height, width):
    """Whole image + top-K boxes -> (rel_yxyx float32 [K + 1, 4], mask bool [K + 1]), padding rows zero.

    Args:
        pixel_boxes: float32 [K, 4] pixel `x0, y0, x1, y1`, only the first ``box_count`` rows real.
        box_count: int32 scalar.
        height, width: the decoded image's size (before resizing).
    """
    max_boxes = tf.shape(pixel_boxes)[0]
    mask = tf.concat([[True], tf.range(max_boxes) < box_count], axis=0)  # [K + 1]
    boxes = tf.concat([tf.constant([WHOLE_IMAGE_BOX]), normalize_boxes(pixel_boxes, height, width)], axis=0)
    boxes = tf.where(mask[:, None], boxes, tf.zeros_like(boxes))  # [K + 1, 4]
    return boxes, mask


def flip_boxes_horizontally(boxes, mask):
    """Mirror of normalised rel_yxyx boxes [..., 4] about the vertical axis; padding rows stay zero."""
    y0, x0, y1, x1 = tf.unstack(boxes, axis=-1)
    flipped = tf.stack([y0, 1.0 - x1, y1, 1.0 - x0], axis=-1)
    return tf.where(mask[..., None], flipped, tf.zeros_like(flipped))
