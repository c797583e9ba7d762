"""ImageNet classification with the converted EfficientNet-Lite0: the sanity check of a conversion."""

import os

import numpy as np
from PIL import Image

from vsa_tf.pretrained import efficientnet_lite


def imagenet_class_names():
    """The 1,000 ImageNet-1k class names in index order, from a list bundled with tensorflow-datasets.

    Returns `["class 0", ...]` when tensorflow-datasets is not installed (it is not a dependency).
    """
    try:
        from tensorflow_datasets.datasets.siscore import labels
    except ImportError:
        return [f"class {index}" for index in range(efficientnet_lite.NUM_IMAGENET_CLASSES)]
    return list(labels.IMAGENET_LABELS_LIST)


def top_classes(classifier, images, k=5, class_names=None):
    """ImageNet top-k predictions.

    Args:
        classifier: `efficientnet_lite.build_efficientnet_lite0(weights, include_top=True)`.
        images: float array `[B, H, W, 3]` of pixels in 0..255.
        k: classes per image.
        class_names: list of names by index; defaults to `imagenet_class_names()`.

    Returns:
        list (per image) of k `(class_index, class_name, probability)`, most probable first.
    """
    class_names = imagenet_class_names() if class_names is None else class_names
    logits = np.asarray(classifier.predict(np.asarray(images, np.float32), verbose=0))
    logits = logits - logits.max(axis=-1, keepdims=True)
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)
    results = []
    for row in probabilities:
        best = np.argsort(-row)[:k]
        results.append([(int(index), class_names[index], float(row[index])) for index in best])
    return results


def load_images(paths, image_size=(224, 224)):
    """Image files -> float32 `[N, height, width, 3]` pixels in 0..255, stretched to `image_size`."""
    arrays = []
    for path in paths:
        if not os.path.isfile(path):
            raise ValueError(f"Image file not found: {path!r}")
        with Image.open(path) as image:
            resized = image.convert("RGB").resize((int(image_size[1]), int(image_size[0])), Image.BILINEAR)
            arrays.append(np.asarray(resized, dtype=np.float32))
    return np.stack(arrays)


def classify_images(weights_path, image_paths, k=5, image_size=(224, 224)):
    """ImageNet top-k of image files with converted Lite0 weights (the sanity check of a conversion).

    Returns:
        list of `{"image": path, "top": [{"index", "name", "probability"}, ...]}`.
    """
    classifier = efficientnet_lite.build_efficientnet_lite0(weights_path=weights_path, include_top=True)
    predictions = top_classes(classifier, load_images(image_paths, image_size), k=k)
    return [
        {
            "image": path,
            "top": [
                {"index": index, "name": name, "probability": round(probability, 4)}
                for index, name, probability in ranked
            ],
        }
        for path, ranked in zip(image_paths, predictions)
    ]
