"""The `aligner` SavedModel: region and word embeddings, image-sentence scores and MRF alignments.

Signatures (pixel mode; a cached-feature model takes `region_features` [B, R, D] float32 and
`region_mask` [B, R] bool in place of `image_bytes` and `boxes`, and has no `region_boxes` outputs):

- `encode_image` (also `serving_default`): `image_bytes` tf.string [B] (JPEG/PNG) ->
  `region_embeddings` float32 [B, R, h], `region_mask` bool [B, R], `region_boxes` float32 [B, R, 4]
  (pixels x0, y0, x1, y1 of each region, region 0 the whole image, padding -1). R = max_boxes + 1.
- `encode_image_boxes`: `image_bytes` + `boxes` float32 [B, N, 4] pixel x0, y0, x1, y1 (rows of -1
  are padding; the first max_boxes real boxes are kept, as in training) -> the same outputs.
- `encode_text`: `sentences` tf.string [B] raw text -> `word_embeddings` float32 [B, T, h],
  `word_mask` bool [B, T], `words` tf.string [B, T] (T = max_words; longer sentences are truncated).
- `score`: `image_bytes` [B], `boxes` [B, N, 4], `sentences` tf.string [B, S] -> `scores` float32
  [B, S], S_kl = Σ_t max_i v_iᵀ s_t (the model's own score, eq. 7 or 8) of image b with each of its
  row's sentences. Every input is batched along axis 0 so TF Serving's server-side batching can merge
  requests; for the full images × sentences matrix send the same sentence list with every image
  (`vsa_tf.serving.client` does): repeated sentences are encoded once per call.
- `align`: `image_bytes` [B], `boxes` [B, N, 4], `sentences` tf.string [B] (one per image), `beta`
  float32 [B] -> `words` [B, T], `word_mask` [B, T], `region_index` int32 [B, T] (the MRF labelling of
  eqs. 10-12, -1 at padding words), `word_region_scores` float32 [B, T, R] (v_iᵀ s_t, 0 at padding),
  the snippets (maximal runs of words on one region) `snippet_start`, `snippet_end` (exclusive),
  `snippet_region` int32 [B, T] (-1 padded), `snippet_count` int32 [B], and `region_boxes` /
  `snippet_boxes` float32 pixels.

Exported with a proposals run (`vsa-tf export --proposals-run`), three more signatures take image
bytes alone and pool their regions from the proposals (`vsa_tf.export.proposals.ProposalStage`; one
backbone pass per image where the proposal run's backbone is the aligner's): region 0 is the whole
image, then the first max_boxes proposals, best first, as a boxes file of the proposals gives in
training.

- `encode_image_proposals`: `image_bytes` [B] -> the outputs of `encode_image_boxes` (`region_boxes`
  are the proposal boxes used, original-image pixels) plus `region_scores` float32 [B, R] (each
  region's objectness; -1 for region 0, the whole image, and for padding).
- `score_proposals`: `image_bytes` [B], `sentences` tf.string [B, S] -> `scores` [B, S] (as `score`).
- `align_proposals`: `image_bytes` [B], `sentences` [B], `beta` [B] -> the outputs of `align` plus
  `region_scores`.

Text goes through `vsa_tf.data.text.encode_sentences` with the vocabulary's `id_table` (core
`tf.strings` ops and a `StaticHashTable`), the function the training pipeline uses.
"""

import tensorflow as tf

from vsa_tf.align.mrf import mrf_align_batch
from vsa_tf.data import text
from vsa_tf.export import layout, preprocessing
from vsa_tf.export.proposals import ProposalStage


def snippet_spans(region_index):
    """Maximal runs of consecutive valid words on one region.

    Args:
        region_index: int32 [B, T], -1 at padding words.

    Returns:
        dict of int32 `snippet_start`, `snippet_end` (exclusive), `snippet_region` [B, T] (-1 padded)
        and `snippet_count` [B].
    """
    region_index = tf.cast(region_index, tf.int32)
    num_words = tf.shape(region_index)[1]
    valid = region_index >= 0  # [B, T]
    previous = tf.pad(region_index[:, :-1], [[0, 0], [1, 0]], constant_values=-2)
    previous_valid = tf.pad(valid[:, :-1], [[0, 0], [1, 0]], constant_values=False)
    starts = valid & (tf.logical_not(previous_valid) | tf.not_equal(region_index, previous))  # [B, T]
    snippet_id = tf.cumsum(tf.cast(starts, tf.int32), axis=1) - 1  # [B, T]
    positions = tf.range(num_words)
    member = tf.equal(snippet_id[:, :, None], positions[None, None, :]) & valid[:, :, None]  # [B, word, snippet]
    has = tf.reduce_any(member, axis=1)  # [B, snippet]
    start = tf.reduce_min(tf.where(member, positions[None, :, None], num_words), axis=1)
    end = tf.reduce_max(tf.where(member, positions[None, :, None] + 1, -1), axis=1)
    region = tf.gather(region_index, tf.minimum(start, num_words - 1), batch_dims=1)
    minus_one = -tf.ones_like(start)
    return {
        "snippet_start": tf.where(has, start, minus_one),
        "snippet_end": tf.where(has, end, minus_one),
        "snippet_region": tf.where(has, region, minus_one),
        "snippet_count": tf.reduce_sum(tf.cast(starts, tf.int32), axis=1),
    }


def _check_beta(beta):
    ok = tf.reduce_all(tf.math.is_finite(beta) & (beta >= 0.0))
    return tf.debugging.Assert(ok, ["beta must be finite and >= 0; received", beta], summarize=16)


class AlignerSignatures:
    """The aligner's serving functions over an `AlignmentModel` and its vocabulary.

    Args:
        model: a built `vsa_tf.models.alignment_model.AlignmentModel` (or any model with
            `encode_images`, `encode_sentences` and `alignment_score`).
        vocabulary: the run's `vsa_tf.data.text.Vocabulary`.
        image_size: (height, width) of the training pipeline (`DataConfig.image_size`).
        max_boxes: detector boxes per image (`DataConfig.max_boxes`); R = max_boxes + 1.
        max_words: sentence length T (`DataConfig.max_words`); longer sentences are truncated.
        feature_mode: "pixels" (image bytes in) or "cached" (region features in).
        feature_dim: D of cached features (cached mode).
        proposal_model: optional built `ProposalModel` (a proposals run's model): adds the
            `*_proposals` signatures. Its `image_size` must be ``image_size``.
    """

    def __init__(
        self, model, vocabulary, image_size, max_boxes, max_words, feature_mode="pixels", feature_dim=None, proposal_model=None
    ):
        if feature_mode not in ("pixels", "cached"):
            raise ValueError(f"feature_mode must be 'pixels' or 'cached'; received {feature_mode!r}")
        if feature_mode == "cached" and not feature_dim:
            raise ValueError(f"feature_mode='cached' needs feature_dim; received {feature_dim!r}")
        self.model = model
        self.vocabulary = vocabulary
        self.image_size = tuple(int(size) for size in image_size)
        self.max_boxes = int(max_boxes)
        self.max_words = int(max_words)
        self.feature_mode = feature_mode
        self.feature_dim = None if feature_dim is None else int(feature_dim)
        self.id_table = vocabulary.id_table()
        self.proposals = None
        if proposal_model is not None:
            encoder = getattr(model, "region_encoder", None)
            extractor = getattr(encoder, "feature_extractor", None) if feature_mode == "pixels" else None
            self.proposals = ProposalStage(proposal_model, extractor, self.image_size, model_name="aligner")

    # Shared pieces --------------------------------------------------------------------------

    def _image_side(self, image_bytes, boxes=None):
        """-> (batch dict for `encode_images`, pixel region boxes [B, R, 4] with -1 padding)."""
        images, heights, widths = preprocessing.decode_images(image_bytes, self.image_size)
        if boxes is None:
            boxes = tf.zeros([tf.shape(image_bytes)[0], 0, 4])
        normalized, region_mask, pixel_boxes = self._regions(boxes, heights, widths)
        return {"images": images, "boxes": normalized, "region_mask": region_mask}, pixel_boxes

    def _regions(self, boxes, heights, widths):
        """Client pixel boxes -> (rel_yxyx regions [B, R, 4], region_mask [B, R], pixel region boxes [B, R, 4], -1 padded)."""
        batch_size = tf.shape(heights)[0]
        normalized, region_mask, kept = preprocessing.region_batch(boxes, heights, widths, self.max_boxes)
        whole = tf.stack(
            [tf.zeros([batch_size]), tf.zeros([batch_size]), tf.cast(widths, tf.float32), tf.cast(heights, tf.float32)], axis=1
        )
        pixel_boxes = tf.concat([whole[:, None, :], kept], axis=1)  # [B, R, 4]
        pixel_boxes = tf.where(region_mask[:, :, None], pixel_boxes, -tf.ones_like(pixel_boxes))
        return normalized, region_mask, pixel_boxes

    def _proposal_regions(self, image_bytes):
        """Image bytes -> (region vectors [B, R, h], region_mask [B, R], pixel region boxes [B, R, 4], region_scores [B, R]).

        The regions are the whole image and the first max_boxes proposals; the feature map is
        computed once where the proposal network shares the aligner's backbone. The projection is
        `RegionEncoder.call` after its feature extractor, at inference (the dropout is the identity).
        """
        batch_size = tf.shape(image_bytes)[0]
        images, heights, widths = preprocessing.decode_images(image_bytes, self.image_size)
        # The whole stage runs on a batch of at least one image (see `pad_empty_batch`), sliced at the end.
        images, heights, widths = (preprocessing.pad_empty_batch(value) for value in (images, heights, widths))
        proposal_map, region_map = self.proposals.feature_maps(images)
        proposals = self.proposals.propose(proposal_map, heights, widths)  # real boxes first, best first
        normalized, region_mask, pixel_boxes = self._regions(proposals["boxes"], heights, widths)
        features = self.proposals.region_features(region_map, normalized, region_mask)  # [B, R, D]
        encoder = self.model.region_encoder
        vectors = encoder.projection(encoder.feature_dropout(features, training=False))  # [B, R, h]
        vectors = vectors * tf.cast(region_mask, vectors.dtype)[:, :, None]
        # Region r >= 1 is proposal r - 1: `region_batch` keeps the first max_boxes real boxes in order.
        scores = proposals["box_scores"][:, : self.max_boxes]
        scores = tf.pad(scores, [[0, 0], [1, self.max_boxes - tf.shape(scores)[1]]], constant_values=-1.0)  # [B, R]
        scores = tf.where(region_mask, scores, -tf.ones_like(scores))  # region 0 (the whole image) stays -1
        scores.set_shape([None, self.max_boxes + 1])
        return tuple(value[:batch_size] for value in (tf.convert_to_tensor(vectors), region_mask, pixel_boxes, scores))

    def _encode_regions(self, batch):
        if "images" not in batch:
            vectors, mask = self.model.encode_images(batch, training=False)
            return tf.convert_to_tensor(vectors), tf.cast(mask, tf.bool)
        batch_size = tf.shape(batch["images"])[0]
        padded = {key: preprocessing.pad_empty_batch(value) for key, value in batch.items()}
        vectors, mask = self.model.encode_images(padded, training=False)
        return tf.convert_to_tensor(vectors)[:batch_size], tf.cast(mask, tf.bool)[:batch_size]

    def _encode_text(self, sentences):
        tokens, token_mask = text.encode_sentences(sentences, self.id_table.lookup, self.max_words)
        words = text.tokenize(sentences)[:, : self.max_words].to_tensor(default_value="", shape=[None, self.max_words])
        vectors, mask = self.model.encode_sentences({"tokens": tokens, "token_mask": token_mask}, training=False)
        return tf.convert_to_tensor(vectors), tf.cast(mask, tf.bool), words

    def _score(self, region_vectors, region_mask, sentences):
        # sentences [B, S]: each distinct sentence is encoded once, then scores are gathered per row.
        flat = tf.reshape(sentences, [-1])
        unique, index = tf.unique(flat)
        word_vectors, word_mask, _ = self._encode_text(unique)
        all_scores = self.model.alignment_score(region_vectors, word_vectors, region_mask=region_mask, word_mask=word_mask)  # [B, U]
        index = tf.reshape(index, tf.shape(sentences))  # [B, S]
        return {"scores": tf.gather(tf.convert_to_tensor(all_scores), index, batch_dims=1)}

    def _align(self, region_vectors, region_mask, sentences, beta):
        with tf.control_dependencies([_check_beta(beta)]):
            beta = tf.identity(beta)
        word_vectors, word_mask, words = self._encode_text(sentences)  # [B, T, h]
        word_region_scores = tf.einsum("btd,brd->btr", word_vectors, region_vectors)  # [B, T, R]
        valid_pairs = word_mask[:, :, None] & region_mask[:, None, :]
        word_region_scores = tf.where(valid_pairs, word_region_scores, tf.zeros_like(word_region_scores))
        # A per-image beta broadcasts over the regions: [B, 1].
        region_index = mrf_align_batch(word_region_scores, word_mask, region_mask, beta[:, None])
        outputs = {
            "words": words,
            "word_mask": word_mask,
            "region_index": region_index,
            "word_region_scores": word_region_scores,
        }
        outputs.update(snippet_spans(region_index))
        return outputs

    # Endpoints ------------------------------------------------------------------------------

    def endpoints(self):
        """{name: (function, input_signature)} for `keras.export.ExportArchive.add_endpoint`."""
        sentences_spec = tf.TensorSpec([None], tf.string, name="sentences")
        beta_spec = tf.TensorSpec([None], tf.float32, name="beta")
        if self.feature_mode == "cached":
            return self._cached_endpoints(sentences_spec, beta_spec)

        def encode_image(image_bytes):
            batch, pixel_boxes = self._image_side(image_bytes)
            vectors, mask = self._encode_regions(batch)
            return {"region_embeddings": vectors, "region_mask": mask, "region_boxes": pixel_boxes}

        def encode_image_boxes(image_bytes, boxes):
            batch, pixel_boxes = self._image_side(image_bytes, boxes)
            vectors, mask = self._encode_regions(batch)
            return {"region_embeddings": vectors, "region_mask": mask, "region_boxes": pixel_boxes}

        def score(image_bytes, boxes, sentences):
            batch, _ = self._image_side(image_bytes, boxes)
            vectors, mask = self._encode_regions(batch)
            return self._score(vectors, mask, sentences)

        def align(image_bytes, boxes, sentences, beta):
            batch, pixel_boxes = self._image_side(image_bytes, boxes)
            vectors, mask = self._encode_regions(batch)
            return self._align_with_boxes(vectors, mask, pixel_boxes, sentences, beta)

        def encode_text(sentences):
            vectors, mask, words = self._encode_text(sentences)
            return {"word_embeddings": vectors, "word_mask": mask, "words": words}

        sentence_rows_spec = tf.TensorSpec([None, None], tf.string, name="sentences")
        endpoints = {
            "encode_image": (encode_image, [preprocessing.IMAGE_BYTES_SPEC]),
            "encode_image_boxes": (encode_image_boxes, [preprocessing.IMAGE_BYTES_SPEC, preprocessing.BOXES_SPEC]),
            "encode_text": (encode_text, [sentences_spec]),
            "score": (score, [preprocessing.IMAGE_BYTES_SPEC, preprocessing.BOXES_SPEC, sentence_rows_spec]),
            "align": (align, [preprocessing.IMAGE_BYTES_SPEC, preprocessing.BOXES_SPEC, sentences_spec, beta_spec]),
        }
        if self.proposals is not None:
            endpoints.update(self._proposal_endpoints(sentences_spec, sentence_rows_spec, beta_spec))
        return endpoints

    def _align_with_boxes(self, vectors, mask, pixel_boxes, sentences, beta):
        outputs = self._align(vectors, mask, sentences, beta)
        outputs["region_boxes"] = pixel_boxes
        snippet_region = tf.maximum(outputs["snippet_region"], 0)
        snippet_boxes = tf.gather(pixel_boxes, snippet_region, batch_dims=1)  # [B, T, 4]
        has = outputs["snippet_region"] >= 0
        outputs["snippet_boxes"] = tf.where(has[:, :, None], snippet_boxes, -tf.ones_like(snippet_boxes))
        return outputs

    def _proposal_endpoints(self, sentences_spec, sentence_rows_spec, beta_spec):
        def encode_image_proposals(image_bytes):
            vectors, mask, pixel_boxes, region_scores = self._proposal_regions(image_bytes)
            return {"region_embeddings": vectors, "region_mask": mask, "region_boxes": pixel_boxes, "region_scores": region_scores}

        def score_proposals(image_bytes, sentences):
            vectors, mask, _, _ = self._proposal_regions(image_bytes)
            return self._score(vectors, mask, sentences)

        def align_proposals(image_bytes, sentences, beta):
            vectors, mask, pixel_boxes, region_scores = self._proposal_regions(image_bytes)
            outputs = self._align_with_boxes(vectors, mask, pixel_boxes, sentences, beta)
            outputs["region_scores"] = region_scores
            return outputs

        return {
            "encode_image_proposals": (encode_image_proposals, [preprocessing.IMAGE_BYTES_SPEC]),
            "score_proposals": (score_proposals, [preprocessing.IMAGE_BYTES_SPEC, sentence_rows_spec]),
            "align_proposals": (align_proposals, [preprocessing.IMAGE_BYTES_SPEC, sentences_spec, beta_spec]),
        }

    def _cached_endpoints(self, sentences_spec, beta_spec):
        features_spec = tf.TensorSpec([None, None, self.feature_dim], tf.float32, name="region_features")
        mask_spec = tf.TensorSpec([None, None], tf.bool, name="region_mask")

        def encode(region_features, region_mask):
            return self._encode_regions({"region_features": region_features, "region_mask": region_mask})

        def encode_image(region_features, region_mask):
            vectors, mask = encode(region_features, region_mask)
            return {"region_embeddings": vectors, "region_mask": mask}

        def score(region_features, region_mask, sentences):
            return self._score(*encode(region_features, region_mask), sentences)

        def align(region_features, region_mask, sentences, beta):
            return self._align(*encode(region_features, region_mask), sentences, beta)

        def encode_text(sentences):
            vectors, mask, words = self._encode_text(sentences)
            return {"word_embeddings": vectors, "word_mask": mask, "words": words}

        return {
            "encode_image": (encode_image, [features_spec, mask_spec]),
            "encode_text": (encode_text, [sentences_spec]),
            "score": (score, [features_spec, mask_spec, tf.TensorSpec([None, None], tf.string, name="sentences")]),
            "align": (align, [features_spec, mask_spec, sentences_spec, beta_spec]),
        }


def export_aligner(signatures, path):
    """Writes the aligner SavedModel at ``path`` with `keras.export.ExportArchive` (traced on CPU).

    Args:
        signatures: an `AlignerSignatures`.
        path: output folder (must not exist; `vsa_tf.export.layout.write_version` passes a fresh one).
    """
    resources = [signatures.id_table] + (signatures.proposals.tracked_layers if signatures.proposals is not None else [])
    return layout.write_archive(signatures.model, signatures.endpoints(), path, resources=resources)
