"""A tiny deterministic training job used by the fault-tolerance and distribution tests.

Run as a script: `python tiny_training.py RUN_DIR EPOCHS [--strategy S] [--hold-at EPOCH BATCH] [--poison]`.
It prints "epoch N begin/end" lines as training goes (`tests.helpers.progress`), then one JSON line
with the final weights and the epochs that ran. With --hold-at it blocks after that batch, until killed.
"""

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def build_model():
    import keras

    keras.utils.set_random_seed(1)
    inputs = keras.Input(shape=(4,), name="x")
    outputs = keras.layers.Dense(1, kernel_initializer="zeros", name="dense")(inputs)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    return model


def make_dataset(global_batch=8, poison=False):
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    features = rng.normal(size=(64, 4)).astype("float32")
    targets = (features @ np.array([1.0, -2.0, 0.5, 3.0], "float32"))[:, None]
    if poison:
        targets[:] = np.inf
    return tf.data.Dataset.from_tensor_slices((features, targets)).batch(global_batch)


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir")
    parser.add_argument("epochs", type=int)
    parser.add_argument("--strategy", default="default")
    parser.add_argument("--hold-at", nargs=2, type=int, metavar=("EPOCH", "BATCH"),
                        help="after this batch of this epoch, say so on stdout and block until killed")
    parser.add_argument("--poison", action="store_true", help="every target is inf: the first batch loss is not finite")
    parser.add_argument("--split-cpu", type=int, default=0)
    args = parser.parse_args(argv)

    from tests.helpers.progress import ProgressReporter
    from vsa_tf import training

    if args.split_cpu:
        training.split_cpu(args.split_cpu)
    strategy = training.get_strategy(args.strategy)
    with strategy.scope():
        model = build_model()

    try:
        history = training.fit_model(
            model,
            make_dataset(poison=args.poison),
            run_dir=args.run_dir,
            epochs=args.epochs,
            callbacks=[ProgressReporter(sys.stdout, hold_at=args.hold_at)],
            monitor="loss",
            strategy=strategy,
            verbose=0,
        )
    except training.TrainingDivergedError as error:
        print(json.dumps({"diverged": str(error)}), flush=True)
        return 3
    kernel = model.get_layer("dense").kernel.numpy().ravel().tolist()
    print(json.dumps({"kernel": kernel, "epochs_run": len(history.get("loss", []))}), flush=True)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    sys.exit(main())
