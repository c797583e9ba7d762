"""Property-based fuzz of every file the package reads: a bad file is a `ValueError` naming it, never a crash.

Each file kind starts from a tiny valid fixture (dataset, boxes, truth, snippets, features index, run
config) and hypothesis mutates it: truncation, a byte that is not UTF-8, a deleted key, a value
replaced by another type, a huge number, NaN or infinity, unicode text, or a path escaping the root
(`../../etc/passwd`, `/etc/passwd`). The property, for every mutation and every real reader of that
kind: the reader either accepts the file or raises `ValueError` whose message names the file (for
`validate`, the file or the offending entry); any other exception type fails the test. Mutations that
always make the file invalid must be rejected: truncation, non-UTF-8 bytes, a deleted required key
(`REQUIRED_KEYS`), an image filename escaping the image root (`validate`), a shard path outside the
store, and NaN or infinity anywhere in a boxes, snippets or config file or in a truth box.

Bounded and deterministic: `derandomize=True` (the same examples on every run), `deadline=None`,
and `MAX_EXAMPLES` per reader keep the file under 30 s. `EXAMPLES_TRIED` counts the examples run per
file kind (printed at the end of the module with `pytest -s`).
"""

import collections
import json
import math

import hypothesis
import numpy as np
import pytest
from hypothesis import strategies as st
from PIL import Image

from vsa_tf import config as config_lib
from vsa_tf.align import snippets as snippets_lib
from vsa_tf.data import boxes as boxes_lib
from vsa_tf.data import features as features_lib
from vsa_tf.data import pipelines
from vsa_tf.data import readers
from vsa_tf.data import validate
from vsa_tf.evaluation import alignment as alignment_evaluation

MAX_EXAMPLES = 250
FUZZ_SETTINGS = hypothesis.settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],  # no shrinking: bounded time even on failure
    suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture, hypothesis.HealthCheck.too_slow],
)
EXAMPLES_TRIED = collections.Counter()  # file kind -> examples run
OUTCOMES = collections.Counter()  # (file kind, reader, "rejected" | "accepted") -> examples

ESCAPING_PATHS = ["../../etc/passwd", "/etc/passwd", "a/../../b.jpg", "..", "C:\\Windows\\win.ini", "\\\\server\\share"]
ODD_VALUES = [
    None, True, False, 0, -1, 2**63, 10**30, -(10**30), 1e308, 0.5, float("nan"), float("inf"), float("-inf"),
    "", "x", "ü\u202e🙂\x00\ud7ff", [], [None], [1, 2], {}, {"a": 1}, [[1, 2, 3, 4]], [float("nan")] * 4,
] + ESCAPING_PATHS
ODD_VALUE = st.one_of(
    st.sampled_from(ODD_VALUES),
    st.text(max_size=8),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
)


# --- The tiny valid fixtures ---------------------------------------------------------------------------


def dataset_document():
    return {
        "dataset": "tiny",
        "images": [
            {"filename": "a.jpg", "imgid": 0, "split": "train",
             "sentences": [{"tokens": ["a", "red", "circle"], "raw": "A red circle."}]},
            {"filename": "b.png", "imgid": 1, "split": "val", "sentences": [{"raw": "A blue square"}]},
        ],
    }


def boxes_document():
    return {"a.jpg": [[1, 2, 10, 12], [0, 0, 5, 5]], "b.png": {"boxes": [[2, 2, 8, 9]], "scores": [0.5]}}


def truth_document():
    return {
        "images": {
            "a.jpg": {
                "width": 16, "height": 16,
                "objects": [{"box": [1, 2, 10, 12], "shape": "circle", "color": "red", "size": "small"}],
                "sentences": [{"phrases": [{"start": 0, "end": 3, "object": 0}]}],
            }
        }
    }


def snippets_document():
    return [
        {"filename": "a.jpg", "sentence": 0, "start": 0, "end": 2, "words": ["red", "circle"], "region": 1,
         "box": [1, 2, 10, 12]},
    ]


def features_index_document():
    return {
        "format": features_lib.FORMAT_NAME, "version": 1, "dtype": "float32", "count": 2, "regions": 2, "dims": 3,
        "filenames": ["a.jpg", "b.png"], "shards": [{"file": "shard-00000.tfrecord", "count": 2}],
    }


def config_document():
    data = config_lib.DataConfig(dataset="dataset.json", images="images", image_size=(16, 16), max_boxes=2)
    return json.loads(config_lib.AlignmentConfig(data=data).to_json())


# Keys a reader cannot do without: deleting one must be rejected.
REQUIRED_KEYS = {
    "dataset": {"images", "filename", "split", "sentences"},
    "boxes": {"boxes"},
    "truth": {"images", "objects", "sentences", "box", "phrases", "start", "end", "object"},
    "snippets": set(snippets_lib.SNIPPET_FIELDS),
    "features_index": {"format", "count", "regions", "dims", "filenames", "shards", "file"},
    "config": set(),  # every field has a default
}


def must_reject(kind_of_file, mutation):
    """Whether a mutation always makes a file of this kind invalid (a reader must then raise)."""
    _, kind, key_path, always_invalid = mutation
    return always_invalid or (kind == "delete" and key_path[-1] in REQUIRED_KEYS[kind_of_file])


# --- Mutations -----------------------------------------------------------------------------------------


def node_paths(document, prefix=()):
    """Every key path of a JSON document (the root is `()`)."""
    paths = [prefix]
    if isinstance(document, dict):
        for key, value in document.items():
            paths += node_paths(value, prefix + (key,))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            paths += node_paths(value, prefix + (index,))
    return paths


def _parent(document, path):
    for key in path[:-1]:
        document = document[key]
    return document


@st.composite
def mutated_files(draw, document_factory):
    """(file bytes, kind of mutation, key path mutated or None, must the reader reject it)."""
    document = document_factory()
    text = json.dumps(document)
    kind = draw(st.sampled_from(["truncate", "bad_utf8", "delete", "replace", "rename", "escape", "raw_number"]))
    if kind == "truncate":
        return text[: draw(st.integers(0, len(text) - 1))].encode(), kind, None, True
    if kind == "bad_utf8":
        cut = draw(st.integers(0, len(text)))
        return text[:cut].encode() + b"\xff\xfe" + text[cut:].encode(), kind, None, True
    paths = [path for path in node_paths(document) if path]
    path = draw(st.sampled_from(paths))
    parent = _parent(document, path)
    if kind == "delete":
        del parent[path[-1]]
    elif kind == "replace":
        parent[path[-1]] = value = draw(ODD_VALUE)
        if isinstance(value, float) and not math.isfinite(value):
            kind = "non_finite"
    elif kind == "rename" and isinstance(parent, dict):
        parent[draw(st.sampled_from(ESCAPING_PATHS + ["", "ü🙂"]))] = parent.pop(path[-1])
    elif kind == "escape":
        parent[path[-1]] = draw(st.sampled_from(ESCAPING_PATHS))
    elif kind == "raw_number":  # numbers Python's json reads but no writer produces: 1e999, -Infinity
        marker = "__RAW__"
        parent[path[-1]] = marker
        number = draw(st.sampled_from(["1e999", "-1e999", "NaN", "1" * 400]))
        text = json.dumps(document).replace(f'"{marker}"', number)
        return text.encode(), ("raw_number" if number.startswith("1") else "non_finite"), path, False
    return json.dumps(document, ensure_ascii=draw(st.booleans())).encode(), kind, path, False


def check_reader(reader, path, data, invalid, also_named=()):
    """Runs ``reader()`` on the mutated file: it accepts, or raises a ValueError naming the file.

    Returns "rejected" or "accepted" (counted per file kind in `OUTCOMES`).
    """
    with open(path, "wb") as stream:
        stream.write(data)
    try:
        reader()
    except ValueError as error:
        message = str(error)
        names = [str(path)] + [str(name) for name in also_named]
        assert any(name in message for name in names), f"{type(error).__name__} does not name {path}: {message[:300]}"
        return "rejected"
    except Exception as error:  # noqa: BLE001 - the property under test: nothing but ValueError
        pytest.fail(f"{type(error).__name__} (not ValueError) reading {data[:200]!r}: {error}")
    assert not invalid, f"accepted an invalid file: {data[:200]!r}"
    return "accepted"


# --- The fixture folder (written once; every example rewrites only the fuzzed file) ---------------------


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    images = root / "images"
    images.mkdir()
    Image.fromarray(np.full((16, 16, 3), 100, np.uint8)).save(images / "a.jpg")
    Image.fromarray(np.full((16, 16, 3), 200, np.uint8)).save(images / "b.png")
    for name, document in (("dataset.json", dataset_document()), ("boxes.json", boxes_document())):
        (root / name).write_text(json.dumps(document))
    store = root / "features"
    store.mkdir()
    (store / "shard-00000.tfrecord").write_bytes(b"")
    yield root
    print("\nfuzz examples tried per file kind:", dict(sorted(EXAMPLES_TRIED.items())))
    print("outcomes per reader:", {" ".join(key): count for key, count in sorted(OUTCOMES.items())})


@FUZZ_SETTINGS
@hypothesis.given(mutation=mutated_files(dataset_document))
def test_dataset_readers_raise_value_errors_naming_the_file(folder, mutation):
    data, kind, key_path, _ = mutation
    invalid = must_reject("dataset", mutation)
    EXAMPLES_TRIED["dataset"] += 1
    path = folder / "fuzzed_dataset.json"
    OUTCOMES["dataset", "read_dataset", check_reader(lambda: readers.read_dataset(str(path)), path, data, invalid)] += 1
    # `validate` also checks the images each filename names: an escaping filename is refused, by name.
    escaping_filename = kind == "escape" and key_path[-1] == "filename"
    offending = [value for value in ESCAPING_PATHS if json.dumps(value)[1:-1].encode() in data]
    OUTCOMES["dataset", "validate_dataset", check_reader(
        lambda: validate.validate_dataset(str(path), str(folder / "images")),
        path, data, invalid or escaping_filename, also_named=offending + [folder / "images"],
    )] += 1


@FUZZ_SETTINGS
@hypothesis.given(mutation=mutated_files(boxes_document))
def test_boxes_readers_raise_value_errors_naming_the_file(folder, mutation):
    data, kind, _, _ = mutation
    invalid = must_reject("boxes", mutation) or kind == "non_finite"  # no NaN or infinity in a boxes file
    EXAMPLES_TRIED["boxes"] += 1
    path = folder / "fuzzed_boxes.json"
    OUTCOMES["boxes", "read_boxes", check_reader(lambda: boxes_lib.read_boxes(str(path)), path, data, invalid)] += 1
    OUTCOMES["boxes", "validate_dataset", check_reader(
        lambda: validate.validate_dataset(str(folder / "dataset.json"), str(folder / "images"), boxes=str(path)),
        path, data, invalid,
    )] += 1


@FUZZ_SETTINGS
@hypothesis.given(mutation=mutated_files(truth_document))
def test_truth_reader_raises_value_errors_naming_the_file(folder, mutation):
    data, kind, key_path, _ = mutation
    invalid = must_reject("truth", mutation) or (kind == "non_finite" and "box" in key_path)  # a NaN box
    EXAMPLES_TRIED["truth"] += 1
    path = folder / "fuzzed_truth.json"
    OUTCOMES["truth", "read_truth", check_reader(lambda: alignment_evaluation.read_truth(str(path)), path, data, invalid)] += 1


@FUZZ_SETTINGS
@hypothesis.given(mutation=mutated_files(snippets_document))
def test_snippets_reader_raises_value_errors_naming_the_file(folder, mutation):
    data, kind, _, _ = mutation
    invalid = must_reject("snippets", mutation) or kind == "non_finite"
    EXAMPLES_TRIED["snippets"] += 1
    path = folder / "fuzzed_snippets.json"
    OUTCOMES["snippets", "read_snippets", check_reader(lambda: snippets_lib.read_snippets(str(path)), path, data, invalid)] += 1
    # Region captioning's reader checks a snippets file as `read_snippets` does (plus a box with an area).
    OUTCOMES["snippets", "load_snippets", check_reader(lambda: pipelines.load_snippets(str(path)), path, data, invalid)] += 1


@FUZZ_SETTINGS
@hypothesis.given(mutation=mutated_files(features_index_document))
def test_feature_store_index_raises_value_errors_naming_the_file(folder, mutation):
    data, kind, key_path, _ = mutation
    invalid = must_reject("features_index", mutation)
    EXAMPLES_TRIED["features_index"] += 1
    path = folder / "features" / features_lib.INDEX_FILE
    # A shard path outside the store folder (absolute, or `..`) must be refused even where it exists.
    escaping_shard = kind == "escape" and key_path[0] == "shards" and key_path[-1] == "file"
    OUTCOMES["features_index", "FeatureStore", check_reader(
        lambda: features_lib.FeatureStore(str(folder / "features")), path, data, invalid or escaping_shard
    )] += 1


@FUZZ_SETTINGS
@hypothesis.given(mutation=mutated_files(config_document))
def test_config_loader_raises_value_errors_naming_the_file(folder, mutation):
    data, kind, _, _ = mutation
    invalid = must_reject("config", mutation) or kind == "non_finite"  # every field is typed: NaN fits none
    EXAMPLES_TRIED["config"] += 1
    path = folder / "fuzzed_config.json"
    OUTCOMES["config", "load_config", check_reader(
        lambda: config_lib.load_config(config_lib.AlignmentConfig, str(path)), path, data, invalid
    )] += 1


def test_the_fixtures_are_valid(folder):
    """The unmutated fixtures read without error (so every rejection above is the mutation's doing)."""
    for name, document in (("truth.json", truth_document()), ("snippets.json", snippets_document()),
                           ("config.json", config_document())):
        (folder / name).write_text(json.dumps(document))
    assert len(readers.read_dataset(str(folder / "dataset.json")).records) == 2
    assert validate.validate_dataset(str(folder / "dataset.json"), str(folder / "images"), boxes=str(folder / "boxes.json"))
    assert alignment_evaluation.read_truth(str(folder / "truth.json"))["a.jpg"]["width"] == 16
    assert snippets_lib.read_snippets(str(folder / "snippets.json"))[0]["words"] == ["red", "circle"]
    assert pipelines.load_snippets(str(folder / "snippets.json")) == snippets_document()
    (folder / "features" / features_lib.INDEX_FILE).write_text(json.dumps(features_index_document()))
    assert features_lib.FeatureStore(str(folder / "features")).count == 2
    assert config_lib.load_config(config_lib.AlignmentConfig, str(folder / "config.json")).data.max_boxes == 2
