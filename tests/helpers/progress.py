"""A callback that reports training progress as lines on a stream, for tests that act at a set moment.

The lines are flushed as they are written, so a test reading the child process's output line by line
(`process.stdout.readline()`) knows where training is without watching a clock:

    epoch N begin
    epoch N end                  (when this callback's `on_epoch_end` runs: the callbacks listed
                                  before it, e.g. `fit_model`'s backup when this one is last, are done)
    holding at epoch E batch B   (with `hold_at=(E, B)`: after batch B of epoch E; the process then
                                  blocks until it is killed, so a kill lands exactly there)
"""

import threading

import keras


class ProgressReporter(keras.callbacks.Callback):
    """Writes "epoch N begin/end" lines to `stream` and optionally blocks after one batch.

    Args:
        stream: a text stream (flushed after each line).
        hold_at: optional (epoch, batch): after that batch ends, write "holding at epoch E batch B" and
            block forever (the test kills the process).
    """

    def __init__(self, stream, hold_at=None):
        super().__init__()
        self.stream = stream
        self.hold_at = None if hold_at is None else (int(hold_at[0]), int(hold_at[1]))
        self.epoch = None

    def _write(self, line):
        self.stream.write(line + "\n")
        self.stream.flush()

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = int(epoch)
        self._write(f"epoch {self.epoch} begin")

    def on_epoch_end(self, epoch, logs=None):
        self._write(f"epoch {int(epoch)} end")

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, int(batch)) == self.hold_at:
            self._write(f"holding at epoch {self.epoch} batch {int(batch)}")
            threading.Event().wait()  # never set: only the test's kill ends the process
