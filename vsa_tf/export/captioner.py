"""The `captioner` SavedModel: image bytes in, beam-searched sentences out, all in one graph.

Signatures (pixel mode):

- `serving_default`: `image_bytes` tf.string [B] (JPEG/PNG) -> `captions` tf.string [B, k] and
  `scores` float32 [B, k] (summed log-probabilities, length-normalised if the sampler is), best first.
- `caption_regions`: `image_bytes` [B] + `boxes` float32 [B, N, 4] pixel x0, y0, x1, y1 (rows of -1
  are padding) -> `captions` [B, N, k], `scores` [B, N, k] and `box_mask` bool [B, N]; each box is
  pooled from the image's feature map (one backbone pass per image) and captioned on its own, as in
  the region-captioning training pairs. Padding boxes get empty captions and score 0.

- `caption_proposals` (exported with a proposals run, `vsa-tf export --proposals-run`): `image_bytes`
  [B] alone -> `captions` [B, K, k], `scores` [B, K, k], `box_mask` bool [B, K], and the proposal
  boxes captioned: `boxes` float32 [B, K, 4] pixel x0, y0, x1, y1 of the original image, best first
  (padding rows -1), `box_scores` float32 [B, K] objectness (padding 0). K is the proposal run's
  `max_proposals`. The proposals come from the same feature map the regions are pooled from when
  the proposal run's backbone is the captioner's (`vsa_tf.export.proposals.ProposalStage`), and each
  box is captioned as `caption_regions` captions it: sending these boxes to `caption_regions` gives
  the same captions.

A cached-feature model takes `region_features` float32 [B, D] (`serving_default`) or [B, N, D] plus
`region_mask` bool [B, N] (`caption_regions`) in place of the bytes and boxes.

The image is decoded and resized exactly as in training (`vsa_tf.export.preprocessing`), encoded
once, and the sampler's `tf.while_loop` (`vsa_tf.samplers.BeamSampler`) runs over the decoder's
`next(tokens, state, step)`; token ids become words with a `tf.gather` on the vocabulary and a
ragged join, the same rule as `Vocabulary.decode` (skip padding/START, stop at END).
"""

import tensorflow as tf

from vsa_tf.data import text
from vsa_tf.export import layout, preprocessing
from vsa_tf.export.proposals import ProposalStage
from vsa_tf.samplers.beam import BeamSampler


def tokens_to_text(tokens, vocabulary_tokens):
    """int [..., L] token ids -> tf.string [...] sentences (words joined by spaces).

    Padding and START are skipped and decoding stops at the first END, as `Vocabulary.decode`.
    """
    tokens = tf.cast(tokens, tf.int32)
    vocabulary_tokens = tf.convert_to_tensor(vocabulary_tokens, tf.string)
    is_end = tf.equal(tokens, text.END_ID)
    before_end = tf.equal(tf.cumsum(tf.cast(is_end, tf.int32), axis=-1, exclusive=True), 0)
    keep = before_end & tf.logical_not(is_end) & tf.not_equal(tokens, text.PAD_ID) & tf.not_equal(tokens, text.START_ID)
    unknown = tf.constant(text.UNKNOWN_TOKEN)
    in_range = (tokens >= 0) & (tokens < tf.shape(vocabulary_tokens)[0])
    words = tf.where(in_range, tf.gather(vocabulary_tokens, tf.where(in_range, tokens, 0)), unknown)
    # Flattened to [N, L] so that the ragged join gives a dense [N] (a rank-3 join stays ragged).
    leading_shape = tf.shape(tokens)[:-1]
    length = tf.shape(tokens)[-1]
    words = tf.reshape(words, tf.stack([-1, length]))
    keep = tf.reshape(keep, tf.stack([-1, length]))
    sentences = tf.strings.reduce_join(tf.ragged.boolean_mask(words, keep), axis=-1, separator=" ")
    return tf.reshape(sentences, leading_shape)


class CaptionerSignatures:
    """The captioner's serving functions over a `CaptionModel` and its vocabulary.

    Args:
        model: a built `vsa_tf.models.caption_model.CaptionModel`.
        vocabulary: the run's `vsa_tf.data.text.Vocabulary`.
        image_size: (height, width) of the training pipeline (`DataConfig.image_size`).
        beam_size: k, the number of beams (and of captions returned per image).
        max_length: the most tokens generated (END included).
        length_normalization: the beam sampler's length-penalty exponent (0 = none).
        feature_mode: "pixels" (image bytes in) or "cached" (region features in).
        feature_dim: D of cached features (cached mode).
        proposal_model: optional built `ProposalModel` (a proposals run's model): adds the
            `caption_proposals` signature. Its `image_size` must be ``image_size``.
    """

    def __init__(
        self,
        model,
        vocabulary,
        image_size,
        beam_size=7,
        max_length=16,
        length_normalization=0.0,
        feature_mode="pixels",
        feature_dim=None,
        proposal_model=None,
    ):
        if feature_mode not in ("pixels", "cached"):
            raise ValueError(f"feature_mode must be 'pixels' or 'cached'; received {feature_mode!r}")
        if feature_mode == "cached" and not feature_dim:
            raise ValueError(f"feature_mode='cached' needs feature_dim; received {feature_dim!r}")
        self.model = model
        self.vocabulary = vocabulary
        self.image_size = tuple(int(size) for size in image_size)
        self.beam_size = int(beam_size)
        self.max_length = int(max_length)
        self.length_normalization = float(length_normalization)
        self.feature_mode = feature_mode
        self.feature_dim = None if feature_dim is None else int(feature_dim)
        self.sampler = BeamSampler(
            num_beams=self.beam_size, max_length=self.max_length, length_normalization=self.length_normalization
        )
        self.vocabulary_tokens = list(vocabulary.tokens)
        self.proposals = None
        if proposal_model is not None:
            extractor = model.feature_extractor if feature_mode == "pixels" else None
            self.proposals = ProposalStage(proposal_model, extractor, self.image_size, model_name="captioner")

    def caption_features(self, features):
        """CNN features [N, D] -> (captions tf.string [N, k], scores float32 [N, k])."""
        decoder = self.model.decoder
        state = decoder.initial_state(features, training=False)  # the image is encoded once, before the loop
        start = tf.fill(tf.shape(features)[:1], tf.constant(text.START_ID, tf.int32))
        tokens, scores = self.sampler(decoder.next, state, start)  # [N, k, L], [N, k]
        return tokens_to_text(tokens, self.vocabulary_tokens), scores

    def _caption_regions(self, region_features, box_mask):
        # region_features [B, N, D] -> captions [B, N, k]; padding boxes get "" and score 0.
        shape = tf.shape(region_features)
        flat = tf.reshape(region_features, tf.stack([shape[0] * shape[1], shape[2]]))
        captions, scores = self.caption_features(flat)
        out_shape = tf.stack([shape[0], shape[1], self.beam_size])
        captions = tf.reshape(captions, out_shape)
        scores = tf.reshape(scores, out_shape)
        captions = tf.where(box_mask[:, :, None], captions, tf.constant(""))
        scores = tf.where(box_mask[:, :, None], scores, tf.zeros_like(scores))
        return {"captions": captions, "scores": scores, "box_mask": box_mask}

    def endpoints(self):
        """{name: (function, input_signature)} for `keras.export.ExportArchive.add_endpoint`."""
        if self.feature_mode == "cached":
            return self._cached_endpoints()

        def serving_default(image_bytes):
            batch_size = tf.shape(image_bytes)[0]
            images, _, _ = preprocessing.decode_images(image_bytes, self.image_size)
            images = preprocessing.pad_empty_batch(images)
            boxes, region_mask = preprocessing.whole_image_regions(tf.shape(images)[0])
            features = self.model.image_features({"images": images, "boxes": boxes, "region_mask": region_mask})
            captions, scores = self.caption_features(tf.convert_to_tensor(features)[:batch_size])
            return {"captions": captions, "scores": scores}

        def caption_regions(image_bytes, boxes):
            images, heights, widths = preprocessing.decode_images(image_bytes, self.image_size)
            box_mask = preprocessing.valid_box_mask(boxes)  # [B, N]
            normalized = preprocessing.normalized_boxes(boxes, heights, widths)
            normalized = tf.where(box_mask[:, :, None], normalized, tf.zeros_like(normalized))
            batch_size = tf.shape(image_bytes)[0]
            region_features = self.model.feature_extractor(
                {
                    "images": preprocessing.pad_empty_batch(images),
                    "boxes": preprocessing.pad_empty_batch(normalized),
                    "region_mask": preprocessing.pad_empty_batch(box_mask),
                },
                training=False,
            )  # [B, N, D], one backbone pass per image
            return self._caption_regions(tf.convert_to_tensor(region_features)[:batch_size], box_mask)

        endpoints = {
            "serving_default": (serving_default, [preprocessing.IMAGE_BYTES_SPEC]),
            "caption_regions": (caption_regions, [preprocessing.IMAGE_BYTES_SPEC, preprocessing.BOXES_SPEC]),
        }
        if self.proposals is not None:
            endpoints["caption_proposals"] = (self._caption_proposals, [preprocessing.IMAGE_BYTES_SPEC])
        return endpoints

    def _caption_proposals(self, image_bytes):
        batch_size = tf.shape(image_bytes)[0]
        images, heights, widths = preprocessing.decode_images(image_bytes, self.image_size)
        # The whole stage runs on a batch of at least one image (see `pad_empty_batch`), sliced at the end.
        images, heights, widths = (preprocessing.pad_empty_batch(value) for value in (images, heights, widths))
        proposal_map, region_map = self.proposals.feature_maps(images)  # one backbone pass where shared
        proposals = self.proposals.propose(proposal_map, heights, widths)  # original-image pixels [B, K, 4]
        box_mask = proposals["box_mask"]
        normalized = preprocessing.normalized_boxes(proposals["boxes"], heights, widths)  # as caption_regions
        normalized = tf.where(box_mask[:, :, None], normalized, tf.zeros_like(normalized))
        region_features = self.proposals.region_features(region_map, normalized, box_mask)  # [B, K, D]
        outputs = self._caption_regions(tf.convert_to_tensor(region_features)[:batch_size], box_mask[:batch_size])
        outputs["boxes"] = proposals["boxes"][:batch_size]
        outputs["box_scores"] = proposals["box_scores"][:batch_size]
        return outputs

    def _cached_endpoints(self):
        def serving_default(region_features):
            captions, scores = self.caption_features(region_features)
            return {"captions": captions, "scores": scores}

        def caption_regions(region_features, region_mask):
            return self._caption_regions(region_features, tf.cast(region_mask, tf.bool))

        return {
            "serving_default": (serving_default, [tf.TensorSpec([None, self.feature_dim], tf.float32, name="region_features")]),
            "caption_regions": (
                caption_regions,
                [
                    tf.TensorSpec([None, None, self.feature_dim], tf.float32, name="region_features"),
                    tf.TensorSpec([None, None], tf.bool, name="region_mask"),
                ],
            ),
        }


def export_captioner(signatures, path):
    """Writes the captioner SavedModel at ``path`` with `keras.export.ExportArchive` (no autograph)."""
    resources = signatures.proposals.tracked_layers if signatures.proposals is not None else ()
    return layout.write_archive(signatures.model, signatures.endpoints(), path, resources=resources)
