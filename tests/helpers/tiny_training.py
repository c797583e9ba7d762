"""A tiny deterministic training job used by the fault-tolerance and distribution tests.

Run as a script: `python tiny_training.py RUN_DIR EPOCHS [--strategy S] [--sleep SECONDS] [--nan-at-epoch E]`.
It prints one JSON line with the final weights' checksum and the epochs that ran.
"""

import argparse
import json
import os
import sys
import time

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
    parser.add_argument("--sleep", type=float, default=0.0, help="seconds to sleep after each batch")
    parser.add_argument("--poison", action="store_true", help="targets are inf from epoch --poison-epoch on")
    parser.add_argument("--split-cpu", type=int, default=0)
    args = parser.parse_args(argv)

    import keras

    from vsa_tf import training

    if args.split_cpu:
        training.split_cpu(args.split_cpu)
    strategy = training.get_strategy(args.strategy)
    with strategy.scope():
        model = build_model()

    class Sleep(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if args.sleep:
                print(f"batch {batch}", flush=True)
                time.sleep(args.sleep)

        def on_epoch_begin(self, epoch, logs=None):
            print(f"epoch {epoch}", flush=True)

    try:
        history = training.fit_model(
            model,
            make_dataset(poison=args.poison),
            run_dir=args.run_dir,
            epochs=args.epochs,
            callbacks=[Sleep()],
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
