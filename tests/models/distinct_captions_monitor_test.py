import io

import numpy as np
import pytest
import tensorflow as tf

from vsa_tf.config import ImageEncoderConfig
from vsa_tf.models.caption_model import CaptionModel
from vsa_tf.models.distinct_captions_monitor import DistinctCaptionsMonitor, distinct_token_fraction


def _cached_captioner():
    image_encoder = ImageEncoderConfig(mode="cached", feature_dim=6)
    return CaptionModel(vocabulary_size=10, hidden_dim=8, embedding_dim=4, image_encoder=image_encoder).build_from_dummy()


def test_distinct_token_fraction_cuts_each_caption_at_its_end():
    tokens = np.array([[4, 5, 3, 0], [4, 5, 3, 7], [4, 6, 3, 0], [4, 5, 0, 0]])
    # rows 0, 1 and 3 are the caption "4 5" (what follows END or padding does not count)
    assert distinct_token_fraction(tokens) == 2 / 4
    with pytest.raises(ValueError, match=r"non-empty \[N, L\] array, received shape \(3,\)"):
        distinct_token_fraction(np.array([1, 2, 3]))


def test_monitor_warns_when_every_image_gets_the_same_caption():
    # A constant image: whatever the model learns, its captions cannot depend on the image.
    features = np.ones((8, 1, 6), "float32")
    tokens = np.array([[2, 4 + index % 3, 5, 3, 0] for index in range(8)], "int32")
    batches = tf.data.Dataset.from_tensors({"region_features": features, "region_mask": np.ones((8, 1), bool), "tokens": tokens})
    model = _cached_captioner()
    model.compile_for_training(learning_rate=1e-2)
    stream = io.StringIO()
    monitor = DistinctCaptionsMonitor({"region_features": features[:4]}, max_length=5, threshold=0.5, stream=stream)
    history = model.fit(batches, epochs=2, verbose=0, callbacks=[monitor])
    assert history.history["distinct_fraction"] == [0.25, 0.25]
    assert monitor.fractions == [0.25, 0.25]
    assert stream.getvalue().count("warning: epoch") == 2
    assert "only 1 distinct greedy captions for 4 val images (fraction 0.25 < 0.50)" in stream.getvalue()


def test_monitor_stays_quiet_above_the_threshold_and_checks_its_arguments():
    features = np.random.default_rng(0).normal(size=(4, 1, 6)).astype("float32")
    model = _cached_captioner()
    stream = io.StringIO()
    monitor = DistinctCaptionsMonitor({"region_features": features}, max_length=4, threshold=0.0, stream=stream)
    monitor.set_model(model)
    logs = {}
    monitor.on_epoch_end(0, logs)
    assert 0.25 <= logs["distinct_fraction"] <= 1.0 and stream.getvalue() == ""
    with pytest.raises(ValueError, match=r"threshold must be in \[0, 1\], received 2"):
        DistinctCaptionsMonitor({"region_features": features}, threshold=2)
    with pytest.raises(ValueError, match="non-empty batch dict, received list"):
        DistinctCaptionsMonitor([features])
