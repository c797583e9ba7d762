"""Cached region features: computed once per image, stored as sharded TFRecords, streamed instead of pixels.

Layout of a features folder:
    index.json                              {"format", "version", "count", "regions", "dims", "filenames", "shards"}
    features-00000-of-00003.tfrecord ...    one `tf.train.Example` per image:
        filename  bytes
        features  float list, R * D values (row-major [R, D]); in a float16 store ("dtype": "float16"
                  in the index, version 2, see `write_store`) one bytes value, R * D little-endian float16
        mask      int64 list, R values (1 = real region)
    caching/plan.json                       the settings fingerprint and the ordered filenames being cached
    caching/features-00000-of-00003.json    one per finished shard: its record count, dims, size and fingerprints

Shard k always holds records [k * shard_size, (k + 1) * shard_size) of the record order, extracted in
batches that start at the shard's first record, so its bytes depend only on its records and the settings:
an interrupted run (even `kill -9`) keeps every finished shard and a rerun redoes only the others, and
`num_parts` processes (`part_index` = 0 .. num_parts - 1, shard k belongs to part k % num_parts) can cache
one dataset into one folder. Every shard is written to a temporary name and renamed, then its sidecar is
written; `index.json` is written last, by whichever call finds every shard finished (or by
`merge_region_features`), so a folder with an index is always complete.
"""

import dataclasses
import hashlib
import json
import math
import os
import shutil
import struct

import numpy as np
import tensorflow as tf

from vsa_tf.config import atomic_write_text
from vsa_tf.data import pipelines
from vsa_tf.data import readers

INDEX_FILE = "index.json"
FORMAT_NAME = "vsa_tf.region_features"
# Feature dtypes of a store: float32 (written by `write_region_features`) or float16 (half the disk and I/O).
STORE_DTYPES = ("float32", "float16")
SHARD_READ_BUFFER_BYTES = 1 << 20  # read-ahead of each open shard (FeatureStore)
INTERLEAVED_SHARDS = 4  # shards read at once when shuffling (FeatureStore)
CACHING_FOLDER = "caching"  # the plan and the per-shard sidecars
PLAN_FILE = "plan.json"
PLAN_FORMAT = "vsa_tf.region_features.plan"
_TFRECORD_HEADER = struct.Struct("<QI")  # record length (uint64), masked CRC32C of the length (uint32)


def _sha256_json(value):
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode("utf-8")).hexdigest()


def shard_file_name(shard, num_shards):
    return f"features-{shard:05d}-of-{num_shards:05d}.tfrecord"


def count_tfrecords(path):
    """Records in a TFRecord file, read from its framing alone (12-byte headers; the payloads are skipped).

    Raises:
        ValueError: naming the file when it ends inside a record (a truncated or foreign file).
    """
    size = os.path.getsize(path)
    count, position = 0, 0
    with open(path, "rb") as stream:
        while position < size:
            header = stream.read(_TFRECORD_HEADER.size)
            if len(header) < _TFRECORD_HEADER.size:
                raise ValueError(f"{path}: truncated TFRecord file (a header ends at byte {size})")
            length, _ = _TFRECORD_HEADER.unpack(header)
            position += _TFRECORD_HEADER.size + length + 4  # payload, then its masked CRC32C
            if position > size:
                raise ValueError(f"{path}: truncated TFRecord file (record {count} needs {position} bytes, file has {size})")
            stream.seek(position)
            count += 1
    return count


@dataclasses.dataclass
class CachingPlan:
    """Which records each shard of a features folder holds, and the settings they are computed with.

    Attributes:
        out_dir: the features folder.
        filenames: every record's filename, in the record order.
        shard_size: records per shard (the last shard may hold fewer).
        regions: R = max_boxes + 1.
        settings: JSON-able fingerprint of everything that changes the shards' bytes (image size, boxes,
            extractor weights, batch size, the records); a rerun must present the same.
    """

    out_dir: str
    filenames: list
    shard_size: int
    regions: int
    settings: dict

    @property
    def num_shards(self):
        return max(1, math.ceil(len(self.filenames) / self.shard_size))

    def shard_records(self, shard):
        """(first, end) record positions of `shard`."""
        first = shard * self.shard_size
        return first, min(first + self.shard_size, len(self.filenames))

    def shard_file(self, shard):
        return shard_file_name(shard, self.num_shards)

    def sidecar_path(self, shard):
        return os.path.join(self.out_dir, CACHING_FOLDER, os.path.splitext(self.shard_file(shard))[0] + ".json")

    @property
    def dtype(self):
        """The features' dtype in the shards: "float32", or "float16" when the settings ask for it."""
        return self.settings.get("dtype", "float32")

    def settings_sha256(self):
        return _sha256_json(self.settings)

    def shard_filenames_sha256(self, shard):
        first, end = self.shard_records(shard)
        return _sha256_json(self.filenames[first:end])

    def to_json(self):
        return {
            "format": PLAN_FORMAT, "version": 1, "shard_size": self.shard_size, "regions": self.regions,
            "settings": self.settings, "filenames": self.filenames,
        }

    @classmethod
    def load(cls, out_dir):
        path = os.path.join(out_dir, CACHING_FOLDER, PLAN_FILE)
        plan = readers.load_json(path, "feature caching plan")
        missing = [key for key in ("shard_size", "regions", "settings", "filenames") if key not in plan]
        if not isinstance(plan, dict) or plan.get("format") != PLAN_FORMAT or missing:
            raise ValueError(f"{path}: not a feature caching plan (missing {missing})")
        return cls(out_dir, list(plan["filenames"]), int(plan["shard_size"]), int(plan["regions"]), dict(plan["settings"]))

    def differences(self, other):
        """Lines `name: X there, Y now` for each setting in which `other` (the folder's plan) differs."""
        lines = []
        for key in sorted(set(self.settings) | set(other.settings)):
            there, now = other.settings.get(key), self.settings.get(key)
            if there != now:
                lines.append(f"{key}: {_short(there)} there, {_short(now)} now")
        if other.filenames != self.filenames:
            first = next(
                (position for position, pair in enumerate(zip(other.filenames, self.filenames)) if pair[0] != pair[1]),
                min(len(other.filenames), len(self.filenames)),
            )
            there = other.filenames[first] if first < len(other.filenames) else "(none)"
            now = self.filenames[first] if first < len(self.filenames) else "(none)"
            lines.append(
                f"images: {len(other.filenames)} there, {len(self.filenames)} now "
                f"(record {first}: {there!r} there, {now!r} now)"
            )
        return lines

    def finished_shard(self, shard):
        """The sidecar dict of `shard` when its shard file is finished with these settings, else None."""
        path = self.sidecar_path(shard)
        if not os.path.isfile(path):
            return None
        try:
            with open(path, encoding="utf-8") as stream:
                sidecar = json.load(stream)
        except (ValueError, OSError):
            return None  # a damaged sidecar: the shard is redone
        first, end = self.shard_records(shard)
        shard_path = os.path.join(self.out_dir, self.shard_file(shard))
        if (
            not isinstance(sidecar, dict)
            or sidecar.get("settings_sha256") != self.settings_sha256()
            or sidecar.get("filenames_sha256") != self.shard_filenames_sha256(shard)
            or sidecar.get("count") != end - first
            or not os.path.isfile(shard_path)
            or os.path.getsize(shard_path) != sidecar.get("bytes")
        ):
            return None
        return sidecar


def _short(value, limit=80):
    text = json.dumps(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _remove_store(out_dir):
    """Deletes what a caching run writes in `out_dir` (index, plan, sidecars, shards, temporaries); nothing else."""
    for name in os.listdir(out_dir):
        path = os.path.join(out_dir, name)
        is_shard = name.startswith(("features-", ".tmp-features-")) and name.endswith(".tfrecord")
        if name == INDEX_FILE or (is_shard and os.path.isfile(path)):
            os.remove(path)
    shutil.rmtree(os.path.join(out_dir, CACHING_FOLDER), ignore_errors=True)


def _open_plan(plan, restart):
    """Writes `plan` into its folder, or checks it against the one there (ValueError naming what differs)."""
    os.makedirs(os.path.join(plan.out_dir, CACHING_FOLDER), exist_ok=True)
    plan_path = os.path.join(plan.out_dir, CACHING_FOLDER, PLAN_FILE)
    index_path = os.path.join(plan.out_dir, INDEX_FILE)
    if restart:
        _remove_store(plan.out_dir)
        os.makedirs(os.path.join(plan.out_dir, CACHING_FOLDER), exist_ok=True)
    elif os.path.isfile(plan_path):
        differences = plan.differences(CachingPlan.load(plan.out_dir))
        if differences:
            raise ValueError(
                f"{plan.out_dir}: holds features cached with other settings ({'; '.join(differences)}); "
                "rerun with the same settings to resume, or choose another --out, or pass --restart to start it over"
            )
        return
    elif os.path.isfile(index_path):
        raise ValueError(
            f"{plan.out_dir}: holds a features index written without a caching plan ({PLAN_FILE}, older cache-features); "
            "choose another --out, or pass --restart to start it over"
        )
    atomic_write_text(plan_path, json.dumps(plan.to_json(), indent=1) + "\n")


@dataclasses.dataclass
class CachingResult:
    """What one `cache_region_shards` call did.

    Attributes:
        index: the index dict when the folder is complete after the call (also in `index.json`), else None.
        written_shards: shard files this call wrote.
        reused_shards: shard files of this call's part that were already finished (kept as they were).
        missing_shards: shard files of other parts not finished yet (empty when `index` is set).
        extracted_images: images this call ran the extractor on.
        regions, dims: R and D of the features (dims 0 when no shard is finished yet).
    """

    index: dict
    written_shards: list
    reused_shards: list
    missing_shards: list
    extracted_images: int
    regions: int
    dims: int


def _write_shard(plan, shard, records, image_root, boxes, config, extractor, batch_size):
    """Extracts shard `shard`'s records batch by batch and writes it (temp file, rename, then its sidecar)."""
    first, end = plan.shard_records(shard)
    shard_records = records[first:end]
    name = plan.shard_file(shard)
    final_path = os.path.join(plan.out_dir, name)
    temporary = os.path.join(plan.out_dir, ".tmp-" + name)
    dims = None
    writer = tf.io.TFRecordWriter(temporary)
    try:
        for batch in pipelines.images_dataset(shard_records, image_root, boxes, config, batch_size):
            features = np.asarray(extractor(batch), dtype=np.float32)
            masks = batch["region_mask"].numpy()
            if features.ndim != 3 or features.shape[:2] != masks.shape:
                raise ValueError(
                    f"extractor must return [B, R, D] features with [B, R] = {list(masks.shape)}, "
                    f"received shape {list(features.shape)}"
                )
            if dims is not None and features.shape[2] != dims:
                raise ValueError(f"extractor returned {features.shape[2]} dims after {dims} in earlier batches")
            dims = int(features.shape[2])
            for row, position in enumerate(batch["image_index"].numpy()):
                example = _store_example(shard_records[int(position)].filename, features[row], masks[row], plan.dtype)
                writer.write(example.SerializeToString(deterministic=True))
        writer.close()
        os.replace(temporary, final_path)
    except BaseException:
        writer.close()
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    sidecar = {
        "file": name, "count": end - first, "dims": dims, "bytes": os.path.getsize(final_path),
        "first_record": first, "settings_sha256": plan.settings_sha256(),
        "filenames_sha256": plan.shard_filenames_sha256(shard),
    }
    atomic_write_text(plan.sidecar_path(shard), json.dumps(sidecar, indent=1) + "\n")
    return sidecar


def boxes_fingerprint(boxes, filenames):
    """sha256 of the boxes of ``filenames`` ({filename: pixel boxes}, e.g. `boxes.read_boxes`' result): what a
    features folder records of the boxes file it was cached from (`FeatureStore.check_boxes` compares it)."""
    return _sha256_json([np.asarray(boxes[name], np.float32).tolist() if name in boxes else None for name in filenames])


def _index(plan, sidecars):
    dims = {int(sidecar["dims"]) for sidecar in sidecars}
    if len(dims) > 1:
        raise ValueError(f"{plan.out_dir}: shards hold features of different sizes {sorted(dims)}")
    float16 = {"version": 2, "dtype": "float16"} if plan.dtype == "float16" else {"version": 1}
    return {
        "format": FORMAT_NAME,
        **float16,
        "count": len(plan.filenames),
        "regions": plan.regions,
        "dims": dims.pop() if dims else 0,
        "filenames": list(plan.filenames),
        "shards": [{"file": sidecar["file"], "count": sidecar["count"]} for sidecar in sidecars],
        # Which boxes region k >= 1 of each image is: readers check a boxes file against it (`check_boxes`).
        "boxes_sha256": plan.settings.get("boxes_sha256"),
    }


def merge_region_features(out_dir):
    """Verifies every shard of a features folder cached in parts and writes its `index.json`.

    Each shard of the folder's plan must have its sidecar (written with the plan's settings and records),
    and its TFRecord file must exist with the sidecar's size and as many records as the shard covers.

    Args:
        out_dir: the features folder (`--out` of every `cache-features --num-shards N --shard-index I`).

    Returns:
        The index dict (also written to `out_dir/index.json`).

    Raises:
        ValueError: naming the folder and every missing or damaged shard (with its records and part rule).
    """
    plan = CachingPlan.load(out_dir)
    sidecars, problems = [], []
    for shard in range(plan.num_shards):
        first, end = plan.shard_records(shard)
        sidecar = plan.finished_shard(shard)
        if sidecar is None:
            problems.append(f"{plan.shard_file(shard)} (records {first}..{end - 1}) not finished")
            continue
        path = os.path.join(out_dir, plan.shard_file(shard))
        records = count_tfrecords(path)
        if records != end - first:
            problems.append(f"{plan.shard_file(shard)} holds {records} records, expected {end - first}")
            continue
        sidecars.append(sidecar)
    if problems:
        shown = problems[:10] + ([f"and {len(problems) - 10} more"] if len(problems) > 10 else [])
        raise ValueError(
            f"{out_dir}: cannot write {INDEX_FILE}, {len(problems)} of {plan.num_shards} shard(s) missing or damaged: "
            f"{'; '.join(shown)} (with --num-shards N, shard k is cached by --shard-index k % N; "
            "run those parts, or cache-features without --num-shards, to finish them)"
        )
    index = _index(plan, sidecars)
    atomic_write_text(os.path.join(out_dir, INDEX_FILE), json.dumps(index, indent=1) + "\n")
    return index


def cache_region_shards(
    records, image_root, boxes, config, extractor, out_dir, shard_size=1000, batch_size=16, settings=None,
    num_parts=1, part_index=0, restart=False, on_start=None, dtype="float32",
):
    """Resumable, partitionable `write_region_features`: caches this part's unfinished shards of ``records``.

    Args:
        records, image_root, boxes, config, extractor, out_dir, shard_size, batch_size: as for
            `write_region_features`.
        settings: JSON-able description of the extractor (weights fingerprint, pool size, ...), part of
            the fingerprint a rerun must match.
        num_parts, part_index: this call caches only the shards k with k % num_parts == part_index.
        restart: delete the folder's earlier index, plan, sidecars and shards first instead of resuming.
        on_start: optional `on_start(images_to_extract, shards_kept)`, called once before the first batch.
        dtype: "float32", or "float16" (half the disk and I/O; `FeatureStore` reads it back as float32).

    Returns:
        A `CachingResult`; its `index` is set when every shard of the folder is finished.

    Raises:
        ValueError: for bad arguments, or when the folder holds a plan with other settings or records
            (naming the folder and each differing setting).
    """
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, received {shard_size}")
    if num_parts < 1 or not 0 <= part_index < num_parts:
        raise ValueError(f"part index must be in 0..num_parts - 1, received {part_index} of {num_parts} parts")
    if dtype not in STORE_DTYPES:
        raise ValueError(f"dtype must be one of {STORE_DTYPES}, received {dtype!r}")
    if not records:
        raise ValueError(f"{out_dir}: no records to cache")
    if restart and num_parts > 1:
        raise ValueError(f"{out_dir}: restart deletes every part's shards; restart a folder from a single run, not part {part_index} of {num_parts}")
    filenames = [record.filename for record in records]
    regions = int(config.max_boxes) + 1
    boxes = boxes or {}
    fingerprint = {
        "image_size": [int(side) for side in config.image_size],
        "max_boxes": int(config.max_boxes),
        "shard_size": int(shard_size),
        "batch_size": int(batch_size),
        "boxes_sha256": boxes_fingerprint(boxes, filenames),
        **(settings or {}),
        **({"dtype": dtype} if dtype != "float32" else {}),  # float32 plans keep their earlier fingerprint
    }
    plan = CachingPlan(out_dir, filenames, int(shard_size), regions, fingerprint)
    os.makedirs(out_dir, exist_ok=True)
    _open_plan(plan, restart)

    mine = [shard for shard in range(plan.num_shards) if shard % num_parts == part_index]
    finished = {shard: plan.finished_shard(shard) for shard in range(plan.num_shards)}
    pending = [shard for shard in mine if finished[shard] is None]
    if pending and os.path.isfile(os.path.join(out_dir, INDEX_FILE)):
        os.remove(os.path.join(out_dir, INDEX_FILE))  # stale: a shard it lists is being redone
    if on_start is not None:
        images = sum(end - first for first, end in map(plan.shard_records, pending))
        on_start(images, len(mine) - len(pending))
    extracted = 0
    for shard in pending:
        finished[shard] = _write_shard(plan, shard, records, image_root, boxes, config, extractor, batch_size)
        extracted += finished[shard]["count"]
    missing = [plan.shard_file(shard) for shard in range(plan.num_shards) if finished[shard] is None]
    dims = next((int(sidecar["dims"]) for sidecar in finished.values() if sidecar), 0)
    index = None if missing else merge_region_features(out_dir)
    return CachingResult(
        index=index,
        written_shards=[plan.shard_file(shard) for shard in pending],
        reused_shards=[plan.shard_file(shard) for shard in mine if shard not in pending],
        missing_shards=missing,
        extracted_images=extracted,
        regions=regions,
        dims=dims,
    )


def write_region_features(records, image_root, boxes, config, extractor, out_dir, shard_size=1000, batch_size=16, **options):
    """Runs ``extractor`` once per image and writes sharded TFRecords plus `index.json`.

    Resumable: shards finished by an earlier call with the same settings are kept, the others are
    written (see the module docstring); `options` are `cache_region_shards`' (settings, num_parts,
    part_index, restart, on_start).

    Args:
        records: the `ImageRecord`s to cover (filenames become the keys).
        image_root, boxes, config: as for `pipelines.images_dataset` (regions = whole image + top boxes).
        extractor: callable, pixel-mode batch dict -> region features [B, R, D] (e.g. a frozen
            `RegionFeatureExtractor`).
        out_dir: folder to write; created if needed.
        shard_size: images per TFRecord file.
        batch_size: images per extractor call (batches start at each shard's first image).

    Returns:
        The index dict (also written to `out_dir/index.json`), or None while shards of other parts
        (`num_parts` > 1) are not finished yet.
    """
    return cache_region_shards(
        records, image_root, boxes, config, extractor, out_dir, shard_size=shard_size, batch_size=batch_size, **options
    ).index


# Largest R x D of a store: one image's features are one TFRecord example (a protobuf, at most 2 GB).
MAX_VALUES_PER_IMAGE = 1 << 28


def _short_repr(value, limit=100):
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_text(value):
    """A non-empty string that TF and the file system can take (UTF-8 encodable, no NUL)."""
    if not isinstance(value, str) or not value or "\0" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, which a JSON escape can spell
        return False
    return True


def _index_integer(mapping, field, index_path, minimum=0, where=""):
    """``mapping[field]`` as a JSON integer >= ``minimum`` (not a bool, float, NaN or string), else a ValueError."""
    value = mapping[field]
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value < 2**63:
        raise ValueError(
            f"{index_path}: {where}`{field}` must be an integer in [{minimum}, 2**63), received {_short_repr(value)}"
        )
    return value


def _index_list(index, field, index_path):
    value = index[field]
    if not isinstance(value, list):
        raise ValueError(f"{index_path}: `{field}` must be a list, received {_short_repr(value)}")
    return value


def _shard_file(name, index_path, where):
    """A shard's `file`, checked to name a file inside the store folder (relative, no `..`)."""
    if not _is_text(name):
        raise ValueError(f"{index_path}: {where}: `file` must be a non-empty UTF-8 string, received {_short_repr(name)}")
    if os.path.isabs(name) or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise ValueError(
            f"{index_path}: {where}: `file` must be a path inside the store folder, received the absolute path {name!r}"
        )
    if ".." in name.replace("\\", "/").split("/"):
        raise ValueError(f"{index_path}: {where}: `file` escapes the store folder ('..'), received {name!r}")
    return name


class FeatureStore:
    """A folder written by `write_region_features` (or `write_store`), read as a tf.data source keyed by filename.

    The store is only ever streamed: `dataset` reads the shards in index order (or, shuffled, interleaves
    them in a new order each epoch), and `select` keeps the images of a split by filename while streaming,
    so no split is ever held in memory (`vsa_tf.data.pipelines` builds every cached-mode batch from it).
    A float16 store (`"dtype": "float16"` in `index.json`, half the disk and I/O) is cast back to float32
    on reading, so the models see the same batches.

    Args:
        path: the features folder (with `index.json`).

    Example:
    ```python
    store = FeatureStore("runs/features")
    dataset = pipelines.ranking_dataset(records, root, None, vocabulary, config, 32, features=store)
    ```
    """

    def __init__(self, path):
        self.path = path
        index_path = os.path.join(path, INDEX_FILE)
        index = readers.load_json(index_path, "features index")
        if not isinstance(index, dict):
            raise ValueError(f"{index_path}: not a region features index (a JSON {type(index).__name__}, expected an object)")
        missing = [key for key in ("count", "regions", "dims", "filenames", "shards") if key not in index]
        if missing or index.get("format") != FORMAT_NAME:
            raise ValueError(
                f"{index_path}: not a region features index (format {index.get('format')!r}, missing {missing})"
            )
        self.dtype = index.get("dtype", "float32")
        if self.dtype not in STORE_DTYPES:
            raise ValueError(f"{index_path}: dtype must be one of {STORE_DTYPES}, received {self.dtype!r}")
        self.count = _index_integer(index, "count", index_path)
        self.regions = _index_integer(index, "regions", index_path, minimum=1)
        self.dims = _index_integer(index, "dims", index_path)
        if self.regions * max(self.dims, 1) > MAX_VALUES_PER_IMAGE:
            raise ValueError(
                f"{index_path}: regions x dims = {self.regions} x {self.dims} values per image, over the "
                f"limit of {MAX_VALUES_PER_IMAGE:,} (one TFRecord example)"
            )
        self.filenames = _index_list(index, "filenames", index_path)
        for position, filename in enumerate(self.filenames):
            if not _is_text(filename):
                raise ValueError(
                    f"{index_path}: `filenames` entry {position} must be a non-empty UTF-8 string, "
                    f"received {_short_repr(filename)}"
                )
        shards = _index_list(index, "shards", index_path)
        self.shard_paths, self.shard_counts = [], []
        for position, shard in enumerate(shards):
            where = f"`shards` entry {position}"
            if not isinstance(shard, dict) or "file" not in shard or "count" not in shard:
                raise ValueError(
                    f"{index_path}: {where} must be an object with `file` and `count`, received {_short_repr(shard)}"
                )
            self.shard_paths.append(os.path.join(path, _shard_file(shard["file"], index_path, where)))
            self.shard_counts.append(_index_integer(shard, "count", index_path, where=f"{where}: "))
        absent = [shard for shard in self.shard_paths if not os.path.isfile(shard)]
        if absent:
            raise ValueError(f"{index_path}: shard file(s) not found: {absent}")
        if sum(self.shard_counts) != len(self.filenames):
            raise ValueError(
                f"{index_path}: the shards hold {sum(self.shard_counts)} images but the index lists {len(self.filenames)} filenames"
            )
        if self.count != len(self.filenames):
            raise ValueError(f"{index_path}: `count` is {self.count} but the index lists {len(self.filenames)} filenames")
        # The fingerprint of the boxes file the regions were cached from (None: a store written without one).
        self.boxes_sha256 = index.get("boxes_sha256") if isinstance(index.get("boxes_sha256"), str) else None
        self._row = {filename: row for row, filename in enumerate(self.filenames)}
        # Row r of the index is example r - shard_starts[s] of shard s (shards hold consecutive rows).
        self._shard_starts = np.cumsum([0] + self.shard_counts)

    def __contains__(self, filename):
        return filename in self._row

    def check_boxes(self, boxes, boxes_path):
        """Refuses a boxes file that is not the one the store's regions were cached from.

        Region k >= 1 of a cached image is the k-th box of that file, so reading regions by another file's
        boxes would pair boxes with other boxes' features. Stores that recorded no fingerprint pass.

        Args:
            boxes: {filename: pixel boxes} read from ``boxes_path`` (None or {} for whole images only).
            boxes_path: the file's path, for the message.
        Raises:
            ValueError: naming the store and the boxes file.
        """
        if self.boxes_sha256 is None:
            return
        if boxes_fingerprint(boxes or {}, self.filenames) != self.boxes_sha256:
            raise ValueError(
                f"{self.path}: its regions were cached from another boxes file than {boxes_path} (the boxes of its "
                f"images differ); give the boxes file the features were cached from"
            )

    def rows(self, filenames):
        """Index rows int64 [N] of ``filenames``; a `ValueError` names the images the store lacks."""
        missing = [filename for filename in filenames if filename not in self._row]
        if missing:
            raise ValueError(f"{self.path}: no cached features for {len(missing)} image(s), e.g. {missing[:5]}")
        return np.asarray([self._row[filename] for filename in filenames], np.int64).reshape(-1)

    def shards_of(self, rows):
        """Sorted shard numbers holding the index ``rows``."""
        return sorted(set((np.searchsorted(self._shard_starts, np.asarray(rows), side="right") - 1).tolist()))

    def _features_spec(self):
        if self.dtype == "float16":
            return tf.io.FixedLenFeature([], tf.string)  # raw little-endian float16, R * D values
        return tf.io.FixedLenFeature([self.regions * self.dims], tf.float32)

    def parse(self, serialized):
        """Serialized example -> {"filename", "region_features" float32 [R, D], "region_mask" bool [R]}."""
        parsed = tf.io.parse_single_example(
            serialized,
            {
                "filename": tf.io.FixedLenFeature([], tf.string),
                "features": self._features_spec(),
                "mask": tf.io.FixedLenFeature([self.regions], tf.int64),
            },
        )
        values = parsed["features"]
        if self.dtype == "float16":
            values = tf.cast(tf.io.decode_raw(values, tf.float16, little_endian=True), tf.float32)
        return {
            "filename": parsed["filename"],
            "region_features": tf.reshape(values, [self.regions, self.dims]),
            "region_mask": tf.cast(parsed["mask"], tf.bool),
        }

    def _records(self, shards=None, shuffle=False, seed=None):
        """Serialized examples of ``shards`` (default all): in index order, or shards interleaved in a new order each epoch."""
        paths = [self.shard_paths[shard] for shard in (range(len(self.shard_paths)) if shards is None else shards)]
        if not shuffle:
            return tf.data.TFRecordDataset(paths, buffer_size=SHARD_READ_BUFFER_BYTES)
        files = tf.data.Dataset.from_tensor_slices(tf.constant(paths, tf.string))
        files = files.shuffle(max(len(paths), 1), seed=seed, reshuffle_each_iteration=True)
        return files.interleave(
            lambda path: tf.data.TFRecordDataset(path, buffer_size=SHARD_READ_BUFFER_BYTES),
            cycle_length=min(len(paths), INTERLEAVED_SHARDS) or 1, block_length=1,
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True,
        )

    def dataset(self, shards=None, shuffle=False, seed=None):
        """Every stored image of ``shards`` (default all) as an unbatched tf.data source (index order unless shuffled)."""
        return self._records(shards, shuffle, seed).map(self.parse, num_parallel_calls=tf.data.AUTOTUNE)

    def select(self, filenames, shuffle=False, seed=None):
        """The stored images named in ``filenames``, streamed from the shards that hold them.

        Each example gets `key` int64 = the position of its filename among the distinct ``filenames``
        (first occurrence). Without shuffling the images come in index order; only their shards are read,
        and an image is parsed only when its filename is wanted (a `tf.lookup.StaticHashTable`).

        Returns:
            (dataset of {"key", "region_features", "region_mask"}, distinct filenames list).
        """
        distinct = list(dict.fromkeys(filenames))
        rows = self.rows(distinct)
        if not distinct:
            return tf.data.Dataset.from_tensor_slices(
                {"key": tf.zeros([0], tf.int64), "region_features": tf.zeros([0, self.regions, self.dims]),
                 "region_mask": tf.zeros([0, self.regions], tf.bool)}
            ), distinct
        table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(distinct, tf.string), tf.range(len(distinct), dtype=tf.int64)
            ),
            default_value=-1,
        )

        def keyed(serialized):
            filename = tf.io.parse_single_example(serialized, {"filename": tf.io.FixedLenFeature([], tf.string)})
            return table.lookup(filename["filename"]), serialized

        def parse(key, serialized):
            example = self.parse(serialized)
            return {"key": key, "region_features": example["region_features"], "region_mask": example["region_mask"]}

        records = self._records(self.shards_of(rows), shuffle, seed)
        records = records.map(keyed, num_parallel_calls=tf.data.AUTOTUNE).filter(lambda key, serialized: key >= 0)
        return records.map(parse, num_parallel_calls=tf.data.AUTOTUNE), distinct

    def load(self, filenames):
        """Features of ``filenames`` in that order -> (float32 [N, R, D], bool [N, R]).

        Holds all N in memory: for a few images (tests, figures). Training and evaluation stream
        (`select`, `vsa_tf.data.pipelines`).
        """
        features = np.zeros((len(filenames), self.regions, self.dims), dtype=np.float32)
        mask = np.zeros((len(filenames), self.regions), dtype=bool)
        positions = {}
        for position, filename in enumerate(filenames):
            positions.setdefault(filename, []).append(position)
        dataset, distinct = self.select(filenames)
        for example in dataset.as_numpy_iterator():
            for position in positions[distinct[example["key"]]]:
                features[position] = example["region_features"]
                mask[position] = example["region_mask"]
        return features, mask


def _store_example(filename, features, mask, dtype):
    """One image's `tf.train.Example` of a store of ``dtype`` (float16: raw little-endian bytes)."""
    if dtype == "float16":
        values = np.ascontiguousarray(features, dtype="<f2").tobytes()
        feature = tf.train.Feature(bytes_list=tf.train.BytesList(value=[values]))
    else:
        feature = tf.train.Feature(float_list=tf.train.FloatList(value=np.asarray(features, np.float32).reshape(-1).tolist()))
    return tf.train.Example(
        features=tf.train.Features(
            feature={
                "filename": tf.train.Feature(bytes_list=tf.train.BytesList(value=[filename.encode("utf-8")])),
                "features": feature,
                "mask": tf.train.Feature(int64_list=tf.train.Int64List(value=np.asarray(mask).astype(np.int64).tolist())),
            }
        )
    )


def write_store(out_dir, examples, count, regions, dims, dtype="float32", shard_size=1000):
    """Writes ``examples`` — ``count`` (filename, float [R, D], mask [R]) triples — as a store in ``out_dir``.

    The writer of generated stores (tests, `benchmarks/feature_streaming.py`) and of `convert_store`;
    one image is in memory at a time. Shards are renamed into place when complete, `index.json` last.

    Args:
        dtype: "float32", or "float16" for half the disk and I/O (read back as float32).
    """
    if dtype not in STORE_DTYPES:
        raise ValueError(f"dtype must be one of {STORE_DTYPES}, received {dtype!r}")
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, received {shard_size}")
    os.makedirs(out_dir, exist_ok=True)
    num_shards = max(1, math.ceil(count / shard_size))
    shards, filenames, writer, temporary = [], [], None, None
    try:
        for number, (filename, features, mask) in enumerate(examples):
            if number >= count:
                raise ValueError(f"write_store: more examples than count={count}")
            features = np.asarray(features)
            if features.shape != (regions, dims):
                raise ValueError(f"{filename}: features must have shape {[regions, dims]}, received {list(features.shape)}")
            if number % shard_size == 0:
                if writer is not None:
                    writer.close()
                    os.replace(temporary, os.path.join(out_dir, shards[-1]["file"]))
                shards.append({"file": f"features-{len(shards):05d}-of-{num_shards:05d}.tfrecord", "count": 0})
                temporary = os.path.join(out_dir, ".tmp-" + shards[-1]["file"])
                writer = tf.io.TFRecordWriter(temporary)
            writer.write(_store_example(filename, features, mask, dtype).SerializeToString())
            shards[-1]["count"] += 1
            filenames.append(filename)
        if writer is not None:
            writer.close()
            os.replace(temporary, os.path.join(out_dir, shards[-1]["file"]))
            writer = None
    except BaseException:
        if writer is not None:
            writer.close()
            if os.path.exists(temporary):
                os.remove(temporary)
        raise
    if len(filenames) != count:
        raise ValueError(f"write_store: received {len(filenames)} examples, expected count={count}")
    index = {
        "format": FORMAT_NAME, "version": 2 if dtype == "float16" else 1, "dtype": dtype, "count": count,
        "regions": int(regions), "dims": int(dims), "filenames": filenames, "shards": shards,
    }
    atomic_write_text(os.path.join(out_dir, INDEX_FILE), json.dumps(index, indent=1) + "\n")
    return index


def convert_store(source, out_dir, dtype="float16", shard_size=None):
    """Copies the store at ``source`` (path or `FeatureStore`) into ``out_dir`` with features of ``dtype``.

    `vsa-tf cache-features` writes float32; this streams such a store into a float16 one (or back).
    Returns the new index dict.
    """
    source_path = source.path if isinstance(source, FeatureStore) else source
    if os.path.abspath(source_path) == os.path.abspath(out_dir):
        raise ValueError(f"convert_store: out_dir must differ from the source store, received {out_dir!r}")
    store = source if isinstance(source, FeatureStore) else FeatureStore(source)
    examples = (
        (example["filename"].decode("utf-8"), example["region_features"], example["region_mask"])
        for example in store.dataset().as_numpy_iterator()
    )
    shard_size = shard_size or max(store.shard_counts + [1])
    return write_store(out_dir, examples, store.count, store.regions, store.dims, dtype=dtype, shard_size=shard_size)
