"""Cached features streamed from the store's shards give the batches the in-memory path gave."""

import json
import os

import numpy as np
import pytest

from vsa_tf.config import DataConfig
from vsa_tf.data import features
from vsa_tf.data import pipelines
from vsa_tf.data import records as records_lib
from vsa_tf.data import text

CONFIG = DataConfig(max_words=4)
WORDS = ["a", "b", "c", "d", "e"]
VOCABULARY = text.Vocabulary(WORDS)
REGIONS, DIMS = 3, 4


def write_random_store(folder, count, shard_size=10, dtype="float32", seed=0):
    """A store of `count` images `image_i.png` with random features and random real-region counts."""
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(count, REGIONS, DIMS)).astype(np.float32)
    masks = np.arange(REGIONS)[None, :] < rng.integers(1, REGIONS + 1, size=(count, 1))
    names = [f"image_{index}.png" for index in range(count)]
    features.write_store(str(folder), zip(names, values, masks), count, REGIONS, DIMS, dtype=dtype, shard_size=shard_size)
    return features.FeatureStore(str(folder)), values, masks


def make_records(indices, seed=1):
    """Records of images `image_i.png` with 0 to 3 sentences each (image_id = 100 + i)."""
    rng = np.random.default_rng(seed)
    records = []
    for index in indices:
        sentences = [records_lib.Sentence(list(rng.choice(WORDS, size=rng.integers(1, 6)))) for _ in range(rng.integers(0, 4))]
        records.append(records_lib.ImageRecord(f"image_{index}.png", 100 + index, "train", sentences))
    return records


def in_memory_pairs(values, masks, records):
    """What the in-memory path built: every (record, sentence) in order, with the features written to the
    store (`write_random_store`'s arrays, not read back through the code under test)."""
    pairs = {"region_features": [], "region_mask": [], "text": [], "image_id": []}
    for record in records:
        row = int(record.filename[len("image_"):-len(".png")])
        for sentence in record.sentences:
            pairs["region_features"].append(values[row])
            pairs["region_mask"].append(masks[row])
            pairs["text"].append(sentence.text)
            pairs["image_id"].append(record.image_id)
    tokens = np.concatenate([batch["tokens"].numpy() for batch in pipelines.sentences_dataset(pairs.pop("text"), VOCABULARY, CONFIG, 64)])
    return {key: np.asarray(value) for key, value in pairs.items()} | {"tokens": tokens}


def concatenated(dataset, keys):
    batches = list(dataset.as_numpy_iterator())
    return {key: np.concatenate([batch[key] for batch in batches]) for key in keys}


def test_ordered_pairs_equal_the_in_memory_path(tmp_path):
    store, values, masks = write_random_store(tmp_path / "store", 45)
    records = make_records(range(3, 45, 2))  # a split: every other image, in the store's order
    expected = in_memory_pairs(values, masks, records)
    streamed = pipelines.ranking_dataset(records, None, None, VOCABULARY, CONFIG, 7, shuffle=False, features=store)
    received = concatenated(streamed, ["region_features", "region_mask", "tokens", "image_id"])
    for key in received:
        np.testing.assert_array_equal(received[key], expected[key], err_msg=key)

    captions = pipelines.caption_dataset(records, None, VOCABULARY, CONFIG, 5, shuffle=False, features=store)
    received = concatenated(captions, ["region_features", "region_mask", "tokens"])
    np.testing.assert_array_equal(received["region_features"], expected["region_features"][:, :1])
    np.testing.assert_array_equal(received["region_mask"], expected["region_mask"][:, :1])
    starts = received["tokens"][:, 0]
    assert (starts == text.START_ID).all() and received["tokens"].shape[1] == CONFIG.max_words + 2


# Records in the store's order, and out of it with repeated images (each image's sentences then come
# from several records, gathered by the store's grouping).
@pytest.mark.parametrize("indices", [list(range(0, 60, 3)), [5, 0, 5, 17, 3, 0, 42, 5, 59, 1, 30, 17]])
def test_shuffled_pairs_are_the_same_examples_in_a_new_order_each_epoch(tmp_path, monkeypatch, indices):
    monkeypatch.setattr(pipelines, "SHUFFLE_BUFFER_MAX_EXAMPLES", 8)  # buffers far smaller than the split
    store, values, masks = write_random_store(tmp_path / "store", 60)
    records = make_records(indices)
    expected = in_memory_pairs(values, masks, records)

    def as_rows(pairs):
        rows = [
            (int(image_id), tuple(tokens), values.tobytes(), mask.tobytes())
            for image_id, tokens, values, mask in zip(pairs["image_id"], pairs["tokens"], pairs["region_features"], pairs["region_mask"])
        ]
        return rows

    dataset = pipelines.ranking_dataset(records, None, None, VOCABULARY, CONFIG, 4, shuffle=True, seed=3, features=store)
    keys = ["region_features", "region_mask", "tokens", "image_id"]
    first, second = as_rows(concatenated(dataset, keys)), as_rows(concatenated(dataset, keys))
    assert sorted(first) == sorted(second) == sorted(as_rows(expected))
    assert first != second  # reshuffled each epoch
    again = pipelines.ranking_dataset(records, None, None, VOCABULARY, CONFIG, 4, shuffle=True, seed=3, features=store)
    assert as_rows(concatenated(again, keys)) == first  # the seed fixes the order


@pytest.mark.parametrize("order", ["reversed", "duplicates"])
def test_images_in_record_order_when_the_store_order_differs(tmp_path, monkeypatch, order):
    monkeypatch.setattr(pipelines, "ORDERED_CHUNK_BYTES", 5 * REGIONS * (DIMS * 4 + 1))  # 5 images per chunk
    store, values, masks = write_random_store(tmp_path / "store", 30)
    indices = list(range(29, -1, -2)) if order == "reversed" else [4, 4, 20, 3, 4, 11, 29, 0]
    records = make_records(indices)
    batches = pipelines.images_dataset(records, None, None, CONFIG, 4, features=store)
    received = concatenated(batches, ["region_features", "region_mask", "image_index"])
    np.testing.assert_array_equal(received["region_features"], values[indices])
    np.testing.assert_array_equal(received["region_mask"], masks[indices])
    np.testing.assert_array_equal(received["image_index"], np.arange(len(indices)))
    expected = in_memory_pairs(values, masks, records)
    pairs = concatenated(
        pipelines.ranking_dataset(records, None, None, VOCABULARY, CONFIG, 3, shuffle=False, features=store),
        ["region_features", "tokens", "image_id"],
    )
    for key in pairs:
        np.testing.assert_array_equal(pairs[key], expected[key], err_msg=key)


def test_cached_region_captions_read_each_snippets_region(tmp_path):
    store, values, masks = write_random_store(tmp_path / "store", 12, shard_size=5)
    records = make_records([7, 2, 9])
    snippets = [  # not grouped by image: the unshuffled pairs come grouped by image in record order
        {"filename": "image_9.png", "words": ["a", "b"], "box": [0, 0, 2, 2], "region": 2},
        {"filename": "image_7.png", "words": ["c"], "box": [0, 0, 3, 3], "region": 0},
        {"filename": "image_9.png", "words": ["d"], "box": [0, 0, 4, 4], "region": 1},
        {"filename": "image_7.png", "words": ["e", "a"], "box": [0, 0, 5, 5], "region": 2},
    ]
    expected_order = [1, 3, 0, 2]  # image_7's snippets, then image_9's (image_2 has none and is not read)
    dataset = pipelines.region_caption_dataset(snippets, records, None, VOCABULARY, CONFIG, 3, shuffle=False, features=store)
    received = concatenated(dataset, ["region_features", "region_mask", "tokens", "image_id"])
    rows = {"image_7.png": 7, "image_9.png": 9}
    expected = np.stack([values[rows[snippets[n]["filename"]], snippets[n]["region"]] for n in expected_order])[:, None, :]
    np.testing.assert_array_equal(received["region_features"], expected)
    # The region's own mask entry: a padding region stays masked.
    expected_mask = np.array([masks[rows[snippets[n]["filename"]], snippets[n]["region"]] for n in expected_order])[:, None]
    np.testing.assert_array_equal(received["region_mask"], expected_mask)
    assert not expected_mask.all() and expected_mask.any()  # the random store has padding among these regions
    assert received["image_id"].tolist() == [107, 107, 109, 109]
    words = [["c"], ["e", "a"], ["a", "b"], ["d"]]
    assert [VOCABULARY.decode(row) for row in received["tokens"]] == words
    shuffled = pipelines.region_caption_dataset(snippets, records, None, VOCABULARY, CONFIG, 3, shuffle=True, seed=1, features=store)
    again = concatenated(shuffled, ["region_features", "image_id"])
    assert sorted(map(bytes, again["region_features"])) == sorted(map(bytes, received["region_features"]))
    with pytest.raises(ValueError, match=r"snippet 0 \(image_9.png\): cached region captioning needs `region`, an index into the 3 cached regions .*received 3"):
        pipelines.region_caption_dataset([dict(snippets[0], region=3)], records, None, VOCABULARY, CONFIG, 3, features=store)
    without_region = {key: value for key, value in snippets[0].items() if key != "region"}
    with pytest.raises(ValueError, match="received None"):
        pipelines.region_caption_dataset([without_region], records, None, VOCABULARY, CONFIG, 3, features=store)


def test_select_reads_only_the_shards_of_the_split(tmp_path):
    store, values, _ = write_random_store(tmp_path / "store", 40, shard_size=10)
    assert store.shards_of(store.rows(["image_12.png", "image_19.png", "image_31.png"])) == [1, 3]
    os.remove(store.shard_paths[0])  # a split outside shard 0 streams without it
    dataset, distinct = store.select(["image_31.png", "image_12.png", "image_31.png"])
    assert distinct == ["image_31.png", "image_12.png"]
    examples = list(dataset.as_numpy_iterator())
    assert [example["key"] for example in examples] == [1, 0]  # index order, keyed by the distinct position
    np.testing.assert_array_equal(examples[0]["region_features"], values[12])
    with pytest.raises(ValueError, match=r"no cached features for 1 image\(s\), e\.g\. \['nope\.png'\]"):
        store.select(["image_1.png", "nope.png"])


def test_float16_store_is_half_the_size_and_reads_back_as_float32(tmp_path):
    store, values, masks = write_random_store(tmp_path / "store", 20)
    index = features.convert_store(store, str(tmp_path / "half"), dtype="float16")
    assert index["dtype"] == "float16" and index["version"] == 2 and index["filenames"] == store.filenames
    half = features.FeatureStore(str(tmp_path / "half"))
    assert half.dtype == "float16" and (half.regions, half.dims) == (REGIONS, DIMS)
    read_back, read_masks = half.load(half.filenames)
    assert read_back.dtype == np.float32
    np.testing.assert_array_equal(read_back, values.astype(np.float16).astype(np.float32))
    np.testing.assert_array_equal(read_masks, masks)

    def size(store):
        return sum(os.path.getsize(path) for path in store.shard_paths)

    assert size(store) - size(half) >= 20 * REGIONS * DIMS * 2  # 2 bytes saved per value; filenames and masks stay
    records = make_records(range(20))
    batch = next(iter(pipelines.ranking_dataset(records, None, None, VOCABULARY, CONFIG, 4, shuffle=False, features=half)))
    assert batch["region_features"].dtype.name == "float32"


def test_store_errors(tmp_path):
    with pytest.raises(ValueError, match=r"dtype must be one of \('float32', 'float16'\), received 'int8'"):
        features.write_store(str(tmp_path / "bad"), [], 0, REGIONS, DIMS, dtype="int8")
    with pytest.raises(ValueError, match=r"image_0\.png: features must have shape \[3, 4\], received \[2, 4\]"):
        features.write_store(str(tmp_path / "bad"), [("image_0.png", np.zeros((2, 4)), np.ones(2))], 1, REGIONS, DIMS)
    assert os.listdir(tmp_path / "bad") == []
    store, _, _ = write_random_store(tmp_path / "store", 5)
    index_path = tmp_path / "store" / "index.json"
    index = json.loads(index_path.read_text())
    index_path.write_text(json.dumps(dict(index, dtype="int8")))
    with pytest.raises(ValueError, match=r"index\.json: dtype must be one of .*, received 'int8'"):
        features.FeatureStore(str(tmp_path / "store"))
    index_path.write_text(json.dumps(dict(index, filenames=index["filenames"][:4])))
    with pytest.raises(ValueError, match=r"index\.json: the shards hold 5 images but the index lists 4 filenames"):
        features.FeatureStore(str(tmp_path / "store"))
    with pytest.raises(ValueError, match="out_dir must differ from the source store"):
        features.convert_store(str(tmp_path / "store"), str(tmp_path / "store"))
