"""LSTM sentence encoder of the joint embedding: the last hidden state, normalised."""

import keras
from keras import ops

from vsa_tf.layers.image_embedding import l2_normalize


@keras.saving.register_keras_serializable(package="vsa_tf")
class LSTMSentenceEncoder(keras.layers.Layer):
    """Sentence vector = normalise(last hidden state of an LSTM over the word vectors).

    Padding is skipped through the LSTM's mask, so the "last" state is the one after the sentence's
    last real word whatever its length (right padding).

    Args:
        vocabulary_size: V, number of token ids (id 0 is padding).
        word_dim: size of the word vectors fed to the LSTM.
        embedding_dim: K, the LSTM's hidden size = the size of the joint space.
        embeddings_initializer: initializer of the word vectors (pretrained vectors are loaded with
            `set_word_vectors` after building).

    Call arguments:
        tokens: int [B, T] token ids, 0 = padding.
        padding_mask: optional bool [B, T], True for real words; defaults to `tokens != 0`.

    Returns:
        float [B, K] unit vectors.

    Example:
    >>> encoder = LSTMSentenceEncoder(vocabulary_size=10, word_dim=3, embedding_dim=4)
    >>> encoder(np.array([[4, 5, 0]])).shape
    TensorShape([1, 4])

    Reference:
        Kiros, Salakhutdinov & Zemel 2014, section 2.1 (LSTM sentence encoder; v = last hidden state).
    """
    def __init__(self, vocabulary_size, word_dim, embedding_dim, embeddings_initializer="uniform", **kwargs):
        super().__init__(**kwargs)
        for name, value in (("vocabulary_size", vocabulary_size), ("word_dim", word_dim), ("embedding_dim", embedding_dim)):
            if int(value) < 1:
                raise ValueError(f"{name} must be >= 1, received {value}")
        self.vocabulary_size = int(vocabulary_size)
        self.word_dim = int(word_dim)
        self.embedding_dim = int(embedding_dim)
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        self.supports_masking = True

    def build(self, tokens_shape, padding_mask_shape=None):
        self.word_embedding = keras.layers.Embedding(
            self.vocabulary_size,
            self.word_dim,
            embeddings_initializer=self.embeddings_initializer,
            dtype=self.dtype_policy,
            name="word_embedding",
        )
        self.word_embedding.build(tokens_shape)
        self.lstm = keras.layers.LSTM(self.embedding_dim, dtype=self.dtype_policy, name="lstm")
        self.lstm.build(tuple(tokens_shape) + (self.word_dim,))
        self.built = True

    def call(self, tokens, padding_mask=None):
        if padding_mask is None:
            padding_mask = ops.not_equal(tokens, 0)
        word_vectors = self.word_embedding(tokens)  # (B, T, word_dim)
        last_hidden = self.lstm(word_vectors, mask=ops.cast(padding_mask, "bool"))  # (B, K)
        return l2_normalize(last_hidden)

    def set_word_vectors(self, matrix):
        """Loads pretrained word vectors float [V, word_dim] into the embedding (after build)."""
        matrix = ops.convert_to_numpy(matrix)
        expected = (self.vocabulary_size, self.word_dim)
        if tuple(matrix.shape) != expected:
            raise ValueError(f"word vectors must have shape {expected}, received {tuple(matrix.shape)}")
        self.word_embedding.embeddings.assign(matrix)

    def compute_mask(self, tokens, padding_mask=None):
        return None

    def compute_output_shape(self, tokens_shape, padding_mask_shape=None):
        return (tokens_shape[0], self.embedding_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "word_dim": self.word_dim,
                "embedding_dim": self.embedding_dim,
                "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer),
            }
        )
        return config
