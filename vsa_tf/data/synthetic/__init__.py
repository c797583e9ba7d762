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
  colour–shape combinations and the binding-swapped twin pairs;
- ``world_config.json``: the `SyntheticWorldConfig` it was generated with.

Why the world is built this way (Karpathy & Fei-Fei 2015, Sec. 3.1; Kiros et al. 2014, Sec. 4):
attribute binding matters — about 40 % of the images come in twin pairs with the same layout,
shapes and sizes but colours exchanged between objects, so their sentences differ only in which
colour goes with which shape, which a bag-of-words sentence model cannot see; and a few colour–shape
combinations never appear in train, so compositional generalisation can be measured on val/test.

Modules: `lexicon` (attribute values, their words and POS tags), `scenes` (splits, held-out pairs,
layouts, twins, spatial relations), `sentences`, `render` (numpy + PIL only, no TensorFlow, so
generation is fast and the output is the same bytes for a given seed), `detector_boxes` and `world`
(`SyntheticWorldConfig`, `generate_world`). The oracle decoding of the world's sentence
distribution lives in `vsa_tf.evaluation.oracle`.
"""

from vsa_tf.data.synthetic.lexicon import (
    BACKGROUND_WORDS,
    BACKGROUNDS,
    COLOR_VALUES,
    COLOR_WORDS,
    COLORS,
    INVERSE_RELATIONS,
    NUMBER_WORDS,
    POS_TAGS,
    RELATION_PHRASES,
    RELATION_PHRASES_TRAILING,
    RELATION_WORDS,
    RELATIONS,
    SHAPE_WORDS,
    SHAPES,
    SIZE_RANGES,
    SIZE_WORDS,
    SIZES,
    attribute_of_word,
    phrase_for_object,
)
from vsa_tf.data.synthetic.scenes import relation_holds, spatial_relation
from vsa_tf.data.synthetic.world import CONFIG_FILENAME, SyntheticWorldConfig, generate_world

__all__ = [
    "BACKGROUNDS",
    "BACKGROUND_WORDS",
    "COLORS",
    "COLOR_VALUES",
    "COLOR_WORDS",
    "CONFIG_FILENAME",
    "INVERSE_RELATIONS",
    "NUMBER_WORDS",
    "POS_TAGS",
    "RELATIONS",
    "RELATION_PHRASES",
    "RELATION_PHRASES_TRAILING",
    "RELATION_WORDS",
    "SHAPES",
    "SHAPE_WORDS",
    "SIZES",
    "SIZE_RANGES",
    "SIZE_WORDS",
    "SyntheticWorldConfig",
    "attribute_of_word",
    "generate_world",
    "phrase_for_object",
    "relation_holds",
    "spatial_relation",
]
