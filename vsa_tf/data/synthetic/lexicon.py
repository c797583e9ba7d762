"""The synthetic world's vocabulary: shapes, colours, sizes, relations, their words and POS tags.

Every attribute value has a canonical word (its own name) and sometimes synonyms ("violet" for
purple, "disk" for circle); `attribute_of_word` maps any of them back, and `phrase_for_object`
gives the canonical words naming one object of truth.json.
"""

SHAPES = ("circle", "square", "triangle", "star", "cross", "diamond")
COLORS = ("red", "green", "blue", "yellow", "purple", "orange")
SIZES = ("small", "large")
# Relation names; "left" means "the subject is to the left of the reference object".
RELATIONS = ("left", "right", "above", "below", "next_to")
SPLITS = ("train", "val", "test")

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
# Probability that a noun phrase says a synonym instead of an attribute's canonical word.
SYNONYM_PROBABILITY = 0.15

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


def attribute_of_word(word):
    """The attribute a word names: ``("color", "purple")`` for "violet", ``None`` for other words."""
    return _WORD_ATTRIBUTES.get(word)


def indefinite_article(next_word):
    """The indefinite article before ``next_word``: "an" before a vowel, "a" otherwise."""
    return "an" if next_word[0] in "aeiou" else "a"


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
        words = [indefinite_article(words[0]) if determiner == "a" else "the"] + words
    return words
