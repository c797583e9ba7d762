"""Text snippets: maximal runs of consecutive words that the MRF aligned to one image region.

The snippets file (written by `vsa-tf align`, read by region captioning and `evaluate-alignment`) is a
JSON list of `{"filename", "sentence", "start", "end", "words", "region", "box"}`: `sentence` indexes
the image's sentences, `start`/`end` index its tokens (end exclusive), `region` indexes the image's
regions (region 0 = the whole image) and `box` is that region's [x0, y0, x1, y1] in pixels.
"""

import json

import numpy as np

from vsa_tf.config import atomic_write_text
from vsa_tf.data import snippet_format

SNIPPET_FIELDS = snippet_format.SNIPPET_FIELDS  # the fields and their check live in data/ (region captioning reads them too)


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


def write_snippets(path, snippets):
    """Validates `snippets` and writes them as a JSON list to `path` atomically (temp file + rename)."""
    snippets = [dict(snippet) for snippet in snippets]
    for index, snippet in enumerate(snippets):
        snippet_format.validate_snippet(snippet, f"snippet {index}")
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
    except UnicodeDecodeError as error:
        raise ValueError(f"Snippets file {path} is not UTF-8 text: {error}") from None
    if not isinstance(snippets, list):
        raise ValueError(f"Snippets file {path}: expected a JSON list, received {type(snippets).__name__}")
    for index, snippet in enumerate(snippets):
        snippet_format.validate_snippet(snippet, f"Snippets file {path}, entry {index}")
    return snippets
