"""In-graph preprocessing of the serving signatures: image bytes and pixel boxes -> model batches.

The image side calls the training pipeline's own functions (`vsa_tf.data.pipelines.decode_and_resize_bytes`,
which the pipeline's `decode_and_resize` runs on the file's bytes, and `vsa_tf.data.boxes.region_boxes` /
`normalize_boxes`), so there is no train/serve skew: `tf.io.decode_image` (3 channels) ->
`tf.image.resize` to the run's image size (bilinear, stretched) -> pixel boxes normalised by the decoded
size to `rel_yxyx`, whole image as region 0. Only the input checks are added here.

Raw `tf` (not `keras.ops`): these functions run inside exported signatures traced without
autograph, so per-image work is an explicit `tf.map_fn`.
"""

import tensorflow as tf

from vsa_tf.data import boxes as boxes_lib
from vsa_tf.data.pipelines import decode_and_resize_bytes  # re-exported: the one shared image decode

# Input specs shared by the signatures: encoded images and client pixel boxes (-1 rows = padding).
IMAGE_BYTES_SPEC = tf.TensorSpec([None], tf.string, name="image_bytes")
BOXES_SPEC = tf.TensorSpec([None, None, 4], tf.float32, name="boxes")
_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def check_image_bytes(image_bytes, index):
    """An Assert op failing with InvalidArgument unless ``image_bytes`` starts like a JPEG or PNG file."""
    is_jpeg = tf.equal(tf.strings.substr(image_bytes, 0, len(_JPEG_MAGIC)), _JPEG_MAGIC)
    is_png = tf.equal(tf.strings.substr(image_bytes, 0, len(_PNG_MAGIC)), _PNG_MAGIC)
    return tf.debugging.Assert(
        tf.logical_or(is_jpeg, is_png),
        [
            "image_bytes: element",
            index,
            "is not a JPEG or PNG image; its first bytes are",
            tf.strings.substr(image_bytes, 0, 8),
        ],
        summarize=8,
    )


def decode_images(image_bytes, image_size):
    """tf.string [B] -> (images float32 [B, H, W, 3], heights int32 [B], widths int32 [B]).

    Raises (at run time) InvalidArgumentError naming the element when one is not a JPEG or PNG, or
    declares more than `image_limits.MAX_IMAGE_PIXELS` pixels (the decompression-bomb limit `vsa-tf
    validate` applies to dataset files; checked from its header before decoding, by
    `decode_and_resize_bytes`).
    """
    image_bytes = tf.convert_to_tensor(image_bytes, tf.string)
    image_size = tuple(int(size) for size in image_size)

    @tf.autograph.experimental.do_not_convert  # plain graph code; eager map_fn would otherwise autograph it
    def decode_one(inputs):
        encoded, index = inputs
        with tf.control_dependencies([check_image_bytes(encoded, index)]):
            encoded = tf.identity(encoded)
        return decode_and_resize_bytes(encoded, image_size, name=index)

    indices = tf.range(tf.shape(image_bytes)[0])
    return tf.map_fn(
        decode_one,
        (image_bytes, indices),
        fn_output_signature=(
            tf.TensorSpec([image_size[0], image_size[1], 3], tf.float32),
            tf.TensorSpec([], tf.int32),
            tf.TensorSpec([], tf.int32),
        ),
    )


def pad_empty_batch(tensor):
    """[B, ...] -> [max(B, 1), ...]: one zero example is added to an empty batch.

    Convolutions on an empty batch fail on CPU (oneDNN); the signatures run the model on the
    padded batch and slice its outputs back to the first B rows, so an empty request gets empty
    outputs.
    """
    missing = tf.maximum(1 - tf.shape(tensor)[0], 0)
    paddings = tf.concat([[[0, missing]], tf.zeros([tf.rank(tensor) - 1, 2], tf.int32)], axis=0)
    padded = tf.pad(tensor, paddings)
    padded.set_shape(tf.TensorShape([None]).concatenate(tensor.shape[1:]))
    return padded


def valid_box_mask(pixel_boxes):
    """float [..., 4] pixel `x0, y0, x1, y1` -> bool [...]: real boxes (x1 > x0 and y1 > y0).

    Padding rows (-1 everywhere, as clients send them) are degenerate, hence invalid.
    """
    x0, y0, x1, y1 = tf.unstack(tf.cast(pixel_boxes, tf.float32), axis=-1)
    return tf.logical_and(x1 > x0, y1 > y0)


def compact_boxes(pixel_boxes, max_boxes):
    """[B, R, 4] pixel boxes with padding rows anywhere -> ([B, max_boxes, 4] real boxes first, counts [B]).

    Keeps the first ``max_boxes`` real boxes in their given order (best first), like the training
    pipeline's top-K; the rest is zero padding.
    """
    pixel_boxes = tf.cast(pixel_boxes, tf.float32)
    valid = valid_box_mask(pixel_boxes)  # [B, R]
    # Stable sort of "invalid" keys puts the real boxes first, in order.
    order = tf.argsort(tf.cast(tf.logical_not(valid), tf.int32), axis=1, stable=True)
    ordered = tf.gather(pixel_boxes, order, batch_dims=1)
    counts = tf.minimum(tf.reduce_sum(tf.cast(valid, tf.int32), axis=1), max_boxes)
    ordered = ordered[:, :max_boxes]
    missing = max_boxes - tf.shape(ordered)[1]
    ordered = tf.pad(ordered, [[0, 0], [0, missing], [0, 0]])
    keep = tf.range(max_boxes)[None, :] < counts[:, None]
    ordered = tf.where(keep[:, :, None], ordered, tf.zeros_like(ordered))
    ordered.set_shape([None, max_boxes, 4])
    return ordered, counts


def region_batch(pixel_boxes, heights, widths, max_boxes):
    """Client pixel boxes -> the model's regions: whole image + top-K boxes, as in training.

    Args:
        pixel_boxes: float [B, R, 4] pixel `x0, y0, x1, y1`, padding rows -1 (or any degenerate box).
        heights, widths: int32 [B], the decoded image sizes.
        max_boxes: K, the run's `DataConfig.max_boxes`.

    Returns:
        (boxes float32 [B, K + 1, 4] rel_yxyx, region_mask bool [B, K + 1], kept pixel boxes [B, K, 4]).
    """
    kept, counts = compact_boxes(pixel_boxes, max_boxes)

    @tf.autograph.experimental.do_not_convert
    def one_image(inputs):
        boxes, count, height, width = inputs
        return boxes_lib.region_boxes(boxes, count, height, width)

    boxes, mask = tf.map_fn(
        one_image,
        (kept, counts, heights, widths),
        fn_output_signature=(tf.TensorSpec([max_boxes + 1, 4], tf.float32), tf.TensorSpec([max_boxes + 1], tf.bool)),
    )
    return boxes, mask, kept


def whole_image_regions(batch_size, num_regions=1):
    """Regions of images without boxes: `[0, 0, 1, 1]` as region 0, then padding (as the pipeline)."""
    boxes = tf.concat(
        [tf.ones([batch_size, 1, 1]) * tf.constant([[boxes_lib.WHOLE_IMAGE_BOX]]), tf.zeros([batch_size, num_regions - 1, 4])],
        axis=1,
    )
    mask = tf.tile(tf.range(num_regions)[None, :] < 1, tf.stack([batch_size, 1]))
    return boxes, mask


def normalized_boxes(pixel_boxes, heights, widths):
    """Pixel boxes [B, R, 4] -> rel_yxyx [B, R, 4] by each image's decoded size (`boxes.normalize_boxes`)."""
    batch_size = tf.shape(pixel_boxes)[0]

    @tf.autograph.experimental.do_not_convert
    def one_image(inputs):
        boxes, height, width = inputs
        return boxes_lib.normalize_boxes(boxes, height, width)

    # The box count is dynamic, so map_fn cannot stack an empty batch: run on a padded one.
    normalized = tf.map_fn(
        one_image,
        (pad_empty_batch(tf.cast(pixel_boxes, tf.float32)), pad_empty_batch(heights), pad_empty_batch(widths)),
        fn_output_signature=tf.TensorSpec([None, 4], tf.float32),
    )
    return normalized[:batch_size]
