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
