import os

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format
from tensorflow_serving.config import model_server_config_pb2

from vsa_tf.export import layout

REPOSITORY = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def fake_saved_model(marker):
    def write(path):
        os.makedirs(path)
        with open(os.path.join(path, "saved_model.pb"), "w") as stream:
            stream.write(marker)

    return write


def read_marker(path):
    with open(os.path.join(path, "saved_model.pb")) as stream:
        return stream.read()


def batching_parameters_class():
    """TF Serving's BatchingParameters message (session_bundle_config.proto), built from its field list.

    tensorflow-serving-api does not ship this proto; the field names and types are TF Serving's, so
    parsing batching.config with it catches misspelt or mistyped fields.
    """
    file_proto = descriptor_pb2.FileDescriptorProto(name="batching_test.proto", package="test", syntax="proto3")
    file_proto.dependency.append("google/protobuf/wrappers.proto")
    message = file_proto.message_type.add(name="BatchingParameters")
    wrapped = [("max_batch_size", 1, ".google.protobuf.Int64Value"), ("batch_timeout_micros", 2, ".google.protobuf.Int64Value"),
               ("max_enqueued_batches", 3, ".google.protobuf.Int64Value"), ("num_batch_threads", 4, ".google.protobuf.Int64Value"),
               ("thread_pool_name", 5, ".google.protobuf.StringValue")]
    for name, number, type_name in wrapped:
        message.field.add(name=name, number=number, type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE, type_name=type_name,
                          label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    message.field.add(name="allowed_batch_sizes", number=6, type=descriptor_pb2.FieldDescriptorProto.TYPE_INT64,
                      label=descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED)
    message.field.add(name="pad_variable_length_inputs", number=7, type=descriptor_pb2.FieldDescriptorProto.TYPE_BOOL,
                      label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    from google.protobuf import wrappers_pb2

    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    pool.Add(file_proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("test.BatchingParameters"))


def test_versions_and_next_version(tmp_path):
    base = str(tmp_path)
    assert layout.existing_versions(base, "captioner") == []
    assert layout.next_version(base, ["captioner", "aligner"]) == 1
    for version in (1, 3):
        layout.write_version(base, "captioner", version, fake_saved_model(str(version)))
    os.makedirs(tmp_path / "captioner" / "notes")
    layout.write_version(base, "aligner", 4, fake_saved_model("4"))
    assert layout.existing_versions(base, "captioner") == [1, 3]
    assert layout.next_version(base, "captioner") == 4
    assert layout.next_version(base, ["captioner", "aligner"]) == 5
    assert layout.version_directory(base, "aligner", "7") == os.path.join(base, "aligner", "7")


def test_existing_version_is_kept_unless_overwrite(tmp_path):
    base = str(tmp_path)
    layout.write_version(base, "aligner", 2, fake_saved_model("first"))
    with pytest.raises(ValueError, match=r"aligner/2 already exists; pass overwrite=True .* \(next free: 3\)"):
        layout.write_version(base, "aligner", 2, fake_saved_model("second"))
    assert read_marker(tmp_path / "aligner" / "2") == "first"
    layout.write_version(base, "aligner", 2, fake_saved_model("second"), overwrite=True)
    assert read_marker(tmp_path / "aligner" / "2") == "second"
    assert sorted(os.listdir(tmp_path / "aligner")) == ["2"]  # no temporary folder left behind


def test_failed_export_leaves_nothing_in_place(tmp_path):
    def broken(path):
        os.makedirs(path)
        open(os.path.join(path, "half_written"), "w").close()
        raise RuntimeError("tracing failed")

    with pytest.raises(RuntimeError, match="tracing failed"):
        layout.write_version(str(tmp_path), "captioner", 1, broken)
    assert os.listdir(tmp_path) == []  # nor the model folder this call created
    with pytest.raises(ValueError, match="wrote no saved_model.pb"):
        layout.write_version(str(tmp_path), "captioner", 1, lambda path: os.makedirs(path))
    assert layout.existing_versions(str(tmp_path), "captioner") == []


def test_write_versions_is_all_or_nothing(tmp_path):
    base = str(tmp_path)
    layout.write_versions(base, 1, {"aligner": fake_saved_model("a1"), "captioner": fake_saved_model("c1")})

    def broken(path):
        os.makedirs(path)
        raise RuntimeError("tracing failed")

    with pytest.raises(RuntimeError, match="tracing failed"):
        layout.write_versions(base, 2, {"aligner": fake_saved_model("a2"), "captioner": broken})
    assert layout.existing_versions(base, "aligner") == layout.existing_versions(base, "captioner") == [1]
    with pytest.raises(RuntimeError, match="tracing failed"):
        layout.write_versions(base, 1, {"aligner": fake_saved_model("a2"), "captioner": broken}, overwrite=True)
    assert read_marker(tmp_path / "aligner" / "1") == "a1"
    assert sorted(os.listdir(tmp_path / "aligner")) == sorted(os.listdir(tmp_path / "captioner")) == ["1"]


@pytest.mark.parametrize("version", [0, -2, "latest", 1.5, True, None])
def test_bad_versions_are_rejected(version):
    with pytest.raises(ValueError, match="positive integer"):
        layout.check_version(version)


def test_bad_model_names_are_rejected(tmp_path):
    for name in ("../escape", ".hidden", "a/b", ""):
        with pytest.raises(ValueError, match="Model name"):
            layout.version_directory(str(tmp_path), name, 1)


def test_assets_extra(tmp_path):
    source = tmp_path / "vocabulary.txt"
    source.write_text("<pad>\n[UNK]\n")
    directory = layout.write_assets_extra(str(tmp_path / "model"), files={"vocabulary.txt": str(source)}, texts={"config.json": "{}\n"})
    assert sorted(os.listdir(directory)) == ["config.json", "vocabulary.txt"]
    with pytest.raises(ValueError, match="plain names"):
        layout.write_assets_extra(str(tmp_path / "model"), texts={"../x": ""})
    with pytest.raises(ValueError, match="file not found"):
        layout.write_assets_extra(str(tmp_path / "model"), files={"missing.txt": str(tmp_path / "nope")})


def test_models_config_parses_as_tf_serving_model_server_config(tmp_path):
    models_path, batching_path = layout.write_server_configs(str(tmp_path))
    config = text_format.Parse(open(models_path).read(), model_server_config_pb2.ModelServerConfig())
    entries = {entry.name: entry for entry in config.model_config_list.config}
    assert sorted(entries) == ["aligner", "captioner"]
    assert entries["captioner"].base_path == "/models/captioner"
    assert entries["aligner"].model_platform == "tensorflow"
    assert entries["aligner"].model_version_policy.WhichOneof("policy_choice") == "latest"
    parameters = text_format.Parse(open(batching_path).read(), batching_parameters_class()())
    assert parameters.max_batch_size.value == 32
    assert list(parameters.allowed_batch_sizes)[-1] == parameters.max_batch_size.value
    assert parameters.batch_timeout_micros.value > 0 and parameters.num_batch_threads.value > 0
    assert not parameters.pad_variable_length_inputs


def test_checked_in_configs_are_the_generated_ones():
    with open(os.path.join(REPOSITORY, "saved_models", "models.config")) as stream:
        assert stream.read() == layout.models_config_text(["captioner", "aligner"])
    with open(os.path.join(REPOSITORY, "saved_models", "batching.config")) as stream:
        assert stream.read() == layout.batching_config_text()


def test_batching_config_rejects_inconsistent_sizes():
    parameters = dict(layout.BATCHING_PARAMETERS, allowed_batch_sizes=(1, 8))
    with pytest.raises(ValueError, match="must equal max_batch_size"):
        layout.batching_config_text(parameters)
