import json

import numpy as np
import pytest
from PIL import Image

from tests.pretrained.tiny_efficientnet import TINY_ARCHITECTURE
from tests.pretrained.tiny_efficientnet import build_tiny_lite0
from tests.pretrained.tiny_efficientnet import synthetic_state_dict
from tests.pretrained.tiny_efficientnet import write_tiny_dataset
from vsa_tf import cli
from vsa_tf.data.features import FeatureStore
from vsa_tf.pretrained import conversion
from vsa_tf.pretrained import efficientnet_lite
from vsa_tf.pretrained import imagenet


@pytest.fixture
def tiny_lite0(tmp_path, monkeypatch):
    """Swaps Lite0 for the tiny stage table (same stem/head widths) and returns its converted weights file."""
    path = str(tmp_path / "tiny.weights.h5")
    conversion.convert_state_dict_to_weights_file(synthetic_state_dict(TINY_ARCHITECTURE), path, architecture=TINY_ARCHITECTURE)
    monkeypatch.setattr(efficientnet_lite, "build_efficientnet_lite0", build_tiny_lite0)
    return path


def test_cache_features_command_writes_a_feature_store(tmp_path, capsys, tiny_lite0):
    root = write_tiny_dataset(tmp_path)
    out = tmp_path / "features"
    code = cli.main([
        "cache-features", "--dataset", str(root / "dataset.json"), "--images", str(root / "images"),
        "--boxes", str(root / "boxes.json"), "--backbone", "efficientnet_lite0", "--weights", tiny_lite0,
        "--out", str(out), "--image-size", "64", "64", "--max-boxes", "2", "--splits", "train", "--batch-size", "2",
    ])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["count"], summary["regions"], summary["dims"]) == (2, 3, 1280)
    assert summary["backbone"] == "efficientnet_lite0" and summary["images_per_second"] > 0
    store = FeatureStore(str(out))
    assert store.filenames == ["a.png", "b.png"]
    features, mask = store.load(["b.png", "a.png"])
    np.testing.assert_array_equal(mask, [[1, 0, 0], [1, 1, 1]])
    assert features.shape == (2, 3, 1280) and np.all(features[0, 1:] == 0)


def test_cache_features_command_reports_a_missing_weights_file(tmp_path, capsys):
    root = write_tiny_dataset(tmp_path)
    code = cli.main([
        "cache-features", "--dataset", str(root / "dataset.json"), "--images", str(root / "images"),
        "--weights", str(tmp_path / "none.weights.h5"), "--out", str(tmp_path / "features"),
    ])
    assert code == 2
    assert "weights file not found" in capsys.readouterr().err
    assert not (tmp_path / "features" / "index.json").exists()


def write_state_dict_and_image(tmp_path, torch):
    state = synthetic_state_dict(None, num_classes=1000, seed=3)
    state_path = tmp_path / "lite0.pth"
    torch.save({name: torch.from_numpy(np.asarray(value)) for name, value in state.items()}, state_path)
    image_path = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8)).save(image_path)
    return str(state_path), str(image_path)


def test_convert_command_converts_and_classifies(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    state_path, image_path = write_state_dict_and_image(tmp_path, torch)
    out = tmp_path / "converted" / "lite0.weights.h5"
    code = cli.main(["convert-efficientnet-lite", "--state-dict", state_path, "--out", str(out), "--check-images", image_path])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert out.is_file() and result["parameters"] == 4694024 and "max_abs_logit_difference_vs_torch" not in result
    top = result["top5"][0]["top"]
    assert len(top) == 5 and top[0]["probability"] >= top[-1]["probability"]
    names = imagenet.imagenet_class_names()
    assert all(entry["name"] == names[entry["index"]] for entry in top)


@pytest.mark.slow
def test_convert_command_verifies_against_torch_and_top5_command_agrees(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    state_path, image_path = write_state_dict_and_image(tmp_path, torch)
    out = tmp_path / "lite0.weights.h5"
    code = cli.main(["convert-efficientnet-lite", "--state-dict", state_path, "--out", str(out), "--check-images", image_path, "--verify"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["max_abs_logit_difference_vs_torch"] < 1e-3 and result["same_top1_as_torch"]
    assert cli.main(["imagenet-top5", "--weights", str(out), image_path]) == 0
    assert json.loads(capsys.readouterr().out)[0]["top"] == result["top5"][0]["top"]


def test_convert_command_reports_a_missing_state_dict(tmp_path, capsys):
    code = cli.main(["convert-efficientnet-lite", "--state-dict", str(tmp_path / "none.pth"), "--out", str(tmp_path / "w.weights.h5")])
    assert code == 2
    assert "vsa-tf convert-efficientnet-lite: error:" in capsys.readouterr().err


def cache_features_arguments(root, weights, out, *extra):
    return [
        "cache-features", "--dataset", str(root / "dataset.json"), "--images", str(root / "images"),
        "--boxes", str(root / "boxes.json"), "--weights", weights, "--out", str(out), "--image-size", "64", "64",
        "--max-boxes", "2", "--batch-size", "1", "--shard-size", "1", *extra,
    ]


def test_cache_features_in_two_parts_and_merge_features(tmp_path, capsys, tiny_lite0):
    root = write_tiny_dataset(tmp_path)
    assert cli.main(cache_features_arguments(root, tiny_lite0, tmp_path / "one")) == 0
    capsys.readouterr()
    parts = tmp_path / "parts"
    assert cli.main(cache_features_arguments(root, tiny_lite0, parts, "--num-shards", "2", "--shard-index", "1")) == 0
    first = json.loads(capsys.readouterr().out)
    assert (first["complete"], first["written_shards"], first["missing_shards"]) == (
        False, 1, ["features-00000-of-00003.tfrecord", "features-00002-of-00003.tfrecord"]
    )
    assert cli.main(["merge-features", "--out", str(parts)]) == 2
    error = capsys.readouterr().err
    assert f"{parts}: cannot write index.json, 2 of 3 shard(s) missing or damaged" in error
    assert "features-00000-of-00003.tfrecord (records 0..0) not finished" in error

    assert cli.main(cache_features_arguments(root, tiny_lite0, parts, "--num-shards", "2", "--shard-index", "0")) == 0
    second = json.loads(capsys.readouterr().out)
    assert (second["complete"], second["written_shards"], second["shard_index"]) == (True, 2, 0)
    assert (parts / "index.json").read_text() == (tmp_path / "one" / "index.json").read_text()
    for shard in range(3):
        name = f"features-{shard:05d}-of-00003.tfrecord"
        assert (parts / name).read_bytes() == (tmp_path / "one" / name).read_bytes()
    assert cli.main(["merge-features", "--out", str(parts)]) == 0
    assert json.loads(capsys.readouterr().out)["count"] == 3
    assert FeatureStore(str(parts)).filenames == ["a.png", "b.png", "c.png"]


def test_cache_features_refuses_other_settings_in_the_same_folder(tmp_path, capsys, tiny_lite0):
    root = write_tiny_dataset(tmp_path)
    out = tmp_path / "features"
    assert cli.main(cache_features_arguments(root, tiny_lite0, out, "--num-shards", "3", "--shard-index", "0")) == 0
    assert cli.main(cache_features_arguments(root, tiny_lite0, out, "--max-boxes", "1")) == 2
    error = capsys.readouterr().err
    assert f"{out}: holds features cached with other settings (max_boxes: 2 there, 1 now)" in error
    assert "--restart" in error
    assert cli.main(cache_features_arguments(root, tiny_lite0, out, "--max-boxes", "1", "--restart")) == 0
    assert json.loads(capsys.readouterr().out)["extracted_images"] == 3
    assert FeatureStore(str(out)).regions == 2


def test_cache_features_in_crop_mode_differs_from_roi_align_and_is_a_setting(tmp_path, capsys, tiny_lite0):
    root = write_tiny_dataset(tmp_path)
    roi_out, crop_out = tmp_path / "roi", tmp_path / "crop"
    assert cli.main(cache_features_arguments(root, tiny_lite0, roi_out)) == 0
    capsys.readouterr()
    assert cli.main(cache_features_arguments(root, tiny_lite0, crop_out, "--region-mode", "crop", "--crop-size", "32")) == 0
    assert json.loads(capsys.readouterr().out)["region_mode"] == "crop"
    roi_features, roi_mask = FeatureStore(str(roi_out)).load(["b.png"])
    crop_features, crop_mask = FeatureStore(str(crop_out)).load(["b.png"])
    np.testing.assert_array_equal(roi_mask, crop_mask)
    assert crop_features.shape == roi_features.shape and not np.allclose(crop_features, roi_features, atol=1e-4)
    # Resuming the crop folder in the other mode is refused, naming the setting.
    assert cli.main(cache_features_arguments(root, tiny_lite0, crop_out)) == 2
    assert 'region_mode: "crop" there, "roi_align" now' in capsys.readouterr().err


def test_cache_features_float16_store_reads_back_the_float32_values_rounded(tmp_path, capsys, tiny_lite0):
    root = write_tiny_dataset(tmp_path)
    assert cli.main(cache_features_arguments(root, tiny_lite0, tmp_path / "f32")) == 0
    assert cli.main(cache_features_arguments(root, tiny_lite0, tmp_path / "f16", "--dtype", "float16")) == 0
    full, half = FeatureStore(str(tmp_path / "f32")), FeatureStore(str(tmp_path / "f16"))
    assert (full.dtype, half.dtype) == ("float32", "float16")
    names = full.filenames
    full_features, full_mask = full.load(names)
    half_features, half_mask = half.load(names)
    np.testing.assert_array_equal(full_mask, half_mask)
    assert half_features.dtype == np.float32
    np.testing.assert_array_equal(half_features, full_features.astype(np.float16).astype(np.float32))
    shard_bytes = lambda folder: sum(path.stat().st_size for path in folder.glob("*.tfrecord"))
    assert shard_bytes(tmp_path / "f16") < 0.6 * shard_bytes(tmp_path / "f32")
