import json
import os
import re

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers.gray_images import write_gray_images
from vsa_tf.config import DataConfig
from vsa_tf.data import features
from vsa_tf.data import pipelines
from vsa_tf.data import text

CONFIG = DataConfig(image_size=(16, 16), max_boxes=2, max_words=4)


def fake_extractor(batch):
    """[B, R, 5]: each region's normalised box and the image's mean brightness."""
    brightness = tf.reduce_mean(batch["images"], axis=[1, 2, 3])[:, None, None]  # [B, 1, 1]
    regions = tf.shape(batch["boxes"])[1]
    return tf.concat([batch["boxes"], tf.tile(brightness, [1, regions, 1])], axis=-1)


@pytest.fixture
def world(tmp_path):
    records = write_gray_images(tmp_path, 3, 50)
    boxes = {"image_1.png": np.array([[0, 0, 15, 10]], np.float32)}
    return records, str(tmp_path), boxes


def test_write_and_read_back(world, tmp_path):
    records, root, boxes = world
    out = str(tmp_path / "features")
    index = features.write_region_features(records, root, boxes, CONFIG, fake_extractor, out, shard_size=2, batch_size=2)
    assert index["count"] == 3 and index["regions"] == 3 and index["dims"] == 5
    assert [shard["count"] for shard in index["shards"]] == [2, 1]
    assert sorted(os.listdir(out)) == [
        "caching", "features-00000-of-00002.tfrecord", "features-00001-of-00002.tfrecord", "index.json"
    ]
    assert sorted(os.listdir(os.path.join(out, "caching"))) == [
        "features-00000-of-00002.json", "features-00001-of-00002.json", "plan.json"
    ]
    with open(os.path.join(out, "index.json")) as stream:
        assert json.load(stream)["filenames"] == [record.filename for record in records]

    store = features.FeatureStore(out)
    assert "image_1.png" in store and "nope.png" not in store
    values, mask = store.load(["image_2.png", "image_1.png", "image_2.png"])
    assert values.shape == (3, 3, 5) and values.dtype == np.float32
    np.testing.assert_array_equal(mask, [[1, 0, 0], [1, 1, 0], [1, 0, 0]])
    np.testing.assert_allclose(values[:, 0, 4], [100, 50, 100], atol=1e-4)
    np.testing.assert_allclose(values[1, 1, :4], [0, 0, 0.5, 0.5], atol=1e-6)
    streamed = list(store.dataset().as_numpy_iterator())
    assert [example["filename"] for example in streamed] == [b"image_0.png", b"image_1.png", b"image_2.png"]
    with pytest.raises(ValueError, match=r"no cached features for 1 image\(s\), e\.g\. \['nope\.png'\]"):
        store.load(["nope.png"])

    # The store feeds the pipelines' cached mode.
    vocabulary = text.Vocabulary(["a", "b"])
    batch = next(iter(pipelines.ranking_dataset(records, root, None, vocabulary, CONFIG, 3, shuffle=False, features=store)))
    np.testing.assert_allclose(batch["region_features"][:, 0, 4].numpy(), [0, 50, 100], atol=1e-4)
    np.testing.assert_array_equal(batch["tokens"].numpy(), [[4, 5, 0, 0]] * 3)


def test_bad_extractor_output_leaves_no_files(world, tmp_path):
    records, root, boxes = world
    out = str(tmp_path / "features")
    with pytest.raises(ValueError, match=r"extractor must return \[B, R, D\] features with \[B, R\] = \[2, 3\], received shape \[2, 5\]"):
        features.write_region_features(records, root, boxes, CONFIG, lambda batch: np.zeros((2, 5)), out, batch_size=2)
    assert os.listdir(out) == ["caching"] and os.listdir(os.path.join(out, "caching")) == ["plan.json"]


def test_store_errors(tmp_path):
    with pytest.raises(ValueError, match=r"index\.json: features index not found"):
        features.FeatureStore(str(tmp_path))
    (tmp_path / "index.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ValueError, match="not a region features index"):
        features.FeatureStore(str(tmp_path))


def _valid_index():
    return {
        "format": features.FORMAT_NAME, "version": 1, "dtype": "float32", "count": 2, "regions": 3, "dims": 5,
        "filenames": ["a.jpg", "b.png"], "shards": [{"file": "features-00000-of-00001.tfrecord", "count": 2}],
    }


@pytest.mark.parametrize(
    "change, message",
    [
        ({"count": None}, r"`count` must be an integer in \[0, 2\*\*63\), received None"),
        ({"count": [2]}, r"`count` must be an integer in \[0, 2\*\*63\), received \[2\]"),
        ({"count": "x"}, r"`count` must be an integer in \[0, 2\*\*63\), received 'x'"),
        ({"count": -1}, r"`count` must be an integer in \[0, 2\*\*63\), received -1"),
        ({"count": True}, r"`count` must be an integer .*, received True"),
        ({"count": 2.0}, r"`count` must be an integer .*, received 2\.0"),
        ({"count": 3}, r"`count` is 3 but the index lists 2 filenames"),
        ({"regions": float("nan")}, r"`regions` must be an integer in \[1, 2\*\*63\), received nan"),
        ({"regions": 0}, r"`regions` must be an integer in \[1, 2\*\*63\), received 0"),
        ({"dims": float("inf")}, r"`dims` must be an integer in \[0, 2\*\*63\), received inf"),
        ({"dims": 10**30}, r"`dims` must be an integer in \[0, 2\*\*63\), received 1000000000000000000000000000000"),
        ({"dims": 2**40}, r"regions x dims = 3 x 1099511627776 values per image, over the limit"),
        ({"filenames": "a.jpg"}, r"`filenames` must be a list, received 'a.jpg'"),
        ({"filenames": ["a.jpg", 7]}, r"`filenames` entry 1 must be a non-empty UTF-8 string, received 7"),
        ({"shards": {"file": "x"}}, r"`shards` must be a list, received \{'file': 'x'\}"),
        ({"shards": [{"file": "features-00000-of-00001.tfrecord"}]},
         r"`shards` entry 0 must be an object with `file` and `count`, received \{'file': "),
        ({"shards": ["features-00000-of-00001.tfrecord"]}, r"`shards` entry 0 must be an object with `file` and `count`"),
        ({"shards": [{"file": "features-00000-of-00001.tfrecord", "count": "2"}]},
         r"`shards` entry 0: `count` must be an integer in \[0, 2\*\*63\), received '2'"),
        ({"shards": [{"file": "../../etc/passwd", "count": 2}]},
         r"`shards` entry 0: `file` escapes the store folder \('\.\.'\), received '\.\./\.\./etc/passwd'"),
        ({"shards": [{"file": "/etc/passwd", "count": 2}]},
         r"`shards` entry 0: `file` must be a path inside the store folder, received the absolute path '/etc/passwd'"),
        ({"shards": [{"file": "C:\\Windows\\win.ini", "count": 2}]}, r"`shards` entry 0: `file` must be a path inside the store folder"),
        ({"shards": [{"file": "a\x00b", "count": 2}]}, r"`shards` entry 0: `file` must be a non-empty UTF-8 string, received 'a\\x00b'"),
        ({"shards": [{"file": None, "count": 2}]}, r"`shards` entry 0: `file` must be a non-empty UTF-8 string, received None"),
    ],
)
def test_store_index_fields_are_checked_by_name(tmp_path, change, message):
    """Every bad `index.json` field is a ValueError naming the index file, the field and the received value."""
    (tmp_path / "features-00000-of-00001.tfrecord").write_bytes(b"")
    index_path = tmp_path / "index.json"
    index_path.write_text(json.dumps(dict(_valid_index(), **change)))
    with pytest.raises(ValueError, match=rf"^{re.escape(str(index_path))}: {message}"):
        features.FeatureStore(str(tmp_path))
    index_path.write_text(json.dumps(_valid_index()))
    store = features.FeatureStore(str(tmp_path))
    assert (store.count, store.regions, store.dims, store.shard_counts) == (2, 3, 5, [2])


def test_store_refuses_an_escaping_shard_that_exists(tmp_path):
    """A `..` shard path is refused even when the file it names exists (it is never opened)."""
    store = tmp_path / "store"
    store.mkdir()
    (tmp_path / "outside.tfrecord").write_bytes(b"")
    (store / "index.json").write_text(json.dumps(dict(_valid_index(), shards=[{"file": "../outside.tfrecord", "count": 2}])))
    with pytest.raises(ValueError, match=r"index\.json: `shards` entry 0: `file` escapes the store folder"):
        features.FeatureStore(str(store))
