"""Atomic file writes: the one place that writes a file through a temporary path and a rename.

Every writer of the package (configs, reports, run files, weights) goes through here, so a crash or a
full disk never leaves a half-written file where a finished one was, and every file gets the
permissions a plain ``open()`` would give it.
"""

import hashlib
import os
import tempfile


def default_file_mode(directory=False):
    """The mode a plain ``open()`` (or ``os.makedirs``) would give a new file (folder): 0o666 (0o777) & ~umask.

    `tempfile.mkstemp` creates 0600 files and `mkdtemp` 0700 folders; an atomic writer that renames
    one into place must reset its mode or the output is unreadable to other users.
    """
    umask = os.umask(0)  # the only portable way to read the umask is to set it and put it back
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


def _temporary_beside(path, suffix):
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    return tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=suffix)


def atomic_write_bytes(path, write):
    """Calls ``write(stream)`` on a binary temporary file beside ``path``, then renames it to ``path``.

    The file gets ordinary permissions (`default_file_mode`), and a failure leaves ``path`` as it was.
    """
    handle, temporary = _temporary_beside(path, os.path.basename(path))
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
        os.chmod(temporary, default_file_mode())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def atomic_write_text(path, text):
    """Writes ``text`` (UTF-8) to ``path`` through a temporary file in the same folder and a rename."""
    atomic_write_bytes(path, lambda stream: stream.write(text.encode("utf-8")))


def atomic_save_figure(figure, path, **savefig_options):
    """``figure.savefig`` into ``path`` through a temporary file and a rename (format from the extension).

    `savefig_options` go to matplotlib's ``Figure.savefig`` (dpi, bbox_inches, ...); closing the figure
    is the caller's.
    """
    options = {"format": os.path.splitext(os.fspath(path))[1].lstrip(".") or "png", **savefig_options}
    atomic_write_bytes(path, lambda stream: figure.savefig(stream, **options))
    return path


def atomic_save_weights(model, path):
    """``model.save_weights(path)`` (a Keras model or layer) through a temporary file and a rename.

    Raises:
        ValueError: when `path` does not end with ``.weights.h5`` (the suffix Keras requires).
    """
    path = os.fspath(path)
    if not path.endswith(".weights.h5"):
        raise ValueError(f"Weights path must end with '.weights.h5'; received {path!r}")
    handle, temporary = _temporary_beside(path, ".weights.h5")
    os.close(handle)
    try:
        model.save_weights(temporary, overwrite=True)
        os.chmod(temporary, default_file_mode())
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def file_sha256(path):
    """The SHA-256 hex digest of a file's bytes, read in 1 MB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
