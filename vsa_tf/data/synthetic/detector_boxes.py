"""Detector-like boxes of a scene: a jittered box per object plus distractors, best first.

Distractors are random crops of the background, unions of two objects and parts of an object, so a
model has to learn which boxes hold a whole object. Each image draws from its own random stream
(``[seed, index, 2]``).
"""

import numpy as np


def _box_iou(first, second):
    x0, y0 = max(first[0], second[0]), max(first[1], second[1])
    x1, y1 = min(first[2], second[2]), min(first[3], second[3])
    intersection = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = (
        (first[2] - first[0]) * (first[3] - first[1]) + (second[2] - second[0]) * (second[3] - second[1]) - intersection
    )
    return intersection / union if union > 0 else 0.0


def detector_boxes(seed, index, scene, max_boxes):
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
            union = [min(first[0], second[0]), min(first[1], second[1]), max(first[2], second[2]),
                     max(first[3], second[3])]
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
