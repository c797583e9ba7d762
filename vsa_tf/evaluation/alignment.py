"""Alignment accuracy of MRF snippets against ground-truth phrase boxes (a `truth.json`).

The truth is the synthetic world's or a real one in the same format (e.g. Flickr8k's, from the
Flickr30k-Entities phrases): objects with boxes, and phrases as token spans of the sentences.
A ground-truth phrase (a span of a sentence's tokens naming one object) counts as correctly aligned
when its head word lies in a snippet whose box has IoU >= `iou_threshold` with the object's box
(`phrase_accuracy`); with all its words in such snippets it also counts for
`phrase_accuracy_all_words`. Per-word accuracy applies the test to every word inside a phrase.

The head word is the phrase's last token (`phrase_head`): the synthetic world's phrases end with their
noun, and real phrases carry no head annotation, so English noun phrases being head-final ("a black
dog" -> "dog") gives the same rule.

Baselines (`baseline_phrase_boxes`, scored by `evaluate_phrase_boxes`) answer one box per phrase from an
image's regions: the whole image, the largest box, a random region (seeded), and the best region (an
oracle: the ceiling that the region set allows).

Only sentences that appear in the snippets file are evaluated (the snippets usually cover one split,
the truth every image). IoU is computed pairwise in numpy: `keras.utils.bounding_boxes.compute_iou`
returns the all-pairs matrix, and here each word needs only the IoU with its own object.
"""

import json
import math

import numpy as np

from vsa_tf.files import atomic_write_text


def read_truth(path):
    """Reads and validates a synthetic `truth.json` (format in docs/CONVENTIONS.md).

    Returns:
        the `images` dict {filename: {"width", "height", "objects", "sentences"}}.
    """
    try:
        with open(path, encoding="utf-8") as stream:
            truth = json.load(stream)
    except FileNotFoundError:
        raise ValueError(f"Truth file not found: {path}") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"Truth file {path} is not valid JSON: {error}") from None
    except UnicodeDecodeError as error:
        raise ValueError(f"Truth file {path} is not UTF-8 text: {error}") from None
    if not isinstance(truth, dict) or not isinstance(truth.get("images"), dict):
        raise ValueError(f"Truth file {path}: expected an object with an `images` object, received {str(truth)[:200]}")
    return validate_truth(truth["images"], source=f"Truth file {path}")


def truth_boxes(truth, filenames=None):
    """The objects' boxes of a truth dict (`read_truth`) as a boxes mapping {filename: [[x0, y0, x1, y1], ...]}.

    Largest first (stable), duplicates once; images without objects are left out. Written as a boxes
    JSON (`vsa-tf truth-boxes`), it lets `cache-features` cache a feature for every truth region, which
    Table 3's region-caption evaluation of cached-feature runs reads.

    Args:
        truth: {filename: {"objects": [{"box"}, ...], ...}}.
        filenames: optional iterable of the images to keep (default: all).
    """
    wanted = None if filenames is None else set(filenames)
    result = {}
    for filename, image in truth.items():
        if wanted is not None and filename not in wanted:
            continue
        boxes = []
        for obj in image["objects"]:
            box = [float(value) for value in obj["box"]]
            if box not in boxes:
                boxes.append(box)
        boxes.sort(key=lambda box: -(box[2] - box[0]) * (box[3] - box[1]))
        if boxes:
            result[filename] = boxes
    return result


def write_truth_boxes(truth_path, out, filenames=None):
    """Writes `truth_boxes` of the truth file ``truth_path`` (only ``filenames``' images when given) as a
    boxes JSON at ``out`` (atomically); returns the boxes mapping."""
    boxes = truth_boxes(read_truth(truth_path), filenames)
    atomic_write_text(out, json.dumps(boxes) + "\n")
    return boxes


def _is_finite_number(value):
    """An int or float (not bool) that is finite; False for an integer beyond any float."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def validate_truth(images, source="truth"):
    """Checks the structure of truth `images` {filename: {...}}; errors name the image and field."""
    for filename, image in images.items():
        where = f"{source}, image {filename!r}"
        if not isinstance(image, dict):
            raise ValueError(f"{where}: expected an object, received {image!r}")
        objects = image.get("objects")
        sentences = image.get("sentences")
        if not isinstance(objects, list) or not isinstance(sentences, list):
            raise ValueError(f"{where}: `objects` and `sentences` must be lists, received keys {sorted(image)}")
        for index, item in enumerate(objects):
            box = item.get("box") if isinstance(item, dict) else None
            if not isinstance(box, list) or len(box) != 4 or not all(_is_finite_number(value) for value in box):
                raise ValueError(f"{where}, object {index}: `box` must be 4 finite numbers [x0, y0, x1, y1], received {box!r}")
        for sentence_index, sentence in enumerate(sentences):
            phrases = sentence.get("phrases") if isinstance(sentence, dict) else None
            if not isinstance(phrases, list):
                raise ValueError(f"{where}, sentence {sentence_index}: `phrases` must be a list, received {sentence!r}")
            for phrase in phrases:
                if not isinstance(phrase, dict) or not all(
                    isinstance(phrase.get(key), int) for key in ("start", "end", "object")
                ):
                    raise ValueError(
                        f"{where}, sentence {sentence_index}: a phrase needs integer `start`, `end`, `object`, "
                        f"received {phrase!r}"
                    )
                if not 0 <= phrase["start"] < phrase["end"] or not 0 <= phrase["object"] < len(objects):
                    raise ValueError(
                        f"{where}, sentence {sentence_index}: phrase out of range ({len(objects)} objects), "
                        f"received {phrase!r}"
                    )
    return images


def phrase_head(phrase):
    """Token index of a truth phrase's head word: its last token, `end - 1`.

    The synthetic world's phrases end with their noun; real phrases (Flickr30k-Entities) have no head
    annotation, and English noun phrases are head-final ("a black dog" -> "dog"), so the last token is
    taken there too.
    """
    return phrase["end"] - 1


def box_iou(boxes, other_boxes):
    """Pairwise-by-row IoU of pixel [x0, y0, x1, y1] boxes: arrays [n, 4] and [n, 4] -> [n]."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape([-1, 4])
    other_boxes = np.asarray(other_boxes, dtype=np.float64).reshape([-1, 4])
    width = np.clip(np.minimum(boxes[:, 2], other_boxes[:, 2]) - np.maximum(boxes[:, 0], other_boxes[:, 0]), 0, None)
    height = np.clip(np.minimum(boxes[:, 3], other_boxes[:, 3]) - np.maximum(boxes[:, 1], other_boxes[:, 1]), 0, None)
    intersection = width * height
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    other_area = (other_boxes[:, 2] - other_boxes[:, 0]) * (other_boxes[:, 3] - other_boxes[:, 1])
    union = area + other_area - intersection
    return np.where(union > 0, intersection / np.where(union > 0, union, 1.0), 0.0)


def evaluate_alignment(snippets, truth, iou_threshold=0.5):
    """Phrase and word alignment accuracy of snippets against ground-truth object phrases.

    Args:
        snippets: list of snippet dicts (`vsa_tf.align.snippets.read_snippets`).
        truth: the truth `images` dict {filename: {...}} (`read_truth`), or the whole truth.json object.
        iou_threshold: minimum IoU between a snippet's box and the object's box.

    Returns:
        {"phrase_accuracy", "phrase_accuracy_all_words", "word_accuracy", "num_phrases",
         "num_phrases_correct", "num_phrases_all_words_correct", "num_words", "num_words_correct",
         "num_words_without_snippet", "num_sentences", "iou_threshold"}. `phrase_accuracy` tests the
        head word (`phrase_head`), `phrase_accuracy_all_words` every word of the phrase. A phrase word
        not covered by any snippet counts as wrong.

    Reference:
        Karpathy & Fei-Fei, CVPR 2015, section 3.1.4 (the snippets of eqs. 10-12); the metric is this
        project's, as the paper only shows alignments qualitatively.
    """
    if isinstance(truth, dict) and isinstance(truth.get("images"), dict):
        truth = truth["images"]
    truth = validate_truth(truth)
    if not 0.0 <= float(iou_threshold) <= 1.0:
        raise ValueError(f"`iou_threshold` must be in [0, 1], received {iou_threshold}")

    # (filename, sentence) -> {token index: snippet box}
    covered = {}
    for index, snippet in enumerate(snippets):
        filename = snippet["filename"]
        if filename not in truth:
            raise ValueError(f"Snippet {index}: image {filename!r} is not in the truth file")
        if snippet["sentence"] >= len(truth[filename]["sentences"]):
            raise ValueError(
                f"Snippet {index}: image {filename!r} has {len(truth[filename]['sentences'])} sentences in the "
                f"truth file, received sentence {snippet['sentence']}"
            )
        words = covered.setdefault((filename, snippet["sentence"]), {})
        for position in range(snippet["start"], snippet["end"]):
            words[position] = snippet["box"]
    if not covered:
        raise ValueError("No snippets to evaluate (received an empty list)")

    word_boxes, object_boxes, is_head, phrase_of_word = [], [], [], []
    without_snippet = num_phrases_seen = 0
    missing_box = [np.nan] * 4  # IoU with NaN is NaN, which compares False: an uncovered word is wrong
    for (filename, sentence), words in covered.items():
        image = truth[filename]
        for phrase in image["sentences"][sentence]["phrases"]:
            object_box = image["objects"][phrase["object"]]["box"]
            phrase_index = num_phrases_seen
            num_phrases_seen += 1
            for position in range(phrase["start"], phrase["end"]):
                box = words.get(position)
                if box is None:
                    without_snippet += 1
                word_boxes.append(missing_box if box is None else box)
                object_boxes.append(object_box)
                is_head.append(position == phrase_head(phrase))
                phrase_of_word.append(phrase_index)
    if not is_head:
        raise ValueError("The evaluated sentences have no ground-truth phrases")
    with np.errstate(invalid="ignore"):
        correct = box_iou(word_boxes, object_boxes) >= float(iou_threshold)
    is_head = np.asarray(is_head)
    num_phrases = int(is_head.sum())
    num_phrases_correct = int(correct[is_head].sum())
    wrong_words = np.bincount(np.asarray(phrase_of_word), weights=(~correct).astype(np.float64), minlength=num_phrases)  # [phrases]
    num_phrases_all_words_correct = int(np.count_nonzero(wrong_words == 0))
    return {
        "phrase_accuracy": num_phrases_correct / num_phrases,
        "phrase_accuracy_all_words": num_phrases_all_words_correct / num_phrases,
        "word_accuracy": float(correct.mean()),
        "num_phrases": num_phrases,
        "num_phrases_correct": num_phrases_correct,
        "num_phrases_all_words_correct": num_phrases_all_words_correct,
        "num_words": int(len(correct)),
        "num_words_correct": int(correct.sum()),
        "num_words_without_snippet": without_snippet,
        "num_sentences": len(covered),
        "iou_threshold": float(iou_threshold),
    }


def _truth_images(truth):
    if isinstance(truth, dict) and isinstance(truth.get("images"), dict):
        truth = truth["images"]
    return validate_truth(truth)


def phrases_within(truth, sentence_lengths):
    """The truth of the evaluated sentences, keeping the phrases that lie inside their first words.

    A model reads at most `max_words` words of a sentence; a phrase reaching past them cannot be
    aligned by it, so every method of a grounding table is scored on the phrases inside.

    Args:
        truth: the truth `images` dict (`read_truth`) or the whole truth.json object.
        sentence_lengths: {(filename, sentence index): number of words read}.

    Returns:
        (truth `images` dict of the evaluated images, where the evaluated sentences keep their phrases
        with `end <= length` and every other sentence has none, number of phrases left out).
    """
    truth = _truth_images(truth)
    kept, num_left_out = {}, 0
    for (filename, sentence), length in sentence_lengths.items():
        if filename not in truth:
            raise ValueError(f"Image {filename!r} is not in the truth file")
        sentences = truth[filename]["sentences"]
        if not 0 <= sentence < len(sentences):
            raise ValueError(f"Image {filename!r} has {len(sentences)} sentences in the truth file, received sentence {sentence}")
        if filename not in kept:
            kept[filename] = dict(truth[filename], sentences=[{"phrases": []} for _ in sentences])
        phrases = sentences[sentence]["phrases"]
        inside = [phrase for phrase in phrases if phrase["end"] <= length]
        kept[filename]["sentences"][sentence] = dict(sentences[sentence], phrases=inside)
        num_left_out += len(phrases) - len(inside)
    return kept, num_left_out


BASELINES = ("whole_image", "largest_box", "random_box", "best_box_oracle")


def baseline_phrase_boxes(image_regions, truth, sentences, seed=0, iou_threshold=0.5, first_box=False):
    """One box per ground-truth phrase from each baseline, chosen among the image's regions.

    - `whole_image`: region 0.
    - `most_confident_box` (only with ``first_box``): region 1, the first box of a boxes file stored best
      first (a detector's most confident box; region 0 when the image has no box).
    - `largest_box`: the region of largest area after region 0 (region 0 when the image has no other).
    - `random_box`: a region drawn uniformly among all of the image's regions (region 0 included, the
      set the model chooses from) for each phrase, with `numpy.random.default_rng(seed)`, phrases taken
      in the order of `sentences` then of the truth.
    - `best_box_oracle`: the region of highest IoU with the phrase's box (the ceiling of the region set).

    Args:
        image_regions: {filename: array [M, 4] pixel [x0, y0, x1, y1]}, row 0 the whole image.
        truth: the truth `images` dict (or the whole truth.json object).
        sentences: list of (filename, sentence index) to answer, in order.
        seed: seed of the random baseline.
        iou_threshold: the threshold of `random_box`'s expected accuracy.
        first_box: also answer `most_confident_box` (for regions from a scored boxes file).

    Returns:
        ({baseline: {(filename, sentence): [box per phrase]}}, the random baseline's expected phrase
        accuracy: the mean over phrases of the fraction of regions with IoU >= `iou_threshold`).
    """
    truth = _truth_images(truth)
    rng = np.random.default_rng(seed)
    answers = {name: {} for name in BASELINES + (("most_confident_box",) if first_box else ())}
    hit_fractions = []
    for filename, sentence in sentences:
        regions = np.asarray(image_regions[filename], dtype=np.float64).reshape([-1, 4])
        if len(regions) == 0:
            raise ValueError(f"Image {filename!r}: no regions (region 0, the whole image, is always needed)")
        areas = (regions[:, 2] - regions[:, 0]) * (regions[:, 3] - regions[:, 1])
        largest = 1 + int(np.argmax(areas[1:])) if len(regions) > 1 else 0
        image = truth[filename]
        phrases = image["sentences"][sentence]["phrases"]
        key = (filename, sentence)
        answers["whole_image"][key] = [regions[0].tolist()] * len(phrases)
        answers["largest_box"][key] = [regions[largest].tolist()] * len(phrases)
        if first_box:
            answers["most_confident_box"][key] = [regions[1 if len(regions) > 1 else 0].tolist()] * len(phrases)
        answers["random_box"][key], answers["best_box_oracle"][key] = [], []
        for phrase in phrases:
            object_box = np.asarray(image["objects"][phrase["object"]]["box"], dtype=np.float64)
            overlaps = box_iou(regions, np.broadcast_to(object_box, regions.shape))  # [M]
            hit_fractions.append(float(np.mean(overlaps >= float(iou_threshold))))
            answers["random_box"][key].append(regions[int(rng.integers(len(regions)))].tolist())
            answers["best_box_oracle"][key].append(regions[int(np.argmax(overlaps))].tolist())
    expected = float(np.mean(hit_fractions)) if hit_fractions else float("nan")
    return answers, expected


def evaluate_phrase_boxes(phrase_boxes, truth, iou_threshold=0.5):
    """Phrase accuracy of one box answered per ground-truth phrase (the baselines of a grounding table).

    Args:
        phrase_boxes: {(filename, sentence index): [box per phrase of that sentence, in the truth's order]}.
        truth: the truth `images` dict (or the whole truth.json object).
        iou_threshold: minimum IoU between the answered box and the phrase's box.

    Returns:
        {"phrase_accuracy", "phrase_accuracy_all_words", "num_phrases", "num_phrases_correct",
         "num_sentences", "iou_threshold"}. Every word of a phrase gets its box, so the head-word and
        the all-words accuracies are equal.
    """
    truth = _truth_images(truth)
    if not 0.0 <= float(iou_threshold) <= 1.0:
        raise ValueError(f"`iou_threshold` must be in [0, 1], received {iou_threshold}")
    answered, expected = [], []
    for (filename, sentence), boxes in phrase_boxes.items():
        if filename not in truth:
            raise ValueError(f"Image {filename!r} is not in the truth file")
        image = truth[filename]
        phrases = image["sentences"][sentence]["phrases"]
        if len(boxes) != len(phrases):
            raise ValueError(f"Image {filename!r}, sentence {sentence}: {len(phrases)} phrases but {len(boxes)} boxes received")
        answered.extend(boxes)
        expected.extend(image["objects"][phrase["object"]]["box"] for phrase in phrases)
    if not answered:
        raise ValueError("The evaluated sentences have no ground-truth phrases")
    correct = box_iou(answered, expected) >= float(iou_threshold)
    accuracy = float(correct.mean())
    return {
        "phrase_accuracy": accuracy,
        "phrase_accuracy_all_words": accuracy,
        "num_phrases": int(len(correct)),
        "num_phrases_correct": int(correct.sum()),
        "num_sentences": len(phrase_boxes),
        "iou_threshold": float(iou_threshold),
    }


def grounding_table(report):
    """A Markdown table (method, head-word and all-words phrase accuracy in %, phrases) of a grounding report.

    `report`: `vsa_tf.jobs.alignment.grounding_report`'s dict.
    """
    lines = ["| method | phrase accuracy, head word | phrase accuracy, all words | phrases |", "|---|---|---|---|"]
    for name, method in report["methods"].items():
        lines.append(
            f"| {name} | {100 * method['phrase_accuracy_head']:.1f} % | {100 * method['phrase_accuracy_all_words']:.1f} % "
            f"| {method['num_phrases']} |"
        )
    return "\n".join(lines)
