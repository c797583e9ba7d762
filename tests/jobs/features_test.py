import numpy as np
import pytest

from tests.pretrained.tiny_efficientnet import tiny_feature_model
from tests.pretrained.tiny_efficientnet import write_tiny_dataset
from tests.pretrained.tiny_efficientnet import write_tiny_weights
from vsa_tf.data.features import FeatureStore
from vsa_tf.jobs import features
from vsa_tf.pretrained import imagenet


def cache_tiny_features(root, out_dir, **kwargs):
    feature_model = tiny_feature_model(write_tiny_weights(root / "tiny.weights.h5"))
    summary = features.cache_region_features(
        str(root / "dataset.json"), str(root / "images"), str(root / "boxes.json"), None, str(out_dir),
        image_size=(64, 64), max_boxes=3, batch_size=2, shard_size=2, feature_model=feature_model, **kwargs,
    )
    return summary, feature_model


def test_region_features_are_cached_per_image_with_masks(tmp_path):
    root = write_tiny_dataset(tmp_path)
    summary, feature_model = cache_tiny_features(root, tmp_path / "features")
    assert (summary["count"], summary["regions"], summary["dims"], summary["shards"]) == (3, 4, 1280, 2)
    assert summary["images_per_second"] > 0
    store = FeatureStore(str(tmp_path / "features"))
    cached, mask = store.load(["a.png", "b.png", "c.png"])
    np.testing.assert_array_equal(mask, [[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 0, 0]])
    assert np.all(cached[~mask] == 0) and np.all(np.abs(cached[mask]).sum(-1) > 0)
    # Region 0 is the whole image: the mean of RoIAlign's grid (rows/columns 0, 5, 10, 15 of the 16 x 16 map).
    images = imagenet.load_images([str(root / "images" / "a.png")], (64, 64))
    feature_map = feature_model.predict(images, verbose=0)[0]  # [16, 16, 1280]
    grid = feature_map[[0, 5, 10, 15]][:, [0, 5, 10, 15]]
    np.testing.assert_allclose(cached[0, 0], grid.mean(axis=(0, 1)), rtol=1e-3, atol=1e-3)


def test_progress_reports_images_done_rate_and_time_left(tmp_path, capsys):
    root = write_tiny_dataset(tmp_path)
    cache_tiny_features(root, tmp_path / "features", progress_seconds=0)
    lines = capsys.readouterr().err.strip().splitlines()
    assert [line.split(" images")[0] for line in lines] == ["cache-features: 2/3", "cache-features: 3/3"]
    assert "(67%)" in lines[0] and "images/s" in lines[0] and "ETA " in lines[0]
    assert lines[-1].endswith("ETA 0s")


def test_progress_is_quiet_between_reports(tmp_path, capsys):
    root = write_tiny_dataset(tmp_path)
    cache_tiny_features(root, tmp_path / "features", progress_seconds=3600)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cache-features: 3/3 images (100%)")


def test_format_duration():
    assert [features.format_duration(seconds) for seconds in (4.2, 65, 3725.2)] == ["4s", "1m05s", "1h02m05s"]
    assert features.format_duration(float("nan")) == "?" and features.format_duration(float("inf")) == "?"


def test_cache_region_features_rejects_bad_arguments(tmp_path):
    root = write_tiny_dataset(tmp_path)
    with pytest.raises(ValueError, match=r"image_size must be \(height, width\), each >= 32; received \(16, 16\)"):
        features.cache_region_features(
            str(root / "dataset.json"), str(root / "images"), None, None, str(tmp_path / "f"), image_size=(16, 16)
        )
    with pytest.raises(ValueError, match=r"no images in splits \['test'\]"):
        features.cache_region_features(
            str(root / "dataset.json"), str(root / "images"), None, None, str(tmp_path / "f"), splits=("test",)
        )


def test_a_finished_folder_reruns_without_extracting(tmp_path, capsys):
    root = write_tiny_dataset(tmp_path)
    first, _ = cache_tiny_features(root, tmp_path / "features", progress_seconds=0)
    assert (first["complete"], first["written_shards"], first["reused_shards"], first["extracted_images"]) == (True, 2, 0, 3)
    index = (tmp_path / "features" / "index.json").read_text()
    capsys.readouterr()
    again, _ = cache_tiny_features(root, tmp_path / "features", progress_seconds=0)
    assert (again["complete"], again["written_shards"], again["reused_shards"], again["extracted_images"]) == (True, 0, 2, 0)
    assert capsys.readouterr().err.strip() == "cache-features: resuming, 2 finished shard(s) kept, 0 images to extract"
    assert (tmp_path / "features" / "index.json").read_text() == index


def test_weights_fingerprint(tmp_path):
    (tmp_path / "w.weights.h5").write_bytes(b"abc")
    assert features.weights_fingerprint(str(tmp_path / "w.weights.h5")) == {
        "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "bytes": 3
    }
    assert features.weights_fingerprint(None) is None
    with pytest.raises(ValueError, match=r"weights file not found: '.*none\.weights\.h5'"):
        features.weights_fingerprint(str(tmp_path / "none.weights.h5"))


def test_images_smaller_than_the_pretrained_input_are_warned_about():
    assert features.image_size_warning((224, 224)) is None and features.image_size_warning((256, 320)) is None
    message = features.image_size_warning((128, 128))
    assert message.startswith("warning: image_size (128, 128) is smaller than EfficientNet-Lite0's ImageNet input (224 x 224)")
    assert "--image-size 224 224" in message
