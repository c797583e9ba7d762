import json
import os
import types

import pytest

from vsa_tf.data import synthetic
from vsa_tf.data.synthetic import sentences as synthetic_sentences
from vsa_tf.evaluation import oracle

RECORD = {"background": "stripes",
          "objects": [{"box": [0, 0, 10, 10], "shape": "circle", "color": "red", "size": "small"}]}


def test_caption_oracle_on_world_images(tmp_path):
    synthetic.generate_world(str(tmp_path / "world"), num_images=None, split_counts=(6, 0, 0), seed=3,
                             min_side=48, max_side=64, max_objects=3, sentences_per_image=1)
    with open(os.path.join(tmp_path, "world", "truth.json"), encoding="utf-8") as stream:
        truth = json.load(stream)
    several = 0
    for record in truth["images"].values():
        decoded = oracle.caption_oracle(record, samples=300, seed=1)
        assert decoded == oracle.caption_oracle(record, samples=300, seed=1)
        assert 0 < decoded["mode_frequency"] <= 1
        shapes = {obj["shape"] for obj in record["objects"]}
        several += len(record["objects"]) >= 2
        for key in ("mode", "greedy"):
            named = [synthetic.attribute_of_word(word) for word in decoded[key]]
            named_shapes = [value for kind, value in filter(None, named) if kind == "shape"]
            assert named_shapes and set(named_shapes) <= shapes, (key, decoded[key], record["objects"])
            assert set(decoded[key]) <= set(synthetic.POS_TAGS), decoded[key]
            if len(record["objects"]) >= 2:
                assert len(named_shapes) >= 2, (key, decoded[key])
    assert several >= 2


def test_caption_oracle_mode_and_greedy_differ_on_a_known_distribution(monkeypatch):
    # P("e") = 0.4, P("a b") = 0.35, P("a c") = 0.25: the mode is "e"; greedy takes "a" (0.6) then "b".
    def fake_sentence(rng, scene):
        draw = rng.random()
        return types.SimpleNamespace(tokens=["e"] if draw < 0.4 else ["a", "b"] if draw < 0.75 else ["a", "c"])

    monkeypatch.setattr(synthetic_sentences, "one_sentence", fake_sentence)
    decoded = oracle.caption_oracle(RECORD, samples=4000, seed=0)
    assert decoded["mode"] == ["e"] and decoded["greedy"] == ["a", "b"]
    assert abs(decoded["mode_frequency"] - 0.4) < 0.03


def test_caption_oracle_errors():
    with pytest.raises(ValueError, match="samples must be >= 1; received 0"):
        oracle.caption_oracle(RECORD, samples=0)
    with pytest.raises(ValueError, match="missing or malformed: KeyError\\('background'\\)"):
        oracle.caption_oracle({key: value for key, value in RECORD.items() if key != "background"})
    with pytest.raises(ValueError, match="no objects"):
        oracle.caption_oracle({**RECORD, "objects": []})
    with pytest.raises(ValueError, match="received 'plaid'"):
        oracle.caption_oracle({**RECORD, "background": "plaid"})
