"""Writing SavedModels into TF Serving's layout: `saved_models/<name>/<version>/`, server configs.

`write_archive` traces a model's endpoints with `keras.export.ExportArchive` and writes the
SavedModel; `write_version` puts it in place atomically.

TF Serving watches `base_path/<name>` and serves the highest numeric sub-folder. A version is
written to a hidden temporary folder beside it (a name TF Serving ignores) and renamed into place
only once complete, so the server never sees a half-written SavedModel. An existing version is
replaced only with `overwrite=True` (TF Serving does not reload a version whose number it already
serves; bump the version instead in production).
"""

import json
import os
import re
import shutil
import tempfile

import keras

from vsa_tf.config import atomic_write_text

CAPTIONER_NAME = "captioner"
ALIGNER_NAME = "aligner"
MODELS_CONFIG_FILE = "models.config"
BATCHING_CONFIG_FILE = "batching.config"
# Where `docker run -v $PWD/saved_models:/models tensorflow/serving` mounts the exports.
DOCKER_MODEL_ROOT = "/models"
ASSETS_EXTRA = "assets.extra"
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")

# Server-side batching for GPU (TF Serving's BatchingParameters text proto). Requests are merged
# along axis 0 up to 32 examples (the batch the captioner's beam search is measured at), waiting at
# most 2 ms for a batch to fill; allowed sizes pad small batches to a few shapes so that the GPU
# sees a handful of shapes only. Every signature is batched along axis 0 (no scalar inputs) so it
# can be merged; requests are merged only when their other dimensions agree, because the server is
# not asked to pad variable-length inputs (its padding value is not one the signatures treat as
# padding): `vsa_tf.serving.client` pads boxes to a fixed count with -1 rows.
BATCHING_PARAMETERS = {
    "max_batch_size": 32,
    "batch_timeout_micros": 2000,
    "max_enqueued_batches": 100,
    "num_batch_threads": 4,
    "allowed_batch_sizes": (1, 2, 4, 8, 16, 32),
    "pad_variable_length_inputs": False,
}


def check_model_name(name):
    if not isinstance(name, str) or not _NAME_PATTERN.match(name):
        raise ValueError(f"Model name must be letters, digits, '_', '-' or '.', not starting with '.' or '-'; received {name!r}")
    return name


def check_version(version):
    """A TF Serving version: a positive integer (the folder name is its decimal form)."""
    if isinstance(version, bool) or not isinstance(version, int):
        try:
            text = str(version)
            if not text.isdigit():
                raise ValueError
            version = int(text)
        except (TypeError, ValueError):
            raise ValueError(f"Model version must be a positive integer; received {version!r}") from None
    if version < 1:
        raise ValueError(f"Model version must be a positive integer; received {version!r}")
    return version


def model_directory(base_dir, name):
    return os.path.join(base_dir, check_model_name(name))


def version_directory(base_dir, name, version):
    """`base_dir/<name>/<version>`, the folder TF Serving loads."""
    return os.path.join(model_directory(base_dir, name), str(check_version(version)))


def existing_versions(base_dir, name):
    """Sorted integer versions already exported under `base_dir/<name>` (numeric folders only)."""
    directory = model_directory(base_dir, name)
    if not os.path.isdir(directory):
        return []
    return sorted(int(entry) for entry in os.listdir(directory) if entry.isdigit() and os.path.isdir(os.path.join(directory, entry)))


def next_version(base_dir, names):
    """The smallest version greater than every existing version of each model in ``names`` (1 if none)."""
    if isinstance(names, str):
        names = [names]
    latest = max((max(existing_versions(base_dir, name), default=0) for name in names), default=0)
    return latest + 1


def check_can_write(base_dir, name, version, overwrite=False):
    """Raises ValueError if the version exists and ``overwrite`` is False; returns the target folder."""
    target = version_directory(base_dir, name, version)
    if os.path.exists(target) and not overwrite:
        raise ValueError(
            f"{target} already exists; pass overwrite=True (--overwrite) to replace it, or export a new "
            f"version (next free: {next_version(base_dir, name)})"
        )
    return target


def write_version(base_dir, name, version, write_function, overwrite=False):
    """Writes one SavedModel version atomically and returns its folder.

    Args:
        base_dir: the model base folder (`saved_models`).
        name: the model name (`captioner`, `aligner`).
        version: positive integer.
        write_function: called with a fresh temporary folder path (which does not exist yet) and
            must write the complete SavedModel there.
        overwrite: replace an existing version.
    """
    return write_versions(base_dir, version, {name: write_function}, overwrite=overwrite)[name]


def write_versions(base_dir, version, write_functions, overwrite=False):
    """Writes several models' SavedModels at one version, all or none; returns {name: folder}.

    Every model is first written completely into a hidden staging folder beside its target; only
    when all of them are written are they renamed into place. If any write (or a rename) fails,
    the versions renamed so far are taken back out and replaced versions put back, so ``base_dir``
    is left as it was.

    Args:
        base_dir: the model base folder (`saved_models`).
        version: positive integer.
        write_functions: {model name: function(path)} writing a complete SavedModel at ``path``
            (a folder that does not exist yet).
        overwrite: replace existing versions.
    """
    targets = {name: check_can_write(base_dir, name, version, overwrite) for name in write_functions}
    folders = [base_dir] + [os.path.dirname(target) for target in targets.values()]
    created = [folder for folder in folders if not os.path.isdir(folder)]
    staging_roots = {}
    installed = []  # (target, staging root) of the versions renamed into place
    try:
        for name, write_function in write_functions.items():
            parent = os.path.dirname(targets[name])
            os.makedirs(parent, exist_ok=True)
            # Hidden, non-numeric names: TF Serving's file-system poller ignores them.
            staging_roots[name] = tempfile.mkdtemp(dir=parent, prefix=f".tmp-{version}-")
            staging = os.path.join(staging_roots[name], "model")
            write_function(staging)
            if not os.path.exists(os.path.join(staging, "saved_model.pb")):
                raise ValueError(f"Export of {name} version {version} wrote no saved_model.pb into {staging}")
        for name, target in targets.items():
            staging_root = staging_roots[name]
            if os.path.exists(target):
                os.replace(target, os.path.join(staging_root, "replaced"))
            os.replace(os.path.join(staging_root, "model"), target)
            installed.append((target, staging_root))
    except BaseException:
        for target, staging_root in reversed(installed):
            os.replace(target, os.path.join(staging_root, "failed"))
            if os.path.exists(os.path.join(staging_root, "replaced")):
                os.replace(os.path.join(staging_root, "replaced"), target)
        for name, target in targets.items():  # a rename interrupted between its two steps
            replaced = os.path.join(staging_roots.get(name, ""), "replaced")
            if name in staging_roots and not os.path.exists(target) and os.path.exists(replaced):
                os.replace(replaced, target)
        raise
    finally:
        for staging_root in staging_roots.values():
            shutil.rmtree(staging_root, ignore_errors=True)
        for folder in reversed(created):  # folders this call created and left empty (after a failure)
            if os.path.isdir(folder) and not os.listdir(folder):
                os.rmdir(folder)
    return targets


def write_assets_extra(saved_model_dir, files=None, texts=None):
    """Writes extra files (vocabulary, configs) into `<saved_model_dir>/assets.extra/`.

    Args:
        files: dict of file name -> source path to copy.
        texts: dict of file name -> text to write.
    """
    directory = os.path.join(saved_model_dir, ASSETS_EXTRA)
    os.makedirs(directory, exist_ok=True)
    entries = [(name, source, False) for name, source in (files or {}).items()]
    entries += [(name, text, True) for name, text in (texts or {}).items()]
    for filename, source, is_text in entries:
        if os.path.basename(filename) != filename or filename.startswith("."):
            raise ValueError(f"assets.extra file names must be plain names; received {filename!r}")
        destination = os.path.join(directory, filename)
        if is_text:
            atomic_write_text(destination, source)
        elif not os.path.isfile(source):
            raise ValueError(f"Cannot copy {source!r} into {ASSETS_EXTRA}: file not found")
        else:
            shutil.copyfile(source, destination)
    return directory


def models_config_text(names, model_root=DOCKER_MODEL_ROOT):
    """TF Serving's `model_config_list` text proto serving each model from `model_root/<name>`."""
    blocks = []
    for name in names:
        base_path = os.path.join(model_root, check_model_name(name))
        blocks.append(
            "  config {\n"
            f"    name: {json.dumps(name)}\n"
            f"    base_path: {json.dumps(base_path)}\n"
            '    model_platform: "tensorflow"\n'
            "    model_version_policy { latest { num_versions: 1 } }\n"
            "  }\n"
        )
    return "model_config_list {\n" + "".join(blocks) + "}\n"


def batching_config_text(parameters=None):
    """TF Serving's `BatchingParameters` text proto (for `--batching_parameters_file`)."""
    parameters = dict(BATCHING_PARAMETERS if parameters is None else parameters)
    lines = []
    for key in ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads"):
        lines.append(f"{key} {{ value: {int(parameters[key])} }}")
    for size in parameters.get("allowed_batch_sizes", ()):
        lines.append(f"allowed_batch_sizes: {int(size)}")
    allowed = list(parameters.get("allowed_batch_sizes", ()))
    if allowed and allowed[-1] != parameters["max_batch_size"]:
        raise ValueError(
            f"The last allowed batch size must equal max_batch_size ({parameters['max_batch_size']}); received {allowed}"
        )
    lines.append(f"pad_variable_length_inputs: {str(bool(parameters.get('pad_variable_length_inputs'))).lower()}")
    return "\n".join(lines) + "\n"


def write_server_configs(base_dir, names=(CAPTIONER_NAME, ALIGNER_NAME), model_root=DOCKER_MODEL_ROOT):
    """Writes `models.config` and `batching.config` into ``base_dir``; returns their paths."""
    models_path = os.path.join(base_dir, MODELS_CONFIG_FILE)
    batching_path = os.path.join(base_dir, BATCHING_CONFIG_FILE)
    atomic_write_text(models_path, models_config_text(names, model_root))
    atomic_write_text(batching_path, batching_config_text())
    return models_path, batching_path


def write_archive(model, endpoints, path, resources=()):
    """`ExportArchive`: track the model and resources, add each endpoint (no autograph), write out.

    No `tf.device` scope is used while tracing: it would pin every node to the CPU in the saved
    graph and keep a GPU server from using its GPU. GPU-only kernels are avoided instead by the
    models themselves (their recurrent cells are plain matmuls, no `keras.layers.LSTM`/`GRU` that
    could pick `CudnnRNNV3` when a GPU is visible), `vsa-tf export` hides the GPUs from its own
    process before tracing, and `vsa_tf.export.audit` rejects cuDNN ops and pinned devices.
    """
    archive = keras.export.ExportArchive()
    archive.track(model)
    for resource in resources:
        archive.track(resource)
    for name, (function, input_signature) in endpoints.items():
        archive.add_endpoint(name, function, input_signature=input_signature)
    archive.write_out(path, verbose=False)
    return path
