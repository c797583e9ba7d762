"""The embedded synthetic world: coloured shapes on noisy backgrounds, with captions and ground truth.

`generate_world` writes a complete dataset in the public formats every other module reads:

- ``dataset.json``: Karpathy split format (``images[].filename``, ``imgid``, ``split``,
  ``sentences[].tokens`` / ``raw`` / ``sentid``), five sentences per image;
- ``images/*.jpg``: non-square scenes of one to four objects (shape, colour, size, position) on
  gradient, striped, checkered, mottled or speckled backgrounds with pixel noise;
- ``boxes.json``: detector-like boxes ``{filename: [[x0, y0, x1, y1], ...]}`` in pixels, best first
  by a noisy score: a jittered box per object plus distractors (random crops, unions of two
  objects, parts of an object), at most ``max_boxes`` per image;
- ``truth.json``: per image the size, the objects and, per sentence, the word spans naming each
  object (``[start, end)`` over that sentence's tokens, head noun at ``end - 1``), a coarse
  part-of-speech tag per token and the spatial relations the sentence states; plus the held-out
  colour–shape combinations and the binding-swapped twin pairs.

Why the world is built this way (Karpathy & Fei-Fei 2015, Sec. 3.1; Kiros et al. 2014, Sec. 4):
attribute binding matters — about 40 % of the images come in twin pairs with the same layout,
shapes and sizes but colours exchanged between objects, so their sentences differ only in which
colour goes with which shape, which a bag-of-words sentence model cannot see; and a few colour–shape
combinations never appear in train, so compositional generalisation can be measured on val/test.

Every sentence of a scene with several objects names at least two of them (a relation, a pair or a
list of all), as people describing a scene name its main objects. An earlier version also said "there
is a red circle" of a scene with three objects; that one-object template was the single most probable
sentence of most scenes, so exact MAP decoding of a perfect model (what beam search aims at) scored
CIDEr 1.51 against 2.10 for greedy decoding on the demo's 300 captioned test images (`caption_oracle`,
3,000 draws per image); the demo now reports 2.32 against 2.25 (2,000 draws).

Spatial words are always true of the geometry: "A left of B" means A's box ends before B's begins
horizontally and the horizontal offset of the centres dominates the vertical one (likewise for
above/below; "next to" is said of side-by-side pairs).

Rendering is numpy + PIL only (no TensorFlow), so generation is fast and the output is the same
bytes for a given seed.
"""

import collections
import io
import json
import os
import shutil
import tempfile
import time

import numpy as np
from PIL import Image
from PIL import ImageDraw

from vsa_tf.config import default_file_mode

SHAPES = ("circle", "square", "triangle", "star", "cross", "diamond")
COLORS = ("red", "green", "blue", "yellow", "purple", "orange")
SIZES = ("small", "large")
# Relation names; "left" means "the subject is to the left of the reference object".
RELATIONS = ("left", "right", "above", "below", "next_to")

COLOR_VALUES = {
    "red": (215, 35, 35),
    "green": (35, 165, 55),
    "blue": (40, 75, 220),
    "yellow": (240, 215, 30),
    "purple": (135, 45, 175),
    "orange": (250, 135, 20),
}
# Side of an object's (square) box as a fraction of the image's shorter side.
SIZE_RANGES = {"small": (0.15, 0.21), "large": (0.30, 0.38)}

# Words that may stand for an attribute value, canonical word first.
SHAPE_WORDS = {
    "circle": ("circle", "disk"),
    "square": ("square",),
    "triangle": ("triangle",),
    "star": ("star",),
    "cross": ("cross", "plus"),
    "diamond": ("diamond",),
}
COLOR_WORDS = {color: (color,) for color in COLORS}
COLOR_WORDS["purple"] = ("purple", "violet")
SIZE_WORDS = {"small": ("small", "little", "tiny"), "large": ("large", "big")}

# Relation phrases between two noun phrases ("A <phrase> B").
RELATION_PHRASES = {
    "left": (("to", "the", "left", "of"), ("left", "of")),
    "right": (("to", "the", "right", "of"), ("right", "of")),
    "above": (("above",), ("over",)),
    "below": (("below",), ("under",), ("beneath",)),
    "next_to": (("next", "to"), ("beside",)),
}
# Relation phrases after "B with A ..." ("a square with a circle to its left").
RELATION_PHRASES_TRAILING = {
    "left": (("to", "its", "left"), ("on", "its", "left")),
    "right": (("to", "its", "right"), ("on", "its", "right")),
    "above": (("above", "it"),),
    "below": (("below", "it"), ("under", "it")),
    "next_to": (("next", "to", "it"), ("beside", "it")),
}
INVERSE_RELATIONS = {"left": "right", "right": "left", "above": "below", "below": "above", "next_to": "next_to"}
RELATION_WORDS = frozenset(
    word
    for table in (RELATION_PHRASES, RELATION_PHRASES_TRAILING)
    for phrases in table.values()
    for phrase in phrases
    for word in phrase
    if word not in ("to", "the", "of", "its", "it", "on")
)

BACKGROUNDS = ("gradient", "stripes", "checker", "blotches", "speckles")
BACKGROUND_WORDS = {
    "gradient": "shaded",
    "stripes": "striped",
    "checker": "checkered",
    "blotches": "mottled",
    "speckles": "speckled",
}
NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four"}

# Coarse (universal-style) part-of-speech tag of every word the world uses.
POS_TAGS = {
    **{word: "DET" for word in ("a", "an", "the")},
    **{word: "ADJ" for words in COLOR_WORDS.values() for word in words},
    **{word: "ADJ" for words in SIZE_WORDS.values() for word in words},
    **{word: "ADJ" for word in BACKGROUND_WORDS.values()},
    **{word: "ADJ" for word in ("single", "lone")},
    **{word: "NOUN" for words in SHAPE_WORDS.values() for word in words},
    **{word: "NOUN" for word in ("shape", "shapes", "object", "objects", "picture", "image", "background",
                                 "left", "right", "scene")},
    **{word: "ADP" for word in ("of", "to", "above", "over", "below", "under", "beneath", "beside", "with",
                                "on", "in")},
    **{word: "VERB" for word in ("is", "are", "shows", "contains")},
    "and": "CONJ",
    "there": "ADV",
    "next": "ADV",
    **{word: "NUM" for word in NUMBER_WORDS.values()},
    **{word: "PRON" for word in ("its", "it")},
}

_WORD_ATTRIBUTES = {
    **{word: ("shape", shape) for shape, words in SHAPE_WORDS.items() for word in words},
    **{word: ("color", color) for color, words in COLOR_WORDS.items() for word in words},
    **{word: ("size", size) for size, words in SIZE_WORDS.items() for word in words},
}

_SPLITS = ("train", "val", "test")
_SYNONYM_PROBABILITY = 0.15


def attribute_of_word(word):
    """The attribute a word names: ``("color", "purple")`` for "violet", ``None`` for other words."""
    return _WORD_ATTRIBUTES.get(word)


def phrase_for_object(obj, include_size=True, include_color=True, determiner=None):
    """Canonical words naming an object, e.g. ``["small", "red", "circle"]``.

    Args:
        obj: a dict with "shape", "color" and "size" (an entry of truth.json's "objects").
        include_size: whether to say the size.
        include_color: whether to say the colour.
        determiner: None, or "a" / "the" to prepend (``"a"`` becomes "an" before a vowel).
    """
    for key, values in (("shape", SHAPES), ("color", COLORS), ("size", SIZES)):
        if obj.get(key) not in values:
            raise ValueError(f"Object {key} must be one of {values}; received {obj.get(key)!r} in {obj}")
    words = ([obj["size"]] if include_size else []) + ([obj["color"]] if include_color else []) + [obj["shape"]]
    if determiner is not None:
        if determiner not in ("a", "the"):
            raise ValueError(f"determiner must be None, 'a' or 'the'; received {determiner!r}")
        words = [_article(words[0]) if determiner == "a" else "the"] + words
    return words


def _article(next_word):
    return "an" if next_word[0] in "aeiou" else "a"


def _box_iou(first, second):
    x0, y0 = max(first[0], second[0]), max(first[1], second[1])
    x1, y1 = min(first[2], second[2]), min(first[3], second[3])
    intersection = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = (
        (first[2] - first[0]) * (first[3] - first[1]) + (second[2] - second[0]) * (second[3] - second[1]) - intersection
    )
    return intersection / union if union > 0 else 0.0


def spatial_relation(subject_box, reference_box):
    """The relation that clearly holds of the subject w.r.t. the reference, or None when unclear.

    "left": the subject's box ends before the reference's begins (x) and |dx| >= 1.5 |dy| between
    the centres; "right", "above", "below" likewise (image y grows downwards).
    """
    subject_x = (subject_box[0] + subject_box[2]) / 2
    subject_y = (subject_box[1] + subject_box[3]) / 2
    reference_x = (reference_box[0] + reference_box[2]) / 2
    reference_y = (reference_box[1] + reference_box[3]) / 2
    dx, dy = reference_x - subject_x, reference_y - subject_y
    if abs(dx) >= 1.5 * abs(dy):
        if dx > 0 and subject_box[2] <= reference_box[0]:
            return "left"
        if dx < 0 and reference_box[2] <= subject_box[0]:
            return "right"
    elif abs(dy) >= 1.5 * abs(dx):
        if dy > 0 and subject_box[3] <= reference_box[1]:
            return "above"
        if dy < 0 and reference_box[3] <= subject_box[1]:
            return "below"
    return None


def relation_holds(relation, subject_box, reference_box):
    """Whether a stated relation ("left", ..., "next_to") is true of two boxes."""
    if relation not in RELATIONS:
        raise ValueError(f"relation must be one of {RELATIONS}; received {relation!r}")
    clear = spatial_relation(subject_box, reference_box)
    if relation == "next_to":
        return clear in ("left", "right")
    return clear == relation


# ----------------------------------------------------------------------------------------------
# Planning scenes (attributes, layout) — cheap, sequential, from one random stream.


def _split_counts(num_images, split_counts, split_fractions):
    if split_counts is not None:
        if isinstance(split_counts, dict):
            unknown = sorted(set(split_counts) - set(_SPLITS))
            if unknown:
                raise ValueError(f"split_counts keys must be among {_SPLITS}; received {unknown}")
            counts = [int(split_counts.get(split, 0)) for split in _SPLITS]
        else:
            counts = [int(count) for count in split_counts]
            if len(counts) != 3:
                raise ValueError(f"split_counts must give (train, val, test); received {split_counts!r}")
        if min(counts) < 0:
            raise ValueError(f"split_counts must be >= 0; received {split_counts!r}")
        if num_images is not None and sum(counts) != num_images:
            raise ValueError(f"split_counts {split_counts!r} add up to {sum(counts)}, not num_images={num_images}")
        return dict(zip(_SPLITS, counts))
    if num_images is None or num_images < 1:
        raise ValueError(f"num_images must be >= 1; received {num_images!r}")
    fractions = [float(value) for value in split_fractions]
    if len(fractions) != 3 or min(fractions) < 0 or sum(fractions) <= 0:
        raise ValueError(
            f"split_fractions must be three non-negative numbers (train, val, test); received {split_fractions!r}"
        )
    total = sum(fractions)
    val = int(round(num_images * fractions[1] / total))
    test = int(round(num_images * fractions[2] / total))
    test = min(test, num_images - val)
    return {"train": num_images - val - test, "val": val, "test": test}


def _default_heldout(seed, count):
    """`count` colour–shape pairs, each colour and each shape at most once, chosen by the seed."""
    rng = np.random.default_rng([seed, 7])
    colors = rng.permutation(len(COLORS))[:count]
    shapes = rng.permutation(len(SHAPES))[:count]
    return [(COLORS[c], SHAPES[s]) for c, s in zip(colors, shapes)]


def _normalize_heldout(heldout_combinations, seed, num_heldout):
    if heldout_combinations is None:
        if not 0 <= num_heldout <= min(len(COLORS), len(SHAPES)):
            raise ValueError(f"num_heldout must be in [0, {min(len(COLORS), len(SHAPES))}]; received {num_heldout}")
        return _default_heldout(seed, num_heldout)
    pairs = []
    for item in heldout_combinations:
        color, shape = (item["color"], item["shape"]) if isinstance(item, dict) else tuple(item)
        if color not in COLORS or shape not in SHAPES:
            raise ValueError(
                f"heldout_combinations entries must be (color, shape) with color in {COLORS} and shape in "
                f"{SHAPES}; received {item!r}"
            )
        pairs.append((color, shape))
    return sorted(set(pairs), key=pairs.index)


def _image_size(rng, min_side, max_side):
    while True:
        width, height = (int(value) for value in rng.integers(min_side, max_side + 1, size=2))
        if abs(width - height) >= max(8, 0.1 * max(width, height)):
            return width, height


def _sample_attributes(rng, count, heldout, allow_heldout, force_heldout):
    """`count` objects with distinct (colour, shape) pairs; held-out pairs only if allowed."""
    objects = []
    used = set()
    if force_heldout and heldout:
        color, shape = heldout[int(rng.integers(len(heldout)))]
        objects.append({"shape": shape, "color": color})
        used.add((color, shape))
    while len(objects) < count:
        color = COLORS[int(rng.integers(len(COLORS)))]
        shape = SHAPES[int(rng.integers(len(SHAPES)))]
        if (color, shape) in used or (not allow_heldout and (color, shape) in heldout):
            continue
        objects.append({"shape": shape, "color": color})
        used.add((color, shape))
    order = rng.permutation(len(objects))
    objects = [objects[index] for index in order]
    for obj in objects:
        obj["size"] = SIZES[int(rng.integers(len(SIZES)))]
    return objects


def _place(rng, objects, width, height, margin=3):
    """Gives each object a square box without overlap; drops objects that do not fit."""
    shorter = min(width, height)
    placed = []
    for obj in objects:
        low, high = SIZE_RANGES[obj["size"]]
        for _ in range(60):
            side = int(round(shorter * rng.uniform(low, high)))
            x0 = int(rng.integers(2, width - side - 1))
            y0 = int(rng.integers(2, height - side - 1))
            box = [x0, y0, x0 + side, y0 + side]
            if all(
                box[0] >= other["box"][2] + margin
                or other["box"][0] >= box[2] + margin
                or box[1] >= other["box"][3] + margin
                or other["box"][1] >= box[3] + margin
                for other in placed
            ):
                placed.append({**obj, "box": box})
                break
    return placed


def _swap_colors(rng, objects, heldout, allow_heldout):
    """A twin: the same objects with the colours of two (or three, cyclically) objects exchanged."""
    candidates = []
    count = len(objects)
    for first in range(count):
        for second in range(first + 1, count):
            permutation = list(range(count))
            permutation[first], permutation[second] = second, first
            candidates.append(permutation)
    order = rng.permutation(len(candidates))
    for index in order:
        permutation = candidates[index]
        twin = [{**obj, "color": objects[permutation[i]]["color"]} for i, obj in enumerate(objects)]
        pairs = [(obj["color"], obj["shape"]) for obj in twin]
        if len(set(pairs)) != len(pairs):
            continue
        if not allow_heldout and any(pair in heldout for pair in pairs):
            continue
        if all(a["color"] == b["color"] for a, b in zip(objects, twin)):
            continue
        return twin
    return None


def _plan_scene(rng, split, heldout, min_side, max_side, max_objects, heldout_share, min_objects=1):
    allow_heldout = split != "train"
    while True:
        width, height = _image_size(rng, min_side, max_side)
        count = int(rng.integers(min_objects, max_objects + 1))
        force = allow_heldout and bool(heldout) and rng.random() < heldout_share
        objects = _sample_attributes(rng, count, heldout, allow_heldout, force)
        objects = _place(rng, objects, width, height)
        if len(objects) >= min_objects:
            return {
                "width": width,
                "height": height,
                "objects": objects,
                "background": BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))],
            }


# ----------------------------------------------------------------------------------------------
# Sentences. Twins share the sentence random stream and every draw below depends only on shapes,
# sizes and layout (never on colours), so twin sentences differ only in the colour words.


class _SentenceBuilder:
    def __init__(self):
        self.tokens = []
        self.phrases = []
        self.relations = []
        self.punctuation = {}  # token index -> mark written after it in the raw caption

    def words(self, *words):
        self.tokens.extend(words)

    def mark(self, punctuation):
        self.punctuation[len(self.tokens) - 1] = punctuation

    def raw(self):
        """A readable caption whose tokenisation gives back the tokens."""
        text = " ".join(token + self.punctuation.get(index, "") for index, token in enumerate(self.tokens))
        return text[0].upper() + text[1:] + "."

    def noun_phrase(self, objects, index, rng, definite=False):
        obj = objects[index]
        say_size, drop_color, size_synonym, color_synonym, shape_synonym = rng.random(5)
        shape_unique = sum(other["shape"] == obj["shape"] for other in objects) == 1
        words = []
        if say_size < 0.5:
            options = SIZE_WORDS[obj["size"]]
            if size_synonym < _SYNONYM_PROBABILITY:
                words.append(options[1 + int(size_synonym / _SYNONYM_PROBABILITY * (len(options) - 1))])
            else:
                words.append(options[0])
        if not (shape_unique and drop_color < 0.1):
            options = COLOR_WORDS[obj["color"]]
            words.append(options[-1] if color_synonym < _SYNONYM_PROBABILITY else options[0])
        options = SHAPE_WORDS[obj["shape"]]
        words.append(options[-1] if shape_synonym < _SYNONYM_PROBABILITY else options[0])
        start = len(self.tokens)
        self.tokens.append("the" if definite else _article(words[0]))
        self.tokens.extend(words)
        self.phrases.append({"start": start, "end": len(self.tokens), "object": index})

    def relation(self, subject, relation, reference):
        self.relations.append({"subject": subject, "relation": relation, "reference": reference})


def _pick(rng, options):
    return options[int(rng.integers(len(options)))]


def _clear_pairs(objects):
    """Every ordered pair (a, b, relation) whose relation is clear, in a fixed order."""
    pairs = []
    for a in range(len(objects)):
        for b in range(len(objects)):
            if a != b:
                relation = spatial_relation(objects[a]["box"], objects[b]["box"])
                if relation is not None:
                    pairs.append((a, b, relation))
    return pairs


def _one_sentence(rng, scene):
    objects = scene["objects"]
    count = len(objects)
    background = BACKGROUND_WORDS[scene["background"]]
    pairs = _clear_pairs(objects)
    kind_draw, pair_draw, relation_draw, phrase_draw = rng.random(4)
    builder = _SentenceBuilder()
    if pairs and kind_draw < 0.6:
        a, b, relation = pairs[int(pair_draw * len(pairs))]
        # Side-by-side pairs may also be described as "next to".
        if relation in ("left", "right") and relation_draw < 0.25:
            relation = "next_to"
        template = int(rng.integers(5))
        if template == 0:  # "a small red circle to the left of a blue square"
            builder.noun_phrase(objects, a, rng)
            builder.words(*RELATION_PHRASES[relation][int(phrase_draw * len(RELATION_PHRASES[relation]))])
            builder.noun_phrase(objects, b, rng)
            builder.relation(a, relation, b)
        elif template == 1:  # "there is a large yellow star above a green triangle"
            builder.words("there", "is")
            builder.noun_phrase(objects, a, rng)
            builder.words(*RELATION_PHRASES[relation][int(phrase_draw * len(RELATION_PHRASES[relation]))])
            builder.noun_phrase(objects, b, rng)
            builder.relation(a, relation, b)
        elif template == 2:  # "a blue square is next to a red circle" (subject and reference swapped)
            inverse = INVERSE_RELATIONS[relation]
            builder.noun_phrase(objects, b, rng)
            builder.words("is", *RELATION_PHRASES[inverse][int(phrase_draw * len(RELATION_PHRASES[inverse]))])
            builder.noun_phrase(objects, a, rng)
            builder.relation(b, inverse, a)
        elif template == 3:  # "a blue square with a red circle to its left"
            builder.noun_phrase(objects, b, rng)
            builder.words("with")
            builder.noun_phrase(objects, a, rng)
            trailing = RELATION_PHRASES_TRAILING[relation]
            builder.words(*trailing[int(phrase_draw * len(trailing))])
            builder.relation(a, relation, b)
        else:  # "a red circle is above a blue square and left of a green star" (or one relation)
            others = [(reference, second) for subject, reference, second in pairs if subject == a and reference != b]
            builder.noun_phrase(objects, a, rng)
            builder.words("is", *RELATION_PHRASES[relation][int(phrase_draw * len(RELATION_PHRASES[relation]))])
            builder.noun_phrase(objects, b, rng)
            builder.relation(a, relation, b)
            if others:
                c, second = others[int(rng.integers(len(others)))]
                builder.words("and", *_pick(rng, RELATION_PHRASES[second]))
                builder.noun_phrase(objects, c, rng)
                builder.relation(a, second, c)
        return builder
    template = int(rng.integers(4))
    if count == 1:
        if template == 0:  # "a small red circle on a striped background"
            builder.noun_phrase(objects, 0, rng)
            builder.words("on", _article(background), background, "background")
        elif template == 1:  # "there is a red circle"
            builder.words("there", "is")
            builder.noun_phrase(objects, 0, rng)
        elif template == 2:  # "a picture of a single large red circle"
            builder.words(*_pick(rng, (("a", "picture"), ("an", "image"))), "of")
            builder.noun_phrase(objects, 0, rng)
            if builder.tokens[3] in ("a", "an"):
                builder.tokens[3] = "a"
                builder.tokens.insert(4, _pick(rng, ("single", "lone")))
                builder.phrases[-1]["end"] += 1
        else:  # "a red circle in the picture"
            builder.noun_phrase(objects, 0, rng)
            builder.words("in", "the", _pick(rng, ("picture", "image")))
        return builder
    # Several objects, no relation: conjunctions, lists and counts that name two objects or all of them.
    order = [int(value) for value in rng.permutation(count)]
    if template == 0:  # "a red circle and a blue square"
        builder.noun_phrase(objects, order[0], rng)
        builder.words("and")
        builder.noun_phrase(objects, order[1], rng)
    elif template == 1:  # "there are three shapes: a red circle, a blue square and a green star"
        builder.words("there", "are", NUMBER_WORDS[count], _pick(rng, ("shapes", "objects")))
        builder.mark(":")
        _list_all(builder, objects, order, rng)
    elif template == 2:  # "the image shows a red circle and a blue square on a striped background"
        builder.words("the", _pick(rng, ("image", "picture", "scene")), _pick(rng, ("shows", "contains")))
        _list_all(builder, objects, order, rng)
        builder.words("on", _article(background), background, "background")
    else:  # "there is a red circle and a blue square"
        builder.words("there", "is")
        builder.noun_phrase(objects, order[0], rng)
        builder.words("and")
        builder.noun_phrase(objects, order[1], rng)
    return builder


def _list_all(builder, objects, order, rng):
    for position, index in enumerate(order):
        if position == len(order) - 1:
            builder.words("and")
        builder.noun_phrase(objects, index, rng)
        if position < len(order) - 2:
            builder.mark(",")


def _sentences(rng, scene, count):
    sentences = []
    seen = set()
    attempts = 0
    while len(sentences) < count:
        builder = _one_sentence(rng, scene)
        attempts += 1
        key = tuple(builder.tokens)
        if key in seen and attempts < 20 * count:
            continue
        seen.add(key)
        sentences.append(
            {
                "tokens": list(builder.tokens),
                "raw": builder.raw(),
                "phrases": builder.phrases,
                "relations": builder.relations,
                "pos": [POS_TAGS[word] for word in builder.tokens],
            }
        )
    return sentences


def caption_oracle(image_truth, samples=2000, seed=0):
    """What a perfect captioner would decode for one synthetic image, by MAP and by greedy search.

    The world's sentences for a scene come from a known distribution. This draws ``samples``
    sentences from it and returns its most frequent sentence (what exact MAP decoding, which beam
    search approximates, gives for a model that has learned the distribution perfectly) and the
    sentence built by taking, word after word, the most frequent next word after the words chosen so
    far (what greedy decoding gives for that model). Scoring both against the references tells
    whether the world rewards the most probable sentence at all, independently of any trained model.

    Args:
        image_truth: one entry of ``truth.json["images"]``; its ``objects`` (each ``box``, ``shape``,
            ``color``, ``size``) and ``background`` are read.
        samples: sentences to draw (at least 1).
        seed: integer seed of the draws.

    Returns:
        dict with "mode" and "greedy" (token lists) and "mode_frequency" (the mode's share of the
        draws).
    """
    if samples < 1:
        raise ValueError(f"samples must be >= 1; received {samples}")
    try:
        scene = {
            "background": image_truth["background"],
            "objects": [
                {"box": list(obj["box"]), "shape": obj["shape"], "color": obj["color"], "size": obj["size"]}
                for obj in image_truth["objects"]
            ],
        }
    except (KeyError, TypeError) as error:
        raise ValueError(
            "image_truth must be a truth.json image entry with a background and objects "
            f"(box, shape, color, size); missing or malformed: {error!r}"
        ) from error
    if not scene["objects"]:
        raise ValueError("image_truth has no objects; the synthetic world has 1 to 4 per image")
    if scene["background"] not in BACKGROUND_WORDS:
        raise ValueError(f"image_truth background must be one of {BACKGROUNDS}; received {scene['background']!r}")
    rng = np.random.default_rng([seed, 11])
    draws = [tuple(_one_sentence(rng, scene).tokens) for _ in range(samples)]
    # most_common breaks ties by first occurrence, so the result depends only on the seed.
    (mode, mode_count), = collections.Counter(draws).most_common(1)
    prefix, pool = (), draws
    while True:
        # None stands for END: the sentence stops after the prefix.
        next_counts = collections.Counter(draw[len(prefix)] if len(draw) > len(prefix) else None for draw in pool)
        (token, _), = next_counts.most_common(1)
        if token is None:
            break
        prefix += (token,)
        pool = [draw for draw in pool if draw[: len(prefix)] == prefix]
    return {"mode": list(mode), "greedy": list(prefix), "mode_frequency": mode_count / samples}


# ----------------------------------------------------------------------------------------------
# Rendering (per image, from its own random stream).


def _unit_polygon(shape):
    if shape == "triangle":
        points = [(0.5, 0.0), (1.0, 1.0), (0.0, 1.0)]
    elif shape == "diamond":
        points = [(0.5, 0.0), (1.0, 0.5), (0.5, 1.0), (0.0, 0.5)]
    elif shape == "cross":
        a, b = 0.33, 0.67
        points = [(a, 0), (b, 0), (b, a), (1, a), (1, b), (b, b), (b, 1), (a, 1), (a, b), (0, b), (0, a), (a, a)]
    elif shape == "star":
        angles = -np.pi / 2 + np.arange(10) * np.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
        xs, ys = radii * np.cos(angles), radii * np.sin(angles)
        xs = (xs - xs.min()) / (xs.max() - xs.min())
        ys = (ys - ys.min()) / (ys.max() - ys.min())
        points = list(zip(xs.tolist(), ys.tolist()))
    else:
        raise ValueError(f"No polygon for shape {shape!r}")
    return points


_UNIT_POLYGONS = {shape: _unit_polygon(shape) for shape in ("triangle", "diamond", "cross", "star")}


def _background(rng, kind, width, height):
    """float32 [height, width, 3] muted background of the given kind."""
    # Two greyish tones (low saturation, so no background reads as one of the object colours).
    base = rng.uniform(60, 200) + rng.uniform(-18, 18, size=3)
    other = np.clip(base.mean() + rng.choice([-1.0, 1.0]) * rng.uniform(25, 60), 40, 220) + rng.uniform(-18, 18, size=3)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    if kind == "gradient":
        angle = rng.uniform(0, 2 * np.pi)
        projection = xs * np.cos(angle) + ys * np.sin(angle)
        weight = (projection - projection.min()) / max(float(np.ptp(projection)), 1.0)
    elif kind == "stripes":
        angle = rng.uniform(0, np.pi)
        period = rng.uniform(8, 24)
        weight = 0.5 + 0.5 * np.sin(2 * np.pi * (xs * np.cos(angle) + ys * np.sin(angle)) / period)
    elif kind == "checker":
        cell = int(rng.integers(8, 24))
        weight = ((xs // cell + ys // cell) % 2).astype(np.float32)
        weight = 0.25 + 0.5 * weight
    elif kind == "blotches":
        coarse = rng.random((int(rng.integers(3, 7)), int(rng.integers(3, 7))), dtype=np.float32)
        weight = np.asarray(
            Image.fromarray((coarse * 255).astype(np.uint8)).resize((width, height), Image.BILINEAR), np.float32
        ) / 255.0
    elif kind == "speckles":
        weight = rng.random((height, width), dtype=np.float32) * 0.6
    else:
        raise ValueError(f"Unknown background {kind!r}")
    return base[None, None, :] * (1 - weight[..., None]) + other[None, None, :] * weight[..., None]


def _render(seed, index, scene, quality):
    """JPEG bytes of one scene."""
    rng = np.random.default_rng([seed, index, 1])
    width, height = scene["width"], scene["height"]
    pixels = _background(rng, scene["background"], width, height)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for obj in scene["objects"]:
        color = np.clip(np.asarray(COLOR_VALUES[obj["color"]]) + rng.integers(-18, 19, size=3), 0, 255)
        fill = tuple(int(value) for value in color)
        x0, y0, x1, y1 = obj["box"]
        if obj["shape"] == "circle":
            draw.ellipse([x0, y0, x1 - 1, y1 - 1], fill=fill)
        elif obj["shape"] == "square":
            draw.rectangle([x0, y0, x1 - 1, y1 - 1], fill=fill)
        else:
            side_x, side_y = x1 - 1 - x0, y1 - 1 - y0
            draw.polygon([(x0 + u * side_x, y0 + v * side_y) for u, v in _UNIT_POLYGONS[obj["shape"]]], fill=fill)
    noise = rng.standard_normal((height, width, 3), dtype=np.float32) * rng.uniform(4, 12)
    pixels = np.clip(np.asarray(image, np.float32) + noise, 0, 255).astype(np.uint8)
    stream = io.BytesIO()
    Image.fromarray(pixels).save(stream, format="JPEG", quality=quality)
    return stream.getvalue()


def _detector_boxes(seed, index, scene, max_boxes):
    """Detector-like boxes: jittered objects plus distractors, ordered by a noisy score."""
    rng = np.random.default_rng([seed, index, 2])
    width, height = scene["width"], scene["height"]

    def clip(box):
        x0, y0, x1, y1 = box
        x0, x1 = float(np.clip(min(x0, x1), 0, width - 2)), float(np.clip(max(x0, x1), 0, width))
        y0, y1 = float(np.clip(min(y0, y1), 0, height - 2)), float(np.clip(max(y0, y1), 0, height))
        x1, y1 = max(x1, x0 + 2), max(y1, y0 + 2)
        return [round(x0, 1), round(y0, 1), round(x1, 1), round(y1, 1)]

    boxes, scores = [], []
    objects = scene["objects"]
    for obj in objects:
        truth = obj["box"]
        side = np.array([truth[2] - truth[0], truth[3] - truth[1]] * 2, np.float64)
        accurate = rng.random() < 0.9
        candidate = truth
        for _ in range(20):
            jitter = rng.normal(0.0, 0.07 if accurate else 0.2, size=4) * side
            candidate = clip(np.asarray(truth, np.float64) + jitter)
            if not accurate or _box_iou(candidate, truth) > 0.65:
                break
        else:
            candidate = clip(truth)
        boxes.append(candidate)
        scores.append(float(np.clip(rng.normal(0.8, 0.12), 0, 1)))
    capacity = max_boxes - len(boxes)
    distractors = int(rng.integers(min(3, capacity), min(10, capacity) + 1)) if capacity > 0 else 0
    for _ in range(distractors):
        kind = rng.random()
        if kind < 0.25 and len(objects) >= 2:  # union of two objects
            first, second = (objects[int(i)]["box"] for i in rng.permutation(len(objects))[:2])
            union = [min(first[0], second[0]), min(first[1], second[1])] + [max(first[2], second[2]), max(first[3], second[3])]
            box = clip(np.asarray(union, np.float64) + rng.normal(0, 3, size=4))
        elif kind < 0.55 and objects:  # part of an object
            x0, y0, x1, y1 = objects[int(rng.integers(len(objects)))]["box"]
            cut = rng.uniform(0.35, 0.65)
            side = int(rng.integers(4))
            if side == 0:
                x1 = x0 + cut * (x1 - x0)
            elif side == 1:
                x0 = x1 - cut * (x1 - x0)
            elif side == 2:
                y1 = y0 + cut * (y1 - y0)
            else:
                y0 = y1 - cut * (y1 - y0)
            box = clip([x0, y0, x1, y1])
        else:  # a random crop of the background (sometimes most of the image)
            box_width = rng.uniform(0.15, 0.9) * width
            box_height = rng.uniform(0.15, 0.9) * height
            x0 = rng.uniform(0, width - box_width)
            y0 = rng.uniform(0, height - box_height)
            box = clip([x0, y0, x0 + box_width, y0 + box_height])
        boxes.append(box)
        scores.append(float(np.clip(rng.normal(0.45, 0.18), 0, 1)))
    order = np.argsort(-np.asarray(scores), kind="stable")
    return [boxes[int(i)] for i in order]


# ----------------------------------------------------------------------------------------------
# The world.


def _plan_world(seed, counts, heldout, twin_fraction, min_side, max_side, max_objects, heldout_share):
    """Scenes in file order: [(split, scene, sentence_seed_index, twin_offset)], twins adjacent."""
    rng = np.random.default_rng([seed, 0])
    plan = []
    for split in _SPLITS:
        count = counts[split]
        pairs = int(round(count * twin_fraction / 2)) if max_objects >= 2 else 0
        pairs = min(pairs, count // 2)
        units = ["twin"] * pairs + ["single"] * (count - 2 * pairs)
        units = [units[int(i)] for i in rng.permutation(len(units))]
        for unit in units:
            if unit == "single":
                scene = _plan_scene(rng, split, heldout, min_side, max_side, max_objects, heldout_share)
                plan.append({"split": split, "scene": scene, "sentence_index": len(plan), "twin": None})
                continue
            while True:
                scene = _plan_scene(rng, split, heldout, min_side, max_side, max_objects, heldout_share, min_objects=2)
                swapped = _swap_colors(rng, scene["objects"], heldout, split != "train")
                if swapped is not None:
                    break
            # Same layout and background kind (its tones and noise differ): only the binding changes.
            twin_scene = {**scene, "objects": swapped}
            first = len(plan)
            plan.append({"split": split, "scene": scene, "sentence_index": first, "twin": first + 1})
            plan.append({"split": split, "scene": twin_scene, "sentence_index": first, "twin": first})
    return plan


def _prepare_output(out_dir, overwrite):
    out_dir = os.path.abspath(os.fspath(out_dir))
    if os.path.exists(out_dir):
        if not os.path.isdir(out_dir):
            raise ValueError(f"out_dir {out_dir!r} exists and is not a folder")
        if os.listdir(out_dir) and not overwrite:
            raise ValueError(f"out_dir {out_dir!r} exists and is not empty; pass overwrite=True to replace it")
    return out_dir


def _install(temporary, out_dir, overwrite):
    """Moves the finished temporary folder to out_dir (replacing an old one only if allowed)."""
    if os.path.isdir(out_dir):
        if not os.listdir(out_dir):
            os.rmdir(out_dir)
        elif overwrite:
            trash = tempfile.mkdtemp(dir=os.path.dirname(out_dir), prefix=f".{os.path.basename(out_dir)}.old-")
            old = os.path.join(trash, "old")
            os.rename(out_dir, old)
            os.rename(temporary, out_dir)
            shutil.rmtree(trash, ignore_errors=True)
            return
        else:
            raise ValueError(f"out_dir {out_dir!r} became non-empty while generating; pass overwrite=True")
    os.rename(temporary, out_dir)


def _dump(value):
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False) + "\n"


def generate_world(
    out_dir,
    num_images=1000,
    seed=0,
    split_counts=None,
    split_fractions=(0.7, 0.1, 0.2),
    twin_fraction=0.4,
    heldout_combinations=None,
    num_heldout=3,
    heldout_share=0.3,
    sentences_per_image=5,
    min_side=120,
    max_side=240,
    max_objects=4,
    max_boxes=19,
    jpeg_quality=90,
    overwrite=False,
):
    """Writes the synthetic world to ``out_dir`` and returns a summary dict.

    Everything is built in a temporary folder next to ``out_dir`` and renamed into place, so a
    reader never sees a half-written world. The output is byte-for-byte the same for a seed.

    Args:
        out_dir: folder to create (must not exist or be empty, unless ``overwrite``).
        num_images: number of images; must equal the sum of ``split_counts`` when both are given
            (pass ``num_images=None`` to take it from ``split_counts``).
        seed: integer seed for everything.
        split_counts: optional explicit ``(train, val, test)`` counts or a dict by split name.
        split_fractions: ``(train, val, test)`` proportions used when ``split_counts`` is None.
        twin_fraction: share of each split's images that come in binding-swapped twin pairs.
        heldout_combinations: colour–shape pairs that never appear in train, as ``(color, shape)``
            tuples or ``{"color", "shape"}`` dicts; None picks ``num_heldout`` pairs from the seed.
        num_heldout: how many pairs to hold out when ``heldout_combinations`` is None.
        heldout_share: probability that a val/test scene is forced to contain a held-out pair.
        sentences_per_image: sentences per image (5 as in Flickr/COCO).
        min_side, max_side: image width and height range in pixels (images are never square).
        max_objects: at most this many objects per scene (1 to 4).
        max_boxes: at most this many detector boxes per image.
        jpeg_quality: JPEG quality of the images.
        overwrite: replace a non-empty ``out_dir``.

    Returns:
        dict with "out_dir", "images", "sentences", "splits" (images per split), "objects",
        "twin_pairs", "heldout_combinations" (list of {"color", "shape"}), "heldout_images"
        (val/test images containing a held-out pair), "boxes_per_image", "vocabulary_size"
        (distinct words), "seed" and "seconds".
    """
    started = time.perf_counter()
    if not 1 <= max_objects <= 4:
        raise ValueError(f"max_objects must be in [1, 4]; received {max_objects}")
    if max_boxes < max_objects:
        raise ValueError(f"max_boxes must be >= max_objects ({max_objects}); received {max_boxes}")
    if not 0 <= twin_fraction <= 1:
        raise ValueError(f"twin_fraction must be in [0, 1]; received {twin_fraction}")
    if not 0 <= heldout_share <= 1:
        raise ValueError(f"heldout_share must be in [0, 1]; received {heldout_share}")
    if sentences_per_image < 1:
        raise ValueError(f"sentences_per_image must be >= 1; received {sentences_per_image}")
    if not 48 <= min_side < max_side:
        raise ValueError(f"Need 48 <= min_side < max_side; received min_side={min_side}, max_side={max_side}")
    if not 1 <= jpeg_quality <= 100:
        raise ValueError(f"jpeg_quality must be in [1, 100]; received {jpeg_quality}")
    counts = _split_counts(num_images, split_counts, split_fractions)
    heldout = _normalize_heldout(heldout_combinations, seed, num_heldout)
    out_dir = _prepare_output(out_dir, overwrite)

    plan = _plan_world(seed, counts, heldout, twin_fraction, min_side, max_side, max_objects, heldout_share)
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    temporary = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(out_dir)}.tmp-")
    try:
        os.chmod(temporary, default_file_mode(directory=True))  # mkdtemp makes 0700; out_dir is shared
        os.makedirs(os.path.join(temporary, "images"))
        dataset_images, truth_images, boxes, twins = [], {}, {}, []
        words = set()
        heldout_images = {split: 0 for split in _SPLITS}
        sentence_id = 0
        for index, item in enumerate(plan):
            scene = item["scene"]
            filename = f"synth_{index:05d}.jpg"
            twin_filename = None if item["twin"] is None else f"synth_{item['twin']:05d}.jpg"
            if item["twin"] is not None and item["twin"] > index:
                twins.append([filename, twin_filename])
            sentences = _sentences(np.random.default_rng([seed, item["sentence_index"], 3]), scene, sentences_per_image)
            with open(os.path.join(temporary, "images", filename), "wb") as stream:
                stream.write(_render(seed, index, scene, jpeg_quality))
            boxes[filename] = _detector_boxes(seed, index, scene, max_boxes)
            if any((obj["color"], obj["shape"]) in heldout for obj in scene["objects"]):
                heldout_images[item["split"]] += 1
            sentence_ids = list(range(sentence_id, sentence_id + len(sentences)))
            sentence_id += len(sentences)
            dataset_images.append(
                {
                    "filename": filename,
                    "imgid": index,
                    "split": item["split"],
                    "sentids": sentence_ids,
                    "sentences": [
                        {"tokens": s["tokens"], "raw": s["raw"], "imgid": index, "sentid": sid}
                        for s, sid in zip(sentences, sentence_ids)
                    ],
                }
            )
            for sentence in sentences:
                words.update(sentence["tokens"])
            truth_images[filename] = {
                "width": scene["width"],
                "height": scene["height"],
                "background": scene["background"],
                "twin": twin_filename,
                "objects": [
                    {"box": obj["box"], "shape": obj["shape"], "color": obj["color"], "size": obj["size"]}
                    for obj in scene["objects"]
                ],
                "sentences": [
                    {"phrases": s["phrases"], "pos": s["pos"], "relations": s["relations"]} for s in sentences
                ],
            }
        heldout_list = [{"color": color, "shape": shape} for color, shape in heldout]
        truth = {
            "images": truth_images,
            "heldout_combinations": heldout_list,
            "twins": twins,
            "colors": list(COLORS),
            "shapes": list(SHAPES),
            "sizes": list(SIZES),
            "relations": list(RELATIONS),
            "seed": seed,
        }
        for name, value in (
            ("dataset.json", {"dataset": "synthetic", "images": dataset_images}),
            ("boxes.json", boxes),
            ("truth.json", truth),
        ):
            with open(os.path.join(temporary, name), "w", encoding="utf-8") as stream:
                stream.write(_dump(value))
        _install(temporary, out_dir, overwrite)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return {
        "out_dir": out_dir,
        "images": len(plan),
        "sentences": sentence_id,
        "splits": dict(counts),
        "objects": sum(len(item["scene"]["objects"]) for item in plan),
        "twin_pairs": len(twins),
        "heldout_combinations": heldout_list,
        "heldout_images": heldout_images,
        "boxes_per_image": round(sum(len(b) for b in boxes.values()) / max(len(boxes), 1), 2),
        "vocabulary_size": len(words),
        "seed": seed,
        "seconds": round(time.perf_counter() - started, 2),
    }
