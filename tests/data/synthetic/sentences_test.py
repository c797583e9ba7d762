import numpy as np

from vsa_tf.data import synthetic
from vsa_tf.data.synthetic import sentences

SCENE = {
    "width": 100,
    "height": 60,
    "background": "stripes",
    "objects": [
        {"box": [5, 10, 25, 30], "shape": "circle", "color": "red", "size": "small"},
        {"box": [60, 12, 80, 32], "shape": "square", "color": "blue", "size": "small"},
    ],
}


def _sentence_pairs(world):
    for image in world.dataset["images"]:
        record = world.truth["images"][image["filename"]]
        for sentence, truth_sentence in zip(image["sentences"], record["sentences"]):
            yield record, sentence["tokens"], truth_sentence


def test_scene_sentences_of_a_known_scene():
    drawn = sentences.scene_sentences(np.random.default_rng([0, 0, 3]), SCENE, 4)
    assert drawn == sentences.scene_sentences(np.random.default_rng([0, 0, 3]), SCENE, 4)
    assert len(drawn) == 4 and len({tuple(sentence["tokens"]) for sentence in drawn}) == 4
    for sentence in drawn:
        assert sentence["raw"][0].isupper() and sentence["raw"].endswith(".")
        assert sentence["pos"] == [synthetic.POS_TAGS[word] for word in sentence["tokens"]]
        assert {phrase["object"] for phrase in sentence["phrases"]} == {0, 1}
        for relation in sentence["relations"]:  # the circle is left of the square, never above it
            assert (relation["subject"], relation["relation"], relation["reference"]) in {
                (0, "left", 1), (1, "right", 0), (0, "next_to", 1), (1, "next_to", 0)
            }


def test_raw_text_tokenizes_to_tokens(world):
    from vsa_tf.data import text

    all_sentences = [sentence for image in world.dataset["images"] for sentence in image["sentences"]]
    tokenized = text.tokenize([sentence["raw"] for sentence in all_sentences]).to_list()
    assert [[word.decode() for word in words] for words in tokenized] == [s["tokens"] for s in all_sentences]


def test_phrase_spans_name_their_objects(world):
    phrases = 0
    for record, tokens, truth_sentence in _sentence_pairs(world):
        pos = truth_sentence["pos"]
        assert len(pos) == len(tokens)
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
    stated = 0
    relation_words = {"left": {"left"}, "right": {"right"}, "above": {"above", "over"},
                      "below": {"below", "under", "beneath"}, "next_to": {"next", "beside"}}
    for record, tokens, truth_sentence in _sentence_pairs(world):
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
            assert relation_words[kind] & set(tokens), (kind, tokens)
    assert stated > 0


def test_every_sentence_of_a_multi_object_scene_names_two_objects(world):
    # Humans describing a scene name its main objects; a one-object sentence for a scene of several
    # made "there is a red circle" the most probable caption of every scene.
    multi = 0
    for record, tokens, truth_sentence in _sentence_pairs(world):
        if len(record["objects"]) >= 2:
            multi += 1
            assert len({phrase["object"] for phrase in truth_sentence["phrases"]}) >= 2, tokens
    assert multi >= 25


def test_twin_sentences_differ_only_in_colour_words(world):
    images = {image["filename"]: image for image in world.dataset["images"]}
    color_words = {word for words in synthetic.COLOR_WORDS.values() for word in words}
    assert world.truth["twins"]
    for first, second in world.truth["twins"]:
        for sentence_a, sentence_b in zip(images[first]["sentences"], images[second]["sentences"]):
            assert len(sentence_a["tokens"]) == len(sentence_b["tokens"])
            for word_a, word_b in zip(sentence_a["tokens"], sentence_b["tokens"]):
                assert word_a == word_b or {word_a, word_b} <= color_words | {"a", "an"}
