"""Text snippets: maximal runs of consecutive words that the MRF aligned to one image region.

The snippets file (written by `vsa-tf align`, read by region captioning and `evaluate-alignment`) is a
JSON list of `{"filename", "sentence", "start", "end", "words", "region", "box"}`: `sentence` indexes
the image's sentences, `start`/`end` index its tokens (end exclusive), `region` indexes the image's
regions (region 0 = the whole image) and `box` is that region's [x0, y0, x1, y1] in pixels.
"""

import json
import math

import numpy as np

from vsa_tf.config import atomic_write_text

SNIPPET_FIELDS = ("filename", "sentence", "start", "end", "words", "region", "box")


def pixel_boxes_from_normalized(boxes, width, height):
    """Normalised [y0, x0, y1, x1] boxes (the pipeline's "rel_yxyx") -> pixel [x0, y0, x1, y1]."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape([-1, 4])
    y0, x0, y1, x1 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    return np.stack([x0 * width, y0 * height, x1 * width, y1 * height], axis=1)


def snippets_from_alignment(assignments, words, filename, sentence, region_boxes):
    """Cuts one aligned sentence into snippets, one per maximal run of words sharing a region.

    Args:
        assignments: int array [N'] of region indices (from `mrf_align` / `mrf_align_batch`), with
            N' >= N = len(words); entries past N and negative entries (padding words) are ignored.
        words: list of the sentence's N tokens.
        filename: the image's dataset filename.
        sentence: index of the sentence within its image.
        region_boxes: array [M, 4] of pixel [x0, y0, x1, y1], row 0 the whole image
            (`vsa_tf.data.boxes.image_regions`, the one table of an image's regions).

    Returns:
        list of snippet dicts in sentence order.

    Example:

    >>> boxes = [[0, 0, 100, 80], [10, 10, 50, 40]]  # the whole image, then one detector box
    >>> [s["words"] for s in snippets_from_alignment([1, 1, 0], ["a", "red", "ball"], "x.jpg", 0, boxes)]
    [['a', 'red'], ['ball']]
    """
    words = [str(word) for word in words]
    assignments = np.asarray(assignments).reshape([-1])
    if len(assignments) < len(words):
        raise ValueError(
            f"{filename} sentence {sentence}: {len(words)} words but only {len(assignments)} assignments "
            f"received: {assignments.tolist()}"
        )
    region_boxes = np.asarray(region_boxes, dtype=np.float64).reshape([-1, 4])
    assignments = assignments[: len(words)].astype(np.int64)
    if np.any(assignments >= len(region_boxes)):
        raise ValueError(
            f"{filename} sentence {sentence}: region index out of range for {len(region_boxes)} regions, "
            f"received assignments {assignments.tolist()}"
        )
    snippets = []
    start = 0
    while start < len(words):
        region = int(assignments[start])
        end = start + 1
        while end < len(words) and int(assignments[end]) == region:
            end += 1
        if region >= 0:
            snippets.append(
                {
                    "filename": str(filename),
                    "sentence": int(sentence),
                    "start": start,
                    "end": end,
                    "words": words[start:end],
                    "region": region,
                    "box": [float(value) for value in region_boxes[region]],
                }
            )
        start = end
    return snippets


def _validate_snippet(snippet, where):
    if not isinstance(snippet, dict):
        raise ValueError(f"{where}: expected a JSON object, received {type(snippet).__name__}: {snippet!r}")
    missing = [field for field in SNIPPET_FIELDS if field not in snippet]
    if missing:
        raise ValueError(f"{where}: missing field(s) {missing}; received keys {sorted(snippet)}")
    if not isinstance(snippet["filename"], str) or not snippet["filename"]:
        raise ValueError(f"{where}: `filename` must be a non-empty string, received {snippet['filename']!r}")
    for field in ("sentence", "start", "end", "region"):
        value = snippet[field]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{where}: `{field}` must be an integer >= 0, received {value!r}")
    if snippet["end"] <= snippet["start"]:
        raise ValueError(
            f"{where}: `end` must be greater than `start`, received start={snippet['start']} end={snippet['end']}"
        )
    words = snippet["words"]
    if not isinstance(words, list) or not all(isinstance(word, str) for word in words):
        raise ValueError(f"{where}: `words` must be a list of strings, received {words!r}")
    if len(words) != snippet["end"] - snippet["start"]:
        raise ValueError(
            f"{where}: `words` has {len(words)} entries but end - start = {snippet['end'] - snippet['start']}"
        )
    box = snippet["box"]
    if (
        not isinstance(box, list)
        or len(box) != 4
        or not all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in box)
        or not all(math.isfinite(value) for value in box)
    ):
        raise ValueError(f"{where}: `box` must be 4 finite numbers [x0, y0, x1, y1], received {box!r}")
    if box[2] < box[0] or box[3] < box[1]:
        raise ValueError(f"{where}: `box` must have x1 >= x0 and y1 >= y0, received {box!r}")


def write_snippets(path, snippets):
    """Validates `snippets` and writes them as a JSON list to `path` atomically (temp file + rename)."""
    snippets = [dict(snippet) for snippet in snippets]
    for index, snippet in enumerate(snippets):
        _validate_snippet(snippet, f"snippet {index}")
    atomic_write_text(path, json.dumps(snippets, indent=1) + "\n")


def read_snippets(path):
    """Reads and validates a snippets JSON file; errors name the file, the entry and the field.

    Returns:
        list of snippet dicts.
    """
    try:
        with open(path, encoding="utf-8") as stream:
            snippets = json.load(stream)
    except FileNotFoundError:
        raise ValueError(f"Snippets file not found: {path}") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"Snippets file {path} is not valid JSON: {error}") from None
    if not isinstance(snippets, list):
        raise ValueError(f"Snippets file {path}: expected a JSON list, received {type(snippets).__name__}")
    for index, snippet in enumerate(snippets):
        _validate_snippet(snippet, f"Snippets file {path}, entry {index}")
    return snippets
