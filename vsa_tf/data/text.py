"""Text preprocessing and the vocabulary, shared by training, evaluation and the exported graphs.

Preprocessing: lowercase, then every run of non-alphanumeric characters separates words — the
tokenisation of the `tokens` in Karpathy's split JSON files ("tri-colored" -> "tri colored",
"horse's" -> "horse s", "at&t" -> "at t"), so raw text read here, at training time from a Flickr or
COCO file, and in the exported graphs gives the words the Karpathy-trained vocabulary holds.
It is written with core ``tf.strings`` ops only, so the same function runs in tf.data, in eager
code and inside SavedModels served by a stock ``tensorflow_model_server``.
"""

import collections
import os

import numpy as np
import tensorflow as tf

from vsa_tf.config import atomic_write_text

PAD_TOKEN = "<pad>"
UNKNOWN_TOKEN = "[UNK]"
START_TOKEN = "<start>"
END_TOKEN = "<end>"
RESERVED_TOKENS = (PAD_TOKEN, UNKNOWN_TOKEN, START_TOKEN, END_TOKEN)
PAD_ID, UNKNOWN_ID, START_ID, END_ID = 0, 1, 2, 3

# Word characters: letters and digits of any script; any other run of characters separates words
# (Karpathy's `tokens` in dataset_flickr8k.json agree with this on all 35,000 of its captions).
_SEPARATOR_PATTERN = r"[^\p{L}\p{N}]+"


def normalize_text(strings):
    """Lowercases (UTF-8 aware) and turns each run of non-alphanumerics into one space; tf.string in and out."""
    strings = tf.convert_to_tensor(strings, dtype=tf.string)
    strings = tf.strings.lower(strings, encoding="utf-8")
    return tf.strings.regex_replace(strings, _SEPARATOR_PATTERN, " ")


def tokenize(strings):
    """tf.string [...] -> tf.RaggedTensor of words [..., (words)]."""
    return tf.strings.split(normalize_text(strings))


def tokenize_python(text):
    """Python version of `tokenize` for one string, used by readers (same result, no graph)."""
    return [word.decode("utf-8") for word in tokenize(tf.constant([text]))[0].numpy().tolist()]


class Vocabulary:
    """Words of the train split with count >= min_count plus the reserved tokens.

    Ids: 0 padding, 1 unknown, 2 START, 3 END, then words by decreasing count (ties alphabetical).
    Saved as a plain text file, one token per line, line number = id.

    Args:
        words: the non-reserved words, in id order (id = 4 + position).
    """

    def __init__(self, words):
        words = list(words)
        clashes = sorted(set(words) & set(RESERVED_TOKENS))
        if clashes:
            raise ValueError(f"Vocabulary words may not include reserved tokens; received {clashes}")
        if len(set(words)) != len(words):
            duplicates = [word for word, count in collections.Counter(words).items() if count > 1]
            raise ValueError(f"Vocabulary words must be unique; duplicated: {duplicates[:10]}")
        self.words = words
        self.tokens = list(RESERVED_TOKENS) + words
        self._index = {token: index for index, token in enumerate(self.tokens)}

    def __len__(self):
        return len(self.tokens)

    @property
    def size(self):
        """Number of ids including the reserved tokens."""
        return len(self.tokens)

    @classmethod
    def build(cls, token_lists, min_count=5):
        """Builds from an iterable of token lists (use the train split only)."""
        return cls.from_counts(collections.Counter(word for tokens in token_lists for word in tokens), min_count)

    @classmethod
    def from_counts(cls, counts, min_count=5):
        """Builds from {word: occurrences} (`records.word_counts` of the train split): most frequent first, ties by word."""
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, received {min_count}")
        kept = [word for word, count in counts.items() if count >= min_count and word not in RESERVED_TOKENS]
        kept.sort(key=lambda word: (-counts[word], word))
        return cls(kept)

    def save(self, path):
        atomic_write_text(path, "\n".join(self.tokens) + "\n")

    @classmethod
    def load(cls, path):
        if not os.path.exists(path):
            raise ValueError(f"Vocabulary file not found: {path}")
        with open(path, encoding="utf-8") as stream:
            tokens = stream.read().split("\n")
        if tokens and tokens[-1] == "":
            tokens = tokens[:-1]
        if tuple(tokens[: len(RESERVED_TOKENS)]) != RESERVED_TOKENS:
            raise ValueError(
                f"Vocabulary file {path} must start with the reserved tokens {list(RESERVED_TOKENS)}, "
                f"found {tokens[: len(RESERVED_TOKENS)]}"
            )
        return cls(tokens[len(RESERVED_TOKENS):])

    def id(self, token):
        return self._index.get(token, UNKNOWN_ID)

    def encode(self, tokens):
        """List of words -> list of ids (unknown words -> 1)."""
        return [self._index.get(token, UNKNOWN_ID) for token in tokens]

    def decode(self, ids, stop_at_end=True):
        """List of ids -> list of words, dropping padding/START and stopping at END."""
        words = []
        for index in ids:
            index = int(index)
            if index == END_ID and stop_at_end:
                break
            if index in (PAD_ID, START_ID, END_ID):
                continue
            words.append(self.tokens[index] if 0 <= index < len(self.tokens) else UNKNOWN_TOKEN)
        return words

    def lookup_layer(self):
        """A `keras.layers.StringLookup` mapping words to these ids (padding "" -> 0, OOV -> 1)."""
        import keras

        return keras.layers.StringLookup(
            vocabulary=[START_TOKEN, END_TOKEN] + self.words,
            mask_token="",
            oov_token=UNKNOWN_TOKEN,
            num_oov_indices=1,
        )

    def id_table(self):
        """A `tf.lookup.StaticHashTable` word -> id, usable inside SavedModels with core ops."""
        keys = tf.constant(self.tokens[1:])
        values = tf.range(1, len(self.tokens), dtype=tf.int64)
        return tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(keys, values), UNKNOWN_ID)

    def tokens_array(self):
        """np.ndarray of tokens (object dtype) indexed by id, for decoding in numpy or tf.gather."""
        return np.array(self.tokens, dtype=object)


def encode_sentences(strings, lookup, max_words):
    """Raw strings [B] -> (ids int32 [B, max_words], mask bool [B, max_words]); longer ones truncated.

    ``lookup`` maps a tf.string tensor of words to int ids (a StringLookup layer or a
    StaticHashTable's ``lookup``).
    """
    words = tokenize(strings)[:, :max_words]
    dense = words.to_tensor(default_value="", shape=[None, max_words])
    ids = tf.cast(lookup(dense), tf.int32)
    mask = tf.not_equal(dense, "")
    ids = tf.where(mask, ids, tf.zeros_like(ids))
    return ids, mask


def tokenize_to_ids(texts, word_ids, words):
    """Python list of strings -> (word ids int32 [T], tokens per text int64 [len(texts)]), one `tokenize` call.

    ``word_ids`` ({UTF-8 bytes: id}) and ``words`` (list of str, by id) are the dataset's word table,
    shared across calls and extended with new words: the readers' columnar captions
    (`records.SentenceColumns`). Only the distinct words of the call are decoded (`tf.unique`).
    """
    if not texts:
        return np.zeros([0], np.int32), np.zeros([0], np.int64)
    ragged = tokenize(tf.constant(list(texts), dtype=tf.string))
    distinct, positions = tf.unique(ragged.flat_values)
    table = np.empty(int(tf.size(distinct)), np.int32)
    for index, word in enumerate(distinct.numpy()):
        found = word_ids.get(word)
        if found is None:
            found = word_ids[word] = len(words)
            words.append(word.decode("utf-8"))
        table[index] = found
    return table[positions.numpy()], ragged.row_lengths().numpy().astype(np.int64)
