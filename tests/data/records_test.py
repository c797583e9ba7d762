import numpy as np
import pytest

from vsa_tf.data import records


def columns_of(token_lists, raws):
    """SentenceColumns of token lists (words numbered in order of first appearance)."""
    words = list(dict.fromkeys(word for tokens in token_lists for word in tokens))
    ids = np.array([words.index(word) for tokens in token_lists for word in tokens], np.int32)
    encoded = [raw.encode("utf-8") for raw in raws]
    return records.SentenceColumns(
        words,
        ids,
        np.concatenate([[0], np.cumsum([len(tokens) for tokens in token_lists])]),
        b"".join(encoded),
        np.concatenate([[0], np.cumsum([len(raw) for raw in encoded])]),
    )


TOKENS = [["a", "dog"], ["two", "cats", "a"], [], ["café", "dog"]]
RAWS = ["A dog.", "Two cats, a…", "", "Café dog"]


def test_columns_give_back_every_sentence():
    columns = columns_of(TOKENS, RAWS)
    assert len(columns) == 4
    assert [columns.sentence(index) for index in range(4)] == [records.Sentence(tokens, raw) for tokens, raw in zip(TOKENS, RAWS)]
    assert columns.tokens(0)[1] is columns.tokens(3)[1]  # one shared string per word
    assert columns.nbytes() == 7 * 4 + 5 * 8 + len("".join(RAWS).encode()) + 5 * 8


def test_columns_refuse_inconsistent_arrays():
    with pytest.raises(ValueError, match=r"last offsets \(3, 0\) must equal the lengths of token_ids and raw_bytes \(2, 0\)"):
        records.SentenceColumns(["a"], np.array([0, 0]), np.array([0, 3]), b"", np.array([0, 0]))
    with pytest.raises(ValueError, match="must index the 1 words, received ids up to 4"):
        records.SentenceColumns(["a"], np.array([4]), np.array([0, 1]), b"", np.array([0, 0]))
    with pytest.raises(ValueError, match=r"equal-length 1-D arrays .* shapes \(2,\) and \(3,\)"):
        records.SentenceColumns([], np.zeros([0]), np.array([0, 0]), b"", np.array([0, 0, 0]))


def test_view_reads_as_a_list():
    columns = columns_of(TOKENS, RAWS)
    view = records.SentenceView(columns, 1, 3)
    expected = [records.Sentence(tokens, raw) for tokens, raw in zip(TOKENS[1:], RAWS[1:])]
    assert len(view) == 3 and list(view) == expected and view == expected and view == tuple(expected)
    assert view[-1] == expected[-1] and view[1:] == expected[1:] and view[::-2] == expected[::-2]
    assert view != expected[:2] and view != expected[::-1] and (view == "text") is False
    assert not records.SentenceView(columns, 2, 0) and records.SentenceView(columns, 2, 0) == []
    with pytest.raises(IndexError, match="sentence index 3 out of range for 3 sentence"):
        view[3]
    assert repr(view) == repr(expected)
    record = records.ImageRecord("x.jpg", 1, "train", view)
    assert record == records.ImageRecord("x.jpg", 1, "train", expected)


def test_token_ids_of_views_and_word_counts_of_views_and_lists():
    columns = columns_of(TOKENS, RAWS)
    viewed = [records.ImageRecord("a", 0, "train", records.SentenceView(columns, 0, 2)), records.ImageRecord("b", 1, "train", records.SentenceView(columns, 2, 2))]
    listed = [records.ImageRecord(record.filename, record.image_id, "train", list(record.sentences)) for record in viewed]
    mixed = [viewed[1], listed[0]]  # out of column order, and one plain list

    def token_lists(result):
        words, token_ids, row_splits = result
        assert token_ids.dtype == np.int32 and row_splits.dtype == np.int64
        return [[words[word] for word in token_ids[start:end]] for start, end in zip(row_splits[:-1], row_splits[1:])]

    assert token_lists(records.sentence_token_ids(viewed)) == TOKENS
    assert token_lists(records.sentence_token_ids(viewed[::-1])) == TOKENS[2:] + TOKENS[:2]
    for other in (listed, mixed, []):  # no columns to read ids from
        with pytest.raises(ValueError, match="needs records whose sentences all view one SentenceColumns"):
            records.sentence_token_ids(other)
    expected = {"a": 2, "dog": 2, "two": 1, "cats": 1, "café": 1}
    assert records.word_counts(viewed) == records.word_counts(listed) == expected
    assert records.word_counts(viewed[1:]) == {"café": 1, "dog": 1}


def test_ranges():
    assert records._ranges([0, 10, 5], [2, 3, 0]).tolist() == [0, 1, 10, 11, 12]
    assert records._ranges([], []).tolist() == []


def test_gather_ranges_in_chunks(monkeypatch):
    values = np.arange(100, 120, dtype=np.int32)
    starts, lengths = np.array([5, 0, 18, 3]), np.array([3, 0, 2, 1])
    expected = [105, 106, 107, 118, 119, 103]
    assert records._gather_ranges(values, starts, lengths).tolist() == expected
    monkeypatch.setattr(records, "GATHER_CHUNK_ROWS", 1)
    gathered = records._gather_ranges(values, starts, lengths)
    assert gathered.tolist() == expected and gathered.dtype == np.int32


def test_word_counts_in_place_across_chunks_and_repeats(monkeypatch):
    columns = columns_of(TOKENS, RAWS)
    first = records.ImageRecord("a", 0, "train", records.SentenceView(columns, 0, 2))
    last = records.ImageRecord("b", 1, "train", records.SentenceView(columns, 3, 1))
    expected = {"a": 4, "dog": 3, "two": 2, "cats": 2, "café": 1}  # `first` counted twice, sentence 2 (empty) never
    assert records.word_counts([first, last, first]) == expected
    monkeypatch.setattr(records, "GATHER_CHUNK_ROWS", 1)
    assert records.word_counts([first, last, first]) == expected
    listed = [records.ImageRecord(record.filename, 0, "train", list(record.sentences)) for record in (first, last, first)]
    assert records.word_counts(listed) == expected


def test_a_view_copies_and_pickles_as_a_plain_list():
    import copy
    import pickle

    columns = columns_of(TOKENS, RAWS)
    record = records.ImageRecord("a.jpg", 0, "train", records.SentenceView(columns, 1, 2))
    expected = [records.Sentence(tokens, raw) for tokens, raw in zip(TOKENS[1:3], RAWS[1:3])]
    assert record.sentences.count(expected[0]) == 1 and record.sentences.index(expected[1]) == 1  # the list methods
    for copied in (copy.deepcopy(record), pickle.loads(pickle.dumps(record))):
        assert copied == record and type(copied.sentences) is list and copied.sentences == expected
    assert len(pickle.dumps(record)) < len(pickle.dumps(columns))  # not the whole dataset's columns
