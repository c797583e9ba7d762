"""Region proposal jobs: train the RPN from a boxes file, propose boxes for a dataset's images.

A proposals run folder (`vsa_tf.jobs.run_folder`) holds `config.json` (a `ProposalConfig`, kind
"proposals"), `vocabulary.txt` (written by every trainer; unused here), `model.weights.h5` (the head and
the backbone, best epoch), `backup/`, `history.csv`, `proposals_test.json` (recall on the test split's
boxes beside the baselines), and `alignment_cnn.weights.h5` when the backbone came from an alignment run.
"""

import sys

import keras
import numpy as np
import tensorflow as tf

from vsa_tf.config import ProposalConfig
from vsa_tf.data import pipelines, validate
from vsa_tf.evaluation import proposals as proposal_metrics
from vsa_tf.evaluation.proposal_recall_evaluator import ProposalRecallEvaluator
from vsa_tf.jobs import alignment as alignment_job
from vsa_tf.jobs import proposal_boxes, run_folder, trainer
from vsa_tf.jobs.builders import build_proposal_model

ALIGNMENT_CNN_FILE = alignment_job.ALIGNMENT_CNN_FILE
TEST_FILE = "proposals_test.json"
FEATURE_BATCH_SIZE = proposal_boxes.FEATURE_BATCH_SIZE  # images per backbone pass when the feature maps are computed once


class ProposalTask(trainer.TrainingTask):
    """Trains a `ProposalModel` on the boxes of `config.data.boxes` (train split; val for the val loss).

    Args:
        cnn_from_alignment: a pixel-mode alignment run whose trained CNN becomes the backbone.
    """

    kind = "proposals"
    config_class = ProposalConfig
    test_file = TEST_FILE

    def __init__(self, cnn_from_alignment=None):
        self.cnn_from_alignment = cnn_from_alignment
        self.alignment_run = None

    def prepare(self, config):
        if not config.data.boxes:
            raise ValueError("train-proposals learns from a boxes file: give data.boxes (--boxes)")
        return super().prepare(config)

    def load_data(self, config):
        data = super().load_data(config)
        train_names = {record.filename for record in data.split("train")}
        if not any(len(data.boxes.get(filename, ())) for filename in train_names):
            raise ValueError(f"{config.data.boxes}: no boxes for any train-split image of {config.data.dataset}")
        return data

    def record_data(self, config, data):
        if self.cnn_from_alignment is not None:
            self.alignment_run = alignment_job.load_alignment_run(self.cnn_from_alignment)
            config = config.replace(image=alignment_job.image_encoder_from_alignment(
                self.alignment_run, config.image, self.folder, frozen=config.image.frozen
            ))
        stride = proposal_boxes.backbone_stride(config)
        height, width = config.data.image_size
        if height % stride or width % stride:
            raise ValueError(
                f"data.image_size {tuple(config.data.image_size)} must be a multiple of the backbone's stride {stride} "
                "(the anchors are laid on the image at that stride)"
            )
        return config

    def write_files(self, run, data):
        if self.alignment_run is not None:
            alignment_job.save_backbone_weights(self.alignment_run, run.config.image.weights)

    def build_datasets(self, run, data):
        self._model = build_proposal_model(run.config)  # the backbone computes the frozen feature maps once
        config = run.config
        train = self._examples(data.split("train"), data.boxes, config)
        validation = self._examples(data.split("val"), data.boxes, config) if data.split("val") else None
        train = train.shuffle(len(data.split("train")), seed=config.seed, reshuffle_each_iteration=True)
        if config.horizontal_flip:
            width = int(config.data.image_size[1])
            train = train.map(lambda example: pipelines.flip_proposal_example(example, width, seed=config.seed))
        train = train.batch(config.batch_size)
        return train.prefetch(tf.data.AUTOTUNE), None if validation is None else validation.batch(config.batch_size)

    def _examples(self, records, boxes, config):
        """Unbatched training examples: the feature map (frozen backbone) or the image, with its boxes."""
        batches = pipelines.proposal_dataset(records, config.data.images, boxes, config.data, FEATURE_BATCH_SIZE)
        if not config.image.frozen:
            return batches.unbatch().map(lambda example: {key: example[key] for key in ("images", "boxes", "box_mask")})
        # Kept as float16 (half the memory of a split's maps; a stride-16 map of a 224 x 224 image is
        # 14 x 14 x 672) and cast back per example.
        maps, boxes_list, masks = [], [], []
        progress = keras.utils.Progbar(len(records), unit_name="image")
        for batch in batches:
            maps.append(np.asarray(self._model.feature_map(batch["images"], training=False), dtype=np.float16))
            boxes_list.append(batch["boxes"].numpy())
            masks.append(batch["box_mask"].numpy())
            progress.add(len(maps[-1]))
        examples = tf.data.Dataset.from_tensor_slices(
            {"feature_map": np.concatenate(maps), "boxes": np.concatenate(boxes_list), "box_mask": np.concatenate(masks)}
        )
        return examples.map(lambda example: {**example, "feature_map": tf.cast(example["feature_map"], tf.float32)})

    def callbacks(self, run, data, validation_batches):
        if validation_batches is None:
            return [], "loss", "min"
        return [ProposalRecallEvaluator(validation_batches)], "val_recall", "max"

    def build_model(self, run, train_batches):
        model = self._model
        model.compile(optimizer=keras.optimizers.Adam(run.config.learning_rate))
        return model

    def evaluate(self, run, data):
        records = data.split("test")
        if not records:
            return None
        proposed, image_sizes = proposal_boxes.propose_with_sizes(run, records, run.config.data.images)
        truth = _boxes_as_truth(records, data.boxes, image_sizes)
        return proposal_metrics.evaluate_proposals(proposed, truth, filenames=sorted(truth))


def train_proposals(config, data_config=None, run_dir=None, verbose="auto", cnn_from_alignment=None):
    """Trains a region proposal network into `run_dir` (the `vsa_tf.jobs.trainer.train` skeleton).

    Args:
        config: a `ProposalConfig`.
        data_config: a `DataConfig` replacing `config.data`.
        run_dir: the run folder (an interrupted run resumes).
        verbose: `model.fit` verbosity.
        cnn_from_alignment: optional pixel-mode alignment run folder whose CNN becomes the backbone
            (copied into the run folder as `ALIGNMENT_CNN_FILE`).

    Returns:
        a `vsa_tf.jobs.trainer.TrainingResult`; `.test` holds the test split's proposal recall against
        its boxes beside the whole-image and grid baselines (also `proposals_test.json`).
    """
    return trainer.train(ProposalTask(cnn_from_alignment), config, run_dir, verbose=verbose, data_config=data_config)


def propose_boxes(run, data_config=None, splits=("train", "val", "test"), out=None, max_proposals=None, nms_iou_threshold=None):
    """Proposals for every image of `splits` of the run's dataset (or `data_config`'s), as a boxes JSON.

    Returns the {filename: {"boxes", "scores"}} dict, also written atomically to `out` when given: the
    public boxes format every `--boxes` option reads. `max_proposals` / `nms_iou_threshold` replace the
    run's decoding settings (more proposals than the model's regions, for a recall curve).
    """
    if max_proposals is not None and int(max_proposals) < 1:
        raise ValueError(f"max_proposals must be >= 1, received {max_proposals!r}")
    if nms_iou_threshold is not None and not 0.0 < float(nms_iou_threshold) <= 1.0:
        raise ValueError(f"nms_iou_threshold must be in (0, 1], received {nms_iou_threshold!r}")
    run = run_folder.as_run(run, "proposals")
    data_config = run.data_config(data_config)
    dataset, _, _ = validate.load_checked_data(data_config.replace(boxes=None), "pixels")
    records = [record for split in splits for record in dataset.split(split)]
    if not records:
        raise ValueError(f"{data_config.dataset}: no images in the split(s) {list(splits)}")
    result = proposal_boxes.propose_records(
        run, records, data_config.images, max_proposals=max_proposals, nms_iou_threshold=nms_iou_threshold
    )
    if out:
        run_folder.write_json(out, result)
        print(f"proposals for {len(result)} images written to {out}", file=sys.stderr)
    return result


def _boxes_as_truth(records, boxes, image_sizes):
    """The boxes file's boxes of `records` in the truth format `evaluate_proposals` scores against.

    `image_sizes`: {filename: (width, height)}, as `proposal_boxes.propose_with_sizes` decoded them.
    """
    truth = {}
    for record in records:
        width, height = image_sizes[record.filename]
        objects = [{"box": [float(value) for value in box]} for box in (boxes or {}).get(record.filename, ())]
        truth[record.filename] = {"width": width, "height": height, "objects": objects, "sentences": []}
    return truth


