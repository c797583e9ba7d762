"""SC-NLM caption decoder (Kiros et al. 2014, section 4.3) as a `keras.Model`, with generation."""

import keras
from keras import ops

from vsa_tf.data.text import END_ID, PAD_ID, START_ID, UNKNOWN_ID
from vsa_tf.layers.scnlm import SCNLM
from vsa_tf.models import cross_replica

_NEGATIVE_INFINITY = -1e9


@keras.saving.register_keras_serializable(package="vsa_tf")
class SCNLMModel(keras.Model):
    """Trains the SC-NLM on (image content, sentence, POS tags) and decodes captions from a structure.

    Training batches (dict features): `content` float [B, K] the joint-space image vector,
    `tokens` int [B, T + 2] = START w_1..w_n END then padding 0, `tags` int [B, T + 1] the tag of each
    target `tokens[:, 1:]` (END tag for END, 0 for padding). The loss is the mean cross-entropy of
    the next word over real targets (`tokens[:, 1:] != 0`); compile with an optimizer only.

    Generation (`generate`) follows the paper: a POS sequence is sampled (from the training set's
    tag sequences, `vsa_tf.jobs.scnlm.sample_structures`), the END tag is appended, and exactly
    one word per tag is decoded conditioned on the tags ahead and the image, greedily or by sampling.
    The special ids (padding, unknown, START, END) are never produced, so a caption has the length
    of its structure.

    Args:
        vocabulary_size, num_tags, content_dim, context_size, structure_size, word_dim, tag_dim,
        factor_dim: as in `vsa_tf.layers.scnlm.SCNLM`.

    Call arguments:
        inputs: a training batch as above (`tokens` may also be the decoder input [B, L] with
            `tags` [B, L], when `tokens` and `tags` have the same length).

    Returns:
        float [B, L, V] next-word logits, L = T + 1.

    Example:
    >>> model = SCNLMModel(vocabulary_size=10, num_tags=6, content_dim=4, context_size=2, structure_size=1,
    ...                    word_dim=3, tag_dim=2, factor_dim=5)
    >>> words = model.generate(np.ones((1, 4), "float32"), np.array([[2, 3, 0]]))
    >>> tuple(words.shape)
    (1, 3)

    Reference:
        Kiros, Salakhutdinov & Zemel 2014, section 4.3 and section 5 (generation conditioned on a
        sampled POS sequence).
    """

    def __init__(
        self,
        vocabulary_size,
        num_tags,
        content_dim,
        context_size=5,
        structure_size=5,
        word_dim=128,
        tag_dim=32,
        factor_dim=128,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.vocabulary_size = int(vocabulary_size)
        self.num_tags = int(num_tags)
        self.content_dim = int(content_dim)
        self.context_size = int(context_size)
        self.structure_size = int(structure_size)
        self.word_dim = int(word_dim)
        self.tag_dim = int(tag_dim)
        self.factor_dim = int(factor_dim)
        self.decoder = SCNLM(
            vocabulary_size=self.vocabulary_size,
            num_tags=self.num_tags,
            content_dim=self.content_dim,
            context_size=self.context_size,
            structure_size=self.structure_size,
            word_dim=self.word_dim,
            tag_dim=self.tag_dim,
            factor_dim=self.factor_dim,
            start_id=START_ID,
            name="scnlm",
        )

    def build(self, input_shape=None):
        self.decoder.build()
        self.built = True

    @staticmethod
    def _decoder_inputs(inputs):
        # Training batches carry START..END [B, T + 2] and tags [B, T + 1]: the decoder input drops
        # the last token; when both have the same length this slice is a no-op.
        return inputs["tokens"][:, : ops.shape(inputs["tags"])[1]]

    def call(self, inputs):
        return self.decoder({"tokens": self._decoder_inputs(inputs), "tags": inputs["tags"], "content": inputs["content"]})

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        logits = y_pred if y_pred is not None else self(x)
        targets = x["tokens"][:, 1:]  # (B, T + 1)
        mask = ops.cast(ops.not_equal(targets, PAD_ID), logits.dtype)
        losses = keras.losses.sparse_categorical_crossentropy(targets, logits, from_logits=True)  # (B, T + 1)
        # Under a multi-replica strategy: the global batch's token mean (see `cross_replica.token_mean`).
        loss = cross_replica.token_mean(ops.sum(losses * mask), ops.sum(mask))
        if self.losses:
            loss = loss + cross_replica.replica_share(ops.sum(ops.stack(self.losses)))
        return loss

    def next(self, tokens, state, step):
        """One decoding step over a running token buffer (the samplers' interface).

        Args:
            tokens: int [B, n - 1 + L] buffer: n - 1 START slots, then the words decoded so far.
            state: dict with `content_projection` float [B, G] and `structure` int [B, L + k + 1]
                (tags, END, padding 0).
            step: int, the position being decoded (0-based).
        Returns:
            (logits float [B, V], state).
        """
        batch_size = ops.shape(tokens)[0]
        context_ids = ops.slice(tokens, (0, step), (batch_size, self.context_size))  # (B, n-1)
        structure_ids = ops.slice(state["structure"], (0, step), (batch_size, self.structure_size + 1))  # (B, k+1)
        return self.decoder.step(context_ids, structure_ids, state["content_projection"]), state

    def generate(self, content, structures, greedy=True, temperature=1.0, seed=None):
        """Decodes one caption per image from a tag sequence.

        Args:
            content: float [B, K] joint-space image vectors.
            structures: int [B, L] tag ids (no END), padded with 0; row b's length is its number of
                nonzero tags.
            greedy: argmax if True, else sampling from softmax(logits / temperature).
            temperature: sampling temperature.
            seed: optional int seed for sampling.
        Returns:
            int [B, L] word ids; positions past a structure's length are 0.
        """
        if not self.built:
            self.build()
        content = ops.convert_to_tensor(content, "float32")
        structures = ops.cast(ops.convert_to_tensor(structures), "int32")
        batch_size, max_length = ops.shape(structures)[0], ops.shape(structures)[1]
        lengths = ops.sum(ops.cast(ops.not_equal(structures, 0), "int32"), axis=1)  # (B,)
        positions = ops.arange(max_length + self.structure_size + 1)[None, :]  # (1, L + k + 1)
        # Tags, then END right after each structure, then padding: t_n..t_{n+k} near the end see END.
        padded = ops.pad(structures, ((0, 0), (0, self.structure_size + 1)))
        structure = ops.where(ops.equal(positions, lengths[:, None]), 1, padded)  # END tag id 1
        state = {"content_projection": self.decoder.content_gate_input(content), "structure": structure}
        buffer = ops.concatenate(
            [ops.full((batch_size, self.context_size), START_ID, "int32"), ops.zeros((batch_size, max_length), "int32")],
            axis=1,
        )  # (B, n - 1 + L)
        banned = ops.convert_to_tensor(
            [0.0 if index not in (PAD_ID, UNKNOWN_ID, START_ID, END_ID) else _NEGATIVE_INFINITY for index in range(self.vocabulary_size)]
        )  # (V,)
        seed_generator = keras.random.SeedGenerator(seed) if not greedy else None

        # ops.fori_loop is a tf.while_loop under the TensorFlow backend: one graph loop, not L
        # Python calls; each step reads the last n - 1 words of the buffer and writes one.
        def body(step, buffer):
            logits, _ = self.next(buffer, state, step)
            logits = logits + banned
            if greedy:
                words = ops.argmax(logits, axis=-1)
            else:
                words = keras.random.categorical(logits / temperature, 1, seed=seed_generator)[:, 0]
            words = ops.where(step < lengths, ops.cast(words, "int32"), 0)  # (B,)
            slot = ops.one_hot(step + self.context_size, ops.shape(buffer)[1], dtype="int32")  # (n - 1 + L,)
            return buffer * (1 - slot)[None, :] + words[:, None] * slot[None, :]

        buffer = ops.fori_loop(0, max_length, body, buffer)
        return buffer[:, self.context_size :]

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "num_tags": self.num_tags,
                "content_dim": self.content_dim,
                "context_size": self.context_size,
                "structure_size": self.structure_size,
                "word_dim": self.word_dim,
                "tag_dim": self.tag_dim,
                "factor_dim": self.factor_dim,
            }
        )
        return config
