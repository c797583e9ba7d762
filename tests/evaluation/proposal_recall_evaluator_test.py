import numpy as np

from vsa_tf.evaluation.proposal_recall_evaluator import ProposalRecallEvaluator
from vsa_tf.models.proposal_model import ProposalModel


def test_recall_counts_the_masked_boxes_found_by_the_kept_proposals():
    # Four 32 x 32 anchors (stride 16 on a 32 x 32 image), clipped to the image by the decoder: each
    # [0 or 8, 0 or 8, 24 or 32, 24 or 32] has IoU 0.5625 with the whole image and ~0 with a 4-pixel box.
    model = ProposalModel(image_size=(32, 32), feature_stride=16, anchor_sizes=(32,), aspect_ratios=(1.0,), filters=4, max_proposals=2)
    batch = {
        "feature_map": np.zeros((2, 2, 2, 3), "float32"),
        "boxes": np.array([[[0, 0, 32, 32], [0, 0, 4, 4]], [[0, 0, 32, 32], [9, 9, 9, 9]]], "float32"),
        "box_mask": np.array([[True, True], [True, False]]),  # the padding row is not counted
    }
    evaluator = ProposalRecallEvaluator([batch])
    evaluator.set_model(model)
    assert evaluator.recall() == 100.0 * 2 / 3
    logs = {"loss": 1.0}
    evaluator.on_epoch_end(0, logs)
    assert logs["val_recall"] == 100.0 * 2 / 3
    strict = ProposalRecallEvaluator([batch], iou_threshold=0.6)
    strict.set_model(model)
    assert strict.recall() == 0.0
