import numpy as np
import pytest
from PIL import Image

from tests.pretrained.tiny_efficientnet import NUM_CLASSES
from tests.pretrained.tiny_efficientnet import build_tiny_lite0
from tests.pretrained.tiny_efficientnet import tiny_classifier
from tests.pretrained.tiny_efficientnet import tiny_state_dict
from tests.pretrained.tiny_efficientnet import write_tiny_weights
from vsa_tf.pretrained import efficientnet_lite
from vsa_tf.pretrained import imagenet


def test_top_classes_ranks_softmax_probabilities():
    classifier = tiny_classifier(tiny_state_dict())
    images = np.random.default_rng(3).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    names = [f"name{index}" for index in range(NUM_CLASSES)]
    ranked = imagenet.top_classes(classifier, images, k=3, class_names=names)
    logits = classifier.predict(images, verbose=0)
    for row, predictions in zip(logits, ranked):
        assert [index for index, _, _ in predictions] == list(np.argsort(-row)[:3])
        assert [name for _, name, _ in predictions] == [names[index] for index, _, _ in predictions]
        probabilities = np.exp(row - row.max()) / np.exp(row - row.max()).sum()
        np.testing.assert_allclose([p for _, _, p in predictions], probabilities[np.argsort(-row)[:3]], rtol=1e-5)


def test_imagenet_class_names_have_known_indices():
    names = imagenet.imagenet_class_names()
    assert len(names) == 1000
    if names[0] != "class 0":  # tensorflow-datasets present
        assert names[207] == "golden retriever" and names[208] == "Labrador retriever"


def test_load_images_stretches_to_the_size_and_reports_missing_files(tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(np.full((50, 70, 3), 200, np.uint8)).save(path)
    images = imagenet.load_images([str(path), str(path)], (32, 48))
    assert images.shape == (2, 32, 48, 3) and images.dtype == np.float32
    np.testing.assert_array_equal(images, 200.0)
    with pytest.raises(ValueError, match=r"Image file not found: '.*none.png'"):
        imagenet.load_images([str(tmp_path / "none.png")])


def test_classify_images_reports_the_top_classes_of_each_file(tmp_path, monkeypatch):
    weights_path = write_tiny_weights(tmp_path / "tiny.weights.h5")
    monkeypatch.setattr(efficientnet_lite, "build_efficientnet_lite0", build_tiny_lite0)
    path = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8)).save(path)
    results = imagenet.classify_images(weights_path, [str(path)], k=3, image_size=(64, 64))
    assert [result["image"] for result in results] == [str(path)]
    top = results[0]["top"]
    assert len(top) == 3 and top[0]["probability"] >= top[1]["probability"] >= top[2]["probability"]
    names = imagenet.imagenet_class_names()
    assert all(entry["name"] == names[entry["index"]] for entry in top)
