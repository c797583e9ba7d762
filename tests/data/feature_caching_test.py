"""Resumable and partitioned feature caching (`write_region_features` / `cache_region_shards` / `merge_region_features`)."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers.gray_images import write_gray_images
from vsa_tf.config import DataConfig
from vsa_tf.data import features

CONFIG = DataConfig(image_size=(16, 16), max_boxes=2, max_words=4)
SHARD_FILES = [f"features-{shard:05d}-of-00004.tfrecord" for shard in range(4)]


class CountingExtractor:
    """[B, R, 5] features (each region's box and the image's mean brightness); counts images; can fail at a call."""

    def __init__(self, fail_at_call=None):
        self.images, self.calls, self.fail_at_call = 0, 0, fail_at_call

    def __call__(self, batch):
        self.calls += 1
        if self.calls == self.fail_at_call:
            raise RuntimeError("extractor crashed")
        self.images += int(batch["images"].shape[0])
        brightness = tf.reduce_mean(batch["images"], axis=[1, 2, 3])[:, None, None]  # [B, 1, 1]
        return tf.concat([batch["boxes"], tf.tile(brightness, [1, tf.shape(batch["boxes"])[1], 1])], axis=-1)


@pytest.fixture
def world(tmp_path):
    """Seven images (four shards of two, the last of one), boxes on two of them."""
    records = write_gray_images(tmp_path, 7, 30)
    boxes = {"image_1.png": np.array([[0, 0, 15, 10]], np.float32), "image_4.png": np.array([[5, 5, 20, 20]], np.float32)}
    return records, str(tmp_path), boxes


def cache(world, out, extractor=None, **options):
    records, root, boxes = world
    return features.cache_region_shards(
        records, root, boxes, options.pop("config", CONFIG), extractor or CountingExtractor(), str(out),
        shard_size=2, batch_size=options.pop("batch_size", 2), **options,
    )


def read_bytes(folder, names):
    return {name: (folder / name).read_bytes() for name in names}


def test_a_rerun_after_a_crash_keeps_finished_shards_and_matches_one_run(world, tmp_path):
    reference = cache(world, tmp_path / "reference")
    assert reference.index["count"] == 7 and [shard["count"] for shard in reference.index["shards"]] == [2, 2, 2, 1]

    out = tmp_path / "resumed"
    with pytest.raises(RuntimeError, match="extractor crashed"):
        cache(world, out, CountingExtractor(fail_at_call=3))  # one call per shard: dies in shard 2
    assert sorted(name for name in os.listdir(out) if name.endswith(".tfrecord")) == SHARD_FILES[:2]
    assert not (out / "index.json").exists()
    kept = [os.stat(out / name) for name in SHARD_FILES[:2]]

    rerun = CountingExtractor()
    result = cache(world, out, rerun)
    assert rerun.images == 3 and result.extracted_images == 3
    assert result.reused_shards == SHARD_FILES[:2] and result.written_shards == SHARD_FILES[2:]
    assert [(os.stat(out / name).st_ino, os.stat(out / name).st_mtime_ns) for name in SHARD_FILES[:2]] == [
        (stat.st_ino, stat.st_mtime_ns) for stat in kept
    ]
    assert (out / "index.json").read_text() == (tmp_path / "reference" / "index.json").read_text()
    assert read_bytes(out, SHARD_FILES) == read_bytes(tmp_path / "reference", SHARD_FILES)

    # A finished folder reruns without extracting anything; the store reads as one.
    again = CountingExtractor()
    assert cache(world, out, again).index == reference.index and again.images == 0
    values, mask = features.FeatureStore(str(out)).load(["image_4.png", "image_1.png"])
    np.testing.assert_allclose(values[:, 0, 4], [120, 30], atol=1e-4)
    np.testing.assert_array_equal(mask, [[1, 1, 0], [1, 1, 0]])


def test_a_shard_whose_sidecar_or_file_is_damaged_is_redone(world, tmp_path):
    out = tmp_path / "features"
    cache(world, out)
    (out / "caching" / "features-00002-of-00004.json").write_text("{not json")
    with open(out / SHARD_FILES[3], "ab") as stream:
        stream.write(b"x")  # size no longer the sidecar's
    rerun = CountingExtractor()
    result = cache(world, out, rerun)
    assert result.written_shards == SHARD_FILES[2:] and rerun.images == 3
    assert features.count_tfrecords(str(out / SHARD_FILES[3])) == 1


def test_two_parts_give_the_store_of_one_run(world, tmp_path):
    cache(world, tmp_path / "one")
    out = tmp_path / "parts"
    first = cache(world, out, num_parts=2, part_index=1)
    assert first.index is None and first.written_shards == [SHARD_FILES[1], SHARD_FILES[3]]
    assert first.missing_shards == [SHARD_FILES[0], SHARD_FILES[2]] and not (out / "index.json").exists()
    second = cache(world, out, num_parts=2, part_index=0)
    assert second.written_shards == [SHARD_FILES[0], SHARD_FILES[2]] and second.missing_shards == []
    assert json.loads((out / "index.json").read_text()) == json.loads((tmp_path / "one" / "index.json").read_text())
    assert read_bytes(out, SHARD_FILES) == read_bytes(tmp_path / "one", SHARD_FILES)
    assert features.merge_region_features(str(out)) == second.index


def test_merge_names_the_missing_shards(world, tmp_path):
    out = tmp_path / "parts"
    cache(world, out, num_parts=3, part_index=0)  # shards 0 and 3
    with pytest.raises(ValueError) as error:
        features.merge_region_features(str(out))
    message = str(error.value)
    assert message.startswith(f"{out}: cannot write index.json, 2 of 4 shard(s) missing or damaged")
    assert "features-00001-of-00004.tfrecord (records 2..3) not finished" in message
    assert "features-00002-of-00004.tfrecord (records 4..5) not finished" in message
    assert "features-00000" not in message and "k % N" in message
    assert not (out / "index.json").exists()


def test_merge_counts_the_records_of_each_shard(world, tmp_path):
    out = tmp_path / "features"
    cache(world, out)
    (out / "index.json").unlink()
    data = (out / SHARD_FILES[1]).read_bytes()
    second_record = 12 + int.from_bytes(data[:8], "little") + 4  # the first record's length, CRCs included
    (out / SHARD_FILES[1]).write_bytes(data[:second_record] + b"\0" * (len(data) - second_record))  # same size
    with pytest.raises(ValueError, match=r"truncated TFRecord file"):
        features.merge_region_features(str(out))
    with pytest.raises(ValueError, match=r"features index not found"):
        features.FeatureStore(str(out))


def test_other_settings_or_images_are_refused_naming_the_folder_and_setting(world, tmp_path):
    out = tmp_path / "features"
    cache(world, out, num_parts=2, part_index=0)
    with pytest.raises(ValueError) as error:
        cache(world, out, config=CONFIG.replace(image_size=(24, 24)), num_parts=2, part_index=1)
    assert str(error.value).startswith(f"{out}: holds features cached with other settings (image_size: [16, 16] there, [24, 24] now)")
    with pytest.raises(ValueError, match=r"batch_size: 2 there, 1 now"):
        cache(world, out, batch_size=1)
    records, root, boxes = world
    with pytest.raises(ValueError, match=r"images: 7 there, 6 now \(record 6: 'image_6\.png' there, '\(none\)' now\)"):
        cache((records[:6], root, boxes), out)
    with pytest.raises(ValueError, match=r"boxes_sha256: "):
        cache((records, root, {}), out)
    with pytest.raises(ValueError, match=r"pool_size: null there, 3 now"):
        cache(world, out, settings={"pool_size": 3})  # the extractor's settings (weights, pooling) count too
    assert sorted(name for name in os.listdir(out) if name.endswith(".tfrecord")) == [SHARD_FILES[0], SHARD_FILES[2]]

    # restart=True starts the folder over with the new settings.
    result = cache(world, out, config=CONFIG.replace(image_size=(24, 24)), restart=True)
    assert result.index is not None and result.extracted_images == 7


def test_a_folder_written_without_a_plan_is_refused(world, tmp_path):
    out = tmp_path / "features"
    cache(world, out)
    for name in os.listdir(out / "caching"):
        (out / "caching" / name).unlink()
    (out / "caching").rmdir()
    with pytest.raises(ValueError, match=r"holds a features index written without a caching plan"):
        cache(world, out)


def test_bad_part_arguments(world, tmp_path):
    with pytest.raises(ValueError, match=r"part index must be in 0\.\.num_parts - 1, received 2 of 2 parts"):
        cache(world, tmp_path / "f", num_parts=2, part_index=2)
    with pytest.raises(ValueError, match=r"restart a folder from a single run, not part 1 of 2"):
        cache(world, tmp_path / "f", num_parts=2, part_index=1, restart=True)
    with pytest.raises(ValueError, match=r"shard_size must be >= 1, received 0"):
        records, root, boxes = world
        features.cache_region_shards(records, root, boxes, CONFIG, CountingExtractor(), str(tmp_path / "f"), shard_size=0)
