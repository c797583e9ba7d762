"""The multimodal RNN caption generator of Karpathy & Fei-Fei 2015 (section 3.2), trained with `model.fit`."""

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from vsa_tf.config import image_encoder_config
from vsa_tf.data.text import PAD_ID, START_ID
from vsa_tf.layers.multimodal_rnn import MultimodalRNNDecoder
from vsa_tf.layers.region_features import RegionFeatureExtractor
from vsa_tf.models import cross_replica


class _TracedGenerators:
    """`generate`'s traced functions, keyed by sampler id (not a trackable object, so not exported)."""

    def __init__(self):
        self.functions = {}


class _MaskedPerplexity(keras.metrics.Metric):
    """exp(mean cross-entropy per real target token), accumulated over the epoch."""

    def __init__(self, name="perplexity", **kwargs):
        super().__init__(name=name, **kwargs)
        self.total_loss = self.add_variable(shape=(), initializer="zeros", name="total_loss")
        self.token_count = self.add_variable(shape=(), initializer="zeros", name="token_count")

    def update_state(self, summed_loss, token_count):
        self.total_loss.assign_add(ops.cast(summed_loss, "float32"))
        self.token_count.assign_add(ops.cast(token_count, "float32"))

    def result(self):
        return ops.exp(self.total_loss / ops.maximum(self.token_count, 1.0))


@keras.saving.register_keras_serializable(package="vsa_tf")
class CaptionModel(keras.Model):
    """Generates a sentence for an image (or a region) with the multimodal RNN of eqs. 13-15.

    The image side is `RegionFeatureExtractor` on the batch's single region (R = 1: the whole image
    `[0, 0, 1, 1]`, or a snippet's box for region captions) in pixel mode, or the cached
    `region_features[:, 0]`; CNN(I) then conditions `MultimodalRNNDecoder` at its first step.

    Training is teacher forcing: the decoder reads `tokens[:, :-1]` (START w_1 .. w_n) and predicts
    `tokens[:, 1:]` (w_1 .. w_n END); `compute_loss` is the cross-entropy averaged over the real target
    tokens (`tokens[:, 1:] != 0`), so padding never contributes, and a `perplexity` metric reports
    exp(loss per token). `model.fit(caption_dataset)` works directly on the dict batches of
    `vsa_tf.data.pipelines.caption_dataset` / `region_caption_dataset`. `compile_for_training` sets the
    paper's optimizer: RMSprop with gradients clipped element-wise at 5.

    Generation encodes the image once and runs a sampler (`vsa_tf.samplers`) over the decoder's
    `next(tokens, state, step)` inside one `tf.function`.

    Args:
        vocabulary_size: number of token ids.
        hidden_dim: size of h_t (the paper: 512).
        embedding_dim: size of the word embeddings.
        cell: "rnn" (eq. 14) or "lstm".
        activate_inputs: pass b_v and W_hx x_t through the activation (the paper's remark).
        image_conditioning: "bias" (b_v at the first step) or "input" (image as the step before START).
        dropout: dropout on every non-recurrent connection.
        image_encoder: a `vsa_tf.config.ImageEncoderConfig` (or its dict): "pixels" (backbone + RoIAlign
            of the batch's box; "flatten" pooling lets the decoder see where things are, relations such
            as "to the left of", "average" keeps only channel means) or "cached" (`region_features`,
            `feature_dim` wide, used to build the model before loading weights), and "none" or "layer"
            (LayerNormalization of CNN(I) before W_hi, see `MultimodalRNNDecoder`).
        image_shape: (height, width) of the images in pixel mode, used to build the model before
            loading weights.
        **kwargs: base model arguments.

    Call arguments:
        inputs: a caption batch dict: image side (`images`, `boxes`, `region_mask`, or
            `region_features`) and `tokens` int [B, T + 2] (START .. END then padding 0).
        training: whether dropout is active.

    Returns:
        logits float [B, T + 1, vocabulary_size] for the targets `tokens[:, 1:]`.

    Example:
    >>> from vsa_tf.config import ImageEncoderConfig
    >>> model = CaptionModel(vocabulary_size=10, hidden_dim=4, embedding_dim=3, image_encoder=ImageEncoderConfig(mode="cached"))
    >>> batch = {"region_features": np.ones((2, 1, 5), "float32"), "region_mask": np.ones((2, 1), bool),
    ...          "tokens": np.array([[2, 4, 5, 3], [2, 6, 3, 0]], "int32")}
    >>> model(batch).shape
    TensorShape([2, 3, 10])

    Reference:
        Karpathy & Fei-Fei, "Deep Visual-Semantic Alignments for Generating Image Descriptions",
        CVPR 2015, section 3.2 (eqs. 13-15) and section 4.2 (optimisation).
    """

    def __init__(
        self,
        vocabulary_size,
        hidden_dim=512,
        embedding_dim=256,
        cell="rnn",
        activate_inputs=False,
        image_conditioning="bias",
        dropout=0.0,
        image_encoder=None,
        image_shape=(128, 128),
        **kwargs,
    ):
        super().__init__(**kwargs)
        image_encoder = image_encoder_config(image_encoder)
        image_encoder.check_normalization("CaptionModel", ("none", "layer"))
        self.vocabulary_size = int(vocabulary_size)
        self.hidden_dim = int(hidden_dim)
        self.embedding_dim = int(embedding_dim)
        self.cell = cell
        self.activate_inputs = bool(activate_inputs)
        self.image_conditioning = image_conditioning
        self.dropout = float(dropout)
        self.image_encoder = image_encoder
        self.image_shape = tuple(int(size) for size in image_shape)
        self.feature_extractor = None
        if not image_encoder.cached:
            self.feature_extractor = RegionFeatureExtractor.from_image_encoder(image_encoder, name="feature_extractor")
        self.decoder = MultimodalRNNDecoder(
            vocabulary_size=self.vocabulary_size,
            hidden_dim=self.hidden_dim,
            embedding_dim=self.embedding_dim,
            cell=cell,
            activate_inputs=self.activate_inputs,
            image_conditioning=image_conditioning,
            dropout=self.dropout,
            image_normalization=image_encoder.normalization,
            name="decoder",
        )
        self.perplexity = _MaskedPerplexity(name="perplexity")
        # A plain holder, not a dict attribute: Keras would track a dict of samplers, and SavedModel
        # export refuses its integer keys.
        self._generate_functions = _TracedGenerators()

    @property
    def feature_mode(self):
        return self.image_encoder.mode

    @property
    def feature_dim(self):
        return self.image_encoder.feature_dim

    @property
    def image_normalization(self):
        return self.image_encoder.normalization

    def build(self, input_shape):
        # An explicit build: without it Keras would build the sub-layers while tracing `call`
        # symbolically, where a backbone's weights file cannot be loaded into its variables.
        if not isinstance(input_shape, dict):
            raise ValueError(f"CaptionModel is built from a batch dict; received input shape {input_shape!r}")
        if self.feature_mode == "cached":
            if "region_features" not in input_shape:
                raise ValueError(f"CaptionModel(feature_mode='cached') needs `region_features`; received keys {sorted(input_shape)}")
            feature_dim = input_shape["region_features"][-1]
        else:
            if "images" not in input_shape or "boxes" not in input_shape:
                raise ValueError(f"CaptionModel(feature_mode='pixels') needs `images` and `boxes`; received keys {sorted(input_shape)}")
            self.feature_extractor.build(input_shape)
            feature_dim = self.feature_extractor.compute_output_shape(input_shape)[-1]
        self.decoder.build((None, feature_dim))
        self.built = True

    def image_features(self, batch, training=False):
        """CNN(I) of the batch's single region: float [B, D] (the nearest-neighbour baseline uses it too)."""
        if self.feature_mode == "cached":
            if "region_features" not in batch:
                raise ValueError(f"CaptionModel(feature_mode='cached') needs `region_features`; received keys {sorted(batch)}")
            return ops.convert_to_tensor(batch["region_features"], "float32")[:, 0, :]
        image_side = {key: batch[key] for key in ("images", "boxes", "region_mask") if key in batch}
        return self.feature_extractor(image_side, training=training)[:, 0, :]  # (B, D)

    def call(self, inputs, training=None):
        if "tokens" not in inputs:
            raise ValueError(f"CaptionModel needs `tokens` in the batch; received keys {sorted(inputs)}")
        tokens = ops.cast(inputs["tokens"], "int32")[:, :-1]  # (B, T + 1): START w_1 .. w_n [END]
        features = self.image_features(inputs, training=training)
        return self.decoder(features, tokens=tokens, padding_mask=ops.not_equal(tokens, PAD_ID), training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if y_pred is None:
            y_pred = self(x, training=training)
        targets = ops.cast(x["tokens"], "int32")[:, 1:]  # (B, T + 1): w_1 .. w_n END then padding
        target_mask = ops.cast(ops.not_equal(targets, PAD_ID), "float32")
        cross_entropy = keras.losses.sparse_categorical_crossentropy(targets, y_pred, from_logits=True)  # (B, T + 1)
        summed = ops.sum(cross_entropy * target_mask)
        count = ops.sum(target_mask)
        self.perplexity.update_state(summed, count)
        # Under a multi-replica strategy: the global batch's token mean (see `cross_replica.token_mean`).
        loss = cross_replica.token_mean(summed, count)
        if self.losses:
            loss = loss + cross_replica.replica_share(ops.sum(ops.stack(self.losses)))
        return loss

    def compile_for_training(self, learning_rate=1e-3, rho=0.9, clip_value=5.0, jit_compile=False):
        """RMSprop with element-wise gradient clipping (the paper: clipped at 5)."""
        self.compile(
            optimizer=keras.optimizers.RMSprop(learning_rate=learning_rate, rho=rho, clipvalue=clip_value),
            jit_compile=jit_compile,
        )

    def dummy_batch(self, batch_size=2, num_words=3):
        """A zero batch with the shapes this model expects; calling the model on it builds every weight."""
        batch = {
            "region_mask": np.ones((batch_size, 1), bool),
            "tokens": np.tile(np.array([START_ID] + [4] * num_words + [3], "int32"), (batch_size, 1)),
        }
        if self.feature_mode == "cached":
            if self.feature_dim is None:
                raise ValueError("CaptionModel(feature_mode='cached') needs feature_dim to be built from a dummy batch")
            batch["region_features"] = np.zeros((batch_size, 1, self.feature_dim), "float32")
        else:
            batch["images"] = np.zeros((batch_size,) + self.image_shape + (3,), "float32")
            batch["boxes"] = np.tile(np.array([0.0, 0.0, 1.0, 1.0], "float32"), (batch_size, 1, 1))
        return batch

    def build_from_dummy(self):
        """Creates every weight (needed before `load_weights`)."""
        self(self.dummy_batch(), training=False)
        return self

    def generate(self, batch, sampler, return_scores=False):
        """Captions the batch's images (or regions) with `sampler`, entirely in one graph.

        Args:
            batch: dict with the image side (no `tokens` needed).
            sampler: a `vsa_tf.samplers.Sampler` (greedy, random or beam).
            return_scores: also return the hypotheses' scores.
        Returns:
            int32 numpy [B, width, max_length] token ids (no START; END then padding), best first;
            with `return_scores`, also float32 [B, width].
        """
        image_side = {key: ops.convert_to_tensor(batch[key]) for key in ("images", "boxes", "region_mask", "region_features") if key in batch}
        if not self.built:  # one teacher-forced call creates the weights the sampler reads
            batch_size = ops.shape(next(iter(image_side.values())))[0]
            self({**image_side, "tokens": ops.full((batch_size, 2), START_ID, "int32")}, training=False)
        # One traced function per sampler object (kept with it, so its id cannot be reused).
        sampler_and_function = self._generate_functions.functions.get(id(sampler))
        if sampler_and_function is not None and sampler_and_function[0] is sampler:
            function = sampler_and_function[1]
        else:

            @tf.function(autograph=False, reduce_retracing=True)
            def function(image_side):
                features = self.image_features(image_side, training=False)  # encoded once, before the loop
                state = self.decoder.initial_state(features, training=False)
                start = tf.fill(tf.shape(features)[:1], tf.constant(START_ID, tf.int32))
                return sampler(self.decoder.next, state, start)

            self._generate_functions.functions[id(sampler)] = (sampler, function)
        tokens, scores = function(image_side)
        if return_scores:
            return tokens.numpy(), scores.numpy()
        return tokens.numpy()

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "hidden_dim": self.hidden_dim,
                "embedding_dim": self.embedding_dim,
                "cell": self.cell,
                "activate_inputs": self.activate_inputs,
                "image_conditioning": self.image_conditioning,
                "dropout": self.dropout,
                "image_encoder": self.image_encoder.to_dict(),
                "image_shape": list(self.image_shape),
            }
        )
        return config
