import keras
from keras import ops

CELLS = ("rnn", "lstm")
IMAGE_CONDITIONINGS = ("bias", "input")
IMAGE_NORMALIZATIONS = ("none", "layer")


@keras.saving.register_keras_serializable(package="vsa_tf")
class MultimodalRNNDecoder(keras.layers.Layer):
    """The multimodal recurrent neural network of Karpathy & Fei-Fei (eqs. 13-15).

    With `cell="rnn"` and `image_conditioning="bias"` (the paper's model):

        b_v = W_hi · CNN(I)                                         (13)
        h_t = f(W_hx x_t + W_hh h_{t-1} + b_h + 1(t = 1) ⊙ b_v)     (14)
        y_t = softmax(W_oh h_t + b_o)                               (15)

    with f = ReLU, x_t the embedding of the t-th input token (x_1 = START) and the image seen only
    at the first step. The layer returns the logits W_oh h_t + b_o; the loss and the samplers apply the
    softmax.

    `activate_inputs=True` follows the paper's remark that passing b_v and W_hx x_t through the
    activation first can help: b_v = f(W_hi · CNN(I) + b_i) and W_hx x_t becomes f(W_hx x_t + b_x).

    `cell="lstm"` replaces eq. 14 by an LSTM (gates i, f, g, o from W_hx x_t + W_hh h_{t-1} + b_h).
    The image then conditions the decoder in one of two ways (`image_conditioning`):
    "bias" adds b_v (projected to the four gates) to the gate pre-activations at the first step,
    exactly like eq. 14; "input" feeds W_hi · CNN(I) as an extra input before START (Vinyals et al.),
    i.e. the initial state is the state after one step on the image, and no bias is added later.
    Both conditionings work for both cells.

    `image_normalization="layer"` standardises CNN(I) with a `LayerNormalization` (learned gain and
    offset) before W_hi. The paper's CNN(I) is a pretrained network's fc7 vector, whose entries are O(1);
    a small CNN trained from scratch starts with features a hundred times smaller and nearly the same
    for every image, so b_v is then swamped by W_hx x_1 + b_h and the decoder learns to ignore the image.

    Dropout (rate `dropout`) is applied to the image feature, the word embeddings and the hidden
    state before the output layer, never on the recurrent connection h_{t-1} -> h_t.

    Sampling uses `initial_state(image_feature)` once, then `next(tokens, state, step)` per step.

    Args:
        vocabulary_size: int, number of token ids (output classes).
        hidden_dim: int, size of h_t (the paper: 512).
        embedding_dim: int, size of the word embeddings x_t.
        cell: "rnn" (ReLU RNN, eq. 14) or "lstm".
        activate_inputs: bool, pass b_v and W_hx x_t through the activation first.
        image_conditioning: "bias" (b_v at the first step) or "input" (image as the step before START).
        dropout: float in [0, 1), non-recurrent dropout rate.
        image_normalization: "none" or "layer" (LayerNormalization of CNN(I) before W_hi).
        kernel_initializer: initializer of the kernels and embeddings.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        image_feature: float tensor [batch, feature_dim], CNN(I).
        tokens: int tensor [batch, length], the decoder inputs (START w_1 ... w_n then padding).
        padding_mask: optional bool tensor [batch, length]; at padded positions the state is carried
            over unchanged (their logits are returned but the loss ignores them).
        training: bool, enables dropout.

    Returns:
        logits, float tensor [batch, length, vocabulary_size]; position t predicts token t + 1.

    Example:
    >>> decoder = MultimodalRNNDecoder(vocabulary_size=10, hidden_dim=4, embedding_dim=3)
    >>> logits = decoder(np.zeros((2, 6), "float32"), tokens=np.array([[2, 5, 3, 0], [2, 4, 6, 3]]))
    >>> tuple(logits.shape)
    (2, 4, 10)

    Reference:
        Karpathy & Fei-Fei, "Deep Visual-Semantic Alignments for Generating Image Descriptions",
        CVPR 2015, Section 3.2, equations 13-15.
    """

    def __init__(
        self,
        vocabulary_size,
        hidden_dim=512,
        embedding_dim=512,
        cell="rnn",
        activate_inputs=False,
        image_conditioning="bias",
        dropout=0.0,
        image_normalization="none",
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {CELLS}, received cell={cell!r}")
        if image_conditioning not in IMAGE_CONDITIONINGS:
            raise ValueError(
                f"image_conditioning must be one of {IMAGE_CONDITIONINGS}, received image_conditioning={image_conditioning!r}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), received dropout={dropout}")
        if image_normalization not in IMAGE_NORMALIZATIONS:
            raise ValueError(
                f"image_normalization must be one of {IMAGE_NORMALIZATIONS}, received image_normalization={image_normalization!r}"
            )
        for name, value in (("vocabulary_size", vocabulary_size), ("hidden_dim", hidden_dim), ("embedding_dim", embedding_dim)):
            if int(value) < 1:
                raise ValueError(f"{name} must be a positive integer, received {name}={value}")
        self.vocabulary_size = int(vocabulary_size)
        self.hidden_dim = int(hidden_dim)
        self.embedding_dim = int(embedding_dim)
        self.cell = cell
        self.activate_inputs = bool(activate_inputs)
        self.image_conditioning = image_conditioning
        self.dropout = float(dropout)
        self.image_normalization = image_normalization
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        # Width of the recurrent pre-activation: h for the RNN, the four gates for the LSTM.
        self.gate_dim = self.hidden_dim * (4 if cell == "lstm" else 1)

    def build(self, image_feature_shape):
        feature_dim = image_feature_shape[-1]
        if feature_dim is None:
            raise ValueError(f"The image feature's last dimension must be known, received shape {image_feature_shape}")
        self.token_embedding = keras.layers.Embedding(
            self.vocabulary_size,
            self.embedding_dim,
            embeddings_initializer=keras.initializers.RandomUniform(-0.08, 0.08),
            dtype=self.dtype_policy,
            name="token_embedding",
        )
        self.token_embedding.build((None, None))
        # W_hx (its own bias b_x only when it goes through the activation on its own).
        self.input_projection = keras.layers.Dense(
            self.gate_dim,
            use_bias=self.activate_inputs,
            kernel_initializer=self._clone_initializer(),
            dtype=self.dtype_policy,
            name="input_projection",
        )
        self.input_projection.build((None, None, self.embedding_dim))
        # W_hi: to the gates for "bias", to the embedding space for "input" (an extra first step).
        image_width = self.gate_dim if self.image_conditioning == "bias" else self.embedding_dim
        self.image_projection = keras.layers.Dense(
            image_width,
            use_bias=self.activate_inputs or self.image_conditioning == "input",
            kernel_initializer=self._clone_initializer(),
            dtype=self.dtype_policy,
            name="image_projection",
        )
        self.image_projection.build((None, feature_dim))
        self.image_norm = None
        if self.image_normalization == "layer":
            self.image_norm = keras.layers.LayerNormalization(epsilon=1e-8, dtype=self.dtype_policy, name="image_norm")
            self.image_norm.build((None, feature_dim))
        self.recurrent_kernel = self.add_weight(
            name="recurrent_kernel",
            shape=(self.hidden_dim, self.gate_dim),
            initializer=keras.initializers.Orthogonal() if self.cell == "lstm" else keras.initializers.Identity(0.5),
        )
        self.recurrent_bias = self.add_weight(name="recurrent_bias", shape=(self.gate_dim,), initializer=self._bias_initializer())
        self.output_projection = keras.layers.Dense(
            self.vocabulary_size,
            kernel_initializer=self._clone_initializer(),
            dtype=self.dtype_policy,
            name="output_projection",
        )
        self.output_projection.build((None, self.hidden_dim))
        self.input_dropout = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy, name="input_dropout")
        self.image_dropout = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy, name="image_dropout")
        self.output_dropout = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy, name="output_dropout")
        self.built = True

    def _clone_initializer(self):
        return self.kernel_initializer.__class__.from_config(self.kernel_initializer.get_config())

    def _bias_initializer(self):
        if self.cell != "lstm":
            return "zeros"
        hidden_dim = self.hidden_dim

        def forget_gate_one(shape, dtype=None):
            # Gate order i, f, g, o: a forget bias of 1 (Jozefowicz et al. 2015).
            return ops.concatenate(
                [ops.zeros((hidden_dim,), dtype), ops.ones((hidden_dim,), dtype), ops.zeros((2 * hidden_dim,), dtype)]
            )

        return forget_gate_one

    def _project_tokens(self, tokens, training=None):
        """tokens int [..] -> W_hx x_t (+ b_x, activated if asked) [.., gate_dim]."""
        embedded = self.input_dropout(self.token_embedding(tokens), training=training)
        projected = self.input_projection(embedded)
        return ops.relu(projected) if self.activate_inputs else projected

    def _cell(self, input_part, state):
        """One step of eq. 14 (or the LSTM) given the non-recurrent part of the pre-activation."""
        hidden = state["hidden"]  # (B, H)
        pre_activation = input_part + ops.matmul(hidden, self.recurrent_kernel) + self.recurrent_bias  # (B, gate_dim)
        if self.cell == "rnn":
            return {"hidden": ops.relu(pre_activation)}
        input_gate, forget_gate, candidate, output_gate = ops.split(pre_activation, 4, axis=-1)
        cell = ops.sigmoid(forget_gate) * state["cell"] + ops.sigmoid(input_gate) * ops.tanh(candidate)
        return {"hidden": ops.sigmoid(output_gate) * ops.tanh(cell), "cell": cell}

    def _zero_state(self, batch_size, dtype):
        state = {"hidden": ops.zeros((batch_size, self.hidden_dim), dtype)}
        if self.cell == "lstm":
            state["cell"] = ops.zeros((batch_size, self.hidden_dim), dtype)
        return state

    def initial_state(self, image_feature, training=None):
        """Encodes the image once: image_feature [B, D] -> the state before START.

        The state is a dict of [B, ...] tensors: "hidden" (and "cell" for the LSTM) and, for the
        "bias" conditioning, "image_bias" (b_v, added at step 0 only).
        """
        image_feature = ops.convert_to_tensor(image_feature, self.compute_dtype)
        if self.image_norm is not None:
            image_feature = self.image_norm(image_feature)
        image_feature = self.image_dropout(image_feature, training=training)
        projected = self.image_projection(image_feature)
        if self.activate_inputs:
            projected = ops.relu(projected)
        state = self._zero_state(ops.shape(image_feature)[0], projected.dtype)
        if self.image_conditioning == "bias":
            state["image_bias"] = projected  # b_v (B, gate_dim)
            return state
        # "input": one step on the projected image before START.
        input_part = self.input_projection(projected)
        if self.activate_inputs:
            input_part = ops.relu(input_part)
        return self._cell(input_part, state)

    def next(self, tokens, state, step):
        """One decoding step.

        Args:
            tokens: int tensor [B], the input token at position `step` (START at step 0).
            state: the dict from `initial_state` or the previous `next`.
            step: int scalar (tensor), the position of `tokens`.
        Returns:
            (logits [B, vocabulary_size], new state with the same structure).
        """
        input_part = self._project_tokens(tokens)
        if "image_bias" in state:
            is_first = ops.cast(ops.equal(step, 0), input_part.dtype)
            input_part = input_part + is_first * state["image_bias"]
        new_state = self._cell(input_part, state)
        logits = self.output_projection(new_state["hidden"])
        if "image_bias" in state:
            new_state["image_bias"] = state["image_bias"]
        return logits, new_state

    def call(self, image_feature, tokens, padding_mask=None, training=None):
        tokens = ops.convert_to_tensor(tokens, "int32")
        state = self.initial_state(image_feature, training=training)
        image_bias = state.pop("image_bias", None)
        input_parts = self._project_tokens(tokens, training=training)  # (B, T, gate_dim)
        if image_bias is not None:
            length = ops.shape(tokens)[1]
            first_step = ops.cast(ops.equal(ops.arange(length), 0), input_parts.dtype)  # (T,)
            input_parts = input_parts + first_step[None, :, None] * image_bias[:, None, :]
        if padding_mask is None:
            padding_mask = ops.ones(ops.shape(tokens), "bool")
        keep = ops.cast(ops.convert_to_tensor(padding_mask), input_parts.dtype)  # (B, T)

        keys = sorted(state)

        def step_function(carry, inputs):
            # The carry is a tuple in `keys` order, and the per-step output is the same tuple: the TF
            # backend's `ops.scan` packs the outputs with the carry's structure.
            carry = dict(zip(keys, carry))
            input_part, keep_step = inputs  # (B, gate_dim), (B,)
            updated = self._cell(input_part, carry)
            # Padded positions carry the previous state over unchanged.
            keep_column = keep_step[:, None]
            updated = {key: keep_column * updated[key] + (1.0 - keep_column) * carry[key] for key in keys}
            updated = tuple(updated[key] for key in keys)
            return updated, updated

        time_major = (ops.transpose(input_parts, (1, 0, 2)), ops.transpose(keep, (1, 0)))
        _, outputs = ops.scan(step_function, tuple(state[key] for key in keys), time_major)
        hidden = outputs[keys.index("hidden")]  # (T, B, H)
        hidden = self.output_dropout(ops.transpose(hidden, (1, 0, 2)), training=training)  # (B, T, H)
        return self.output_projection(hidden)

    def compute_output_shape(self, image_feature_shape, tokens_shape=None, padding_mask_shape=None):
        if tokens_shape is None:
            raise ValueError("compute_output_shape needs tokens_shape")
        return tuple(tokens_shape) + (self.vocabulary_size,)

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
                "image_normalization": self.image_normalization,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config
