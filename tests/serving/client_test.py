import base64
import concurrent.futures
import http.server
import socket
import threading

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from vsa_tf.serving import client, rest


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def rest_server(loaded_captioner, loaded_aligner):
    with rest.RestHarnessServer({"captioner": {1: loaded_captioner}, "aligner": {1: loaded_aligner}}) as server:
        yield server


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """TF Serving's Predict over loaded SavedModels (a test double of the model server's gRPC side)."""

    def __init__(self, models, hold=None):
        self.models = models
        self.hold = hold  # a threading.Event: answer only once it is set (a server that does not answer in time)

    def Predict(self, request, context):
        if self.hold is not None:
            self.hold.wait()
        model = self.models.get(request.model_spec.name)
        if model is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Latest({request.model_spec.name})")
        signature = model.signatures[request.model_spec.signature_name or "serving_default"]
        inputs = {name: tf.constant(tf.make_ndarray(proto)) for name, proto in request.inputs.items()}
        try:
            outputs = signature(**inputs)
        except tf.errors.InvalidArgumentError as error:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, error.message)
        response = predict_pb2.PredictResponse()
        for name, value in outputs.items():
            response.outputs[name].CopyFrom(tf.make_tensor_proto(value.numpy()))
        return response


@pytest.fixture(scope="module")
def grpc_target(loaded_captioner, loaded_aligner):
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=2))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionService({"captioner": loaded_captioner, "aligner": loaded_aligner}), server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(None)


def expected_captions(loaded_captioner, images):
    outputs = loaded_captioner.signatures["serving_default"](image_bytes=tf.constant(images))
    captions, scores = outputs["captions"].numpy(), outputs["scores"].numpy()
    return [list(zip(row.astype(str).tolist(), row_scores.tolist())) for row, row_scores in zip(captions, scores)]


def assert_captions_equal(got, expected):
    assert [[caption for caption, _ in row] for row in got] == [[caption for caption, _ in row] for row in expected]
    np.testing.assert_allclose([[score for _, score in row] for row in got], [[score for _, score in row] for row in expected], atol=1e-5)


def test_rest_request_body_forms_and_binary_inputs():
    inputs = {"image_bytes": np.array([b"\x89PNG", b"\xff\xd8"], dtype=object), "boxes": -np.ones((2, 1, 4), np.float32)}
    body = client.rest_request_body(inputs, "caption_regions", form="instances")
    assert body["signature_name"] == "caption_regions"
    assert body["instances"][1] == {"image_bytes": {"b64": base64.b64encode(b"\xff\xd8").decode()}, "boxes": [[-1.0, -1.0, -1.0, -1.0]]}
    body = client.rest_request_body({"sentences": ["a cat", "a dog"]}, "encode_text", form="inputs")
    assert body["inputs"] == {"sentences": ["a cat", "a dog"]}
    with pytest.raises(ValueError, match="same size"):
        client.rest_request_body({"a": np.zeros(2), "b": np.zeros(3)})


def test_pad_boxes_pads_with_minus_one_to_a_fixed_count():
    padded = client.pad_boxes([[[1, 2, 3, 4]], []], count=3)
    assert padded.shape == (2, 3, 4)
    np.testing.assert_array_equal(padded[0, 0], [1, 2, 3, 4])
    assert (padded[0, 1:] == -1).all() and (padded[1] == -1).all()
    with pytest.raises(ValueError, match="more than count=1"):
        client.pad_boxes([[[1, 2, 3, 4], [1, 2, 3, 4]]], count=1)


@pytest.mark.parametrize("form", ["instances", "inputs"])
def test_rest_client_captions_like_the_signature(rest_server, loaded_captioner, images, form, tmp_path):
    rest_client = client.RestClient(rest_server.url, timeout=60, form=form)
    path = tmp_path / "image.png"
    path.write_bytes(images[0])
    got = rest_client.caption([str(path), images[1]])
    assert_captions_equal(got, expected_captions(loaded_captioner, images[:2]))
    regions = rest_client.caption_regions(images[:1], [[[0, 0, 40, 30], [2, 3, 20, 25]]])
    assert len(regions) == 1 and len(regions[0]) == 2
    assert [caption for caption, _ in regions[0][0]] == [caption for caption, _ in got[0]]  # whole-image box
    assert rest_client.model_status("captioner")[0]["state"] == "AVAILABLE"


def test_rest_client_aligner_methods(rest_server, loaded_aligner, images):
    rest_client = client.RestClient(rest_server.url, timeout=60)
    sentences = ["a red circle", "blue square left of a circle"]
    scores = rest_client.score(images, sentences, boxes=[[[2, 3, 20, 25]], [], []])
    expected = loaded_aligner.signatures["score"](
        image_bytes=tf.constant(images),
        boxes=tf.constant(client.pad_boxes([[[2, 3, 20, 25]], [], []])),
        sentences=tf.constant([sentences] * 3),
    )["scores"].numpy()
    assert scores.shape == (3, 2)
    np.testing.assert_allclose(scores, expected, atol=1e-5)
    row, snippets = rest_client.align(images[0], [[2, 3, 20, 25]], sentences[1], beta=0.5)
    assert sum(snippet["end"] - snippet["start"] for snippet in snippets) == int(row["word_mask"].sum()) == 6
    assert " ".join(word for snippet in snippets for word in snippet["words"]) == "blue square left of a circle"
    assert all(len(snippet["box"]) == 4 for snippet in snippets)
    encoded = rest_client.encode_text(sentences)
    assert encoded["word_embeddings"].shape[:2] == encoded["word_mask"].shape == encoded["words"].shape
    regions = rest_client.encode_image(images[:2], boxes=[[[2, 3, 20, 25]], []])
    np.testing.assert_array_equal(regions["region_mask"][:, :2], [[True, True], [True, False]])


def test_rest_client_errors_are_clear(rest_server):
    rest_client = client.RestClient(rest_server.url, timeout=60)
    with pytest.raises(client.ServingError, match=r"(?s)captioner/serving_default: HTTP 400 .*is not a JPEG or PNG image"):
        rest_client.caption([b"plain text, not an image"])
    with pytest.raises(client.ServingError, match="HTTP 404 .*Servable not found"):
        rest_client.predict("missing_model", {"image_bytes": np.array([b"x"], dtype=object)})
    closed = client.RestClient(f"http://127.0.0.1:{free_port()}", timeout=5)
    with pytest.raises(client.ServingError, match="cannot reach http://127.0.0.1:.*is tensorflow_model_server running"):
        closed.caption([b"\x89PNG"])
    with pytest.raises(ValueError, match="Cannot read image"):
        rest_client.caption(["/nonexistent/image.jpg"])


def test_rest_client_times_out():
    release = threading.Event()  # the server answers nothing until the client has given up

    class Slow(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            release.wait()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        slow_client = client.RestClient(f"http://127.0.0.1:{server.server_address[1]}", timeout=0.3)
        with pytest.raises(client.ServingError, match=r"no answer from .* within 0.3 s"):
            slow_client.caption([b"\x89PNG"])
    finally:
        release.set()
        server.shutdown()
        server.server_close()


def test_grpc_client_captions_like_the_signature(grpc_target, loaded_captioner, loaded_aligner, images):
    grpc_client = client.GrpcClient(grpc_target, timeout=60)
    assert_captions_equal(grpc_client.caption(images), expected_captions(loaded_captioner, images))
    encoded = grpc_client.encode_text(["a red circle"])
    expected = loaded_aligner.signatures["encode_text"](sentences=tf.constant(["a red circle"]))
    np.testing.assert_allclose(encoded["word_embeddings"], expected["word_embeddings"].numpy(), atol=1e-6)
    assert encoded["words"][0, :3].tolist() == ["a", "red", "circle"]
    with pytest.raises(client.ServingError, match="(?s)gRPC INVALID_ARGUMENT .*is not a JPEG or PNG image"):
        grpc_client.caption([b"not an image"])
    with pytest.raises(client.ServingError, match="gRPC NOT_FOUND"):
        grpc_client.predict("missing_model", {"image_bytes": np.array([b"x"], dtype=object)})


def test_grpc_client_unreachable_and_timeout(loaded_captioner):
    with pytest.raises(client.ServingError, match="cannot reach 127.0.0.1:.*is tensorflow_model_server running"):
        client.GrpcClient(f"127.0.0.1:{free_port()}", timeout=5).caption([b"\x89PNG"])
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=1))
    release = threading.Event()  # the server answers nothing until the client has given up
    slow_service = PredictionService({"captioner": loaded_captioner}, hold=release)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(slow_service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with pytest.raises(client.ServingError, match=r"no answer from .* within 0.3 s"):
            client.GrpcClient(f"127.0.0.1:{port}", timeout=0.3).caption([b"\x89PNG"])
    finally:
        release.set()
        server.stop(None)
