"""The alignment model of Karpathy & Fei-Fei 2015 (section 3.1), trained with `model.fit`."""

import math

import keras
import numpy as np
from keras import ops

from vsa_tf.config import image_encoder_config
from vsa_tf.layers.alignment_score import AlignmentScore
from vsa_tf.layers.bag_of_words import BagOfWordsEncoder
from vsa_tf.layers.brnn import BidirectionalRNNEncoder
from vsa_tf.layers.ranking_loss import RankingLoss
from vsa_tf.layers.region_encoder import RegionEncoder
from vsa_tf.models import cross_replica

SENTENCE_ENCODERS = ("brnn", "bag_of_words")
FEATURE_NORMALIZATIONS = ("none", "l2")
OPTIMIZERS = ("sgd", "adam")


@keras.saving.register_keras_serializable(package="vsa_tf")
class AlignmentModel(keras.Model):
    """Scores image-sentence pairs by aligning words to regions; trained with the ranking loss of eq. 9.

    Images become region vectors v (eq. 1, `RegionEncoder`), sentences become word vectors s_t
    (eqs. 2-6, `BidirectionalRNNEncoder`, or the bag-of-words ablation), and `AlignmentScore` gives
    S_kl for every image x sentence of a batch. `model.fit(ranking_dataset)` works directly: the
    batches are dicts (docs/CONVENTIONS.md) and `compute_loss` applies `RankingLoss` to the batch's
    score matrix (pairs sharing an `image_id` are not negatives). Use `compile_for_training` for the
    paper's optimizer (SGD, momentum 0.9, element-wise clipping at 5, weight decay). Under a
    multi-replica `tf.distribute` strategy the loss gathers every replica's region and word vectors
    (`vsa_tf.models.cross_replica`), so the negatives come from the whole global batch.

    Args:
        vocabulary_size: number of token ids.
        region_dim: h, the multimodal space size.
        image_encoder: a `vsa_tf.config.ImageEncoderConfig` (or its dict): pixels or cached features
            (see `RegionEncoder`), the backbone and RoIAlign settings in pixel mode ("flatten" pooling
            keeps each region's layout, which shape words need; "average" keeps only channel means),
            `feature_dim` of cached features (used to build the model before loading weights) and
            "none" or "l2" normalisation of each cached region feature before the projection.
        sentence_encoder: "brnn" or "bag_of_words".
        embedding_dim: word embedding size.
        hidden_dim: BRNN state size.
        score: "max" (eq. 8) or "defrag" (eq. 7).
        margin: ranking-loss margin.
        hardest_negative: use the hardest negative only (VSE++); see `HardestNegativeWarmup`.
        dropout: dropout rate on every non-recurrent connection.
        embedding_trainable: whether the word embedding is trained.
        image_shape: (height, width) of the images in pixel mode, used to build the model before
            loading weights.
        **kwargs: base model arguments.

    Call arguments:
        inputs: a ranking batch dict: image side (`images`/`boxes` or `region_features`, with
            `region_mask`), `tokens`, `token_mask` (and `image_id`, used by the loss).
        training: whether dropout is active.

    Returns:
        float [B, B] scores, image k x sentence l.

    Example:
    >>> from vsa_tf.config import ImageEncoderConfig
    >>> model = AlignmentModel(vocabulary_size=10, region_dim=4, image_encoder=ImageEncoderConfig(mode="cached"),
    ...                        hidden_dim=3, embedding_dim=3)
    >>> batch = {"region_features": np.ones((2, 3, 5), "float32"), "region_mask": np.ones((2, 3), bool),
    ...          "tokens": np.array([[4, 5], [6, 0]], "int32"), "token_mask": np.array([[1, 1], [1, 0]], bool)}
    >>> model(batch).shape
    TensorShape([2, 2])

    Reference: Karpathy & Fei-Fei, "Deep Visual-Semantic Alignments for Generating Image Descriptions",
    CVPR 2015, section 3.1, eqs. 1-9.
    """
    def __init__(
        self,
        vocabulary_size,
        region_dim=256,
        image_encoder=None,
        sentence_encoder="brnn",
        embedding_dim=300,
        hidden_dim=300,
        score="max",
        margin=1.0,
        hardest_negative=False,
        dropout=0.0,
        embedding_trainable=True,
        image_shape=(128, 128),
        **kwargs,
    ):
        super().__init__(**kwargs)
        image_encoder = image_encoder_config(image_encoder)
        image_encoder.check_normalization("AlignmentModel", FEATURE_NORMALIZATIONS)
        if sentence_encoder not in SENTENCE_ENCODERS:
            raise ValueError(f"sentence_encoder must be one of {list(SENTENCE_ENCODERS)}; received {sentence_encoder!r}")
        self.vocabulary_size = int(vocabulary_size)
        self.region_dim = int(region_dim)
        self.image_encoder = image_encoder
        self.sentence_encoder = sentence_encoder
        self.embedding_dim = int(embedding_dim)
        self.hidden_dim = int(hidden_dim)
        self.score = score
        self.margin = float(margin)
        self.hardest_negative = bool(hardest_negative)
        self.dropout = float(dropout)
        self.embedding_trainable = embedding_trainable
        self.image_shape = tuple(int(size) for size in image_shape)

        self.region_encoder = RegionEncoder(
            output_dim=self.region_dim, image_encoder=image_encoder, dropout=self.dropout, name="region_encoder"
        )
        if sentence_encoder == "brnn":
            self.word_encoder = BidirectionalRNNEncoder(
                vocabulary_size=self.vocabulary_size,
                output_dim=self.region_dim,
                embedding_dim=self.embedding_dim,
                hidden_dim=self.hidden_dim,
                dropout=self.dropout,
                embedding_trainable=embedding_trainable,
                name="sentence_encoder",
            )
        else:
            self.word_encoder = BagOfWordsEncoder(
                vocabulary_size=self.vocabulary_size,
                output_dim=self.region_dim,
                embedding_dim=self.embedding_dim,
                dropout=self.dropout,
                embedding_trainable=embedding_trainable,
                name="sentence_encoder",
            )
        self.alignment_score = AlignmentScore(score=score, name="alignment_score")
        self.ranking_loss = RankingLoss(margin=self.margin, hardest_negative=self.hardest_negative, name="ranking_loss")
        # 0 = summed violations, 1 = hardest negative; `HardestNegativeWarmup` moves it after the warm-up.
        self.hardest_negative_weight = keras.Variable(1.0, trainable=False, name="hardest_negative_weight")

    @property
    def feature_mode(self):
        return self.image_encoder.mode

    @property
    def feature_dim(self):
        return self.image_encoder.feature_dim

    @property
    def feature_normalization(self):
        return self.image_encoder.normalization

    def build(self, input_shape):
        if not isinstance(input_shape, dict) or "tokens" not in input_shape:
            raise ValueError(f"AlignmentModel is built from a batch dict with `tokens`; received input shape {input_shape!r}")
        self.region_encoder.build(input_shape)
        self.word_encoder.build(tuple(input_shape["tokens"]))
        self.built = True

    def encode_images(self, batch, training=False):
        """Region vectors of a batch's images: `(region_vectors [B, R, h], region_mask [B, R])`."""
        if self.feature_normalization == "l2" and self.feature_mode == "cached" and "region_features" in batch:
            features = ops.cast(batch["region_features"], "float32")
            norms = ops.sqrt(ops.sum(ops.square(features), axis=-1, keepdims=True))
            # Padding regions are all-zero and stay zero (the maximum avoids 0 / 0).
            batch = dict(batch, region_features=features / ops.maximum(norms, 1e-6))
        return self.region_encoder(batch, training=training)

    def encode_sentences(self, batch, training=False):
        """Word vectors of a batch's sentences: `(word_vectors [B, T, h], token_mask [B, T])`."""
        if "tokens" not in batch:
            raise ValueError(f"encode_sentences needs `tokens` in the batch; received keys {sorted(batch)}")
        tokens = ops.cast(batch["tokens"], "int32")
        token_mask = batch.get("token_mask")
        token_mask = ops.not_equal(tokens, 0) if token_mask is None else ops.cast(token_mask, "bool")
        return self.word_encoder(tokens, padding_mask=token_mask, training=training), token_mask

    def call(self, inputs, training=None):
        region_vectors, region_mask = self.encode_images(inputs, training=training)  # (B, R, h), (B, R)
        word_vectors, token_mask = self.encode_sentences(inputs, training=training)  # (B, T, h), (B, T)
        scores = self.alignment_score(region_vectors, word_vectors, region_mask=region_mask, word_mask=token_mask)
        if cross_replica.multi_replica_context() is not None:
            # Under a multi-replica strategy `compute_loss` scores these vectors against every replica's;
            # keep them so the train step does not encode the batch twice.
            # (Stored past Keras attribute tracking: these are graph tensors, not state.)
            self.__dict__["_replica_encodings"] = (scores, region_vectors, region_mask, word_vectors, token_mask)
        return scores

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        context = cross_replica.multi_replica_context()
        if context is not None:
            return self._cross_replica_loss(context, x, y_pred, training)
        if y_pred is None:
            y_pred = self(x, training=training)
        image_ids = x.get("image_id") if isinstance(x, dict) else None
        loss = self.ranking_loss(y_pred, image_ids=image_ids, hardest_negative_weight=self.hardest_negative_weight)
        if self.losses:
            loss = loss + ops.sum(ops.stack(self.losses))
        return loss

    def _cross_replica_loss(self, context, x, y_pred, training):
        """Eq. 9 over the global batch: this replica's vectors are scored against every replica's.

        Every replica gathers all the region and word vectors (`cross_replica.all_gather_rows`),
        computes the global loss and returns it divided by the replica count; Keras sums the
        replicas' gradients, so the update equals single-device training on the global batch.
        """
        encodings = self.__dict__.pop("_replica_encodings", None)
        if encodings is not None and y_pred is not None and encodings[0] is y_pred:
            _, region_vectors, region_mask, word_vectors, token_mask = encodings
        else:
            region_vectors, region_mask = self.encode_images(x, training=training)
            word_vectors, token_mask = self.encode_sentences(x, training=training)
        region_vectors, region_mask, word_vectors, token_mask = (
            cross_replica.all_gather_rows(context, tensor) for tensor in (region_vectors, region_mask, word_vectors, token_mask)
        )
        image_ids = x.get("image_id") if isinstance(x, dict) else None
        if image_ids is not None:
            image_ids = cross_replica.all_gather_rows(context, ops.reshape(image_ids, (-1,)))
        scores = self.alignment_score(region_vectors, word_vectors, region_mask=region_mask, word_mask=token_mask)
        loss = self.ranking_loss(scores, image_ids=image_ids, hardest_negative_weight=self.hardest_negative_weight)
        if self.losses:
            loss = loss + ops.sum(ops.stack(self.losses))
        return loss / context.num_replicas_in_sync

    def dummy_batch(self, batch_size=2, num_regions=2, num_words=3):
        """A zero batch with the shapes this model expects; calling the model on it builds every weight."""
        batch = {
            "region_mask": np.ones((batch_size, num_regions), bool),
            "tokens": np.ones((batch_size, num_words), "int32"),
            "token_mask": np.ones((batch_size, num_words), bool),
            "image_id": np.arange(batch_size, dtype="int64"),
        }
        if self.feature_mode == "cached":
            if self.feature_dim is None:
                raise ValueError("AlignmentModel with a cached image encoder needs image_encoder.feature_dim to be built from a dummy batch")
            batch["region_features"] = np.zeros((batch_size, num_regions, self.feature_dim), "float32")
        else:
            batch["images"] = np.zeros((batch_size,) + self.image_shape + (3,), "float32")
            batch["boxes"] = np.tile(np.array([0.0, 0.0, 1.0, 1.0], "float32"), (batch_size, num_regions, 1))
        return batch

    def build_from_dummy(self):
        """Creates every weight (before `load_weights`) by calling the model on `dummy_batch()`."""
        self(self.dummy_batch(), training=False)
        return self

    def set_word_embeddings(self, matrix):
        """Initialises the word embedding from a pretrained [vocabulary_size, embedding_dim] matrix."""
        self.word_encoder.set_word_embeddings(matrix)

    def compile_for_training(
        self, learning_rate=1e-3, momentum=0.9, clip_value=5.0, weight_decay=0.0, jit_compile=False, optimizer="sgd"
    ):
        """Compiles with element-wise gradient clipping and decoupled weight decay.

        Args:
            learning_rate: step size.
            momentum: SGD momentum (ignored by Adam).
            clip_value: element-wise gradient clipping (0 or None: off).
            weight_decay: decoupled weight decay (0 or None: off).
            jit_compile: XLA-compile the train step.
            optimizer: "sgd" (the paper: SGD with momentum) or "adam" (AdamW when weight decay is on).
                The ranking loss is summed over the batch's B(B - 1) pairs, so SGD's step size has to
                shrink with the batch and the feature scale; Adam's per-weight steps do not depend on it.
        """
        if not (learning_rate > 0 and math.isfinite(learning_rate)):
            raise ValueError(f"learning_rate must be a positive number; received {learning_rate!r}")
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {list(OPTIMIZERS)}; received {optimizer!r}")
        common = dict(
            learning_rate=learning_rate,
            clipvalue=clip_value if clip_value else None,
            weight_decay=weight_decay if weight_decay else None,
        )
        if optimizer == "sgd":
            optimizer_object = keras.optimizers.SGD(momentum=momentum, **common)
        else:
            optimizer_object = keras.optimizers.AdamW(**common) if weight_decay else keras.optimizers.Adam(**common)
        # The hardest-negative switch is not a parameter: keep it out of weight decay.
        optimizer_object.exclude_from_weight_decay(var_names=["hardest_negative_weight"])
        self.compile(optimizer=optimizer_object, jit_compile=jit_compile)
        return self

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "region_dim": self.region_dim,
                "image_encoder": self.image_encoder.to_dict(),
                "sentence_encoder": self.sentence_encoder,
                "embedding_dim": self.embedding_dim,
                "hidden_dim": self.hidden_dim,
                "score": self.score,
                "margin": self.margin,
                "hardest_negative": self.hardest_negative,
                "dropout": self.dropout,
                "embedding_trainable": self.embedding_trainable,
                "image_shape": list(self.image_shape),
            }
        )
        return config


class HardestNegativeWarmup(keras.callbacks.Callback):
    """Trains on the summed ranking loss for `warmup_epochs`, then on the hardest negative (VSE++).

    Only matters for a model built with `hardest_negative=True`.
    """
    def __init__(self, warmup_epochs):
        super().__init__()
        if int(warmup_epochs) < 0:
            raise ValueError(f"warmup_epochs must be >= 0; received {warmup_epochs!r}")
        self.warmup_epochs = int(warmup_epochs)

    def on_epoch_begin(self, epoch, logs=None):
        self.model.hardest_negative_weight.assign(0.0 if epoch < self.warmup_epochs else 1.0)
