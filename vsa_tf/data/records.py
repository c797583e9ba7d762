"""The one in-memory form of every dataset: CaptionDataset of ImageRecords of Sentences.

Datasets read from files keep their captions in `SentenceColumns` (flat numpy arrays of word ids and
UTF-8 text) and each record's `sentences` is a `SentenceView` over them: a `Sentence` object exists
only while someone looks at it. COCO's 616,000 captions then cost ~100 bytes each instead of ~450 as
Python objects (a list of words, a string, the Sentence). Records built in code (the synthetic world,
tests) may hold plain lists of `Sentence`; everything reading records accepts both.
"""

import collections
import collections.abc
import dataclasses
import typing

import numpy as np

SPLITS = ("train", "val", "test")


@dataclasses.dataclass(slots=True)
class Sentence:
    """One caption (slotted: a COCO-sized dataset holds 600,000 of them).

    Attributes:
        tokens: lowercased alphanumeric words (the paper's preprocessing).
        raw: the caption as written in the source file ("" when only tokens were given).
    """

    tokens: typing.List[str]
    raw: str = ""

    @property
    def text(self):
        """The tokens joined by single spaces."""
        return " ".join(self.tokens)


class SentenceColumns:
    """Every caption of a dataset as flat arrays: no Python object per caption or per word.

    Args:
        words: the dataset's distinct words (a list of str), indexed by word id.
        token_ids: int32 [T], every caption's word ids, one caption after another.
        token_starts: int64 [S + 1], caption s holds token_ids[token_starts[s]:token_starts[s + 1]].
        raw_bytes: bytes (or a bytearray, kept as is), every caption's raw text in UTF-8, one after another.
        raw_starts: int64 [S + 1], caption s's raw text is raw_bytes[raw_starts[s]:raw_starts[s + 1]].

    Example:
        >>> columns = SentenceColumns(["a", "dog"], np.array([0, 1], np.int32), np.array([0, 2]), b"A dog.", np.array([0, 6]))
        >>> columns.sentence(0)
        Sentence(tokens=['a', 'dog'], raw='A dog.')
    """

    __slots__ = ("words", "token_ids", "token_starts", "raw_bytes", "raw_starts")

    def __init__(self, words, token_ids, token_starts, raw_bytes, raw_starts):
        self.words = list(words)
        self.token_ids = np.asarray(token_ids, np.int32)
        self.token_starts = np.asarray(token_starts, np.int64)
        self.raw_bytes = raw_bytes if isinstance(raw_bytes, (bytes, bytearray)) else bytes(raw_bytes)  # the readers' buffer, not copied
        self.raw_starts = np.asarray(raw_starts, np.int64)
        if self.token_starts.ndim != 1 or self.token_starts.shape != self.raw_starts.shape or not len(self.token_starts):
            raise ValueError(
                f"token_starts and raw_starts must be equal-length 1-D arrays of S + 1 offsets, received shapes "
                f"{self.token_starts.shape} and {self.raw_starts.shape}"
            )
        if self.token_starts[-1] != len(self.token_ids) or self.raw_starts[-1] != len(self.raw_bytes):
            raise ValueError(
                f"the last offsets ({int(self.token_starts[-1])}, {int(self.raw_starts[-1])}) must equal the lengths of "
                f"token_ids and raw_bytes ({len(self.token_ids)}, {len(self.raw_bytes)})"
            )
        if len(self.token_ids) and not 0 <= int(self.token_ids.min()) <= int(self.token_ids.max()) < len(self.words):
            raise ValueError(f"token_ids must index the {len(self.words)} words, received ids up to {int(self.token_ids.max())}")

    def __len__(self):
        return len(self.token_starts) - 1

    def tokens(self, index):
        """Caption ``index``'s words (shared strings of `words`)."""
        words = self.words
        return [words[word] for word in self.token_ids[self.token_starts[index] : self.token_starts[index + 1]].tolist()]

    def raw(self, index):
        """Caption ``index``'s raw text."""
        return self.raw_bytes[self.raw_starts[index] : self.raw_starts[index + 1]].decode("utf-8")

    def sentence(self, index):
        """Caption ``index`` as a (new) `Sentence`."""
        return Sentence(tokens=self.tokens(index), raw=self.raw(index))

    def nbytes(self):
        """Bytes held by the arrays and the text (the word table not counted)."""
        return self.token_ids.nbytes + self.token_starts.nbytes + len(self.raw_bytes) + self.raw_starts.nbytes


class SentenceView(collections.abc.Sequence):
    """The captions ``first .. first + length - 1`` of a `SentenceColumns`, read as a list of `Sentence`.

    Items are made on access (a new `Sentence` each time; change a record's captions by assigning a
    list to its `sentences`). Compares equal to any list or tuple of the same sentences.
    """

    __slots__ = ("columns", "first", "length")  # not `count`: that is the Sequence method

    def __init__(self, columns, first, length):
        self.columns = columns
        self.first = first
        self.length = length

    def __len__(self):
        return self.length

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self.columns.sentence(self.first + position) for position in range(*index.indices(self.length))]
        position = index + self.length if index < 0 else index
        if not 0 <= position < self.length:
            raise IndexError(f"sentence index {index} out of range for {self.length} sentence(s)")
        return self.columns.sentence(self.first + position)

    def __iter__(self):
        for position in range(self.first, self.first + self.length):
            yield self.columns.sentence(position)

    def __reduce__(self):
        # Pickled and deep-copied as the plain list it reads as: a copy of one record must not carry
        # the whole dataset's columns.
        return (list, (list(self),))

    def __eq__(self, other):
        if isinstance(other, (SentenceView, list, tuple)):
            return len(self) == len(other) and all(left == right for left, right in zip(self, other))
        return NotImplemented

    __hash__ = None  # a sequence compared by value, as a list

    def __repr__(self):
        return repr(list(self))


@dataclasses.dataclass(slots=True)
class ImageRecord:
    """One image and its captions (slotted, as `Sentence`).

    Attributes:
        filename: path of the image relative to the dataset's image root (COCO: "val2014/x.jpg").
        image_id: integer id, unique within the dataset.
        split: "train", "val" or "test".
        sentences: the image's captions: a list of `Sentence`, or a `SentenceView` (datasets read from files).
    """

    filename: str
    image_id: int
    split: str
    sentences: typing.Sequence[Sentence] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class CaptionDataset:
    """A dataset of images with captions, whatever file format it came from.

    Attributes:
        records: every image, in file order.
        name: a short name for summaries ("flickr8k", "synthetic", ...).
    """

    records: typing.List[ImageRecord]
    name: str = "dataset"

    def split(self, split):
        """The records of one split, in file order."""
        if split not in SPLITS:
            raise ValueError(f"Unknown split {split!r}; expected one of {SPLITS}")
        return [record for record in self.records if record.split == split]

    def sentence_counts(self):
        """{split: (number of images, number of sentences)}."""
        counts = collections.OrderedDict((split, [0, 0]) for split in SPLITS)
        for record in self.records:
            counts.setdefault(record.split, [0, 0])
            counts[record.split][0] += 1
            counts[record.split][1] += len(record.sentences)
        return {split: tuple(value) for split, value in counts.items()}

    def by_filename(self):
        """{filename: record}."""
        return {record.filename: record for record in self.records}


def sentence_token_ids(records):
    """Every sentence of ``records``, in order, as word ids -> (words, token_ids int32 [T], row_splits int64 [S + 1]).

    For records viewing one `SentenceColumns` (`shared_columns`), gathered with numpy: no Python object
    per caption. Records holding plain lists have no word ids (`text.tokenize_to_ids` makes some).
    """
    shared = shared_columns(records)
    if shared is None:
        raise ValueError("sentence_token_ids needs records whose sentences all view one SentenceColumns (a dataset read from a file)")
    firsts = np.fromiter((record.sentences.first for record in records), np.int64, len(records))
    counts = np.fromiter((record.sentences.length for record in records), np.int64, len(records))
    sentences = _ranges(firsts, counts)  # [S] indices into the columns
    lengths = shared.token_starts[sentences + 1] - shared.token_starts[sentences]
    token_ids = _gather_ranges(shared.token_ids, shared.token_starts[sentences], lengths)
    return shared.words, token_ids, np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)


def shared_columns(records):
    """The `SentenceColumns` every record's sentences view, or None (a plain list, or several columns)."""
    shared = None
    for record in records:
        if not isinstance(record.sentences, SentenceView) or (shared is not None and record.sentences.columns is not shared):
            return None
        shared = record.sentences.columns
    return shared


def _ranges(starts, counts):
    """Concatenated ranges start .. start + count - 1, vectorised: ([0, 10], [2, 3]) -> [0, 1, 10, 11, 12]."""
    counts = np.asarray(counts, np.int64)
    total = int(counts.sum())
    if total == 0:
        return np.zeros([0], np.int64)
    ends = np.cumsum(counts)
    offsets = np.repeat(ends - counts, counts)  # where each range begins in the output
    return np.repeat(np.asarray(starts, np.int64), counts) + np.arange(total, dtype=np.int64) - offsets


GATHER_CHUNK_ROWS = 65536  # rows gathered per step by `_gather_ranges`: bounded int64 index temporaries


def _gather_ranges(values, starts, lengths):
    """values[start:start + length] for each row, concatenated (a chunk of rows at a time: the index
    arrays `_ranges` makes are 3 x 8 bytes a value, the result only values.itemsize)."""
    lengths = np.asarray(lengths, np.int64)
    result = np.empty(int(lengths.sum()), values.dtype)
    position = 0
    for first in range(0, len(lengths), GATHER_CHUNK_ROWS):
        chunk_lengths = lengths[first : first + GATHER_CHUNK_ROWS]
        size = int(chunk_lengths.sum())
        result[position : position + size] = values[_ranges(starts[first : first + GATHER_CHUNK_ROWS], chunk_lengths)]
        position += size
    return result


def word_counts(records):
    """{word: occurrences} over every sentence of ``records`` (for `Vocabulary.from_counts`).

    Records viewing one `SentenceColumns` are counted in place, a chunk of the columns' sentences at
    a time (no copy of their words); plain lists word by word.
    """
    shared = shared_columns(records)
    if shared is None:
        return dict(collections.Counter(word for record in records for sentence in record.sentences for word in sentence.tokens))
    selected = np.zeros(len(shared), np.int64)  # times each sentence of the columns is counted
    for record in records:
        selected[record.sentences.first : record.sentences.first + record.sentences.length] += 1
    counts = np.zeros(len(shared.words), np.int64)
    for first in range(0, len(shared), GATHER_CHUNK_ROWS):
        last = min(first + GATHER_CHUNK_ROWS, len(shared))
        starts = shared.token_starts[first : last + 1]
        tokens = shared.token_ids[starts[0] : starts[-1]]  # a view
        counts += np.bincount(tokens, weights=np.repeat(selected[first:last], np.diff(starts)), minlength=len(counts)).astype(np.int64)
    return {shared.words[index]: int(counts[index]) for index in np.flatnonzero(counts)}
