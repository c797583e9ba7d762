"""Writing the synthetic world: its settings (`SyntheticWorldConfig`) and `generate_world`.

Everything is built in a temporary folder next to the output and renamed into place, so a reader
never sees a half-written world; the settings are written beside it as ``world_config.json``.
"""

import dataclasses
import json
import os
import shutil
import tempfile
import time
import typing

import numpy as np

from vsa_tf.config import ConfigMixin, save_config
from vsa_tf.data.synthetic import detector_boxes, render, scenes, sentences
from vsa_tf.data.synthetic.lexicon import COLORS, RELATIONS, SHAPES, SIZES, SPLITS
from vsa_tf.files import default_file_mode

CONFIG_FILENAME = "world_config.json"


@dataclasses.dataclass
class SyntheticWorldConfig(ConfigMixin):
    """Every generation setting of the synthetic world; the same settings give the same bytes.

    Attributes:
        num_images: number of images; must equal the sum of ``split_counts`` when both are given
            (None takes it from ``split_counts``).
        seed: integer seed for everything.
        split_counts: optional explicit ``(train, val, test)`` counts or a dict by split name.
        split_fractions: ``(train, val, test)`` proportions used when ``split_counts`` is None.
        twin_fraction: share of each split's images that come in binding-swapped twin pairs.
        heldout_combinations: colour–shape pairs that never appear in train, as ``(color, shape)``
            pairs or ``{"color", "shape"}`` dicts (kept as pairs, first occurrence first); None
            picks ``num_heldout`` pairs from the seed.
        num_heldout: how many pairs to hold out when ``heldout_combinations`` is None.
        heldout_share: probability that a val/test scene is forced to contain a held-out pair.
        sentences_per_image: sentences per image (5 as in Flickr/COCO).
        min_side: smallest image width and height in pixels (at least 48).
        max_side: largest image width and height in pixels (images are never square).
        max_objects: at most this many objects per scene (1 to 4).
        max_boxes: at most this many detector boxes per image (at least ``max_objects``).
        jpeg_quality: JPEG quality of the images (1 to 100).
    """

    num_images: typing.Optional[int] = 1000
    seed: int = 0
    split_counts: typing.Optional[typing.Union[typing.Tuple[int, int, int], typing.Dict[str, int]]] = None
    split_fractions: typing.Tuple[float, float, float] = (0.7, 0.1, 0.2)
    twin_fraction: float = 0.4
    heldout_combinations: typing.Optional[typing.Tuple[typing.Tuple[str, str], ...]] = None
    num_heldout: int = 3
    heldout_share: float = 0.3
    sentences_per_image: int = 5
    min_side: int = 120
    max_side: int = 240
    max_objects: int = 4
    max_boxes: int = 19
    jpeg_quality: int = 90

    def __post_init__(self):
        name = type(self).__name__
        if not 1 <= self.max_objects <= 4:
            raise ValueError(f"{name}.max_objects must be in [1, 4]; received {self.max_objects!r}")
        if self.max_boxes < self.max_objects:
            raise ValueError(
                f"{name}.max_boxes must be >= max_objects ({self.max_objects}); received {self.max_boxes!r}"
            )
        for field in ("twin_fraction", "heldout_share"):
            if not 0 <= getattr(self, field) <= 1:
                raise ValueError(f"{name}.{field} must be in [0, 1]; received {getattr(self, field)!r}")
        if self.sentences_per_image < 1:
            raise ValueError(f"{name}.sentences_per_image must be >= 1; received {self.sentences_per_image!r}")
        if not 48 <= self.min_side < self.max_side:
            raise ValueError(
                f"{name} needs 48 <= min_side < max_side; received min_side={self.min_side!r}, "
                f"max_side={self.max_side!r}"
            )
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"{name}.jpeg_quality must be in [1, 100]; received {self.jpeg_quality!r}")
        if self.split_counts is not None and not isinstance(self.split_counts, (dict, list, tuple)):
            raise ValueError(
                f"{name}.split_counts must be (train, val, test) counts, a dict by split or None; "
                f"received {self.split_counts!r}"
            )
        self.images_per_split()  # validates the counts, fractions and num_images together
        # Tuples, not the lists JSON gives back, so a config equals itself after a round trip.
        if isinstance(self.split_counts, (list, tuple)):
            self.split_counts = tuple(int(count) for count in self.split_counts)
        self.split_fractions = tuple(self.split_fractions)
        if self.heldout_combinations is not None:
            self.heldout_combinations = tuple(self.heldout_pairs())
        else:
            self.heldout_pairs()  # validates num_heldout

    def images_per_split(self):
        """``{"train": n, "val": n, "test": n}``."""
        return scenes.split_sizes(self.num_images, self.split_counts, self.split_fractions)

    def heldout_pairs(self):
        """The held-out ``(color, shape)`` pairs."""
        return scenes.heldout_pairs(self.heldout_combinations, self.seed, self.num_heldout)


def _world_config(config, overrides):
    """`config` (or the defaults) with the `overrides` given to `generate_world` applied."""
    if config is None:
        config = SyntheticWorldConfig()
    elif not isinstance(config, SyntheticWorldConfig):
        raise ValueError(f"config must be a SyntheticWorldConfig or None; received {type(config).__name__}: {config!r}")
    known = sorted(field.name for field in dataclasses.fields(SyntheticWorldConfig))
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise ValueError(f"generate_world: unknown setting(s) {unknown}; SyntheticWorldConfig fields are {known}")
    return config.replace(**overrides) if overrides else config


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


def _image_filename(index):
    return f"synth_{index:05d}.jpg"


def _dataset_entry(filename, index, split, image_sentences, first_sentence_id):
    """One image of dataset.json (Karpathy split format)."""
    sentence_ids = list(range(first_sentence_id, first_sentence_id + len(image_sentences)))
    return {
        "filename": filename,
        "imgid": index,
        "split": split,
        "sentids": sentence_ids,
        "sentences": [
            {"tokens": sentence["tokens"], "raw": sentence["raw"], "imgid": index, "sentid": sentence_id}
            for sentence, sentence_id in zip(image_sentences, sentence_ids)
        ],
    }


def _truth_entry(scene, twin_filename, image_sentences):
    """One image of truth.json: its size, background, twin, objects and per-sentence truth."""
    return {
        "width": scene["width"],
        "height": scene["height"],
        "background": scene["background"],
        "twin": twin_filename,
        "objects": [
            {"box": obj["box"], "shape": obj["shape"], "color": obj["color"], "size": obj["size"]}
            for obj in scene["objects"]
        ],
        "sentences": [
            {"phrases": sentence["phrases"], "pos": sentence["pos"], "relations": sentence["relations"]}
            for sentence in image_sentences
        ],
    }


def _write_world(folder, plan, config, heldout):
    """Writes images/, dataset.json, boxes.json, truth.json and world_config.json into `folder`.

    Returns:
        dict with "sentences" (count), "twins", "heldout_combinations", "heldout_images" (per
        split), "boxes_per_image" and "vocabulary_size".
    """
    os.makedirs(os.path.join(folder, "images"))
    dataset_images, truth_images, boxes, twins = [], {}, {}, []
    words = set()
    heldout_images = {split: 0 for split in SPLITS}
    sentence_id = 0
    for index, item in enumerate(plan):
        scene = item["scene"]
        filename = _image_filename(index)
        twin_filename = None if item["twin"] is None else _image_filename(item["twin"])
        if item["twin"] is not None and item["twin"] > index:
            twins.append([filename, twin_filename])
        sentence_rng = np.random.default_rng([config.seed, item["sentence_index"], 3])
        image_sentences = sentences.scene_sentences(sentence_rng, scene, config.sentences_per_image)
        with open(os.path.join(folder, "images", filename), "wb") as stream:
            stream.write(render.render_scene(config.seed, index, scene, config.jpeg_quality))
        boxes[filename] = detector_boxes.detector_boxes(config.seed, index, scene, config.max_boxes)
        if any((obj["color"], obj["shape"]) in heldout for obj in scene["objects"]):
            heldout_images[item["split"]] += 1
        dataset_images.append(_dataset_entry(filename, index, item["split"], image_sentences, sentence_id))
        truth_images[filename] = _truth_entry(scene, twin_filename, image_sentences)
        sentence_id += len(image_sentences)
        words.update(word for sentence in image_sentences for word in sentence["tokens"])
    truth = {
        "images": truth_images,
        "heldout_combinations": [{"color": color, "shape": shape} for color, shape in heldout],
        "twins": twins,
        "colors": list(COLORS),
        "shapes": list(SHAPES),
        "sizes": list(SIZES),
        "relations": list(RELATIONS),
        "seed": config.seed,
    }
    for name, value in (
        ("dataset.json", {"dataset": "synthetic", "images": dataset_images}),
        ("boxes.json", boxes),
        ("truth.json", truth),
    ):
        with open(os.path.join(folder, name), "w", encoding="utf-8") as stream:
            stream.write(_dump(value))
    save_config(config, os.path.join(folder, CONFIG_FILENAME))
    return {
        "sentences": sentence_id,
        "twins": twins,
        "heldout_combinations": truth["heldout_combinations"],
        "heldout_images": heldout_images,
        "boxes_per_image": round(sum(len(image_boxes) for image_boxes in boxes.values()) / max(len(boxes), 1), 2),
        "vocabulary_size": len(words),
    }


def generate_world(out_dir, config=None, overwrite=False, **overrides):
    """Writes the synthetic world to ``out_dir`` and returns a summary dict.

    Everything is built in a temporary folder next to ``out_dir`` and renamed into place, so a
    reader never sees a half-written world. The output is byte-for-byte the same for a config.

    Args:
        out_dir: folder to create (must not exist or be empty, unless ``overwrite``).
        config: a `SyntheticWorldConfig`; None takes the defaults.
        overwrite: replace a non-empty ``out_dir``.
        **overrides: `SyntheticWorldConfig` fields that replace the config's values, e.g.
            ``generate_world(out_dir, num_images=None, split_counts=(8, 2, 3), seed=0)``.

    Returns:
        dict with "out_dir", "images", "sentences", "splits" (images per split), "objects",
        "twin_pairs", "heldout_combinations" (list of {"color", "shape"}), "heldout_images"
        (val/test images containing a held-out pair), "boxes_per_image", "vocabulary_size"
        (distinct words), "seed" and "seconds".

    Raises:
        ValueError: for an unknown override, a bad setting, or an ``out_dir`` that is a file or
            not empty (without ``overwrite``).
    """
    started = time.perf_counter()
    config = _world_config(config, overrides)
    counts = config.images_per_split()
    heldout = config.heldout_pairs()
    out_dir = _prepare_output(out_dir, overwrite)
    plan = scenes.plan_world(
        config.seed,
        counts,
        heldout,
        config.twin_fraction,
        config.min_side,
        config.max_side,
        config.max_objects,
        config.heldout_share,
    )
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    temporary = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(out_dir)}.tmp-")
    try:
        os.chmod(temporary, default_file_mode(directory=True))  # mkdtemp makes 0700; out_dir is shared
        written = _write_world(temporary, plan, config, heldout)
        _install(temporary, out_dir, overwrite)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return {
        "out_dir": out_dir,
        "images": len(plan),
        "sentences": written["sentences"],
        "splits": dict(counts),
        "objects": sum(len(item["scene"]["objects"]) for item in plan),
        "twin_pairs": len(written["twins"]),
        "heldout_combinations": written["heldout_combinations"],
        "heldout_images": written["heldout_images"],
        "boxes_per_image": written["boxes_per_image"],
        "vocabulary_size": written["vocabulary_size"],
        "seed": config.seed,
        "seconds": round(time.perf_counter() - started, 2),
    }
