"""Planning scenes: image sizes, objects and their attributes, layouts, twins and spatial relations.

Planning is cheap and sequential, from one random stream (``[seed, 0]``), so the whole world's
layout is fixed by the seed before any image is rendered. A twin keeps a scene's layout, shapes and
sizes and exchanges the colours of two objects: only the attribute binding changes.

Spatial words are always true of the geometry: "A left of B" means A's box ends before B's begins
horizontally and the horizontal offset of the centres dominates the vertical one (likewise for
above/below; "next to" is said of side-by-side pairs).
"""

import numpy as np

from vsa_tf.data.synthetic.lexicon import BACKGROUNDS, COLORS, RELATIONS, SHAPES, SIZE_RANGES, SIZES, SPLITS


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


def split_sizes(num_images, split_counts, split_fractions):
    """Images per split, ``{"train": n, "val": n, "test": n}``, from explicit counts or fractions."""
    if split_counts is not None:
        if isinstance(split_counts, dict):
            unknown = sorted(set(split_counts) - set(SPLITS))
            if unknown:
                raise ValueError(f"split_counts keys must be among {SPLITS}; received {unknown}")
            counts = [int(split_counts.get(split, 0)) for split in SPLITS]
        else:
            counts = [int(count) for count in split_counts]
            if len(counts) != 3:
                raise ValueError(f"split_counts must give (train, val, test); received {split_counts!r}")
        if min(counts) < 0:
            raise ValueError(f"split_counts must be >= 0; received {split_counts!r}")
        if num_images is not None and sum(counts) != num_images:
            raise ValueError(f"split_counts {split_counts!r} add up to {sum(counts)}, not num_images={num_images}")
        return dict(zip(SPLITS, counts))
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


def heldout_pairs(heldout_combinations, seed, num_heldout):
    """The held-out ``(color, shape)`` pairs, first occurrence first: the given ones or seed-chosen ones."""
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
    """A twin: the same objects with the colours of two objects exchanged; None when no swap is allowed."""
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


def plan_world(seed, counts, heldout, twin_fraction, min_side, max_side, max_objects, heldout_share):
    """Scenes in file order, twins adjacent.

    Each item is a dict with "split", "scene" ("width", "height", "objects", "background"),
    "sentence_index" (the index of its sentence random stream, shared by twins) and "twin" (the
    index of its twin or None).
    """
    rng = np.random.default_rng([seed, 0])
    plan = []
    for split in SPLITS:
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
