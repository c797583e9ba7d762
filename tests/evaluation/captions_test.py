import logging

import numpy as np
import pytest

from vsa_tf.evaluation import captions

REFERENCES = {
    1: ["A red ball is left of a blue cube.", "a small red ball and a big blue cube", "A ball, red; a cube."],
    2: ["Two green triangles on a gray background", "two triangles that are green"],
    7: ["a yellow square", "A large yellow square above nothing."],
}
CANDIDATES = {1: "a red ball left of a blue cube", 2: "two green squares", 7: "A yellow square."}


def direct_pycocoevalcap(references, candidates):
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({k: [{"caption": c} for c in v] for k, v in references.items()})
    res = tokenizer.tokenize({k: [{"caption": c}] for k, c in candidates.items()})
    expected = dict(zip(["Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4"], Bleu(4).compute_score(gts, res)[0]))
    expected["METEOR"] = Meteor().compute_score(gts, res)[0]
    expected["ROUGE_L"] = Rouge().compute_score(gts, res)[0]
    expected["CIDEr"] = Cider().compute_score(gts, res)[0]
    return expected


@pytest.mark.slow  # starts Java several times (PTB tokenizer, METEOR): ~15 s quiet, ~60 s on a loaded machine
@pytest.mark.skipif(not captions.shutil.which("java"), reason="needs Java")
def test_caption_scores_equal_direct_pycocoevalcap_calls(caplog):
    captions.close_meteor()
    with caplog.at_level(logging.WARNING):
        scores = captions.caption_scores(REFERENCES, CANDIDATES, use_spice=True)
    expected = direct_pycocoevalcap(REFERENCES, CANDIDATES)
    if captions.spice_models_available():
        assert "SPICE" in scores
    else:
        assert "SPICE left out" in caplog.text and "SPICE" not in scores
    assert {key: scores[key] for key in captions.METRIC_NAMES} == expected
    assert 0.0 < scores["Bleu_1"] <= 1.0 and scores["CIDEr"] > 0.0
    # Later calls reuse the METEOR process and still equal fresh pycocoevalcap runs.
    meteor = captions._shared_meteor
    other_candidates = {1: "a blue cube and a ball", 2: "green triangles", 7: "a square above a yellow square"}
    assert captions.caption_scores(REFERENCES, other_candidates) == direct_pycocoevalcap(REFERENCES, other_candidates)
    assert captions.caption_scores(REFERENCES, CANDIDATES) == expected
    assert captions._shared_meteor is meteor
    captions.close_meteor()
    assert meteor[1].meteor_p.returncode is not None


class FakeTokenizer:
    """Stand-in for the Java PTB tokenizer: lowercase and strip the punctuation coco-caption drops."""

    def tokenize(self, captions_for_image):
        return {
            key: [" ".join(c["caption"].lower().replace(".", " ").replace(",", " ").replace(";", " ").split())
                  for c in value]
            for key, value in captions_for_image.items()
        }


class FakeMeteor:
    def compute_score(self, gts, res):
        return 0.25, [0.25] * len(gts)


def test_caption_scores_wiring_without_java(monkeypatch):
    import pycocoevalcap.meteor.meteor
    import pycocoevalcap.tokenizer.ptbtokenizer
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    monkeypatch.setattr(pycocoevalcap.tokenizer.ptbtokenizer, "PTBTokenizer", FakeTokenizer)
    monkeypatch.setattr(pycocoevalcap.meteor.meteor, "Meteor", FakeMeteor)
    monkeypatch.setattr(captions.shutil, "which", lambda name: "/usr/bin/java")
    scores = captions.caption_scores(REFERENCES, CANDIDATES)
    gts = FakeTokenizer().tokenize({k: [{"caption": c} for c in v] for k, v in REFERENCES.items()})
    res = FakeTokenizer().tokenize({k: [{"caption": c}] for k, c in CANDIDATES.items()})
    bleu = Bleu(4).compute_score(gts, res)[0]
    assert [scores[f"Bleu_{n}"] for n in range(1, 5)] == bleu
    assert scores["METEOR"] == 0.25
    assert scores["ROUGE_L"] == Rouge().compute_score(gts, res)[0]
    assert scores["CIDEr"] == Cider().compute_score(gts, res)[0]
    assert sorted(scores) == sorted(captions.METRIC_NAMES)


class CountingTokenizer(FakeTokenizer):
    calls = 0

    def tokenize(self, captions_for_image):
        CountingTokenizer.calls += 1
        return super().tokenize(captions_for_image)


class CountingMeteor(FakeMeteor):
    instances = []
    fail = False

    def __init__(self):
        CountingMeteor.instances.append(self)

    def compute_score(self, gts, res):
        if CountingMeteor.fail:
            raise BrokenPipeError("METEOR exited")
        return super().compute_score(gts, res)


def test_one_tokenizer_run_and_one_meteor_scorer_per_process(monkeypatch):
    import pycocoevalcap.meteor.meteor
    import pycocoevalcap.tokenizer.ptbtokenizer

    monkeypatch.setattr(pycocoevalcap.tokenizer.ptbtokenizer, "PTBTokenizer", CountingTokenizer)
    monkeypatch.setattr(pycocoevalcap.meteor.meteor, "Meteor", CountingMeteor)
    monkeypatch.setattr(captions.shutil, "which", lambda name: "/usr/bin/java")
    monkeypatch.setattr(CountingTokenizer, "calls", 0)
    monkeypatch.setattr(CountingMeteor, "instances", [])
    captions.close_meteor()
    first = captions.caption_scores(REFERENCES, CANDIDATES)
    second = captions.caption_scores(REFERENCES, {1: "a ball", 2: "two triangles", 7: "a square"})
    assert first["METEOR"] == second["METEOR"] == 0.25 and first["Bleu_1"] != second["Bleu_1"]
    assert CountingTokenizer.calls == 2 and len(CountingMeteor.instances) == 1
    # A failed METEOR exchange drops the scorer; the next call starts a new one.
    monkeypatch.setattr(CountingMeteor, "fail", True)
    with pytest.raises(BrokenPipeError, match="METEOR exited"):
        captions.caption_scores(REFERENCES, CANDIDATES)
    monkeypatch.setattr(CountingMeteor, "fail", False)
    assert captions.caption_scores(REFERENCES, CANDIDATES) == first
    assert len(CountingMeteor.instances) == 2
    captions.close_meteor()
    assert captions._shared_meteor is None


def test_tokenizer_losing_a_line_is_an_error(monkeypatch):
    import pycocoevalcap.tokenizer.ptbtokenizer

    class LineDroppingTokenizer(FakeTokenizer):
        def tokenize(self, captions_for_image):
            tokenized = super().tokenize(captions_for_image)
            tokenized.pop(("candidate", 7))
            return tokenized

    monkeypatch.setattr(pycocoevalcap.tokenizer.ptbtokenizer, "PTBTokenizer", LineDroppingTokenizer)
    monkeypatch.setattr(captions.shutil, "which", lambda name: "/usr/bin/java")
    with pytest.raises(ValueError, match="fewer lines than captions"):
        captions.caption_scores(REFERENCES, CANDIDATES)


def test_missing_java_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(captions.shutil, "which", lambda name: None)
    with pytest.raises(captions.JavaNotFoundError, match="Java was not found on PATH.*METEOR"):
        captions.caption_scores(REFERENCES, CANDIDATES)


def test_input_errors():
    with pytest.raises(ValueError, match=r"only in references: \['7'\]"):
        captions.caption_scores(REFERENCES, {1: "a", 2: "b"})
    with pytest.raises(ValueError, match=r"references\[1\] must be a non-empty list of strings"):
        captions.caption_scores({1: "a ball"}, {1: "a"})
    with pytest.raises(ValueError, match=r"candidates\[1\] must be one string"):
        captions.caption_scores({1: ["a ball"]}, {1: ["a"]})


def test_nearest_neighbour_on_toy_vectors():
    train = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    train_captions = [
        ["a dog runs", "a dog is running fast", "a brown dog runs"],
        ["a red ball"],
        ["a cat", "the cat"],
    ]
    queries = np.array([[9.0, 1.0], [1.0, 1.0], [0.0, 8.0]])
    assert captions.nearest_neighbour_indices(queries, train).tolist() == [1, 0, 2]
    # Consensus: "a dog runs" shares the most 1-2-grams with its siblings.
    assert captions.nearest_neighbour_captions(queries, train, train_captions) == ["a red ball", "a dog runs", "a cat"]
    first = captions.nearest_neighbour_captions(queries[1:2], train, train_captions, choose="first")
    assert first == ["a dog runs"]
    assert captions.consensus_caption(["x y", "a b c", "a b d"]) == "a b c"


def test_nearest_neighbour_errors():
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(1, 2\)"):
        captions.nearest_neighbour_indices(np.zeros([2, 3]), np.zeros([1, 2]))
    with pytest.raises(ValueError, match=r"one list per training image \(2\), received 1"):
        captions.nearest_neighbour_captions(np.zeros([1, 2]), np.zeros([2, 2]), [["a"]])
    with pytest.raises(ValueError, match="received 'best'"):
        captions.nearest_neighbour_captions(np.zeros([1, 2]), np.zeros([1, 2]), [["a"]], choose="best")


def test_verbatim_fraction_ignores_case_and_punctuation():
    training = [["A dog runs.", "a cat"], ["Two birds"]]
    assert captions.verbatim_fraction({1: "a dog runs", 2: "a dog walks", 3: "two BIRDS!", 4: "cat"}, training) == 0.5
    assert captions.verbatim_fraction(["a cat"], ["a cat", "b"]) == 1.0
    with pytest.raises(ValueError, match="No candidate captions"):
        captions.verbatim_fraction([], training)


def test_distinct_fraction_counts_captions_equal_after_tokenisation_once():
    assert captions.distinct_fraction({1: "A dog runs.", 2: "a dog runs", 3: "a cat", 4: "a dog  runs"}) == 0.5
    assert captions.distinct_fraction(["same"] * 4) == 0.25
    with pytest.raises(ValueError, match="No candidate captions"):
        captions.distinct_fraction([])
