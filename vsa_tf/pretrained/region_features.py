"""Region features from the frozen pretrained EfficientNet-Lite0: RoIAlign on one map, or one pass per crop."""

import tensorflow as tf

from vsa_tf.layers.roi_pooling import RoIAlign
from vsa_tf.pretrained import efficientnet_lite

REGION_MODES = ("roi_align", "crop")


def build_region_feature_extractor(weights_path, pool_size=2, feature_model=None, region_mode="roi_align", crop_size=112):
    """A frozen EfficientNet-Lite0 region-feature callable for `vsa_tf.data.features.write_region_features`.

    Two ways to a region's 1280-d feature:

    - "roi_align" (default): each image runs through the network once; every region (whole image +
      boxes) is pooled from the `[B, H / 32, W / 32, 1280]` map with RoIAlign (`pool_size` x `pool_size`
      bins, averaged). One network pass per image; a small box sees one or two cells of a map whose
      cells also see its surroundings.
    - "crop": the paper's R-CNN features (section 3.1.1: each detection's crop through the CNN): every
      region is cropped from the image, resized to `crop_size` x `crop_size` (`tf.image.crop_and_resize`,
      bilinear) and run through the network on its own, its map averaged. One pass per region (20 per
      image at the paper's 19 boxes + whole image), each on `crop_size`-pixel crops.

    The learned projection (W_m of eq. 1) is left to the models in both modes.

    Args:
        weights_path: `.weights.h5` file from `vsa_tf.pretrained.conversion.convert_state_dict_to_weights_file`.
        pool_size: RoIAlign bins per side before averaging ("roi_align").
        feature_model: optional already-built feature model (tests pass a tiny one); overrides `weights_path`.
        region_mode: one of `REGION_MODES`.
        crop_size: side of the resized crops ("crop"); multiples of 32 keep the map whole.

    Returns:
        A function: pixel-mode batch dict (`images` [B, H, W, 3] 0..255, `boxes` [B, R, 4] rel_yxyx,
        `region_mask` [B, R]) -> float32 region features `[B, R, 1280]` (zero rows for padding).

    Reference:
        Karpathy & Fei-Fei 2015, section 3.1.1 and eq. 1 (v = W_m[CNN_θc(I_b)] + b_m over the top 19
        detections and the whole image).
    """
    if region_mode not in REGION_MODES:
        raise ValueError(f"region_mode must be one of {REGION_MODES}, received {region_mode!r}")
    if region_mode == "crop" and int(crop_size) < efficientnet_lite.FEATURE_STRIDE:
        raise ValueError(f"crop_size must be >= {efficientnet_lite.FEATURE_STRIDE} (the network's stride), received {crop_size!r}")
    if feature_model is None:
        feature_model = efficientnet_lite.build_efficientnet_lite0(weights_path=weights_path, include_top=False)
    feature_model.trainable = False
    roi_align = RoIAlign(pool_size=pool_size, pooling="average", name="roi_align")
    crop_size = int(crop_size)

    # A compiled graph per batch shape: eager Keras calls would re-dispatch every layer per batch.
    @tf.function(reduce_retracing=True)
    def extract(images, boxes, region_mask):
        feature_map = feature_model(images, training=False)  # [B, h, w, 1280]
        return roi_align(feature_map, boxes, region_mask=region_mask)  # [B, R, 1280]

    @tf.function(reduce_retracing=True)
    def extract_crops(images, boxes, region_mask):
        batch_size, num_regions = tf.shape(boxes)[0], tf.shape(boxes)[1]
        # Only the real regions are cropped (padding rows cost nothing); rows come back in place below.
        real = tf.where(region_mask)  # [N, 2] (image, region)
        crops = tf.image.crop_and_resize(
            images, tf.gather_nd(boxes, real), tf.cast(real[:, 0], tf.int32), (crop_size, crop_size)
        )
        features = tf.reduce_mean(feature_model(crops, training=False), axis=(1, 2))  # [N, 1280]
        shape = tf.stack([batch_size, num_regions, tf.shape(features)[-1]])
        return tf.scatter_nd(real, features, tf.cast(shape, tf.int64))

    def extractor(batch):
        function = extract_crops if region_mode == "crop" else extract
        return function(batch["images"], batch["boxes"], batch["region_mask"])

    return extractor
