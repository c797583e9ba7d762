import shutil

import pytest
import tensorflow as tf

from vsa_tf.export import audit


def save_module(path, function, input_signature):
    module = tf.Module()
    module.run = tf.function(function, input_signature=input_signature, autograph=False)
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.run})
    return str(path)


def add_node(saved_model_dir, op):
    """Appends a node of type ``op`` to the first library function of a SavedModel (a forged graph)."""
    proto = audit.read_saved_model_proto(saved_model_dir)
    function = proto.meta_graphs[0].graph_def.library.function[0]
    function.node_def.add(name=f"forged_{op}", op=op)
    with open(f"{saved_model_dir}/saved_model.pb", "wb") as stream:
        stream.write(proto.SerializeToString())


@pytest.mark.parametrize("exported", ["captioner_dir", "aligner_dir", "captioner_proposals_dir", "aligner_proposals_dir"])
def test_exported_models_use_stock_ops_only(exported, request):
    report = audit.check_saved_model(request.getfixturevalue(exported))
    assert report.ok and report.unregistered == [] and report.allowlisted == [] and report.pinned == []
    ops = set(report.op_functions)
    assert {"DecodeImage", "ResizeBilinear", "CropAndResize"} <= ops
    assert not any(op.startswith(("Cudnn", "TFText", "Sentencepiece", "WhitespaceTokenize")) for op in ops)
    if "proposals" in exported:  # the proposal network: NMS, top-K, delta decoding
        assert {"CombinedNonMaxSuppression", "TopKV2", "Exp"} <= ops
    else:
        assert "CombinedNonMaxSuppression" not in ops
    if exported.startswith("aligner"):
        assert {"StringLower", "StaticRegexReplace", "StringSplitV2", "LookupTableFindV2"} <= ops
    else:
        assert "While" in ops or "StatelessWhile" in ops  # the beam search loop


def test_tensorflow_text_ops_are_flagged_unless_allowlisted(tmp_path):
    tensorflow_text = pytest.importorskip("tensorflow_text")
    tokenizer = tensorflow_text.WhitespaceTokenizer()
    path = save_module(
        tmp_path / "text", lambda strings: tokenizer.tokenize(strings).to_tensor(default_value=""), [tf.TensorSpec([None], tf.string)]
    )
    report = audit.audit_saved_model(path)
    (text_op,) = [op for op in report.unregistered if "Whitespace" in op]
    assert not report.ok
    with pytest.raises(ValueError, match=f"op {text_op} is not a stock TensorFlow op"):
        audit.check_saved_model(path)
    allowed = audit.audit_saved_model(path, allowed_ops=audit.TF_TEXT_2_12_OPS | {text_op})
    assert allowed.ok and allowed.allowlisted == [text_op]


def test_unknown_and_gpu_only_ops_and_device_pins_are_reported(tmp_path):
    path = save_module(tmp_path / "plain", lambda values: values * 2.0, [tf.TensorSpec([None], tf.float32)])
    assert audit.audit_saved_model(path).ok
    forged = str(tmp_path / "forged")
    shutil.copytree(path, forged)
    add_node(forged, "CudnnRNNV3")
    add_node(forged, "MadeUpOpForTheAudit")
    report = audit.audit_saved_model(forged)
    assert report.forbidden == ["CudnnRNNV3"]
    assert report.unregistered == ["MadeUpOpForTheAudit"]

    def pinned(values):
        with tf.device("/CPU:0"):
            return values + 1.0

    report = audit.audit_saved_model(save_module(tmp_path / "pinned", pinned, [tf.TensorSpec([None], tf.float32)]))
    assert report.pinned and all("/device:CPU:0" in entry for entry in report.pinned)
    assert any("pinned to a device" in line for line in report.problems())


def test_signature_summary_reads_the_signature_defs(captioner_dir):
    summary = audit.signature_summary(captioner_dir)
    assert sorted(summary) == ["caption_regions", "serving_default"]
    assert summary["serving_default"]["inputs"] == {"image_bytes": "string [?]"}
    assert summary["serving_default"]["outputs"]["captions"] == "string [?, 3]"
    assert summary["caption_regions"]["inputs"]["boxes"] == "float [?, ?, 4]"


def test_missing_saved_model_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="saved_model.pb is missing"):
        audit.audit_saved_model(str(tmp_path))
