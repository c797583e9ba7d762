"""Shared fixtures of the export tests: tiny randomly initialised real models, their exports, images.

Each export is written once per test session (module-independent, session scope) because tracing a
model with its beam search takes a few seconds.
"""

import io
import os
import pickle
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from PIL import Image

IMAGE_SIZE = (32, 32)
MAX_BOXES = 3
MAX_WORDS = 6
BEAM = 3
MAX_LENGTH = 5
WORDS = ["a", "red", "blue", "circle", "square", "left", "of", "small"]


def image_bytes(width, height, seed, format="PNG"):
    """Random-colour image file bytes of the given size."""
    pixels = np.random.RandomState(seed).randint(0, 256, (height, width, 3)).astype(np.uint8)
    stream = io.BytesIO()
    Image.fromarray(pixels).save(stream, format=format)
    return stream.getvalue()


@pytest.fixture(scope="session")
def images():
    """Three images of different sizes: two PNG, one JPEG."""
    return [image_bytes(40, 30, 0), image_bytes(50, 20, 1), image_bytes(24, 36, 2, format="JPEG")]


@pytest.fixture(scope="session")
def vocabulary():
    from vsa_tf.data.text import Vocabulary

    return Vocabulary(WORDS)


def build_alignment_model(vocabulary, feature_mode="pixels", feature_dim=None):
    from vsa_tf.config import ImageEncoderConfig
    from vsa_tf.models.alignment_model import AlignmentModel

    keras.utils.set_random_seed(1)
    model = AlignmentModel(
        vocabulary_size=vocabulary.size,
        region_dim=4,
        embedding_dim=3,
        hidden_dim=3,
        image_encoder=ImageEncoderConfig(mode=feature_mode, filters=(4, 8), feature_dim=feature_dim),
        image_shape=IMAGE_SIZE,
    )
    return model.build_from_dummy()


def build_caption_model(vocabulary, feature_mode="pixels", feature_dim=None):
    from vsa_tf.config import ImageEncoderConfig
    from vsa_tf.models.caption_model import CaptionModel

    keras.utils.set_random_seed(2)
    model = CaptionModel(
        vocabulary_size=vocabulary.size,
        hidden_dim=6,
        embedding_dim=4,
        image_encoder=ImageEncoderConfig(mode=feature_mode, filters=(4, 8), feature_dim=feature_dim),
        image_shape=IMAGE_SIZE,
    )
    model.build_from_dummy()
    # Random weights give near-uniform next-word distributions; a larger output layer makes the
    # beams differ clearly so that comparisons are not decided by float noise.
    kernel = model.decoder.output_projection.kernel
    kernel.assign(kernel.numpy() * 8.0)
    return model


@pytest.fixture(scope="session")
def aligner_signatures(vocabulary):
    from vsa_tf.export.aligner import AlignerSignatures

    model = build_alignment_model(vocabulary)
    return AlignerSignatures(model, vocabulary, IMAGE_SIZE, max_boxes=MAX_BOXES, max_words=MAX_WORDS)


@pytest.fixture(scope="session")
def captioner_signatures(vocabulary):
    from vsa_tf.export.captioner import CaptionerSignatures

    model = build_caption_model(vocabulary)
    return CaptionerSignatures(model, vocabulary, IMAGE_SIZE, beam_size=BEAM, max_length=MAX_LENGTH)


@pytest.fixture(scope="session")
def aligner_dir(aligner_signatures, tmp_path_factory):
    from vsa_tf.export.aligner import export_aligner

    path = str(tmp_path_factory.mktemp("aligner") / "1")
    return export_aligner(aligner_signatures, path)


@pytest.fixture(scope="session")
def captioner_dir(captioner_signatures, tmp_path_factory):
    from vsa_tf.export.captioner import export_captioner

    path = str(tmp_path_factory.mktemp("captioner") / "1")
    return export_captioner(captioner_signatures, path)


_FRESH_SCRIPT = textwrap.dedent(
    """
    import pickle, sys
    import tensorflow as tf
    def watched():
        return {name for name in sys.modules if name.split(".")[0] in ("vsa_tf", "keras", "tensorflow_text", "tf_keras")}
    # `import tensorflow` itself imports parts of keras (its lazy `tf.keras`); anything imported after
    # this point was needed by loading or calling the SavedModel.
    imported_by_tensorflow = watched()
    saved_model_dir, calls_path, results_path = sys.argv[1:4]
    with open(calls_path, "rb") as stream:
        calls = pickle.load(stream)
    model = tf.saved_model.load(saved_model_dir)
    results = {"signatures": sorted(model.signatures), "outputs": []}
    for name, inputs in calls:
        signature = model.signatures[name]
        specs = signature.structured_input_signature[1]
        outputs = signature(**{key: tf.constant(value, dtype=specs[key].dtype) for key, value in inputs.items()})
        results["outputs"].append({key: value.numpy() for key, value in outputs.items()})
    results["modules"] = sorted(watched() - imported_by_tensorflow)
    results["vsa_tf_or_tensorflow_text"] = sorted(name for name in watched() if name.split(".")[0] in ("vsa_tf", "tensorflow_text"))
    with open(results_path, "wb") as stream:
        pickle.dump(results, stream)
    """
)


def run_in_fresh_python(saved_model_dir, calls, tmp_path):
    """Loads the SavedModel in a new process that imports only TensorFlow and calls the signatures.

    Args:
        calls: list of (signature name, {input name: numpy array}).

    Returns:
        dict with "signatures" (names), "outputs" (one dict of numpy arrays per call), "modules"
        (vsa_tf / keras / tensorflow_text modules imported by loading and calling, beyond what
        `import tensorflow` imports) and "vsa_tf_or_tensorflow_text" (any such module at all).
    """
    calls_path = os.path.join(tmp_path, "calls.pkl")
    results_path = os.path.join(tmp_path, "results.pkl")
    with open(calls_path, "wb") as stream:
        pickle.dump(calls, stream)
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    environment["TF_CPP_MIN_LOG_LEVEL"] = "3"
    environment["CUDA_VISIBLE_DEVICES"] = ""
    result = subprocess.run(
        [sys.executable, "-c", _FRESH_SCRIPT, saved_model_dir, calls_path, results_path],
        capture_output=True,
        text=True,
        timeout=300,
        env=environment,
        cwd=tmp_path,
    )
    if result.returncode != 0:
        raise AssertionError(f"fresh process failed:\n{result.stderr[-4000:]}")
    with open(results_path, "rb") as stream:
        return pickle.load(stream)


def assert_outputs_equal(actual, expected, atol=1e-5):
    """Same keys; strings and integers equal, floats close."""
    assert sorted(actual) == sorted(expected)
    for key in expected:
        got, want = np.asarray(actual[key]), np.asarray(expected[key])
        assert got.shape == want.shape, (key, got.shape, want.shape)
        if want.dtype == object or want.dtype.kind in "SUbiu":
            np.testing.assert_array_equal(got, want, err_msg=key)
        else:
            np.testing.assert_allclose(got, want, atol=atol, rtol=1e-5, err_msg=key)


@pytest.fixture(scope="session")
def loaded_aligner(aligner_dir):
    import tensorflow as tf

    return tf.saved_model.load(aligner_dir)


@pytest.fixture(scope="session")
def loaded_captioner(captioner_dir):
    import tensorflow as tf

    return tf.saved_model.load(captioner_dir)


def make_run_folders(root, vocabulary):
    """An alignment run and a caption run in the real run-folder format (config.json, vocabulary.txt,
    model.weights.h5), with tiny randomly initialised models instead of trained ones.

    Returns (alignment run folder, caption run folder).
    """
    from vsa_tf.config import AlignmentConfig, CaptionConfig, DataConfig, ImageEncoderConfig, save_config
    from vsa_tf.jobs import alignment, captioning

    data = DataConfig(image_size=IMAGE_SIZE, max_boxes=MAX_BOXES, max_words=MAX_WORDS)
    alignment_dir, caption_dir = os.path.join(root, "alignment_run"), os.path.join(root, "caption_run")
    image = ImageEncoderConfig(filters=(4, 8))
    alignment_config = AlignmentConfig(data=data, image=image, region_dim=4, embedding_dim=3, hidden_dim=3)
    caption_config = CaptionConfig(data=data, image=image, hidden_dim=6, embedding_dim=4, beam_size=BEAM, max_length=MAX_LENGTH)
    for run_dir, config, model in (
        (alignment_dir, alignment_config, alignment.build_alignment_model(alignment_config, vocabulary.size)),
        (caption_dir, caption_config, captioning.build_caption_model(caption_config, vocabulary.size).build_from_dummy()),
    ):
        os.makedirs(run_dir)
        save_config(config, os.path.join(run_dir, "config.json"))
        vocabulary.save(os.path.join(run_dir, "vocabulary.txt"))
        model.save_weights(os.path.join(run_dir, "model.weights.h5"))
    return alignment_dir, caption_dir


MAX_PROPOSALS = 4


def build_proposal_model(backbone=None, image_size=IMAGE_SIZE, seed=3, feature_layer=None, refine_boxes=True):
    """A tiny `ProposalModel` on a "simple" (4, 8) backbone (stride 2), random heads with non-zero deltas.

    ``backbone``: a built `Backbone` whose weights the proposal network's backbone copies (the
    exported model's region backbone: a shared feature map); None keeps its own random weights.
    ``feature_layer``: "conv1" lays the anchors on the stride-1 map tapped before the backbone's output.
    ``refine_boxes``: with the second stage (`BoxRefinementHead`), its deltas non-zero too.
    """
    from vsa_tf.layers.backbones import Backbone
    from vsa_tf.layers.box_refinement_head import BoxRefinementHead
    from vsa_tf.models.proposal_model import ProposalModel

    keras.utils.set_random_seed(seed)
    model = ProposalModel(
        image_size=image_size, feature_stride=1 if feature_layer else 2, anchor_sizes=(8, 16), aspect_ratios=(0.5, 1.0, 2.0),
        filters=4, max_proposals=MAX_PROPOSALS, backbone=Backbone("simple", filters=(4, 8), name="backbone"),
        feature_layer=feature_layer, name="proposal_model",
        refinement=BoxRefinementHead(filters=4, pool_size=2, hidden=8, name="refinement") if refine_boxes else None,
    )
    model({"images": np.zeros((1, image_size[0], image_size[1], 3), np.float32)})
    # Spread objectness logits and non-zero deltas: distinct scores keep the proposals' order clear of float noise.
    random = np.random.RandomState(seed)
    kernels = [(model.head.objectness.kernel, 1.0), (model.head.box_deltas.kernel, 0.05)]
    if refine_boxes:
        kernels.append((model.refinement.deltas.kernel, 0.5))
    for kernel, scale in kernels:
        kernel.assign(random.normal(0.0, scale, kernel.shape).astype("float32"))
    if backbone is not None:
        model.backbone.set_weights(backbone.get_weights())
    return model


def proposal_run_folder(root, image_size=IMAGE_SIZE, backbone=None):
    """A proposals run folder (config.json, vocabulary.txt, model.weights.h5) with a tiny random model.

    ``backbone``: a built `Backbone` whose weights the run's backbone copies.
    """
    from vsa_tf.config import DataConfig, ImageEncoderConfig, ProposalConfig, save_config
    from vsa_tf.data.text import Vocabulary
    from vsa_tf.jobs.builders import build_proposal_model as build_from_config

    config = ProposalConfig(
        data=DataConfig(image_size=image_size, max_boxes=MAX_BOXES), image=ImageEncoderConfig(filters=(4, 8), frozen=True),
        anchor_sizes=(8.0, 16.0), filters=4, max_proposals=MAX_PROPOSALS,
    )
    keras.utils.set_random_seed(4)
    model = build_from_config(config, load_backbone_weights=False)
    if backbone is not None:
        model.backbone.set_weights(backbone.get_weights())
    os.makedirs(root)
    save_config(config, os.path.join(root, "config.json"))
    Vocabulary([]).save(os.path.join(root, "vocabulary.txt"))
    model.save_weights(os.path.join(root, "model.weights.h5"))
    return root


@pytest.fixture(scope="session")
def captioner_proposals_signatures(captioner_signatures, vocabulary):
    """The session's captioner with a proposal network sharing its backbone (its anchors on the tapped conv1 map)."""
    from vsa_tf.export.captioner import CaptionerSignatures

    model = captioner_signatures.model
    proposal_model = build_proposal_model(model.feature_extractor.backbone_layer, feature_layer="conv1")
    return CaptionerSignatures(model, vocabulary, IMAGE_SIZE, beam_size=BEAM, max_length=MAX_LENGTH, proposal_model=proposal_model)


@pytest.fixture(scope="session")
def captioner_proposals_dir(captioner_proposals_signatures, tmp_path_factory):
    from vsa_tf.export.captioner import export_captioner

    return export_captioner(captioner_proposals_signatures, str(tmp_path_factory.mktemp("captioner_proposals") / "1"))


@pytest.fixture(scope="session")
def aligner_proposals_signatures(aligner_signatures, vocabulary):
    """The session's aligner with a proposal network of its own backbone (two backbone passes), the RPN alone
    (the captioner's has the second stage)."""
    from vsa_tf.export.aligner import AlignerSignatures

    proposal_model = build_proposal_model(refine_boxes=False)
    return AlignerSignatures(
        aligner_signatures.model, vocabulary, IMAGE_SIZE, max_boxes=MAX_BOXES, max_words=MAX_WORDS, proposal_model=proposal_model
    )


@pytest.fixture(scope="session")
def aligner_proposals_dir(aligner_proposals_signatures, tmp_path_factory):
    from vsa_tf.export.aligner import export_aligner

    return export_aligner(aligner_proposals_signatures, str(tmp_path_factory.mktemp("aligner_proposals") / "1"))
