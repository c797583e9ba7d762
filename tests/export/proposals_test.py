"""Exports with a proposals run: regions from image bytes alone (`caption_proposals`, `*_proposals`)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.export.conftest import (
    BEAM,
    IMAGE_SIZE,
    MAX_BOXES,
    MAX_LENGTH,
    MAX_PROPOSALS,
    MAX_WORDS,
    build_alignment_model,
    build_proposal_model,
    run_in_fresh_python,
)
from vsa_tf.config import DataConfig
from vsa_tf.data import boxes as boxes_lib
from vsa_tf.data import pipelines
from vsa_tf.data.records import ImageRecord
from vsa_tf.export import preprocessing
from vsa_tf.export.aligner import AlignerSignatures
from vsa_tf.export.captioner import CaptionerSignatures
from vsa_tf.export.proposals import backbone_difference
from vsa_tf.layers.backbones import Backbone
from vsa_tf.samplers.beam import BeamSampler
from vsa_tf.serving import client

FILENAMES = ["0.png", "1.png", "2.jpg"]  # the `images` fixture: 40 x 30, 50 x 20, 24 x 36


def python_proposals(proposal_model, image_list):
    """`ProposalModel.propose` on the decoded images, boxes scaled to each image's own pixels (as `propose_records`).

    Returns (list per image of float32 [n, 4] boxes, list of [n] scores, heights, widths).
    """
    images, heights, widths = preprocessing.decode_images(tf.constant(image_list), IMAGE_SIZE)
    boxes, scores, counts = proposal_model.propose({"images": images})
    boxes, scores, counts = np.asarray(boxes), np.asarray(scores), np.asarray(counts)
    heights, widths = heights.numpy(), widths.numpy()
    scaled = [
        boxes[row, : counts[row]] * np.array([widths[row] / IMAGE_SIZE[1], heights[row] / IMAGE_SIZE[0]] * 2, np.float32)
        for row in range(len(image_list))
    ]
    return scaled, [scores[row, : counts[row]] for row in range(len(image_list))], heights, widths


def python_region_captions(model, vocabulary, image_list, pixel_boxes):
    """`CaptionModel.generate` on each (image, box) pair: the region-captioning pipeline's batch."""
    images, heights, widths = preprocessing.decode_images(tf.constant(image_list), IMAGE_SIZE)
    owners = [row for row, boxes in enumerate(pixel_boxes) for _ in boxes]
    normalized = [
        boxes_lib.normalize_boxes(tf.constant(box[None]), heights[row], widths[row]) for row, boxes in enumerate(pixel_boxes) for box in boxes
    ]
    batch = {"images": tf.gather(images, owners), "boxes": tf.stack(normalized), "region_mask": tf.ones([len(owners), 1], tf.bool)}
    tokens, scores = model.generate(batch, BeamSampler(num_beams=BEAM, max_length=MAX_LENGTH), return_scores=True)
    captions = [[" ".join(vocabulary.decode(hypothesis)) for hypothesis in row] for row in tokens]
    return captions, np.asarray(scores)


def conv_count(signatures, name):
    """Conv2D ops in the traced graph of one endpoint (its nested functions included)."""
    function, input_signature = signatures.endpoints()[name]
    graph = tf.function(function, input_signature=input_signature, autograph=False).get_concrete_function().graph.as_graph_def()
    nodes = list(graph.node) + [node for library_function in graph.library.function for node in library_function.node_def]
    return sum(node.op == "Conv2D" for node in nodes)


HEAD_CONVOLUTIONS = 3  # RegionProposalHead: the 3 x 3 convolution, objectness, deltas
REFINEMENT_CONVOLUTIONS = 1  # BoxRefinementHead's 1 x 1 reduction (the captioner fixture's second stage)
BACKBONE_CONVOLUTIONS = 2  # the "simple" (4, 8) backbone


def test_caption_proposals_in_a_fresh_process_match_the_python_path_at_two_batch_sizes(
    captioner_proposals_dir, captioner_proposals_signatures, vocabulary, images, tmp_path
):
    signatures = captioner_proposals_signatures
    model, proposal_model = signatures.model, signatures.proposals.proposal_model
    expected_boxes, expected_scores, heights, widths = python_proposals(proposal_model, images)
    assert all(len(boxes) == MAX_PROPOSALS for boxes in expected_boxes)  # enough anchors survive NMS
    client_boxes = client.pad_boxes([boxes.tolist() for boxes in expected_boxes], MAX_PROPOSALS)
    results = run_in_fresh_python(
        captioner_proposals_dir,
        [
            ("caption_proposals", {"image_bytes": np.array(images, dtype=object)}),
            ("caption_proposals", {"image_bytes": np.array(images[1:2], dtype=object)}),
            ("caption_regions", {"image_bytes": np.array(images, dtype=object), "boxes": client_boxes}),
        ],
        str(tmp_path),
    )
    assert results["modules"] == [] and results["vsa_tf_or_tensorflow_text"] == []
    assert results["signatures"] == ["caption_proposals", "caption_regions", "serving_default"]
    everything, one, regions = results["outputs"]
    assert everything["captions"].shape == (3, MAX_PROPOSALS, BEAM) and everything["boxes"].shape == (3, MAX_PROPOSALS, 4)
    assert everything["box_mask"].all()
    for row in range(3):
        # Boxes in the original image's pixels: ProposalModel.propose's boxes scaled by the decoded size.
        np.testing.assert_allclose(everything["boxes"][row], expected_boxes[row], atol=1e-3)
        np.testing.assert_allclose(everything["box_scores"][row], expected_scores[row], atol=1e-5)
        boxes = everything["boxes"][row]
        assert (boxes >= 0).all() and (boxes[:, [0, 2]] <= widths[row]).all() and (boxes[:, [1, 3]] <= heights[row]).all()
    assert everything["boxes"][1][:, 2].max() > IMAGE_SIZE[1]  # the 50-pixel-wide image: beyond the resized 32

    captions, scores = python_region_captions(model, vocabulary, images, expected_boxes)
    np.testing.assert_array_equal(everything["captions"].reshape(-1, BEAM).astype(str), np.array(captions))
    np.testing.assert_allclose(everything["scores"].reshape(-1, BEAM), scores, atol=1e-4)
    # Another batch size: the same image's row.
    for key in everything:
        if everything[key].dtype == object:
            np.testing.assert_array_equal(one[key], everything[key][1:2], err_msg=key)
        else:
            np.testing.assert_allclose(one[key], everything[key][1:2], atol=1e-4, err_msg=key)
    # The boxes sent back to caption_regions are captioned the same way.
    np.testing.assert_array_equal(regions["captions"], everything["captions"])


def test_one_backbone_pass_where_the_proposal_backbone_is_the_region_backbone(
    captioner_proposals_signatures, aligner_proposals_signatures
):
    assert captioner_proposals_signatures.proposals.shares_backbone
    assert captioner_proposals_signatures.proposals.proposal_model.feature_layer == "conv1"  # a map tapped on the way
    regions = conv_count(captioner_proposals_signatures, "caption_regions")
    assert regions == BACKBONE_CONVOLUTIONS
    assert captioner_proposals_signatures.proposals.proposal_model.refinement is not None
    assert conv_count(captioner_proposals_signatures, "caption_proposals") == regions + HEAD_CONVOLUTIONS + REFINEMENT_CONVOLUTIONS
    assert not aligner_proposals_signatures.proposals.shares_backbone
    assert aligner_proposals_signatures.proposals.backbone_difference == "weights differ"
    regions = conv_count(aligner_proposals_signatures, "encode_image_boxes")
    assert aligner_proposals_signatures.proposals.proposal_model.refinement is None
    assert conv_count(aligner_proposals_signatures, "encode_image_proposals") == regions + BACKBONE_CONVOLUTIONS + HEAD_CONVOLUTIONS


def test_aligner_proposals_in_a_fresh_process_match_the_training_pipeline(
    aligner_proposals_dir, aligner_proposals_signatures, images, tmp_path
):
    signatures = aligner_proposals_signatures
    model, proposal_model = signatures.model, signatures.proposals.proposal_model
    expected_boxes, expected_scores, _, _ = python_proposals(proposal_model, images)
    sentences = ["a red circle left of a blue square", "small blue square"]
    results = run_in_fresh_python(
        aligner_proposals_dir,
        [
            ("encode_image_proposals", {"image_bytes": np.array(images, dtype=object)}),
            ("encode_image_proposals", {"image_bytes": np.array(images[2:], dtype=object)}),
            ("score_proposals", {"image_bytes": np.array(images, dtype=object), "sentences": np.array([sentences] * 3, dtype=object)}),
        ],
        str(tmp_path),
    )
    assert results["modules"] == []
    encoded, last, scored = results["outputs"]

    # The training pipeline on a boxes file of the proposals (whole image + the top max_boxes).
    root = tmp_path / "images"
    root.mkdir()
    for filename, data in zip(FILENAMES, images):
        (root / filename).write_bytes(data)
    records = [ImageRecord(filename=filename, image_id=index, split="test") for index, filename in enumerate(FILENAMES)]
    proposal_boxes = dict(zip(FILENAMES, expected_boxes))
    config = DataConfig(image_size=IMAGE_SIZE, max_boxes=MAX_BOXES, max_words=MAX_WORDS)
    (batch,) = list(pipelines.images_dataset(records, str(root), proposal_boxes, config, batch_size=3))
    vectors, mask = (np.asarray(value) for value in model.encode_images(batch))

    assert encoded["region_embeddings"].shape == (3, MAX_BOXES + 1, 4)
    np.testing.assert_allclose(encoded["region_embeddings"], vectors, atol=1e-4)
    np.testing.assert_array_equal(encoded["region_mask"], mask)
    for row, (width, height) in enumerate([(40, 30), (50, 20), (24, 36)]):
        np.testing.assert_array_equal(encoded["region_boxes"][row, 0], [0, 0, width, height])
        np.testing.assert_allclose(encoded["region_boxes"][row, 1:], expected_boxes[row][:MAX_BOXES], atol=1e-3)
        np.testing.assert_allclose(encoded["region_scores"][row], [-1.0] + list(expected_scores[row][:MAX_BOXES]), atol=1e-5)
    np.testing.assert_allclose(last["region_embeddings"], encoded["region_embeddings"][2:], atol=1e-4)

    word_batch = next(iter(pipelines.sentences_dataset(sentences, signatures.vocabulary, config, batch_size=2)))
    word_vectors, word_mask = model.encode_sentences(word_batch)
    expected = np.asarray(model.alignment_score(vectors, word_vectors, region_mask=mask, word_mask=word_mask))
    np.testing.assert_allclose(scored["scores"], expected, atol=1e-4)


def test_align_proposals_is_align_on_the_proposal_boxes(aligner_proposals_dir, images):
    loaded = tf.saved_model.load(aligner_proposals_dir)
    sentences, beta = tf.constant(["a red circle left of a blue square", "small blue square"]), tf.constant([0.5, 1.0])
    outputs = loaded.signatures["align_proposals"](image_bytes=tf.constant(images[:2]), sentences=sentences, beta=beta)
    boxes = outputs["region_boxes"].numpy()[:, 1:]  # the proposals used, -1 padded
    expected = loaded.signatures["align"](image_bytes=tf.constant(images[:2]), boxes=tf.constant(boxes), sentences=sentences, beta=beta)
    assert sorted(outputs) == sorted(list(expected) + ["region_scores"])
    for key, value in expected.items():
        if value.dtype == tf.string:
            np.testing.assert_array_equal(outputs[key].numpy(), value.numpy(), err_msg=key)
        else:
            np.testing.assert_allclose(outputs[key].numpy(), value.numpy(), atol=1e-4, err_msg=key)


def test_empty_batches_give_empty_proposal_outputs(captioner_proposals_dir, aligner_proposals_dir):
    empty = tf.constant([], tf.string)
    outputs = tf.saved_model.load(captioner_proposals_dir).signatures["caption_proposals"](image_bytes=empty)
    assert outputs["captions"].shape == (0, MAX_PROPOSALS, BEAM) and outputs["boxes"].shape == (0, MAX_PROPOSALS, 4)
    loaded = tf.saved_model.load(aligner_proposals_dir)
    outputs = loaded.signatures["encode_image_proposals"](image_bytes=empty)
    assert outputs["region_embeddings"].shape == (0, MAX_BOXES + 1, 4) and outputs["region_scores"].shape == (0, MAX_BOXES + 1)
    outputs = loaded.signatures["align_proposals"](image_bytes=empty, sentences=empty, beta=tf.zeros([0]))
    assert outputs["region_index"].shape == (0, MAX_WORDS)


def test_a_proposal_run_of_another_image_size_is_rejected(captioner_signatures, aligner_signatures, vocabulary):
    other = build_proposal_model(image_size=(48, 40))
    with pytest.raises(ValueError, match=r"anchors on \(48, 40\) images but the captioner resizes images to \(32, 32\)"):
        CaptionerSignatures(captioner_signatures.model, vocabulary, IMAGE_SIZE, proposal_model=other)
    with pytest.raises(ValueError, match=r"anchors on \(48, 40\) images but the aligner resizes images to \(32, 32\)"):
        AlignerSignatures(aligner_signatures.model, vocabulary, IMAGE_SIZE, MAX_BOXES, MAX_WORDS, proposal_model=other)


def test_a_cached_feature_model_cannot_take_proposals(vocabulary):
    model = build_alignment_model(vocabulary, feature_mode="cached", feature_dim=5)
    with pytest.raises(ValueError, match="the aligner reads cached region features"):
        AlignerSignatures(
            model, vocabulary, IMAGE_SIZE, MAX_BOXES, MAX_WORDS, feature_mode="cached", feature_dim=5, proposal_model=build_proposal_model()
        )


def test_backbone_difference_names_what_differs():
    def built(filters, seed):
        keras.utils.set_random_seed(seed)
        backbone = Backbone("simple", filters=filters)
        backbone.build((None, 16, 16, 3))
        return backbone

    first, twin = built((4, 8), 0), built((4, 8), 1)
    assert backbone_difference(first, twin, (16, 16)) == "weights differ"
    twin.set_weights(first.get_weights())
    assert backbone_difference(first, twin, (16, 16)) is None
    assert backbone_difference(first, built((4, 6), 0), (16, 16)) == "block widths differ ([4, 8] vs [4, 6])"


class LoadedModelClient(client._ModelClient):
    """The serving client's request shaping, answered by a loaded SavedModel instead of a server."""

    def __init__(self, loaded):
        self.loaded = loaded

    def predict(self, model, inputs, signature_name=client.DEFAULT_SIGNATURE, version=None):
        signature = self.loaded.signatures[signature_name]
        specs = signature.structured_input_signature[1]
        outputs = signature(**{key: tf.constant(value, dtype=specs[key].dtype) for key, value in inputs.items()})
        return {key: client._decode_strings(value.numpy()) for key, value in outputs.items()}


def test_client_helpers_call_the_proposal_signatures(captioner_proposals_dir, aligner_proposals_dir, images):
    captioner = LoadedModelClient(tf.saved_model.load(captioner_proposals_dir))
    (regions,) = captioner.caption_proposals(images[:1])
    raw = captioner.loaded.signatures["caption_proposals"](image_bytes=tf.constant(images[:1]))
    assert len(regions) == MAX_PROPOSALS
    np.testing.assert_allclose([region["box"] for region in regions], raw["boxes"].numpy()[0], atol=1e-6)
    assert [caption for caption, _ in regions[0]["captions"]] == raw["captions"].numpy()[0, 0].astype(str).tolist()

    aligner = LoadedModelClient(tf.saved_model.load(aligner_proposals_dir))
    encoded = aligner.encode_image(images[:2], proposals=True)
    assert encoded["region_scores"].shape == (2, MAX_BOXES + 1)
    scores = aligner.score(images[:2], ["a red circle", "blue"], proposals=True)
    assert scores.shape == (2, 2)
    row, snippets = aligner.align(images[0], None, "a red circle", beta=0.5, proposals=True)
    assert snippets and all(snippet["box"] == row["region_boxes"][snippet["region"]].tolist() for snippet in snippets)
    with pytest.raises(ValueError, match="give boxes or proposals=True, not both"):
        aligner.encode_image(images[:1], boxes=[[[0, 0, 5, 5]]], proposals=True)
