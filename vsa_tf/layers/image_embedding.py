"""Image side of the joint embedding: a linear map of CNN features, L2-normalised."""

import keras
from keras import ops


def l2_normalize(vectors, axis=-1, epsilon=1e-12):
    """x / ||x|| along `axis`; the floor on ||x||^2 keeps all-zero rows (padding) at zero instead of NaN."""
    return vectors * ops.rsqrt(ops.maximum(ops.sum(ops.square(vectors), axis=axis, keepdims=True), epsilon))


@keras.saving.register_keras_serializable(package="vsa_tf")
class ImageEmbedding(keras.layers.Layer):
    """Projects CNN features into the K-dimensional joint space and normalises them.

    The paper's image encoder is x = W_I q with q the CNN code of the whole image; since the score is
    a cosine, x is normalised to unit length here once and for all.

    Args:
        embedding_dim: K, the size of the joint space.
        use_bias: whether the projection has a bias (the paper's W_I has none).
        kernel_initializer: initializer of W_I.

    Call arguments:
        features: float [..., D] CNN features (the whole-image region, `region_features[:, 0]`).

    Returns:
        float [..., K] unit vectors.

    Example:
    >>> layer = ImageEmbedding(embedding_dim=4)
    >>> layer(np.ones((2, 8), "float32")).shape
    TensorShape([2, 4])

    Reference:
        Kiros, Salakhutdinov & Zemel 2014, "Unifying Visual-Semantic Embeddings with Multimodal
        Neural Language Models", section 2.2 (x = W_I q).
    """
    def __init__(self, embedding_dim, use_bias=False, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        if int(embedding_dim) < 1:
            raise ValueError(f"embedding_dim must be >= 1, received {embedding_dim}")
        self.embedding_dim = int(embedding_dim)
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, features_shape):
        self.projection = keras.layers.Dense(
            self.embedding_dim,
            use_bias=self.use_bias,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name="projection",
        )
        self.projection.build(features_shape)
        self.built = True

    def call(self, features):
        return l2_normalize(self.projection(features))

    def compute_output_shape(self, features_shape):
        return tuple(features_shape[:-1]) + (self.embedding_dim,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "embedding_dim": self.embedding_dim,
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config
