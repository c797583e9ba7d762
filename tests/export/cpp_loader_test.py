"""TF Serving's C++ loading path: `tensorflow::LoadSavedModel`, the loader `tensorflow_model_server` uses.

A small C++ program (cpp/load_saved_model.cc) is compiled against the TensorFlow wheel's `include/`
and `libtensorflow_cc.so.2` (linked with `-Wl,--no-as-needed`), loads each SavedModel with the
"serve" tag and runs a signature; its outputs must equal the Python-loaded model's. The program is
compiled once per test session and cached under the temp folder; the test is skipped, with a
message saying why, only where no C++ compiler exists.
"""

import hashlib
import os
import shutil
import subprocess
import tempfile

import numpy as np
import pytest
import tensorflow as tf

from tests.export.conftest import MAX_PROPOSALS, MAX_WORDS

CPP_SOURCE = os.path.join(os.path.dirname(__file__), "cpp", "load_saved_model.cc")


@pytest.fixture(scope="session")
def cpp_loader():
    """The C++ loader program, compiled once and cached under the temp folder (keyed by source + TF)."""
    compiler = shutil.which(os.environ.get("CXX", "g++")) or shutil.which("c++") or shutil.which("clang++")
    if compiler is None:
        pytest.skip("no C++ compiler (g++, c++ or clang++) on PATH: the C++ LoadSavedModel check cannot run")
    include_dir, library_dir = tf.sysconfig.get_include(), tf.sysconfig.get_lib()
    library = os.path.join(library_dir, "libtensorflow_cc.so.2")
    if not os.path.exists(library):
        pytest.skip(f"the TensorFlow wheel has no {library}: the C++ LoadSavedModel check cannot run")
    with open(CPP_SOURCE, "rb") as stream:
        key = hashlib.sha256(stream.read() + tf.__version__.encode() + library_dir.encode()).hexdigest()[:16]
    cache_dir = os.path.join(tempfile.gettempdir(), f"vsa_tf_cpp_loader_{key}")
    binary = os.path.join(cache_dir, "load_saved_model")
    if not os.path.exists(binary):
        os.makedirs(cache_dir, exist_ok=True)
        partial = f"{binary}.{os.getpid()}"
        # About 15 s on a quiet 2-core machine: the TF headers are large but only one file is compiled.
        command = [
            compiler, "-std=c++17", "-O1", "-w", *tf.sysconfig.get_compile_flags(), "-I" + include_dir, CPP_SOURCE,
            "-o", partial, "-L" + library_dir, "-Wl,--no-as-needed", "-l:libtensorflow_cc.so.2",
            "-l:libtensorflow_framework.so.2", "-Wl,-rpath," + library_dir,
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, "C++ loader failed to compile:\n" + result.stderr[-4000:]
        os.replace(partial, binary)
    return binary


def run_cpp(binary, saved_model_dir, signature, *inputs):
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run([binary, saved_model_dir, signature, *inputs], capture_output=True, text=True, timeout=300, env=environment)
    assert result.returncode == 0, result.stderr[-3000:]
    outputs, lines = {}, result.stdout.splitlines()
    for header, values in zip(lines[0::2], lines[1::2]):
        _, key, dtype, dims = header.split(" ")
        shape = [] if dims == "-" else [int(size) for size in dims.split(",")]
        items = values.split(" ")[1:]
        if dtype == "string":
            array = np.array([b"" if item == '""' else bytes.fromhex(item) for item in items], dtype=object)
        elif dtype == "bool":
            array = np.array([item == "1" for item in items], dtype=bool)
        else:
            array = np.array([float(item) for item in items], dtype=np.float64)
        outputs[key] = array.reshape(shape)
    return outputs


def test_cpp_load_saved_model_runs_the_signatures(
    cpp_loader, captioner_dir, aligner_dir, loaded_captioner, loaded_aligner, images, tmp_path
):
    paths = []
    for index, data in enumerate(images):
        path = tmp_path / f"image{index}.bin"
        path.write_bytes(data)
        paths.append(str(path))
    outputs = run_cpp(cpp_loader, captioner_dir, "serving_default", "image_bytes=files:" + ",".join(paths))
    expected = loaded_captioner.signatures["serving_default"](image_bytes=tf.constant(images))
    np.testing.assert_array_equal(outputs["captions"], expected["captions"].numpy())
    np.testing.assert_allclose(outputs["scores"], expected["scores"].numpy(), atol=1e-5)

    boxes = [2, 3, 20, 25, -1, -1, -1, -1]
    outputs = run_cpp(
        cpp_loader, aligner_dir, "align",
        f"image_bytes=files:{paths[0]}", "boxes=float:1x2x4:" + ",".join(str(value) for value in boxes),
        "sentences=strings:a red circle left of a blue square", "beta=float:1:0.5",
    )
    expected = loaded_aligner.signatures["align"](
        image_bytes=tf.constant(images[:1]), boxes=tf.constant(np.reshape(boxes, (1, 2, 4)), tf.float32),
        sentences=tf.constant(["a red circle left of a blue square"]), beta=tf.constant([0.5]),
    )
    assert outputs["region_index"].shape == (1, MAX_WORDS)
    for key in ("region_index", "snippet_start", "snippet_end", "snippet_region", "snippet_count"):
        np.testing.assert_array_equal(outputs[key], expected[key].numpy(), err_msg=key)
    np.testing.assert_array_equal(outputs["words"], expected["words"].numpy())
    np.testing.assert_allclose(outputs["word_region_scores"], expected["word_region_scores"].numpy(), atol=1e-5)


def test_cpp_load_saved_model_runs_the_proposal_signatures(
    cpp_loader, captioner_proposals_dir, aligner_proposals_dir, images, tmp_path
):
    paths = []
    for index, data in enumerate(images):
        path = tmp_path / f"image{index}.bin"
        path.write_bytes(data)
        paths.append(str(path))
    outputs = run_cpp(cpp_loader, captioner_proposals_dir, "caption_proposals", "image_bytes=files:" + ",".join(paths))
    expected = tf.saved_model.load(captioner_proposals_dir).signatures["caption_proposals"](image_bytes=tf.constant(images))
    assert outputs["boxes"].shape == (len(images), MAX_PROPOSALS, 4)
    np.testing.assert_array_equal(outputs["captions"], expected["captions"].numpy())
    np.testing.assert_array_equal(outputs["box_mask"], expected["box_mask"].numpy())
    for key in ("scores", "boxes", "box_scores"):
        np.testing.assert_allclose(outputs[key], expected[key].numpy(), atol=1e-4, err_msg=key)

    outputs = run_cpp(
        cpp_loader, aligner_proposals_dir, "align_proposals", f"image_bytes=files:{paths[1]}",
        "sentences=strings:a red circle left of a blue square", "beta=float:1:0.5",
    )
    expected = tf.saved_model.load(aligner_proposals_dir).signatures["align_proposals"](
        image_bytes=tf.constant(images[1:2]), sentences=tf.constant(["a red circle left of a blue square"]), beta=tf.constant([0.5])
    )
    for key in ("region_index", "snippet_region", "snippet_count"):
        np.testing.assert_array_equal(outputs[key], expected[key].numpy(), err_msg=key)
    for key in ("region_boxes", "region_scores", "word_region_scores"):
        np.testing.assert_allclose(outputs[key], expected[key].numpy(), atol=1e-4, err_msg=key)


def test_cpp_loader_reports_bad_image_bytes(cpp_loader, captioner_dir, tmp_path):
    path = tmp_path / "not_an_image.txt"
    path.write_bytes(b"hello, this is text")
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run(
        [cpp_loader, captioner_dir, "serving_default", f"image_bytes=files:{path}"],
        capture_output=True,
        text=True,
        timeout=300,
        env=environment,
    )
    assert result.returncode == 1
    assert "INVALID_ARGUMENT" in result.stderr and "is not a JPEG or PNG image" in result.stderr
