"""Trains the tiny ranking models under tf.distribute strategies, for the distribution tests.

Logical devices must be configured before TensorFlow initialises, so each run is a fresh process:

    python distributed_ranking.py compare MODEL       # MODEL: alignment, embedding or caption
    python distributed_ranking.py worker MODEL OUT    # one MultiWorkerMirroredStrategy worker (TF_CONFIG set)

`compare` splits the CPU into two logical devices and trains the same model on the same data from the
same initial weights three times: on one device, with MirroredStrategy on both devices, and with
MirroredStrategy while the cross-replica gathering is switched off (each replica ranks its own half
of the batch only: the control that shows the comparison can fail). It prints one JSON line.
`worker` trains through `vsa_tf.training.fit_model` and writes the final weights to OUT (.npz).
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

GLOBAL_BATCH = 8
EXAMPLES = 16
EPOCHS = 2


def make_batches():
    """16 image-sentence pairs (two sentences per image, so `image_id` masking matters), batches of 8."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(7)
    features = rng.normal(size=(EXAMPLES // 2, 3, 5)).astype("float32")
    lengths = rng.integers(1, 5, size=EXAMPLES)
    tokens = np.zeros((EXAMPLES, 4), "int32")
    for row, length in enumerate(lengths):
        tokens[row, :length] = rng.integers(1, 10, size=length)
    image_index = np.arange(EXAMPLES) // 2
    permutation = rng.permutation(EXAMPLES)  # spread each image's two sentences over the replicas
    batch = {
        "region_features": features[image_index][permutation],
        "region_mask": np.array([[True, True, False]] * EXAMPLES)[permutation],
        "tokens": tokens[permutation],
        "token_mask": (tokens != 0)[permutation],
        "image_id": image_index[permutation].astype("int64"),
    }
    return tf.data.Dataset.from_tensor_slices(batch).batch(GLOBAL_BATCH)


def make_caption_batches():
    """16 captions of different lengths (so the replicas' token counts differ), batches of 8."""
    import numpy as np
    import tensorflow as tf

    from vsa_tf.data.text import END_ID, START_ID

    rng = np.random.default_rng(11)
    tokens = np.zeros((EXAMPLES, 7), "int32")
    for row in range(EXAMPLES):
        length = 5 if row % GLOBAL_BATCH < GLOBAL_BATCH // 2 else 1 + row % 2  # replica 0 gets the long captions
        tokens[row, : length + 2] = [START_ID, *rng.integers(4, 10, size=length), END_ID]
    batch = {
        "region_features": rng.normal(size=(EXAMPLES, 1, 5)).astype("float32"),
        "region_mask": np.ones((EXAMPLES, 1), bool),
        "tokens": tokens,
    }
    return tf.data.Dataset.from_tensor_slices(batch).batch(GLOBAL_BATCH)


def build_model(name):
    import keras

    keras.utils.set_random_seed(3)
    if name == "alignment":
        from vsa_tf.models.alignment_model import AlignmentModel

        model = AlignmentModel(
            vocabulary_size=10, region_dim=4, image_encoder={"mode": "cached", "feature_dim": 5}, embedding_dim=3, hidden_dim=3,
            margin=1.0,
        )
        model.build_from_dummy()
        # Element-wise clipping is applied by Keras to each replica's share of the gradient, before the
        # sum over replicas: off here so the comparison is exact (see the README section).
        model.compile_for_training(learning_rate=0.01, momentum=0.9, clip_value=0.0)
    elif name == "embedding":
        from vsa_tf.models.joint_embedding_model import JointEmbeddingModel

        model = JointEmbeddingModel(vocabulary_size=10, embedding_dim=4, word_dim=3, encoder="lstm", margin=0.2)
        model(next(iter(make_batches())), training=False)
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05, momentum=0.9))
    elif name == "caption":
        from vsa_tf.models.caption_model import CaptionModel

        model = CaptionModel(vocabulary_size=10, hidden_dim=4, embedding_dim=3, image_encoder={"mode": "cached", "feature_dim": 5})
        model.build_from_dummy()
        model.compile(optimizer=keras.optimizers.RMSprop(learning_rate=0.01))
    else:
        raise ValueError(f"unknown model {name!r}")
    return model


def train(model_name, strategy, initial_weights=None):
    """Fits the model under `strategy`; returns (per-batch running loss, final weights)."""
    import keras

    from vsa_tf import training

    with strategy.scope():
        model = build_model(model_name)
        if initial_weights is not None:
            model.set_weights(initial_weights)
    losses = []

    class RecordLoss(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            losses.append(float(logs["loss"]))

    batches = make_caption_batches() if model_name == "caption" else make_batches()
    training.fit_model(model, batches, epochs=EPOCHS, callbacks=[RecordLoss()], strategy=strategy, verbose=0)
    return losses, [weight.copy() for weight in model.get_weights()]


def compare(model_name):
    import numpy as np
    import tensorflow as tf

    from vsa_tf import training
    from vsa_tf.models import cross_replica

    training.split_cpu(2)
    initial = build_model(model_name).get_weights()
    single_losses, single_weights = train(model_name, tf.distribute.OneDeviceStrategy("/cpu:0"), initial)
    mirrored = training.get_strategy("mirrored")
    mirrored_losses, mirrored_weights = train(model_name, mirrored, initial)
    cross_replica.multi_replica_context = lambda: None  # the control: every replica ranks its own rows only
    local_losses, local_weights = train(model_name, mirrored, initial)  # one strategy: collective keys are per strategy

    def largest_difference(weights):
        return max(float(np.max(np.abs(a - b))) for a, b in zip(weights, single_weights))

    print(json.dumps({
        "replicas": mirrored.num_replicas_in_sync,
        "single_losses": single_losses,
        "mirrored_losses": mirrored_losses,
        "local_losses": local_losses,
        "mirrored_weight_difference": largest_difference(mirrored_weights),
        "local_weight_difference": largest_difference(local_weights),
        "weights_moved": largest_difference(initial),
    }), flush=True)


def worker(model_name, out):
    import numpy as np

    from vsa_tf import training

    import tensorflow as tf

    strategy = training.get_strategy("multiworker")
    initial = build_model(model_name).get_weights()
    losses, weights = train(model_name, strategy, initial)
    np.savez(out, *weights)
    # The same global batches on this worker's one device, for the single-device comparison.
    one_device = tf.distribute.OneDeviceStrategy(tf.config.list_logical_devices("CPU")[0].name)
    single_losses, single_weights = train(model_name, one_device, initial)
    difference = max(float(np.max(np.abs(a - b))) for a, b in zip(weights, single_weights))
    print(json.dumps({
        "replicas": strategy.num_replicas_in_sync,
        "losses": losses,
        "single_losses": single_losses,
        "single_weight_difference": difference,
    }), flush=True)


def main(argv):
    if argv[0] == "compare":
        compare(argv[1])
    elif argv[0] == "worker":
        worker(argv[1], argv[2])
    else:
        raise ValueError(f"unknown command {argv[0]!r}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    sys.exit(main(sys.argv[1:]))
