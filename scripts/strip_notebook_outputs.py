"""Strips outputs and execution counts from notebooks, so that git holds only their sources.

Usage:
    python scripts/strip_notebook_outputs.py notebooks/*.ipynb          # rewrite in place
    python scripts/strip_notebook_outputs.py --check notebooks/*.ipynb  # exit 1 if any has outputs

Run it before committing a notebook you executed in Jupyter; `tests/notebooks_test.py` checks that
the committed notebooks are stripped.
"""

import argparse
import sys

import nbformat

from vsa_tf.config import atomic_write_text

# Per-run metadata that Jupyter adds and that only causes diffs.
TRANSIENT_CELL_METADATA = ("execution", "collapsed", "scrolled", "ExecuteTime")


def notebook_problems(notebook):
    """What keeps a notebook from being stripped: a list of "cell N: problem" strings."""
    problems = []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        if cell.get("outputs"):
            problems.append(f"cell {index}: has {len(cell.outputs)} output(s)")
        if cell.get("execution_count") is not None:
            problems.append(f"cell {index}: execution_count is {cell.execution_count}, expected null")
        transient = [key for key in TRANSIENT_CELL_METADATA if key in cell.metadata]
        if transient:
            problems.append(f"cell {index}: transient metadata {transient}")
    return problems


def strip_notebook(notebook):
    """Removes outputs, execution counts and transient metadata in place; returns the notebook."""
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        for key in TRANSIENT_CELL_METADATA:
            cell.metadata.pop(key, None)
    return notebook


def write_notebook_atomically(notebook, path):
    text = nbformat.writes(notebook)
    atomic_write_text(path, text if text.endswith("\n") else text + "\n")  # as nbformat.write does


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", help=".ipynb files")
    parser.add_argument("--check", action="store_true", help="only report notebooks that are not stripped")
    args = parser.parse_args(argv)
    dirty = 0
    for path in args.notebooks:
        try:
            notebook = nbformat.read(path, as_version=4)
        except (OSError, ValueError) as error:
            print(f"{path}: cannot read the notebook: {error}", file=sys.stderr)
            return 2
        problems = notebook_problems(notebook)
        if not problems:
            continue
        dirty += 1
        if args.check:
            print(f"{path}: not stripped: " + "; ".join(problems), file=sys.stderr)
        else:
            write_notebook_atomically(strip_notebook(notebook), path)
            print(f"{path}: stripped")
    return 1 if args.check and dirty else 0


if __name__ == "__main__":
    sys.exit(main())
