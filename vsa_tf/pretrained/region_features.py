"""Region features from the frozen pretrained EfficientNet-Lite0: one pass per image, then RoIAlign."""

import tensorflow as tf

from vsa_tf.layers.roi_pooling import RoIAlign
from vsa_tf.pretrained import efficientnet_lite


def build_region_feature_extractor(weights_path, pool_size=2, feature_model=None):
    """A frozen EfficientNet-Lite0 + RoIAlign callable for `vsa_tf.data.features.write_region_features`.

    Each image runs through the network once; every region (whole image + boxes) is pooled from the
    `[B, H / 32, W / 32, 1280]` map with RoIAlign (`pool_size` x `pool_size` bins, averaged): the paper's
    fixed CNN, with the learned projection left to the models.

    Args:
        weights_path: `.weights.h5` file from `vsa_tf.pretrained.conversion.convert_state_dict_to_weights_file`.
        pool_size: RoIAlign bins per side before averaging.
        feature_model: optional already-built feature model (tests pass a tiny one); overrides `weights_path`.

    Returns:
        A function: pixel-mode batch dict (`images` [B, H, W, 3] 0..255, `boxes` [B, R, 4] rel_yxyx,
        `region_mask` [B, R]) -> float32 region features `[B, R, 1280]` (zero rows for padding).
    """
    if feature_model is None:
        feature_model = efficientnet_lite.build_efficientnet_lite0(weights_path=weights_path, include_top=False)
    feature_model.trainable = False
    roi_align = RoIAlign(pool_size=pool_size, pooling="average", name="roi_align")

    # A compiled graph per batch shape: eager Keras calls would re-dispatch every layer per batch.
    @tf.function(reduce_retracing=True)
    def extract(images, boxes, region_mask):
        feature_map = feature_model(images, training=False)  # [B, h, w, 1280]
        return roi_align(feature_map, boxes, region_mask=region_mask)  # [B, R, 1280]

    def extractor(batch):
        return extract(batch["images"], batch["boxes"], batch["region_mask"])

    return extractor
