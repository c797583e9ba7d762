"""The `>>>` examples in vsa_tf's docstrings run and print what they show: one case per module.

Modules are found with `pkgutil.iter_modules` over the source folders, so finding them imports
nothing; only the modules whose source holds an example are imported (the CLI and the command
modules have none, and importing `vsa_tf.cli` sets an environment variable).
"""

import doctest
import importlib
import os
import pkgutil

import keras
import numpy as np
import pytest
import tensorflow as tf

PACKAGE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "vsa_tf")
OPTION_FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _walk(path, prefix):
    for info in pkgutil.iter_modules([path]):
        yield prefix + info.name, info.ispkg, os.path.join(path, info.name)
        if info.ispkg:
            yield from _walk(os.path.join(path, info.name), prefix + info.name + ".")


def modules_with_examples():
    names = []
    for name, is_package, path in _walk(PACKAGE_DIR, "vsa_tf."):
        source = os.path.join(path, "__init__.py") if is_package else path + ".py"
        with open(source, encoding="utf-8") as stream:
            if ">>>" in stream.read():
                names.append(name)
    return sorted(names)


def test_examples_are_found():
    names = modules_with_examples()
    assert "vsa_tf.evaluation.retrieval" in names and "vsa_tf.layers.brnn" in names
    assert not [name for name in names if name == "vsa_tf.cli" or name.startswith("vsa_tf.commands")]


@pytest.mark.parametrize("module_name", modules_with_examples())
def test_docstring_examples(module_name):
    module = importlib.import_module(module_name)
    tests = [
        test
        for test in doctest.DocTestFinder().find(module, module_name, extraglobs={"np": np, "keras": keras, "tf": tf})
        if test.examples
    ]
    assert tests, f"{module_name} mentions '>>>' but has no docstring example that doctest finds"
    report = []
    runner = doctest.DocTestRunner(optionflags=OPTION_FLAGS)
    for test in tests:
        keras.utils.set_random_seed(0)
        runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)
