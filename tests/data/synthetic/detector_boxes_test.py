import numpy as np

from vsa_tf.data.synthetic import detector_boxes


def _iou(first, second):
    x0, y0 = max(first[0], second[0]), max(first[1], second[1])
    x1, y1 = min(first[2], second[2]), min(first[3], second[3])
    intersection = max(0, x1 - x0) * max(0, y1 - y0)
    area = lambda box: (box[2] - box[0]) * (box[3] - box[1])  # noqa: E731
    return intersection / (area(first) + area(second) - intersection)


def test_boxes_are_detector_like(world):
    good, total, out_of_order = 0, 0, 0
    for filename, image_boxes in world.boxes.items():
        record = world.truth["images"][filename]
        assert len(record["objects"]) + 3 <= len(image_boxes) <= 19
        for x0, y0, x1, y1 in image_boxes:
            assert 0 <= x0 < x1 <= record["width"] and 0 <= y0 < y1 <= record["height"]
        best = []
        for obj in record["objects"]:
            ious = [_iou(obj["box"], box) for box in image_boxes]
            best.append(int(np.argmax(ious)))
            good += max(ious) > 0.6
            total += 1
        out_of_order += max(best) >= len(record["objects"])
    assert good >= 0.75 * total
    assert out_of_order > 0


def test_max_boxes_and_determinism():
    scene = {"width": 80, "height": 60,
             "objects": [{"box": [5, 5, 25, 25]}, {"box": [40, 20, 70, 50]}]}
    boxes = detector_boxes.detector_boxes(1, 2, scene, max_boxes=4)
    assert boxes == detector_boxes.detector_boxes(1, 2, scene, max_boxes=4)
    assert len(boxes) == 4  # two objects and min(3, capacity) = 2 distractors
    assert len(detector_boxes.detector_boxes(1, 2, scene, max_boxes=2)) == 2
