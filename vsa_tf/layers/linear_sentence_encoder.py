"""Linear sentence encoder of the joint embedding: the normalised sum of word vectors."""

import keras
from keras import ops

from vsa_tf.layers.image_embedding import l2_normalize


@keras.saving.register_keras_serializable(package="vsa_tf")
class LinearSentenceEncoder(keras.layers.Layer):
    """Sentence vector = normalise(sum of the sentence's word vectors), in the joint space.

    The word vectors W_T live directly in the K-dimensional joint space, which is what makes the
    paper's multimodal arithmetic (image - "blue" + "red") meaningful: `encode_words` gives the
    vector of a single word the same way a one-word sentence is encoded.

    Args:
        vocabulary_size: V, number of token ids (id 0 is padding).
        embedding_dim: K, the size of the joint space.
        embeddings_initializer: initializer of the word vectors.

    Call arguments:
        tokens: int [B, T] token ids, 0 = padding.
        padding_mask: optional bool [B, T], True for real words; defaults to `tokens != 0`.

    Returns:
        float [B, K] unit vectors (an all-padding sentence gives the zero vector).

    Example:
    >>> encoder = LinearSentenceEncoder(vocabulary_size=10, embedding_dim=4)
    >>> encoder(np.array([[4, 5, 0]])).shape
    TensorShape([1, 4])

    Reference:
        Kiros, Salakhutdinov & Zemel 2014, section 2.2 and section 5.3 ("multimodal linguistic
        regularities": bag-of-words sentence vectors for arithmetic).
    """
    def __init__(self, vocabulary_size, embedding_dim, embeddings_initializer="uniform", **kwargs):
        super().__init__(**kwargs)
        if int(vocabulary_size) < 1 or int(embedding_dim) < 1:
            raise ValueError(
                f"vocabulary_size and embedding_dim must be >= 1, received {vocabulary_size} and {embedding_dim}"
            )
        self.vocabulary_size = int(vocabulary_size)
        self.embedding_dim = int(embedding_dim)
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        self.supports_masking = True

    def build(self, tokens_shape, padding_mask_shape=None):
        self.word_embedding = keras.layers.Embedding(
            self.vocabulary_size,
            self.embedding_dim,
            embeddings_initializer=self.embeddings_initializer,
            dtype=self.dtype_policy,
            name="word_embedding",
        )
        self.word_embedding.build(tokens_shape)
        self.built = True

    def call(self, tokens, padding_mask=None):
        if padding_mask is None:
            padding_mask = ops.not_equal(tokens, 0)
        word_vectors = self.word_embedding(tokens)  # (B, T, K)
        weights = ops.cast(padding_mask, word_vectors.dtype)[..., None]  # (B, T, 1)
        return l2_normalize(ops.sum(word_vectors * weights, axis=-2))

    def encode_words(self, word_ids):
        """int [N] word ids -> float [N, K]: each word encoded as a one-word sentence."""
        return self(ops.reshape(ops.convert_to_tensor(word_ids, "int32"), (-1, 1)))

    def compute_mask(self, tokens, padding_mask=None):
        return None

    def compute_output_shape(self, tokens_shape, padding_mask_shape=None):
        return (tokens_shape[0], self.embedding_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "embedding_dim": self.embedding_dim,
                "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer),
            }
        )
        return config
