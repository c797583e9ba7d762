import json

import keras
import numpy as np
import pytest

from vsa_tf.evaluation import alignment

TRUTH = {
    "images": {
        "a.png": {
            "width": 100,
            "height": 100,
            "objects": [
                {"box": [0, 0, 40, 40], "shape": "ball", "color": "red", "size": "small"},
                {"box": [50, 50, 100, 100], "shape": "cube", "color": "blue", "size": "large"},
            ],
            # tokens: "a red ball left of a blue cube"
            "sentences": [{"phrases": [{"start": 0, "end": 3, "object": 0}, {"start": 5, "end": 8, "object": 1}]}],
        },
        "b.png": {"width": 100, "height": 100, "objects": [], "sentences": [{"phrases": []}]},
    }
}


def snippet(start, end, box, filename="a.png", sentence=0):
    return {"filename": filename, "sentence": sentence, "start": start, "end": end,
            "words": ["w"] * (end - start), "region": 1, "box": box}


def test_head_word_decides_phrase_and_words_counted():
    snippets = [
        snippet(0, 2, [0, 0, 100, 100]),  # "a red" -> whole image: IoU 0.16 with the ball, wrong
        snippet(2, 5, [2, 2, 40, 40]),  # "ball left of" -> IoU 0.9025 with the ball
        snippet(5, 8, [0, 0, 50, 50]),  # "a blue cube" -> wrong box for the cube (IoU 0)
    ]
    result = alignment.evaluate_alignment(snippets, TRUTH)
    assert result["num_phrases"] == 2 and result["num_phrases_correct"] == 1
    assert result["phrase_accuracy"] == 0.5
    assert result["num_words"] == 6 and result["num_words_correct"] == 1
    assert result["word_accuracy"] == pytest.approx(1 / 6)
    assert result["num_sentences"] == 1 and result["num_words_without_snippet"] == 0


def test_threshold_and_uncovered_words():
    snippets = [snippet(0, 3, [0, 0, 40, 80])]  # IoU 0.5 with the ball; the cube phrase is not covered
    result = alignment.evaluate_alignment(snippets, TRUTH["images"], iou_threshold=0.5)
    assert result["num_phrases_correct"] == 1 and result["num_words_correct"] == 3
    assert result["num_words_without_snippet"] == 3 and result["phrase_accuracy"] == 0.5
    assert alignment.evaluate_alignment(snippets, TRUTH, iou_threshold=0.6)["num_phrases_correct"] == 0


def test_box_iou_matches_keras_compute_iou():
    rng = np.random.default_rng(0)
    corners = rng.uniform(0, 50, size=(6, 2))
    boxes = np.concatenate([corners, corners + rng.uniform(1, 50, size=(6, 2))], axis=1)
    others = boxes[::-1] + 3.0
    expected = np.diag(keras.ops.convert_to_numpy(
        keras.utils.bounding_boxes.compute_iou(boxes, others, bounding_box_format="xyxy")
    ))
    np.testing.assert_allclose(alignment.box_iou(boxes, others), expected, rtol=1e-5, atol=1e-6)
    assert alignment.box_iou([[0, 0, 0, 0]], [[0, 0, 0, 0]]).tolist() == [0.0]


def test_errors():
    with pytest.raises(ValueError, match="'z.png' is not in the truth file"):
        alignment.evaluate_alignment([snippet(0, 1, [0, 0, 1, 1], filename="z.png")], TRUTH)
    with pytest.raises(ValueError, match="has 1 sentences in the truth file, received sentence 4"):
        alignment.evaluate_alignment([snippet(0, 1, [0, 0, 1, 1], sentence=4)], TRUTH)
    with pytest.raises(ValueError, match="empty list"):
        alignment.evaluate_alignment([], TRUTH)
    with pytest.raises(ValueError, match="no ground-truth phrases"):
        alignment.evaluate_alignment([snippet(0, 1, [0, 0, 1, 1], filename="b.png")], TRUTH)
    with pytest.raises(ValueError, match="received 1.5"):
        alignment.evaluate_alignment([snippet(0, 1, [0, 0, 1, 1])], TRUTH, iou_threshold=1.5)


def test_read_truth_validates(tmp_path):
    path = tmp_path / "truth.json"
    path.write_text(json.dumps(TRUTH))
    assert alignment.read_truth(path) == TRUTH["images"]
    broken = json.loads(json.dumps(TRUTH))
    broken["images"]["a.png"]["sentences"][0]["phrases"][0]["object"] = 7
    path.write_text(json.dumps(broken))
    with pytest.raises(ValueError, match=r"image 'a.png', sentence 0: phrase out of range \(2 objects\)"):
        alignment.read_truth(path)
    path.write_text("[]")
    with pytest.raises(ValueError, match="an `images` object"):
        alignment.read_truth(path)
    with pytest.raises(ValueError, match="not found"):
        alignment.read_truth(tmp_path / "missing.json")


# Real-format phrases: multi-word spans, no head index, a "phrase" text instead of shape/colour (Flickr8k's truth.json).
REAL_TRUTH = {
    "images": {
        "p.jpg": {
            "width": 100,
            "height": 100,
            "objects": [{"box": [0, 0, 40, 40], "phrase": "a black dog"}, {"box": [0, 0, 100, 100], "phrase": "the grass"}],
            # tokens: "a black dog runs on the grass"
            "sentences": [{"phrases": [{"start": 0, "end": 3, "object": 0}, {"start": 5, "end": 7, "object": 1}]},
                          {"phrases": [{"start": 1, "end": 2, "object": 0}]}],
        },
        "q.jpg": {
            "width": 100,
            "height": 100,
            "objects": [{"box": [60, 60, 100, 100], "phrase": "a man"}],
            "sentences": [{"phrases": [{"start": 2, "end": 4, "object": 0}]}],
        },
    }
}
# Regions of each image (row 0 the whole image); in q.jpg the larger box is second.
REGIONS = {
    "p.jpg": np.array([[0, 0, 100, 100], [2, 2, 40, 40], [50, 0, 100, 30]], "float32"),
    "q.jpg": np.array([[0, 0, 100, 100], [0, 0, 10, 10], [58, 58, 100, 100]], "float32"),
}


def test_head_is_the_last_token_and_all_words_accuracy():
    assert alignment.phrase_head({"start": 0, "end": 3, "object": 0}) == 2  # "a black dog" -> "dog"
    snippets = [
        snippet(0, 2, [0, 0, 100, 100], filename="p.jpg"),  # "a black" -> the whole image: wrong for the dog
        snippet(2, 5, [2, 2, 40, 40], filename="p.jpg"),  # "dog runs on" -> the dog's box
        snippet(5, 7, [0, 0, 100, 100], filename="p.jpg"),  # "the grass" -> the whole image: right
    ]
    result = alignment.evaluate_alignment(snippets, REAL_TRUTH)
    assert result["num_phrases"] == 2 and result["num_phrases_correct"] == 2 and result["phrase_accuracy"] == 1.0
    assert result["num_phrases_all_words_correct"] == 1 and result["phrase_accuracy_all_words"] == 0.5
    # The synthetic test case: the ball's head is right but "a red" is not; the cube is wrong.
    synthetic = alignment.evaluate_alignment(
        [snippet(0, 2, [0, 0, 100, 100]), snippet(2, 5, [2, 2, 40, 40]), snippet(5, 8, [0, 0, 50, 50])], TRUTH
    )
    assert synthetic["phrase_accuracy_all_words"] == 0.0 and synthetic["phrase_accuracy"] == 0.5


def test_phrases_within_keeps_the_phrases_inside_the_words_read():
    kept, left_out = alignment.phrases_within(REAL_TRUTH, {("p.jpg", 0): 6, ("q.jpg", 0): 4})
    assert left_out == 1  # "the grass" ends at token 7 > 6
    assert kept["p.jpg"]["sentences"][0]["phrases"] == [{"start": 0, "end": 3, "object": 0}]
    assert kept["p.jpg"]["sentences"][1]["phrases"] == []  # not evaluated
    assert kept["q.jpg"]["sentences"][0]["phrases"] == REAL_TRUTH["images"]["q.jpg"]["sentences"][0]["phrases"]
    assert REAL_TRUTH["images"]["p.jpg"]["sentences"][0]["phrases"][1]["end"] == 7  # the input is not changed
    with pytest.raises(ValueError, match="'z.jpg' is not in the truth file"):
        alignment.phrases_within(REAL_TRUTH, {("z.jpg", 0): 3})
    with pytest.raises(ValueError, match="has 1 sentences in the truth file, received sentence 2"):
        alignment.phrases_within(REAL_TRUTH, {("q.jpg", 2): 3})


def test_baselines_by_hand():
    sentences = [("p.jpg", 0), ("p.jpg", 1), ("q.jpg", 0)]
    answers, expected = alignment.baseline_phrase_boxes(REGIONS, REAL_TRUTH, sentences, seed=3)
    # Whole image: right only for "the grass" (1 of 4 phrases).
    assert answers["whole_image"][("p.jpg", 0)] == [[0, 0, 100, 100]] * 2
    assert alignment.evaluate_phrase_boxes(answers["whole_image"], REAL_TRUTH)["phrase_accuracy"] == 0.25
    # Largest box after the whole image, by area: in p.jpg [50, 0, 100, 30] (1500) beats [2, 2, 40, 40] (1444).
    assert answers["largest_box"][("p.jpg", 0)] == [[50, 0, 100, 30]] * 2
    assert answers["largest_box"][("q.jpg", 0)] == [[58, 58, 100, 100]]
    largest = alignment.evaluate_phrase_boxes(answers["largest_box"], REAL_TRUTH)
    assert largest["phrase_accuracy"] == 0.25 and largest["phrase_accuracy_all_words"] == 0.25  # only "a man"
    assert largest["num_phrases"] == 4 and largest["num_sentences"] == 3
    # Random: one draw per phrase, in order, from numpy's generator with the seed.
    draws = np.random.default_rng(3).integers(3, size=4)
    boxes = [REGIONS["p.jpg"][draws[0]], REGIONS["p.jpg"][draws[1]], REGIONS["p.jpg"][draws[2]], REGIONS["q.jpg"][draws[3]]]
    assert answers["random_box"][("p.jpg", 0)] == [boxes[0].tolist(), boxes[1].tolist()]
    assert answers["random_box"][("q.jpg", 0)] == [boxes[3].tolist()]
    again, _ = alignment.baseline_phrase_boxes(REGIONS, REAL_TRUTH, sentences, seed=3)
    assert again["random_box"] == answers["random_box"]
    # Right regions: dog 1 of 3, grass 1 of 3, dog 1 of 3, man 1 of 3 -> expected 1/3.
    assert expected == pytest.approx(1 / 3)
    oracle = alignment.evaluate_phrase_boxes(answers["best_box_oracle"], REAL_TRUTH)
    assert oracle["phrase_accuracy"] == 1.0
    no_boxes, _ = alignment.baseline_phrase_boxes({"q.jpg": REGIONS["q.jpg"][:1]}, REAL_TRUTH, [("q.jpg", 0)])
    assert no_boxes["largest_box"][("q.jpg", 0)] == [[0, 0, 100, 100]]  # no box: the whole image
    assert "most_confident_box" not in answers
    # A scored boxes file's first box (stored best first): region 1, the whole image without boxes.
    scored, _ = alignment.baseline_phrase_boxes(REGIONS, REAL_TRUTH, sentences, seed=3, first_box=True)
    assert scored["most_confident_box"][("p.jpg", 0)] == [REGIONS["p.jpg"][1].tolist()] * 2
    assert {name: scored[name] for name in answers} == answers
    no_boxes, _ = alignment.baseline_phrase_boxes({"q.jpg": REGIONS["q.jpg"][:1]}, REAL_TRUTH, [("q.jpg", 0)], first_box=True)
    assert no_boxes["most_confident_box"][("q.jpg", 0)] == [[0, 0, 100, 100]]


def test_evaluate_phrase_boxes_errors():
    with pytest.raises(ValueError, match=r"'q.jpg', sentence 0: 1 phrases but 2 boxes received"):
        alignment.evaluate_phrase_boxes({("q.jpg", 0): [[0, 0, 1, 1]] * 2}, REAL_TRUTH)
    with pytest.raises(ValueError, match="no ground-truth phrases"):
        alignment.evaluate_phrase_boxes({}, REAL_TRUTH)
    with pytest.raises(ValueError, match="received 2"):
        alignment.evaluate_phrase_boxes({("q.jpg", 0): [[0, 0, 1, 1]]}, REAL_TRUTH, iou_threshold=2)


def test_grounding_table():
    report = {"methods": {"mrf_beta=1": {"phrase_accuracy_head": 0.5, "phrase_accuracy_all_words": 0.25, "num_phrases": 4}}}
    assert alignment.grounding_table(report).splitlines()[2] == "| mrf_beta=1 | 50.0 % | 25.0 % | 4 |"
