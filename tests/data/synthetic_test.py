import collections
import json
import os
import types

import numpy as np
import pytest
from PIL import Image

from vsa_tf.data import synthetic

SPLIT_COUNTS = (8, 2, 2)


def _load(folder):
    with open(os.path.join(folder, "dataset.json"), encoding="utf-8") as stream:
        dataset = json.load(stream)
    with open(os.path.join(folder, "truth.json"), encoding="utf-8") as stream:
        truth = json.load(stream)
    with open(os.path.join(folder, "boxes.json"), encoding="utf-8") as stream:
        boxes = json.load(stream)
    return dataset, truth, boxes


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("synthetic") / "world")
    summary = synthetic.generate_world(folder, num_images=12, seed=3, split_counts=SPLIT_COUNTS, heldout_share=1.0)
    return folder, summary, *_load(folder)


def _iou(first, second):
    x0, y0 = max(first[0], second[0]), max(first[1], second[1])
    x1, y1 = min(first[2], second[2]), min(first[3], second[3])
    intersection = max(0, x1 - x0) * max(0, y1 - y0)
    area = lambda box: (box[2] - box[0]) * (box[3] - box[1])  # noqa: E731
    return intersection / (area(first) + area(second) - intersection)


def test_files_written_and_valid(world):
    folder, summary, dataset, truth, boxes = world
    images = dataset["images"]
    assert summary["images"] == len(images) == 12
    assert summary["splits"] == {"train": 8, "val": 2, "test": 2}
    assert collections.Counter(image["split"] for image in images) == {"train": 8, "val": 2, "test": 2}
    assert [image["imgid"] for image in images] == list(range(12))
    sentence_ids = [sentence["sentid"] for image in images for sentence in image["sentences"]]
    assert sentence_ids == list(range(60)) and summary["sentences"] == 60
    assert set(truth["images"]) == set(boxes) == {image["filename"] for image in images}
    for image in images:
        assert len(image["sentences"]) == 5
        assert len({tuple(sentence["tokens"]) for sentence in image["sentences"]}) >= 3
        record = truth["images"][image["filename"]]
        with Image.open(os.path.join(folder, "images", image["filename"])) as picture:
            picture.load()
            assert picture.format == "JPEG" and picture.mode == "RGB"
            assert picture.size == (record["width"], record["height"])
        assert record["width"] != record["height"]
        assert 120 <= record["width"] <= 240 and 120 <= record["height"] <= 240
        assert 1 <= len(record["objects"]) <= 4
        for sentence, truth_sentence in zip(image["sentences"], record["sentences"]):
            assert all(token == token.lower() and token.isalnum() for token in sentence["tokens"])
            assert len(truth_sentence["pos"]) == len(sentence["tokens"])
            assert set(truth_sentence["pos"]) <= {"DET", "ADJ", "NOUN", "ADP", "VERB", "CONJ", "ADV", "NUM", "PRON"}
    # No temporary folders are left next to the output.
    assert os.listdir(os.path.dirname(folder)) == ["world"]


def test_raw_text_tokenizes_to_tokens(world):
    from vsa_tf.data import text

    dataset = world[2]
    sentences = [sentence for image in dataset["images"] for sentence in image["sentences"]]
    tokenized = text.tokenize([sentence["raw"] for sentence in sentences]).to_list()
    assert [[word.decode() for word in words] for words in tokenized] == [s["tokens"] for s in sentences]


def test_deterministic_for_a_seed(world, tmp_path):
    folder = world[0]
    again = str(tmp_path / "again")
    synthetic.generate_world(again, num_images=12, seed=3, split_counts=SPLIT_COUNTS, heldout_share=1.0)
    for name in ("dataset.json", "truth.json", "boxes.json"):
        with open(os.path.join(folder, name), "rb") as first, open(os.path.join(again, name), "rb") as second:
            assert first.read() == second.read(), name
    for name in sorted(os.listdir(os.path.join(folder, "images"))):
        with open(os.path.join(folder, "images", name), "rb") as first:
            with open(os.path.join(again, "images", name), "rb") as second:
                assert first.read() == second.read(), name
    other = str(tmp_path / "other")
    synthetic.generate_world(other, num_images=12, seed=4, split_counts=SPLIT_COUNTS)
    assert _load(other)[0] != _load(folder)[0]


def test_phrase_spans_name_their_objects(world):
    _, _, dataset, truth, _ = world
    phrases = 0
    for image in dataset["images"]:
        record = truth["images"][image["filename"]]
        for sentence, truth_sentence in zip(image["sentences"], record["sentences"]):
            tokens, pos = sentence["tokens"], truth_sentence["pos"]
            for phrase in truth_sentence["phrases"]:
                phrases += 1
                obj = record["objects"][phrase["object"]]
                words = tokens[phrase["start"] : phrase["end"]]
                assert words[0] in ("a", "an", "the") and pos[phrase["start"]] == "DET"
                assert synthetic.attribute_of_word(words[-1]) == ("shape", obj["shape"])
                assert pos[phrase["end"] - 1] == "NOUN"
                for word in words[1:-1]:
                    if word in ("single", "lone"):
                        continue
                    kind, value = synthetic.attribute_of_word(word)
                    assert obj[kind] == value, (words, obj)
            # Every shape word of the sentence lies inside a phrase.
            covered = {i for phrase in truth_sentence["phrases"] for i in range(phrase["start"], phrase["end"])}
            for index, word in enumerate(tokens):
                if (synthetic.attribute_of_word(word) or ("",))[0] == "shape":
                    assert index in covered, tokens
    assert phrases >= 60


def test_relation_words_match_geometry(world):
    _, _, dataset, truth, _ = world
    stated = 0
    for image in dataset["images"]:
        record = truth["images"][image["filename"]]
        for sentence, truth_sentence in zip(image["sentences"], record["sentences"]):
            tokens = sentence["tokens"]
            has_relation_word = any(word in synthetic.RELATION_WORDS for word in tokens)
            assert has_relation_word == bool(truth_sentence["relations"]), tokens
            for relation in truth_sentence["relations"]:
                stated += 1
                subject = record["objects"][relation["subject"]]["box"]
                reference = record["objects"][relation["reference"]]["box"]
                kind = relation["relation"]
                assert synthetic.relation_holds(kind, subject, reference)
                # Independent check of the geometry.
                if kind == "left":
                    assert subject[2] <= reference[0]
                elif kind == "right":
                    assert reference[2] <= subject[0]
                elif kind == "above":
                    assert subject[3] <= reference[1]
                elif kind == "below":
                    assert reference[3] <= subject[1]
                else:
                    assert subject[2] <= reference[0] or reference[2] <= subject[0]
                words = {"left": {"left"}, "right": {"right"}, "above": {"above", "over"},
                         "below": {"below", "under", "beneath"}, "next_to": {"next", "beside"}}[kind]
                assert words & set(tokens), (kind, tokens)
    assert stated > 0


def test_twins_swap_bindings(world):
    _, summary, dataset, truth, _ = world
    assert truth["twins"] and summary["twin_pairs"] == len(truth["twins"])
    splits = {image["filename"]: image for image in dataset["images"]}
    color_words = {word for words in synthetic.COLOR_WORDS.values() for word in words}
    for first, second in truth["twins"]:
        a, b = truth["images"][first], truth["images"][second]
        assert a["twin"] == second and b["twin"] == first
        assert splits[first]["split"] == splits[second]["split"]
        assert [o["box"] for o in a["objects"]] == [o["box"] for o in b["objects"]]
        assert [(o["shape"], o["size"]) for o in a["objects"]] == [(o["shape"], o["size"]) for o in b["objects"]]
        assert sorted(o["color"] for o in a["objects"]) == sorted(o["color"] for o in b["objects"])
        assert [o["color"] for o in a["objects"]] != [o["color"] for o in b["objects"]]
        # Sentences differ only in colour words (and the article before them).
        for sa, sb in zip(splits[first]["sentences"], splits[second]["sentences"]):
            assert len(sa["tokens"]) == len(sb["tokens"])
            for wa, wb in zip(sa["tokens"], sb["tokens"]):
                assert wa == wb or {wa, wb} <= color_words | {"a", "an"}, (sa["tokens"], sb["tokens"])


def test_heldout_combinations_only_in_val_and_test(world):
    _, summary, dataset, truth, _ = world
    heldout = {(item["color"], item["shape"]) for item in truth["heldout_combinations"]}
    assert len(heldout) == 3 and summary["heldout_combinations"] == truth["heldout_combinations"]
    seen = collections.Counter()
    for image in dataset["images"]:
        objects = truth["images"][image["filename"]]["objects"]
        seen[image["split"]] += any((o["color"], o["shape"]) in heldout for o in objects)
    assert seen["train"] == 0
    assert seen["val"] + seen["test"] >= 2


def test_explicit_heldout_and_splits(tmp_path):
    summary = synthetic.generate_world(
        str(tmp_path / "w"),
        num_images=None,
        split_counts={"train": 6, "test": 3},
        heldout_combinations=[("red", "circle"), {"color": "blue", "shape": "star"}],
        twin_fraction=0.0,
        max_boxes=6,
    )
    dataset, truth, boxes = _load(str(tmp_path / "w"))
    assert summary["splits"] == {"train": 6, "val": 0, "test": 3}
    assert truth["heldout_combinations"] == [{"color": "red", "shape": "circle"}, {"color": "blue", "shape": "star"}]
    assert truth["twins"] == [] and all(record["twin"] is None for record in truth["images"].values())
    assert all(len(image_boxes) <= 6 for image_boxes in boxes.values())


def test_boxes_are_detector_like(world):
    _, _, dataset, truth, boxes = world
    good, total, out_of_order = 0, 0, 0
    for filename, image_boxes in boxes.items():
        record = truth["images"][filename]
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


def test_refuses_to_overwrite(tmp_path):
    folder = tmp_path / "world"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        synthetic.generate_world(str(folder), num_images=3, seed=0)
    assert os.listdir(folder) == ["keep.txt"]
    summary = synthetic.generate_world(str(folder), num_images=3, seed=0, overwrite=True)
    assert summary["images"] == 3
    assert sorted(os.listdir(folder)) == ["boxes.json", "dataset.json", "images", "truth.json"]
    assert sorted(os.listdir(tmp_path)) == ["world"]
    empty = tmp_path / "empty"
    empty.mkdir()
    synthetic.generate_world(str(empty), num_images=2, seed=0)
    assert len(os.listdir(empty / "images")) == 2


def test_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="add up to 5"):
        synthetic.generate_world(str(tmp_path / "a"), num_images=6, split_counts=(3, 1, 1))
    with pytest.raises(ValueError, match="'pink'"):
        synthetic.generate_world(str(tmp_path / "a"), num_images=6, heldout_combinations=[("pink", "circle")])
    with pytest.raises(ValueError, match="max_objects"):
        synthetic.generate_world(str(tmp_path / "a"), num_images=6, max_objects=7)
    assert not os.path.exists(tmp_path / "a")


def test_vocabulary_helpers():
    obj = {"shape": "circle", "color": "orange", "size": "small"}
    assert synthetic.phrase_for_object(obj) == ["small", "orange", "circle"]
    assert synthetic.phrase_for_object(obj, include_size=False, determiner="a") == ["an", "orange", "circle"]
    assert synthetic.phrase_for_object(obj, include_color=False, determiner="the") == ["the", "small", "circle"]
    with pytest.raises(ValueError, match="'hexagon'"):
        synthetic.phrase_for_object({**obj, "shape": "hexagon"})
    assert synthetic.attribute_of_word("violet") == ("color", "purple")
    assert synthetic.attribute_of_word("big") == ("size", "large")
    assert synthetic.attribute_of_word("above") is None
    assert set(synthetic.COLORS) == set(synthetic.COLOR_VALUES)
    assert {"left", "right", "above", "below"} <= set(synthetic.RELATIONS)
    assert synthetic.spatial_relation([0, 0, 10, 10], [20, 2, 30, 12]) == "left"
    assert synthetic.spatial_relation([20, 2, 30, 12], [0, 0, 10, 10]) == "right"
    assert synthetic.spatial_relation([0, 0, 10, 10], [2, 30, 12, 40]) == "above"
    assert synthetic.spatial_relation([0, 0, 10, 10], [12, 12, 22, 22]) is None


def test_every_sentence_of_a_multi_object_scene_names_two_objects(world):
    # Humans describing a scene name its main objects; a one-object sentence for a scene of several
    # made "there is a red circle" the most probable caption of every scene.
    _, _, dataset, truth, _ = world
    multi = 0
    for image in dataset["images"]:
        record = truth["images"][image["filename"]]
        if len(record["objects"]) < 2:
            continue
        multi += 1
        for sentence, truth_sentence in zip(image["sentences"], record["sentences"]):
            named = {phrase["object"] for phrase in truth_sentence["phrases"]}
            assert len(named) >= 2, sentence["tokens"]
    assert multi >= 5


def test_caption_oracle_on_world_images(world):
    _, _, dataset, truth, _ = world
    for image in dataset["images"]:
        record = truth["images"][image["filename"]]
        oracle = synthetic.caption_oracle(record, samples=300, seed=1)
        assert oracle == synthetic.caption_oracle(record, samples=300, seed=1)
        assert 0 < oracle["mode_frequency"] <= 1
        shapes = {obj["shape"] for obj in record["objects"]}
        for key in ("mode", "greedy"):
            named = [synthetic.attribute_of_word(word) for word in oracle[key]]
            named_shapes = [value for kind, value in filter(None, named) if kind == "shape"]
            assert named_shapes and set(named_shapes) <= shapes, (key, oracle[key], record["objects"])
            assert set(oracle[key]) <= set(synthetic.POS_TAGS), oracle[key]
            if len(record["objects"]) >= 2:
                assert len(named_shapes) >= 2, (key, oracle[key])


def test_caption_oracle_mode_and_greedy_differ_on_a_known_distribution(monkeypatch):
    # P("e") = 0.4, P("a b") = 0.35, P("a c") = 0.25: the mode is "e"; greedy takes "a" (0.6) then "b".
    def fake_sentence(rng, scene):
        draw = rng.random()
        return types.SimpleNamespace(tokens=["e"] if draw < 0.4 else ["a", "b"] if draw < 0.75 else ["a", "c"])

    monkeypatch.setattr(synthetic, "_one_sentence", fake_sentence)
    record = {"background": "stripes",
              "objects": [{"box": [0, 0, 10, 10], "shape": "circle", "color": "red", "size": "small"}]}
    oracle = synthetic.caption_oracle(record, samples=4000, seed=0)
    assert oracle["mode"] == ["e"] and oracle["greedy"] == ["a", "b"]
    assert abs(oracle["mode_frequency"] - 0.4) < 0.03


def test_caption_oracle_errors():
    record = {"background": "stripes",
              "objects": [{"box": [0, 0, 10, 10], "shape": "circle", "color": "red", "size": "small"}]}
    with pytest.raises(ValueError, match="samples must be >= 1; received 0"):
        synthetic.caption_oracle(record, samples=0)
    with pytest.raises(ValueError, match="missing or malformed: KeyError\\('background'\\)"):
        synthetic.caption_oracle({key: value for key, value in record.items() if key != "background"})
    with pytest.raises(ValueError, match="no objects"):
        synthetic.caption_oracle({**record, "objects": []})
    with pytest.raises(ValueError, match="received 'plaid'"):
        synthetic.caption_oracle({**record, "background": "plaid"})
