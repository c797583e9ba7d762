"""Clients of the exported models served by TF Serving: REST (port 8501) and gRPC (port 8500).

Both clients send raw inputs (encoded image bytes, pixel boxes, sentences) to the signatures of
`vsa_tf.export.captioner` and `vsa_tf.export.aligner` and return numpy outputs; the convenience
methods (`caption`, `caption_regions`, `caption_proposals`, `encode_image`, `encode_text`, `score`,
`align`) shape the requests and the answers. Models exported with a proposals run also find regions
from the image bytes alone: `caption_proposals`, and `proposals=True` of `encode_image`, `score` and
`align` (the `*_proposals` signatures). Every call has a timeout, and every failure (connection refused, timeout,
HTTP or gRPC error, malformed answer) raises `ServingError` naming the URL, model and signature.

Example:

    client = RestClient("http://localhost:8501", timeout=10)
    client.caption(["cat.jpg"])            # [[("a cat on a mat", -4.1), ...]]
    client.score(["cat.jpg"], ["a cat"])   # numpy [1, 1]

REST requests use `/v1/models/<name>[/versions/<n>]:predict` with binary inputs as `{"b64": ...}`, in
the "instances" (row) or "inputs" (columnar) form; gRPC uses `tensorflow-serving-api`'s
`PredictRequest`.
"""

import base64
import json
import os

import numpy as np

CAPTIONER = "captioner"
ALIGNER = "aligner"
DEFAULT_SIGNATURE = "serving_default"


class ServingError(RuntimeError):
    """A failed call to a model server (unreachable, timed out, or an error answer)."""


def read_image(image):
    """Image bytes, or a path to a JPEG/PNG file -> bytes."""
    if isinstance(image, (bytes, bytearray)):
        return bytes(image)
    if isinstance(image, (str, os.PathLike)):
        try:
            with open(image, "rb") as stream:
                return stream.read()
        except OSError as error:
            raise ValueError(f"Cannot read image {os.fspath(image)!r}: {error.strerror}") from None
    raise ValueError(f"An image must be bytes or a file path; received {type(image).__name__}")


def pad_boxes(boxes_per_image, count=None):
    """Lists of pixel boxes [x0, y0, x1, y1] per image -> float32 [B, count, 4] padded with -1.

    A fixed ``count`` (e.g. the run's max_boxes) keeps every request the same shape, which TF
    Serving's server-side batching needs (it does not pad variable-length inputs here).
    """
    arrays = [np.asarray(boxes, dtype=np.float32).reshape(-1, 4) for boxes in boxes_per_image]
    longest = max([len(array) for array in arrays] + [1])
    count = longest if count is None else int(count)
    if count < longest:
        raise ValueError(f"pad_boxes: an image has {longest} boxes, more than count={count}")
    padded = -np.ones((len(arrays), count, 4), np.float32)
    for row, array in enumerate(arrays):
        padded[row, : len(array)] = array
    return padded


def _decode_strings(array):
    array = np.asarray(array)
    if array.dtype == object or array.dtype.kind == "S":
        decode = np.vectorize(lambda item: item.decode("utf-8", "replace") if isinstance(item, bytes) else item, otypes=[object])
        return decode(array) if array.size else array.astype(object)
    return array


class _ModelClient:
    """Request shaping shared by the REST and gRPC clients; subclasses implement `predict`."""

    def predict(self, model, inputs, signature_name=DEFAULT_SIGNATURE, version=None):
        raise NotImplementedError

    def caption(self, images, model=CAPTIONER, version=None):
        """Images (bytes or paths) -> per image a list of (caption, score), best first."""
        images = [read_image(image) for image in images]
        outputs = self.predict(model, {"image_bytes": np.array(images, dtype=object)}, DEFAULT_SIGNATURE, version)
        return [list(zip(captions.tolist(), scores.tolist())) for captions, scores in zip(outputs["captions"], outputs["scores"])]

    def caption_regions(self, images, boxes, model=CAPTIONER, version=None, box_count=None):
        """Images + per image a list of pixel boxes -> per image, per box, a list of (caption, score)."""
        images = [read_image(image) for image in images]
        if len(boxes) != len(images):
            raise ValueError(f"caption_regions: {len(images)} images but {len(boxes)} box lists")
        outputs = self.predict(
            model,
            {"image_bytes": np.array(images, dtype=object), "boxes": pad_boxes(boxes, box_count)},
            "caption_regions",
            version,
        )
        result = []
        for image_index, image_boxes in enumerate(boxes):
            count = len(np.asarray(image_boxes).reshape(-1, 4))
            result.append(
                [
                    list(zip(outputs["captions"][image_index, box].tolist(), outputs["scores"][image_index, box].tolist()))
                    for box in range(count)
                ]
            )
        return result

    def caption_proposals(self, images, model=CAPTIONER, version=None):
        """Images alone -> per image, per proposal box (best first), `{"box", "box_score", "captions"}`.

        `box` is [x0, y0, x1, y1] in the image's pixels and `captions` a list of (caption, score),
        best first (the `caption_proposals` signature of a captioner exported with a proposals run).
        """
        images = [read_image(image) for image in images]
        outputs = self.predict(model, {"image_bytes": np.array(images, dtype=object)}, "caption_proposals", version)
        result = []
        for image_index in range(len(images)):
            regions = []
            for box in np.flatnonzero(np.asarray(outputs["box_mask"][image_index], bool)):
                regions.append(
                    {
                        "box": [float(value) for value in outputs["boxes"][image_index, box]],
                        "box_score": float(outputs["box_scores"][image_index, box]),
                        "captions": list(zip(outputs["captions"][image_index, box].tolist(), outputs["scores"][image_index, box].tolist())),
                    }
                )
            result.append(regions)
        return result

    def encode_image(self, images, boxes=None, model=ALIGNER, version=None, box_count=None, proposals=False):
        """-> dict with `region_embeddings` [B, R, h], `region_mask` [B, R], `region_boxes` [B, R, 4].

        `proposals=True` (no boxes): the regions are the exported proposal network's boxes, and the
        answer also holds `region_scores` [B, R].
        """
        inputs = {"image_bytes": np.array([read_image(image) for image in images], dtype=object)}
        if _use_proposals(boxes, proposals, "encode_image"):
            return self.predict(model, inputs, "encode_image_proposals", version)
        if boxes is None:
            return self.predict(model, inputs, "encode_image", version)
        inputs["boxes"] = pad_boxes(boxes, box_count)
        return self.predict(model, inputs, "encode_image_boxes", version)

    def encode_text(self, sentences, model=ALIGNER, version=None):
        """-> dict with `word_embeddings` [B, T, h], `word_mask` [B, T], `words` [B, T]."""
        return self.predict(model, {"sentences": np.array(list(sentences), dtype=object)}, "encode_text", version)

    def score(self, images, sentences, boxes=None, model=ALIGNER, version=None, box_count=None, proposals=False):
        """The images x sentences score matrix, numpy float32 [len(images), len(sentences)].

        Each image is sent with the whole sentence list (the signature is batched along images so
        that server-side batching can merge requests); the server encodes each sentence once.
        `proposals=True` (no boxes): the regions are the exported proposal network's boxes.
        """
        images = [read_image(image) for image in images]
        sentence_rows = np.array([list(sentences)] * len(images), dtype=object).reshape(len(images), len(sentences))
        if _use_proposals(boxes, proposals, "score"):
            outputs = self.predict(
                model, {"image_bytes": np.array(images, dtype=object), "sentences": sentence_rows}, "score_proposals", version
            )
            return np.asarray(_output(outputs, "scores"), np.float32)
        boxes = [[] for _ in images] if boxes is None else boxes
        outputs = self.predict(
            model,
            {"image_bytes": np.array(images, dtype=object), "boxes": pad_boxes(boxes, box_count), "sentences": sentence_rows},
            "score",
            version,
        )
        return np.asarray(_output(outputs, "scores"), np.float32)

    def align(self, image, boxes, sentence, beta=1.0, model=ALIGNER, version=None, box_count=None, proposals=False):
        """One image, its pixel boxes, one sentence -> (raw outputs of row 0, list of snippets).

        Each snippet is `{"start", "end", "words", "region", "box"}` as in the snippets JSON of
        `vsa-tf align` (region 0 = the whole image). `proposals=True` with `boxes=None`: the regions
        are the exported proposal network's boxes (`region_boxes` of the answer).
        """
        inputs = {
            "image_bytes": np.array([read_image(image)], dtype=object),
            "sentences": np.array([sentence], dtype=object),
            "beta": np.array([beta], np.float32),
        }
        signature = "align_proposals" if _use_proposals(boxes, proposals, "align") else "align"
        if signature == "align":
            inputs["boxes"] = pad_boxes([boxes], box_count)
        outputs = self.predict(model, inputs, signature, version)
        row = {name: value[0] for name, value in outputs.items()}
        snippets = []
        for index in range(int(row["snippet_count"])):
            start, end = int(row["snippet_start"][index]), int(row["snippet_end"][index])
            snippets.append(
                {
                    "start": start,
                    "end": end,
                    "words": [str(word) for word in row["words"][start:end]],
                    "region": int(row["snippet_region"][index]),
                    "box": [float(value) for value in row["snippet_boxes"][index]] if "snippet_boxes" in row else None,
                }
            )
        return row, snippets


def _use_proposals(boxes, proposals, method):
    """Whether a call goes to a `*_proposals` signature; boxes and proposals exclude each other."""
    if proposals and boxes is not None:
        raise ValueError(f"{method}: give boxes or proposals=True, not both")
    return bool(proposals)


def _output(outputs, name):
    """An output by name; a REST answer of a single-output signature carries no name."""
    if name in outputs:
        return outputs[name]
    for unnamed in ("predictions", "outputs"):
        if unnamed in outputs and len(outputs) == 1:
            return outputs[unnamed]
    raise ServingError(f"The answer has no output {name!r}; outputs: {sorted(outputs)}")


def _jsonable(value):
    """Numpy/Python values -> JSON, with bytes as {"b64": ...} (TF Serving's binary encoding)."""
    if isinstance(value, (bytes, bytearray)):
        return {"b64": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, np.ndarray):
        if value.dtype == object or value.dtype.kind in "SU":
            return [_jsonable(item) for item in value] if value.ndim else _jsonable(value.item())
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def rest_request_body(inputs, signature_name=DEFAULT_SIGNATURE, form="instances"):
    """{input name: batched array} -> the JSON object of a TF Serving REST predict request.

    Args:
        form: "instances" (row format: one object per example) or "inputs" (columnar format).
    """
    if form not in ("instances", "inputs"):
        raise ValueError(f"form must be 'instances' or 'inputs'; received {form!r}")
    arrays = {
        name: value if isinstance(value, np.ndarray) else np.asarray(value, dtype=object if _has_bytes(value) else None)
        for name, value in inputs.items()
    }
    body = {"signature_name": signature_name}
    if form == "inputs":
        body["inputs"] = {name: _jsonable(array) for name, array in arrays.items()}
        return body
    sizes = {name: array.shape[0] if array.ndim else None for name, array in arrays.items()}
    if len(set(sizes.values())) != 1 or None in sizes.values():
        raise ValueError(f"The 'instances' form needs every input batched with the same size; received sizes {sizes}")
    (size,) = set(sizes.values())
    body["instances"] = [{name: _jsonable(array[index]) for name, array in arrays.items()} for index in range(size)]
    return body


def _has_bytes(value):
    if isinstance(value, (bytes, bytearray, str)):
        return True
    return isinstance(value, (list, tuple)) and any(_has_bytes(item) for item in value)


def parse_rest_response(response):
    """A TF Serving REST predict answer -> {output name: numpy array} (strings as str).

    A single-output signature's answer carries no output name (TF Serving's rule); it comes back
    under "predictions" or "outputs".
    """
    if "predictions" in response:
        predictions = response["predictions"]
        if predictions and isinstance(predictions[0], dict):
            names = list(predictions[0])
            return {name: _to_array([row[name] for row in predictions]) for name in names}
        return {"predictions": _to_array(predictions)}
    if "outputs" in response:
        outputs = response["outputs"]
        if isinstance(outputs, dict):
            return {name: _to_array(value) for name, value in outputs.items()}
        return {"outputs": _to_array(outputs)}
    raise ServingError(f"Unexpected answer without 'predictions' or 'outputs': {json.dumps(response)[:200]}")


def _to_array(value):
    array = np.array(value, dtype=object)
    flat = [item for item in array.reshape(-1)]
    if flat and all(isinstance(item, (bool, np.bool_)) for item in flat):
        return array.astype(bool)
    if flat and all(isinstance(item, (int, float)) and not isinstance(item, bool) for item in flat):
        return array.astype(np.int64 if all(isinstance(item, int) for item in flat) else np.float32)
    if flat and all(isinstance(item, dict) and "b64" in item for item in flat):
        return np.vectorize(lambda item: base64.b64decode(item["b64"]), otypes=[object])(array)
    return array


class RestClient(_ModelClient):
    """TF Serving REST API client.

    Args:
        base_url: e.g. "http://localhost:8501".
        timeout: seconds for each request (connect and read).
        form: "instances" (row format) or "inputs" (columnar format) for the request bodies.
        session: optional `requests.Session` (connection reuse, retries, auth).
    """

    def __init__(self, base_url="http://localhost:8501", timeout=30.0, form="instances", session=None):
        import requests

        if form not in ("instances", "inputs"):
            raise ValueError(f"form must be 'instances' or 'inputs'; received {form!r}")
        self.base_url = base_url.rstrip("/")
        self.timeout = float(timeout)
        self.form = form
        self.session = session or requests.Session()
        self._requests = requests

    def model_url(self, model, version=None):
        url = f"{self.base_url}/v1/models/{model}"
        return url if version is None else f"{url}/versions/{int(version)}"

    def _call(self, method, url, what, **kwargs):
        requests = self._requests
        try:
            response = self.session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.Timeout:
            raise ServingError(f"{what}: no answer from {url} within {self.timeout:g} s") from None
        except requests.ConnectionError as error:
            raise ServingError(f"{what}: cannot reach {url} (is tensorflow_model_server running?): {error}") from None
        try:
            payload = response.json()
        except ValueError:
            raise ServingError(f"{what}: HTTP {response.status_code} from {url} with a non-JSON body: {response.text[:200]!r}") from None
        if response.status_code != 200 or "error" in payload:
            raise ServingError(f"{what}: HTTP {response.status_code} from {url}: {payload.get('error', payload)}")
        return payload

    def model_status(self, model, version=None):
        """GET /v1/models/<name>: the `model_version_status` list."""
        return self._call("GET", self.model_url(model, version), f"status of {model}")["model_version_status"]

    def predict(self, model, inputs, signature_name=DEFAULT_SIGNATURE, version=None):
        body = rest_request_body(inputs, signature_name, self.form)
        url = self.model_url(model, version) + ":predict"
        payload = self._call("POST", url, f"{model}/{signature_name}", data=json.dumps(body), headers={"Content-Type": "application/json"})
        return parse_rest_response(payload)


class GrpcClient(_ModelClient):
    """TF Serving gRPC client (`tensorflow-serving-api` PredictionService.Predict).

    Args:
        target: "host:port", e.g. "localhost:8500".
        timeout: seconds for each call (the gRPC deadline).
        max_message_bytes: receive/send limit of the channel (images can be large).
        channel: optional existing `grpc.Channel`.
    """

    def __init__(self, target="localhost:8500", timeout=30.0, max_message_bytes=64 * 1024 * 1024, channel=None):
        import grpc
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        self.target = target
        self.timeout = float(timeout)
        self._grpc = grpc
        self.channel = channel or grpc.insecure_channel(
            target,
            options=[("grpc.max_receive_message_length", max_message_bytes), ("grpc.max_send_message_length", max_message_bytes)],
        )
        self.stub = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)

    def predict(self, model, inputs, signature_name=DEFAULT_SIGNATURE, version=None):
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        request.model_spec.name = model
        request.model_spec.signature_name = signature_name
        if version is not None:
            request.model_spec.version.value = int(version)
        for name, value in inputs.items():
            array = np.asarray(value)
            if array.dtype == object:
                if array.size:
                    array = np.vectorize(lambda item: item.encode("utf-8") if isinstance(item, str) else item, otypes=[object])(array)
                request.inputs[name].CopyFrom(tf.make_tensor_proto(array, dtype=tf.string, shape=array.shape))
            else:
                request.inputs[name].CopyFrom(tf.make_tensor_proto(array))
        what = f"{model}/{signature_name}"
        try:
            response = self.stub.Predict(request, timeout=self.timeout)
        except self._grpc.RpcError as error:
            code = error.code()
            if code == self._grpc.StatusCode.DEADLINE_EXCEEDED:
                raise ServingError(f"{what}: no answer from {self.target} within {self.timeout:g} s") from None
            if code == self._grpc.StatusCode.UNAVAILABLE:
                raise ServingError(f"{what}: cannot reach {self.target} (is tensorflow_model_server running?): {error.details()}") from None
            raise ServingError(f"{what}: gRPC {code.name} from {self.target}: {error.details()}") from None
        return {name: _decode_strings(tf.make_ndarray(proto)) for name, proto in response.outputs.items()}
