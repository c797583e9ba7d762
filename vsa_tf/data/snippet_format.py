"""The fields of a text snippet and their check, shared by the snippets file's reader and writer
(`vsa_tf.align.snippets`) and by region captioning (`vsa_tf.data.pipelines.load_snippets`).

A snippet is `{"filename", "sentence", "start", "end", "words", "region", "box"}`: `sentence` indexes
the image's sentences, `start`/`end` index its tokens (end exclusive), `region` indexes the image's
regions (region 0 = the whole image) and `box` is that region's [x0, y0, x1, y1] in pixels. The check
lives in `data/` so that both `align/` and the pipelines (which may not import `align/`) use it.
"""

import math

SNIPPET_FIELDS = ("filename", "sentence", "start", "end", "words", "region", "box")


def is_finite_number(value):
    """A JSON number (not a bool) that is finite as a float; False for an integer too large for a float
    (JSON allows 400-digit numbers)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def validate_snippet(snippet, where, required=SNIPPET_FIELDS):
    """Checks one snippet dict; a `ValueError` starting with ``where`` names the field and the received value.

    Args:
        snippet: the parsed snippet.
        where: how messages name it, e.g. "Snippets file x.json, entry 3".
        required: the fields it must have; every other field of `SNIPPET_FIELDS` it has is checked too.
    """
    if not isinstance(snippet, dict):
        raise ValueError(f"{where}: expected a JSON object, received {type(snippet).__name__}: {snippet!r:.100}")
    missing = [field for field in required if field not in snippet]
    if missing:
        raise ValueError(f"{where}: missing field(s) {missing}; received keys {sorted(map(str, snippet))}")
    if "filename" in snippet and (not isinstance(snippet["filename"], str) or not snippet["filename"]):
        raise ValueError(f"{where}: `filename` must be a non-empty string, received {snippet['filename']!r:.100}")
    for field in ("sentence", "start", "end", "region"):
        if field not in snippet:
            continue
        value = snippet[field]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{where}: `{field}` must be an integer >= 0, received {value!r:.100}")
    spans = "start" in snippet and "end" in snippet
    if spans and snippet["end"] <= snippet["start"]:
        raise ValueError(
            f"{where}: `end` must be greater than `start`, received start={snippet['start']} end={snippet['end']}"
        )
    if "words" in snippet:
        words = snippet["words"]
        if not isinstance(words, list) or not all(isinstance(word, str) for word in words):
            raise ValueError(f"{where}: `words` must be a list of strings, received {words!r:.100}")
        if spans and len(words) != snippet["end"] - snippet["start"]:
            raise ValueError(
                f"{where}: `words` has {len(words)} entries but end - start = {snippet['end'] - snippet['start']}"
            )
    if "box" in snippet:
        box = snippet["box"]
        if not isinstance(box, list) or len(box) != 4 or not all(is_finite_number(value) for value in box):
            raise ValueError(f"{where}: `box` must be 4 finite numbers [x0, y0, x1, y1], received {box!r:.100}")
        if box[2] < box[0] or box[3] < box[1]:
            raise ValueError(f"{where}: `box` must have x1 >= x0 and y1 >= y0, received {box!r}")
