"""A proposals run's boxes wherever a boxes file is read: `DataConfig.proposals` (`--proposals RUN`).

Proposing (`propose_records`, `propose_image_files`) runs a trained proposals run (`vsa_tf.jobs.proposals`)
on images; `boxes_from_proposals` / `with_proposal_boxes` write those boxes as a public boxes file with a
record of what they were made from, so the file is reused while its source is the same. This module sits
below the trainer (which writes a run's boxes into its folder) and the evaluation jobs, and imports none
of them.
"""

import contextlib
import hashlib
import json
import os
import sys
import tempfile

import keras
import numpy as np
import tensorflow as tf

from vsa_tf.data import pipelines, validate
from vsa_tf.files import file_sha256
from vsa_tf.jobs import run_folder
from vsa_tf.layers.backbones import build_backbone

PROPOSAL_BOXES_FILE = run_folder.PROPOSAL_BOXES_FILE  # in a run trained with `data.proposals`
SOURCE_SUFFIX = ".source.json"  # beside a boxes file made from proposals: what it was made from
CACHE_FOLDER = "vsa_tf-proposal-boxes"  # in the temp folder: boxes of commands that write no run folder
ALL_SPLITS = ("train", "val", "test")
FEATURE_BATCH_SIZE = 32  # images per backbone pass


def propose_records(run, records, image_root, batch_size=FEATURE_BATCH_SIZE, max_proposals=None, nms_iou_threshold=None):
    """{filename: {"boxes": [[x0, y0, x1, y1], ...], "scores": [...]}} in each image's own pixels, best first.

    `max_proposals` / `nms_iou_threshold`: decode with these instead of the run's (e.g. 100 proposals for a
    recall curve past the 19 regions a model reads).
    """
    return propose_with_sizes(run, records, image_root, batch_size, max_proposals, nms_iou_threshold)[0]


def propose_with_sizes(run, records, image_root, batch_size=FEATURE_BATCH_SIZE, max_proposals=None, nms_iou_threshold=None):
    """(`propose_records`' dict, {filename: (width, height)} of the decoded images)."""
    run = run_folder.as_run(run, "proposals")
    decoder = None
    if max_proposals is not None or nms_iou_threshold is not None:
        decoder = run.model.decoder_with(max_proposals, nms_iou_threshold)
    batches = pipelines.proposal_dataset(records, image_root, {}, run.config.data.replace(max_boxes=0), batch_size)
    result, image_sizes, progress = {}, {}, keras.utils.Progbar(len(records), unit_name="image")
    for batch in batches:
        sizes = batch["image_size"].numpy()
        for index, size, entry in zip(batch["image_index"].numpy(), sizes, _proposals_of_batch(run, batch["images"], sizes, decoder)):
            filename = records[int(index)].filename
            result[filename] = entry
            image_sizes[filename] = (int(size[1]), int(size[0]))
        progress.add(len(sizes))
    return result, image_sizes


def _proposals_of_batch(run, images, sizes, decoder=None):
    """[{"boxes", "scores"}] of each image of a batch, boxes in its decoded pixels.

    images: float32 [B, H, W, 3] resized to the run's `data.image_size`; sizes: int [B, 2] decoded (height, width).
    """
    boxes, scores, counts = run.model.propose({"images": images}, decoder=decoder)  # [B, K, 4] xyxy of the resized image, [B, K], [B]
    boxes, scores = np.asarray(boxes), np.asarray(scores)
    height, width = run.config.data.image_size
    entries = []
    for row, count in enumerate(np.asarray(counts)):
        scale = np.array([sizes[row][1] / width, sizes[row][0] / height] * 2)
        kept = boxes[row, :count] * scale
        entries.append({
            "boxes": [[round(float(value), 2) for value in box] for box in kept],
            "scores": [round(float(value), 5) for value in scores[row, :count]],
        })
    return entries


def open_proposals_run(proposals_run):
    """A proposals run (folder or `Run`) opened, checked to be usable before any image is read.

    Raises:
        ValueError: naming the folder: not a run, a run of another kind (named), a run whose image size
            is not a multiple of its backbone's stride (its anchors would not tile the feature map), or
            one that never finished an epoch.
    """
    if isinstance(proposals_run, run_folder.Run):
        run = run_folder.as_run(proposals_run, "proposals")
    else:
        folder = os.fspath(proposals_run)
        kind = run_folder.run_kind(folder)
        if kind != "proposals":
            raise ValueError(f"{folder} is a {kind!r} run, not a 'proposals' run: give a run folder written by `vsa-tf train-proposals`")
        run = run_folder.Run.open(folder, "proposals")
    stride = backbone_stride(run.config)
    height, width = run.config.data.image_size
    if height % stride or width % stride:
        raise ValueError(
            f"{run.folder}: the proposals run's image size {(height, width)} is not a multiple of its backbone's "
            f"({run.config.image.backbone}) stride {stride}; its anchors do not tile the feature map"
        )
    if not os.path.exists(run.weights_path):
        raise ValueError(f"{run.folder}: {run_folder.WEIGHTS_FILE} is missing (training never finished an epoch); it cannot propose yet")
    return run


def source_path(boxes_path):
    """The record beside a boxes file made from proposals: `boxes.json` -> `boxes.source.json`."""
    return os.path.splitext(os.fspath(boxes_path))[0] + SOURCE_SUFFIX


def boxes_source(boxes_path):
    """What the boxes file `boxes_path` was made from (`boxes_from_proposals`' record), or None."""
    path = source_path(boxes_path)
    if not os.path.exists(boxes_path) or not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as stream:
            source = json.load(stream)
    except (OSError, json.JSONDecodeError):
        return None  # an unreadable record: the file is made again
    return source if isinstance(source, dict) else None


def boxes_from_proposals(proposals_run, data_config, out, splits=ALL_SPLITS, limit=None):
    """Writes a proposals run's boxes for a dataset's images as a boxes JSON, or reuses the one at `out`.

    The file is `propose_boxes`' public boxes format ({filename: {"boxes", "scores"}}, each image's own
    pixels, best first; degenerate boxes are left out, as `vsa-tf validate` would refuse them). Beside it,
    `source_path(out)` records what it was made from: the proposals run folder, the SHA-256 of its
    config.json and model.weights.h5, the dataset, the image root, the splits and the SHA-256 of the image
    filenames. A file whose record matches is reused; otherwise (another or retrained proposals run, other
    images, no record) it is made again. Image contents are not hashed: an image replaced under the same
    name is not noticed.

    Args:
        proposals_run: a proposals run folder or `Run`.
        data_config: a `DataConfig` giving the dataset and image root; its `boxes`, when a file made from
            the same source (another run's `PROPOSAL_BOXES_FILE`), is copied instead of proposing again.
        out: the boxes JSON to write (atomically, then its record).
        splits: the splits whose images get boxes.
        limit: optional: only the first N images of those splits, in the dataset's order.

    Returns:
        `out`.
    """
    run = open_proposals_run(proposals_run)
    dataset, _, _ = validate.load_checked_data(data_config.replace(boxes=None, proposals=None, features=None), "pixels")
    records = [record for record in dataset.records if record.split in splits][:limit]
    if not records:
        raise ValueError(f"{data_config.dataset}: no images in the split(s) {list(splits)}")
    source = {
        "proposals_run": os.path.abspath(run.folder),
        "proposals_config_sha256": file_sha256(run.path(run_folder.CONFIG_FILE)),
        "proposals_weights_sha256": file_sha256(run.weights_path),
        "dataset": os.path.abspath(data_config.dataset),
        "images": os.path.abspath(data_config.images),
        "splits": list(splits),
        "num_images": len(records),
        "filenames_sha256": hashlib.sha256("\n".join(record.filename for record in records).encode()).hexdigest(),
    }
    if boxes_source(out) == source:
        print(f"reusing the proposals of {run.folder} in {out}", file=sys.stderr)
        return out
    if data_config.boxes and boxes_source(data_config.boxes) == source:
        # The same proposals made for another run (e.g. the caption run whose image pretraining this is): copied.
        with open(data_config.boxes, encoding="utf-8") as stream:
            proposed = json.load(stream)
        _write_proposal_boxes(out, proposed, source)
        print(f"proposals of {run.folder} copied from {data_config.boxes} to {out}", file=sys.stderr)
        return out
    with contextlib.redirect_stdout(sys.stderr):  # the progress bar: a command's stdout may be its JSON result
        proposed = propose_records(run_folder.as_run(run, "proposals"), records, data_config.images)
    proposed = {filename: _without_degenerate_boxes(entry) for filename, entry in proposed.items()}
    _write_proposal_boxes(out, proposed, source)
    print(f"proposals of {run.folder} for {len(proposed)} images written to {out}", file=sys.stderr)
    return out


def _write_proposal_boxes(out, proposed, source):
    if os.path.exists(source_path(out)):
        os.remove(source_path(out))  # the old record must not vouch for a half-written file
    run_folder.write_json(out, proposed)
    run_folder.write_json(source_path(out), source)


def with_proposal_boxes(data_config, out=None, splits=ALL_SPLITS, limit=None):
    """`data_config` whose `boxes` are its `proposals` run's (`boxes_from_proposals`); unchanged without one.

    Args:
        data_config: a `DataConfig`. Its `boxes`, when set besides `proposals`, must be a file made from
            the same proposals run (a resumed run's own `PROPOSAL_BOXES_FILE`, a config copied from such
            a run); the boxes are made again (or reused) at `out`.
        out: the boxes file: training jobs give `RUN/PROPOSAL_BOXES_FILE`, so the run folder holds the
            boxes it was trained on; None (commands that write no run: align, evaluate-retrieval,
            plot-alignment) puts it in the temp folder's `CACHE_FOLDER`, named after the proposals run,
            the dataset, the images and the splits, where the next command on the same data reuses it.
        splits, limit: the images given boxes (`boxes_from_proposals`).

    Returns:
        the `DataConfig` with `boxes` = the absolute path of the boxes file and `proposals` made absolute.

    Raises:
        ValueError: another boxes file besides the proposals, cached features made from other boxes (they
            hold the regions of the boxes they were made with; features cached from these proposals are read
            with the boxes file written beside them), or an unusable proposals run (`open_proposals_run`).
    """
    proposals = data_config.proposals
    if not proposals:
        return data_config
    proposals = os.path.abspath(os.fspath(proposals))
    if data_config.boxes and (boxes_source(data_config.boxes) or {}).get("proposals_run") != proposals:
        raise ValueError(
            f"data.boxes ({data_config.boxes}) and data.proposals ({proposals}) both give the regions; give one "
            "(--boxes or --proposals)"
        )
    if data_config.features:
        # Features cached with `cache-features --proposals` keep those proposals' boxes file beside them.
        cached_boxes = os.path.join(os.fspath(data_config.features), PROPOSAL_BOXES_FILE)
        if (boxes_source(cached_boxes) or {}).get("proposals_run") == proposals:
            return data_config.replace(boxes=os.path.abspath(cached_boxes), proposals=proposals)
        raise ValueError(
            f"data.proposals ({proposals}) gives boxes to pool from the images, but the regions come from cached features "
            f"({data_config.features}), pooled from the boxes they were cached with, and they were not cached from these "
            f"proposals (no {PROPOSAL_BOXES_FILE} of this proposals run beside them); use a pixel-mode run, or cache "
            "features with `vsa-tf cache-features --proposals`"
        )
    if out is None:
        key = json.dumps([proposals, os.path.abspath(data_config.dataset), os.path.abspath(data_config.images), list(splits), limit])
        name = f"{os.path.basename(proposals.rstrip(os.sep))}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"
        out = os.path.join(tempfile.gettempdir(), CACHE_FOLDER, name)
    boxes_from_proposals(proposals, data_config, out, splits=splits, limit=limit)
    return data_config.replace(boxes=os.path.abspath(out), proposals=proposals)


def propose_image_files(run, image_paths, batch_size=16):
    """Proposals for image files given by path (no dataset): {path: {"boxes", "scores"}}, pixels, best first.

    Raises:
        ValueError: naming a missing or undecodable file, or an unusable proposals run.
    """
    run = run_folder.as_run(open_proposals_run(run), "proposals")
    image_size = tuple(run.config.data.image_size)
    paths = list(dict.fromkeys(os.fspath(path) for path in image_paths))
    decoded = []  # (resized image, [decoded height, width])
    for path in paths:  # every file is checked before the model runs
        if not os.path.isfile(path):
            raise ValueError(f"Image file not found: {path}")
        try:
            image, height, width = pipelines.decode_and_resize(path, image_size)
        except tf.errors.OpError:
            raise ValueError(f"{path}: cannot decode the image; expected a JPEG, PNG, GIF or BMP file") from None
        decoded.append((image, [int(height), int(width)]))
    result = {}
    for begin in range(0, len(paths), batch_size):
        chunk = decoded[begin: begin + batch_size]
        images = tf.stack([image for image, _ in chunk])
        entries = _proposals_of_batch(run, images, np.asarray([size for _, size in chunk]))
        for path, entry in zip(paths[begin: begin + batch_size], entries):
            result[path] = _without_degenerate_boxes(entry)
    return result


def _without_degenerate_boxes(entry):
    """A {"boxes", "scores"} entry without boxes of no width or height (the boxes format refuses them)."""
    kept = [index for index, box in enumerate(entry["boxes"]) if box[2] > box[0] and box[3] > box[1]]
    return {"boxes": [entry["boxes"][index] for index in kept], "scores": [entry["scores"][index] for index in kept]}


def backbone_stride(config):
    """The output stride of the config's backbone (no weights are read)."""
    return build_backbone(config.image.backbone, None, filters=config.image.filters).stride


def split_data_config(run, data_config, split):
    """The data config `run_folder.split_data` reads for `split`: a `data_config.proposals` run's boxes resolved.

    The boxes go to the temp folder (`with_proposal_boxes` with `out=None`), reused by the next command on
    the same proposals run, dataset, images and split. Without proposals `data_config` is returned as is.
    """
    proposals = data_config.proposals if data_config is not None else None
    if not proposals:
        return data_config
    if data_config.boxes:
        raise ValueError(f"give boxes ({data_config.boxes}) or proposals ({proposals}), not both")
    data_config = run.data_config(data_config)
    return with_proposal_boxes(data_config.replace(boxes=None, proposals=proposals), splits=(split,))
