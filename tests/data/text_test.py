import numpy as np
import tensorflow as tf

from vsa_tf.data import text


def test_tokenize_lowercases_and_splits_on_punctuation():
    words = text.tokenize(tf.constant(["A Red-circle, LEFT of the  square!", "Ein Café: Größe"]))
    assert [[word.decode() for word in row] for row in words.to_list()] == [
        ["a", "red", "circle", "left", "of", "the", "square"],
        ["ein", "café", "größe"],
    ]


# (raw caption, the `tokens` Karpathy's split JSON gives it): written for this test in the style of the
# Flickr8k captions (its dataset_flickr8k.json splits "tri-colored", "horse 's", "do n't", "at&t" so).
KARPATHY_TOKENS = [
    ("A black dog and a tri-colored dog playing .", ["a", "black", "dog", "and", "a", "tri", "colored", "dog", "playing"]),
    ("The dog's ball and a horse 's lead", ["the", "dog", "s", "ball", "and", "a", "horse", "s", "lead"]),
    ("They do n't walk; don't run", ["they", "do", "n", "t", "walk", "don", "t", "run"]),
    ("A man wearing an AT&T cap , number 23 and a 4x4 JEEP", ["a", "man", "wearing", "an", "at", "t", "cap", "number", "23", "and", "a", "4x4", "jeep"]),
    ('  Two   kids ( # 7 ) say " hi "!!  ', ["two", "kids", "7", "say", "hi"]),
    ("snow_covered hill/valley...end", ["snow", "covered", "hill", "valley", "end"]),
    ("---", []),
]


def tokenize_batch(texts, word_ids=None, words=None):
    """Token lists through `tokenize_to_ids` and its word table, as the readers tokenize."""
    word_ids, words = ({} if word_ids is None else word_ids), ([] if words is None else words)
    ids, lengths = text.tokenize_to_ids(texts, word_ids, words)
    ends = np.cumsum(lengths)
    return [[words[word] for word in ids[end - length : end]] for end, length in zip(ends, lengths)]


def test_python_in_graph_and_karpathy_tokens_agree():
    raws = [raw for raw, _ in KARPATHY_TOKENS]
    expected = [tokens for _, tokens in KARPATHY_TOKENS]
    assert [text.tokenize_python(raw) for raw in raws] == expected
    assert tokenize_batch(raws) == expected

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)], autograph=False)
    def in_graph(strings):  # as the exported encode_text / score / align signatures tokenize
        return text.tokenize(strings).to_tensor(default_value="")

    dense = in_graph(tf.constant(raws)).numpy().tolist()
    assert [[word.decode() for word in row if word] for row in dense] == expected
    # Re-tokenizing Karpathy's tokens (what the readers do with a split JSON) changes nothing.
    assert tokenize_batch([" ".join(tokens) for tokens in expected]) == expected


def test_tokenize_python_and_batch_agree():
    texts = ["Two dogs.", "", "  x  Y 3 "]
    assert tokenize_batch(texts) == [text.tokenize_python(one) for one in texts]
    assert tokenize_batch([]) == []


def test_tokenize_to_ids_shares_one_word_table_across_calls():
    word_ids, words = {}, []
    ids, lengths = text.tokenize_to_ids(["Two dogs.", "", "a DOG"], word_ids, words)
    assert words == ["two", "dogs", "a", "dog"]  # numbered in order of first appearance (tf.unique)
    assert [words[word] for word in ids] == ["two", "dogs", "a", "dog"]
    assert lengths.tolist() == [2, 0, 2]
    ids, lengths = text.tokenize_to_ids(["dogs and two cats"], word_ids, words)
    assert [words[word] for word in ids] == ["dogs", "and", "two", "cats"]
    assert len(words) == len(set(words)) == 6  # "dogs" and "two" kept their ids
    assert ids.dtype == np.int32 and lengths.dtype == np.int64


def test_vocabulary_counts_and_ids(tmp_path):
    sentences = [["a", "red", "circle"]] * 5 + [["a", "blue", "square"]] * 2 + [["rare"]]
    vocabulary = text.Vocabulary.build(sentences, min_count=2)
    assert vocabulary.words == ["a", "circle", "red", "blue", "square"]
    assert vocabulary.size == 9
    assert vocabulary.encode(["a", "square", "rare"]) == [4, 8, text.UNKNOWN_ID]
    path = str(tmp_path / "vocabulary.txt")
    vocabulary.save(path)
    assert text.Vocabulary.load(path).tokens == vocabulary.tokens
    assert text.Vocabulary.build(sentences, min_count=5).words == ["a", "circle", "red"]


def test_encode_sentences_with_id_table_and_lookup_layer():
    vocabulary = text.Vocabulary(["a", "red", "circle"])
    strings = tf.constant(["A red circle!", "a green circle a red"])
    for lookup in (vocabulary.id_table().lookup, vocabulary.lookup_layer()):
        ids, mask = text.encode_sentences(strings, lookup, max_words=4)
        np.testing.assert_array_equal(ids.numpy(), [[4, 5, 6, 0], [4, 1, 6, 4]])
        np.testing.assert_array_equal(mask.numpy(), [[True, True, True, False], [True] * 4])
