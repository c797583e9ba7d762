import json
import os

import pytest

from vsa_tf.data import readers

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures")


def fixture(*parts):
    return os.path.join(FIXTURES, *parts)


def write_json(path, data):
    with open(path, "w", encoding="utf-8") as stream:
        json.dump(data, stream)
    return str(path)


def test_karpathy_json_quirks():
    dataset = readers.read_karpathy_json(fixture("karpathy_small.json"))
    assert dataset.name == "tiny"
    assert [record.filename for record in dataset.records] == [
        "a.jpg", "b.png", "val2014/COCO_val2014_000000000042.jpg", "d.jpg"
    ]
    assert [record.split for record in dataset.records] == ["train", "train", "val", "test"]
    assert [record.image_id for record in dataset.records] == [0, 1, 2, 3]
    first = dataset.records[0].sentences[0]
    assert first.tokens == ["a", "red", "circle", "left", "of", "a", "square"]
    assert first.raw == "A red circle, left of a square."
    # Raw-only sentences are tokenised: lowercase (unicode aware), punctuation dropped.
    assert dataset.records[1].sentences[0].tokens == ["ein", "café", "größe", "farbe"]
    assert dataset.records[1].sentences[1].tokens == ["a", "blue", "square"]
    # Given tokens go through the same preprocessing.
    assert dataset.records[2].sentences[0].tokens == ["a", "dog", "running"]
    assert dataset.records[3].sentences[0].raw == ""
    assert dataset.sentence_counts() == {"train": (2, 4), "val": (1, 1), "test": (1, 1)}


def test_karpathy_restval_kept_when_asked():
    dataset = readers.read_karpathy_json(fixture("karpathy_small.json"), restval_to_train=False)
    assert dataset.records[1].split == "restval"
    assert dataset.sentence_counts()["restval"] == (1, 2)


def test_karpathy_unknown_split_names_file_and_image(tmp_path):
    path = write_json(tmp_path / "d.json", {"images": [{"filename": "x.jpg", "split": "dev", "sentences": []}]})
    with pytest.raises(ValueError, match=r"d\.json: images\[0\] \(x\.jpg\): unknown split 'dev'"):
        readers.read_karpathy_json(path)


def test_karpathy_missing_field(tmp_path):
    path = write_json(tmp_path / "d.json", {"images": [{"split": "train", "sentences": []}]})
    with pytest.raises(ValueError, match=r"d\.json: images\[0\] is missing the field 'filename'"):
        readers.read_karpathy_json(path)
    path = write_json(tmp_path / "e.json", {"images": [{"filename": "x.jpg", "split": "train", "sentences": [{}]}]})
    with pytest.raises(ValueError, match=r"e\.json: images\[0\]\.sentences\[0\] \(x\.jpg\) needs 'tokens' or 'raw'"):
        readers.read_karpathy_json(path)


def test_malformed_json_names_file():
    with pytest.raises(ValueError, match=r"malformed\.json: malformed JSON"):
        readers.read_dataset(fixture("malformed.json"))


def test_missing_file():
    with pytest.raises(ValueError, match="nowhere.json: dataset file not found"):
        readers.read_dataset(fixture("nowhere.json"))


def test_flickr_tokens_with_split_files_found_next_to_it():
    dataset = readers.read_flickr_tokens(fixture("flickr8k", "Flickr8k.token.txt"))
    assert dataset.name == "flickr8k"
    names = [record.filename for record in dataset.records]
    # The image listed in no split file is left out.
    assert names == [
        "1000268201_693b08cb0e.jpg", "1001773457_577c3a7d70.jpg", "1002674143_1b742ab4b8.jpg",
        "1003163366_44323f5815.jpg",
    ]
    assert [record.split for record in dataset.records] == ["train", "train", "val", "test"]
    # Captions ordered by their #k number, whatever the line order.
    rainbow = dataset.records[2].sentences
    assert rainbow[0].raw.startswith("A little girl covered in paint")
    assert rainbow[1].tokens == "a little girl is sitting in front of a large painted rainbow".split()
    assert dataset.records[0].sentences[0].tokens[-3:] == ["an", "entry", "way"]
    assert len({record.image_id for record in dataset.records}) == 4


def test_flickr_tokens_explicit_split_files(tmp_path):
    train = tmp_path / "train.txt"
    train.write_text("1003163366_44323f5815.jpg\n")
    dataset = readers.read_dataset(fixture("flickr8k", "Flickr8k.token.txt"), split_files={"train": str(train)})
    assert [record.filename for record in dataset.records] == ["1003163366_44323f5815.jpg"]


def test_flickr_bad_line_and_missing_split_files(tmp_path):
    path = tmp_path / "Flickr8k.token.txt"
    path.write_text("a.jpg#0\tA dog\nb.jpg A cat\n")
    with pytest.raises(ValueError, match=r"Flickr8k\.token\.txt:2: expected 'name\.jpg#k<TAB>caption'"):
        readers.read_flickr_tokens(str(path))
    path.write_text("a.jpg#0\tA dog\n")
    with pytest.raises(ValueError, match="split files not found next to the token file.*--split-files TRAIN VAL TEST"):
        readers.read_flickr_tokens(str(path))
    split = tmp_path / "test.txt"
    split.write_text("zzz.jpg\n")
    with pytest.raises(ValueError, match=r"test\.txt: image 'zzz\.jpg' has no captions"):
        readers.read_flickr_tokens(str(path), split_files={"test": str(split)})


def test_coco_captions_split_from_file_name():
    dataset = readers.read_dataset(fixture("coco", "captions_val2014.json"))
    assert dataset.name == "coco"
    assert [(record.filename, record.image_id, record.split) for record in dataset.records] == [
        ("COCO_val2014_000000000042.jpg", 42, "val"),
        ("COCO_val2014_000000000073.jpg", 73, "val"),
    ]
    assert [sentence.tokens for sentence in dataset.records[0].sentences] == [
        ["a", "dog", "runs", "across", "the", "grass"],
        ["a", "brown", "dog", "running"],
    ]


def test_coco_captions_filepath_and_given_split():
    dataset = readers.read_coco_captions(fixture("coco", "captions_val2014.json"), split="test", filepath="val2014")
    assert dataset.records[0].filename == "val2014/COCO_val2014_000000000042.jpg"
    assert {record.split for record in dataset.records} == {"test"}


def test_coco_errors(tmp_path):
    data = {"images": [{"id": 1, "file_name": "x.jpg"}], "annotations": [{"image_id": 2, "caption": "a"}]}
    path = write_json(tmp_path / "captions_train2014.json", data)
    with pytest.raises(ValueError, match=r"annotations\[0\]: image_id 2 names no entry of 'images'"):
        readers.read_dataset(path)
    path = write_json(tmp_path / "mine.json", data)
    with pytest.raises(ValueError, match="mine.json: cannot tell the split .* give it with --split-of-file"):
        readers.read_coco_captions(path)


def test_unknown_format(tmp_path):
    path = write_json(tmp_path / "x.json", {"hello": 1})
    with pytest.raises(ValueError, match=r"x\.json: unknown dataset format \(top level \['hello'\]\)"):
        readers.read_dataset(path)


def test_read_dataset_split_options(tmp_path):
    coco = fixture("coco", "captions_val2014.json")
    assert {record.split for record in readers.read_dataset(coco, split_of_file="test").records} == {"test"}
    with pytest.raises(ValueError, match="--split-files\\) apply to a Flickr token file"):
        readers.read_dataset(coco, split_files={"train": "x.txt"})
    with pytest.raises(ValueError, match="--split-of-file applies to a COCO captions JSON only"):
        readers.read_dataset(fixture("karpathy_small.json"), split_of_file="val")
    assert readers.split_files_argument(["t.txt", "-", "s.txt"]) == {"train": "t.txt", "test": "s.txt"}
    assert readers.split_files_argument(None) is None


def test_write_karpathy_json_round_trips(tmp_path):
    dataset = readers.read_dataset(fixture("coco", "captions_val2014.json"), split_of_file="test")
    path = readers.write_karpathy_json(dataset, str(tmp_path / "dataset.json"))
    again = readers.read_dataset(path)
    assert again.records == dataset.records and again.name == "coco"


def test_stream_json_object_yields_elements_before_reading_the_rest(tmp_path):
    path = tmp_path / "d.json"
    path.write_bytes(b'{"dataset": "x", "images": [{"a": 1}, [2, 3], 4], "more": {"b": [5]}} trailing')
    stream = readers.stream_json_object(str(path), "test file", arrays=("images",))
    assert next(stream) == ("dataset", None, "x")
    assert next(stream) == ("images", 0, {"a": 1})  # one element at a time, not the whole list
    assert next(stream) == ("images", 1, [2, 3])
    assert next(stream) == ("images", 2, 4)
    assert next(stream) == ("more", None, {"b": [5]})
    with pytest.raises(ValueError, match=r"d\.json: malformed JSON \(parse error: trailing garbage\)"):
        next(stream)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"[1, 2]", "must hold a JSON object at the top level, found an array"),
        (b"", r"malformed JSON \("),
        (b'"text"', "must hold a JSON object at the top level, found a single value"),
        (b'{"images": [{"filename": "a.jpg"', r"malformed JSON \("),
        (b'{"images": NaN}', r"malformed JSON \("),
        (b'{"images": ["\xff"]}', r"malformed JSON \("),
    ],
)
def test_stream_json_object_errors_name_the_file(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"bad\.json: (test file )?" + message):
        list(readers.stream_json_object(str(path), "test file", arrays=("images",)))


def test_records_are_compact_and_share_their_words():
    dataset = readers.read_karpathy_json(fixture("karpathy_small.json"))
    first, second = dataset.records[0].sentences[0], dataset.records[0].sentences[1]
    shared = set(first.tokens) & set(second.tokens)
    assert shared, (first.tokens, second.tokens)
    for word in shared:  # one string object per word across the dataset
        assert first.tokens[first.tokens.index(word)] is second.tokens[second.tokens.index(word)]
    assert not hasattr(first, "__dict__") and not hasattr(dataset.records[0], "__dict__")


def test_coco_annotations_may_come_before_images(tmp_path):
    data = {
        "annotations": [{"image_id": 7, "caption": "A Dog."}, {"image_id": 3, "caption": "two cats"}, {"image_id": 7, "caption": "a pup"}],
        "images": [{"id": 3, "file_name": "c.jpg"}, {"id": 7, "file_name": "d.jpg"}, {"id": 9, "file_name": "e.jpg"}],
    }
    dataset = readers.read_dataset(write_json(tmp_path / "captions_val2014.json", data))
    assert dataset.name == "coco"
    assert [(record.filename, record.image_id, record.split) for record in dataset.records] == [
        ("c.jpg", 3, "val"), ("d.jpg", 7, "val"), ("e.jpg", 9, "val")
    ]
    assert [[sentence.tokens for sentence in record.sentences] for record in dataset.records] == [
        [["two", "cats"]], [["a", "dog"], ["a", "pup"]], []
    ]
    assert dataset.records[1].sentences[0].raw == "A Dog."


def test_json_top_level_errors(tmp_path):
    path = write_json(tmp_path / "k.json", {"images": {"filename": "a.jpg"}})
    with pytest.raises(ValueError, match=r"k\.json: field 'images' must be a list, received dict"):
        readers.read_dataset(path)
    path = write_json(tmp_path / "k2.json", {"dataset": "x"})
    with pytest.raises(ValueError, match=r"k2\.json: the top level is missing the field 'images' \(has \['dataset'\]\)"):
        readers.read_karpathy_json(path)
    path = write_json(tmp_path / "captions_train2014.json", {"images": [{"id": 1, "file_name": "a.jpg"}]})
    with pytest.raises(ValueError, match=r"captions_train2014\.json: the top level is missing the field 'annotations'"):
        readers.read_dataset(path)
    path = write_json(tmp_path / "captions_val2014.json", {"images": [{"id": 1, "file_name": "a.jpg"}, {"id": 1, "file_name": "b.jpg"}], "annotations": []})
    with pytest.raises(ValueError, match=r"images\[1\]: duplicate image id 1"):
        readers.read_dataset(path)


def test_build_chunks_give_the_same_records(monkeypatch, tmp_path):
    images = [
        {"filename": f"{index}.jpg", "split": "train", "sentences": [{"raw": f"Picture {index} of a dog."}, {"tokens": ["a", "dog"]}]}
        for index in range(7)
    ]
    path = write_json(tmp_path / "d.json", {"images": images})
    whole = readers.read_dataset(path)
    monkeypatch.setattr(readers, "BUILD_CHUNK_CAPTIONS", 3)  # several tokenizer calls, records in file order
    chunked = readers.read_dataset(path)
    assert chunked.records == whole.records
    assert [record.sentences[0].tokens for record in chunked.records] == [["picture", str(index), "of", "a", "dog"] for index in range(7)]


def test_records_cost_a_few_hundred_bytes_a_caption(tmp_path):
    """Python memory retained by a read dataset (tracemalloc; deterministic sizes, no timing).

    COCO-like captions, 5 x 10 words an image: the dataset retains ~270 bytes a caption here (columns:
    10 int32 word ids, the raw text's UTF-8 bytes, two offsets; plus each record's filename, view and
    ids, a fifth of them a caption), ~760 at the peak, since the parse is never held whole. Before:
    ~450 retained with a Sentence object per caption, ~1,040 with json.load and a string per token.
    """
    import random
    import tracemalloc

    rng = random.Random(0)
    vocabulary = [f"word{index}" for index in range(500)]
    images = []
    for index in range(400):
        sentences = []
        for _ in range(5):
            tokens = [rng.choice(vocabulary) for _ in range(10)]
            sentences.append({"tokens": tokens, "raw": " ".join(tokens).capitalize() + "."})
        images.append({"filename": f"{index:06d}.jpg", "split": "train", "sentences": sentences})
    path = write_json(tmp_path / "coco_like.json", {"images": images})
    del images
    readers.read_dataset(path)  # warm: TF's tokenizer graph and caches are not the dataset's cost
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        dataset = readers.read_dataset(path)
        retained, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    captions = sum(len(record.sentences) for record in dataset.records)
    assert captions == 2000
    assert (retained - before) / captions < 350, (retained - before) / captions
    assert (peak - before) / captions < 1200, (peak - before) / captions


def test_empty_lists_are_present_fields(tmp_path):
    dataset = readers.read_dataset(write_json(tmp_path / "d.json", {"dataset": "none yet", "images": []}))
    assert (dataset.name, dataset.records) == ("none yet", [])
    coco = {"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": []}
    dataset = readers.read_dataset(write_json(tmp_path / "captions_val2014.json", coco))
    assert [(record.filename, record.sentences) for record in dataset.records] == [("a.jpg", [])]
    with pytest.raises(ValueError, match="--split-of-file applies to a COCO captions JSON only"):
        readers.read_dataset(str(tmp_path / "d.json"), split_of_file="val")


def test_karpathy_reader_ignores_annotations(tmp_path):
    data = {"images": [{"filename": "a.jpg", "split": "val", "sentences": [{"raw": "A cat."}]}], "annotations": [{"x": 1}]}
    dataset = readers.read_karpathy_json(write_json(tmp_path / "d.json", data))
    assert [sentence.tokens for sentence in dataset.records[0].sentences] == [["a", "cat"]]
