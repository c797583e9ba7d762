"""Run folders keep loading: ones written before ImageEncoderConfig, and ones moved with their inputs gone."""

import json
import os
import shutil

import numpy as np
import pytest

from vsa_tf.config import AlignmentConfig, CaptionConfig, DataConfig, EmbeddingConfig, ImageEncoderConfig
from vsa_tf.data import features, readers
from vsa_tf.data import boxes as boxes_lib
from vsa_tf.jobs import alignment, captioning, embedding
from vsa_tf.layers.region_features import RegionFeatureExtractor

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "runs_v0")
WRITTEN_AT = "/tmp/fx/runs_v0"  # where make_runs.py wrote the fixture (its saved data paths)


@pytest.fixture(scope="module")
def old_runs(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("old") / "runs_v0")
    shutil.copytree(FIXTURE, root)
    with open(os.path.join(root, "expected.json"), encoding="utf-8") as stream:
        expected = json.load(stream)
    return root, expected


def _data(root, features_dir=None):
    world = os.path.join(root, "world")
    return DataConfig(dataset=os.path.join(world, "dataset.json"), images=os.path.join(world, "images"),
                      boxes=os.path.join(world, "boxes.json"), image_size=(32, 32), max_boxes=2, max_words=8,
                      min_word_count=1, features=features_dir)


def test_old_alignment_configs_migrate_into_the_image_encoder(old_runs):
    root, _ = old_runs
    pixels = alignment.load_alignment_run(os.path.join(root, "alignment_pixels")).config
    assert pixels.image == ImageEncoderConfig(mode="pixels", filters=(4, 8), pool_size=2, pooling="flatten")
    with open(os.path.join(root, "alignment_cached", "config.json"), encoding="utf-8") as stream:
        values = json.load(stream)
    cached = AlignmentConfig.from_dict(values)
    assert (cached.image.mode, cached.image.normalization, cached.image.feature_dim) == ("cached", "l2", None)
    assert cached.sentence_encoder == "bag_of_words" and cached.region_dim == 8
    without_pooling = {name: value for name, value in values.items() if name != "pooling"}
    assert AlignmentConfig.from_dict(without_pooling).image.pooling == "average"  # runs older than the field


def test_old_alignment_runs_give_the_scores_they_gave(old_runs):
    root, expected = old_runs
    pixels = alignment.evaluate_retrieval(os.path.join(root, "alignment_pixels"), _data(root), split="test")
    assert pixels == expected["alignment_pixels"]
    cached = alignment.evaluate_retrieval(os.path.join(root, "alignment_cached"), _data(root, os.path.join(root, "features")), split="test")
    assert cached == expected["alignment_cached"]


def test_old_caption_and_embedding_runs_load(old_runs):
    root, expected = old_runs
    run = captioning.load_caption_run(os.path.join(root, "caption_pixels"))
    assert run.config.image == ImageEncoderConfig(filters=(4, 8), normalization="layer", pooling="flatten")
    images = [os.path.join(root, "world", "images", os.path.basename(item["image"])) for item in expected["caption_pixels"]]
    captions = captioning.caption_images(run, images, beam=2)
    assert [item["caption"] for item in captions] == [item["caption"] for item in expected["caption_pixels"]]
    np.testing.assert_allclose([item["score"] for item in captions], [item["score"] for item in expected["caption_pixels"]], rtol=1e-5)

    report = captioning.evaluate_captions(run, _data(root), split="test", nearest_neighbour=False)
    written = [example["caption"] for example in report["examples"]]
    assert written == [item["caption"] for item in expected["caption_pixels"]]  # the same beam-2 captions
    assert report["distinct_fraction"] == len(set(written)) / len(written)

    loaded = embedding.load_embedding_run(os.path.join(root, "embedding"))
    assert (loaded.config.image.pooling, loaded.config.image.mode) == ("average", "pixels")  # what it was trained with
    data = _data(root).replace(boxes=None)
    metrics = alignment.evaluate_retrieval(os.path.join(root, "embedding"), data, split="test")
    assert {key: metrics[key] for key in expected["embedding"]} == expected["embedding"]


def test_a_moved_run_loads_without_its_features_folder_or_backbone_weights(old_runs, tmp_path):
    root, _ = old_runs
    data = _data(root)
    dataset = readers.read_dataset(data.dataset)
    store = str(tmp_path / "features")
    features.write_region_features(dataset.records, data.images, boxes_lib.read_boxes(data.boxes), data,
                                   RegionFeatureExtractor(backbone_filters=(4, 6), backbone_frozen=True), store)
    cached = AlignmentConfig(image=ImageEncoderConfig(mode="cached", normalization="l2"), region_dim=8, embedding_dim=4,
                             hidden_dim=6, batch_size=4, epochs=1, sentence_encoder="bag_of_words")
    cached_summary = alignment.train_alignment(cached, data.replace(features=store), str(tmp_path / "cached"), verbose=0)
    assert alignment.load_alignment_run(str(tmp_path / "cached")).config.image.feature_dim == 6

    backbone = str(tmp_path / "start.weights.h5")
    alignment.save_backbone_weights(os.path.join(root, "alignment_pixels"), backbone)
    pixels = AlignmentConfig(image=ImageEncoderConfig(filters=(4, 8), weights=backbone), region_dim=8, embedding_dim=6,
                             hidden_dim=8, batch_size=4, epochs=1)
    pixels_summary = alignment.train_alignment(pixels, data, str(tmp_path / "pixels"), verbose=0)

    moved = tmp_path / "moved"
    moved.mkdir()
    for name in ("cached", "pixels"):
        shutil.move(str(tmp_path / name), str(moved / name))
    kept = str(tmp_path / "features_kept")  # the same features, elsewhere: only evaluation reads them
    shutil.move(store, kept)
    os.remove(backbone)
    run = alignment.load_alignment_run(str(moved / "pixels"))
    assert run.config.image.weights == backbone  # recorded, never read again
    assert alignment.evaluate_retrieval(str(moved / "pixels"), data, split="test") == pixels_summary.test
    assert alignment.load_alignment_run(str(moved / "cached")).model.feature_dim == 6
    assert alignment.evaluate_retrieval(str(moved / "cached"), data.replace(features=kept), split="test") == cached_summary.test
