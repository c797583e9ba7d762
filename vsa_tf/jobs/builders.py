"""The model of each run kind, built from its config: what a trainer trains and what a run folder loads.

Both `vsa_tf.jobs.run_folder` (loading any run) and the job modules (training one) build their
models here, so neither imports the other to find a model.
"""

import numpy as np

from vsa_tf.layers.box_refinement_head import BoxRefinementHead
from vsa_tf.layers.region_features import RegionFeatureExtractor
from vsa_tf.models.alignment_model import AlignmentModel
from vsa_tf.models.caption_model import CaptionModel
from vsa_tf.layers.backbones import build_backbone
from vsa_tf.models.joint_embedding_model import JointEmbeddingModel
from vsa_tf.models.proposal_model import ProposalModel
from vsa_tf.models.scnlm_model import SCNLMModel


def _image_encoder(config, load_backbone_weights):
    # A run's own weights file holds every weight, CNN included: a loader does not read the CNN's
    # starting weights file again, so a run folder loads after that file moved or went.
    return config.image if load_backbone_weights else config.image.replace(weights=None)


def build_alignment_model(config, vocabulary_size, load_backbone_weights=True):
    """An `AlignmentModel` of an `AlignmentConfig`, every weight created (not loaded)."""
    model = AlignmentModel(
        vocabulary_size=vocabulary_size,
        region_dim=config.region_dim,
        image_encoder=_image_encoder(config, load_backbone_weights),
        sentence_encoder=config.sentence_encoder,
        embedding_dim=config.embedding_dim,
        hidden_dim=config.hidden_dim,
        score=config.score,
        margin=config.margin,
        hardest_negative=config.hardest_negative,
        dropout=config.dropout,
        embedding_trainable=not (config.word_vectors and config.freeze_word_vectors),
        image_shape=config.data.image_size,
    )
    return model.build_from_dummy()


def build_caption_model(config, vocabulary_size, load_backbone_weights=True):
    """A `CaptionModel` with the sizes of a `CaptionConfig` (not yet built: call `build_from_dummy`)."""
    return CaptionModel(
        vocabulary_size=vocabulary_size,
        hidden_dim=config.hidden_dim,
        embedding_dim=config.embedding_dim,
        cell=config.cell,
        activate_inputs=config.activate_inputs,
        image_conditioning=config.image_conditioning,
        dropout=config.dropout,
        image_encoder=_image_encoder(config, load_backbone_weights),
        image_shape=config.data.image_size,
        name="caption_model",
    )


def build_embedding_model(config, vocabulary_size, load_backbone_weights=True, batch=None):
    """A `JointEmbeddingModel` of an `EmbeddingConfig`: cached features, or a CNN on pixels.

    The model is built by calling it on `batch` (a training batch), or on a one-example dummy batch.
    """
    feature_extractor = None
    if not config.image.cached:
        feature_extractor = RegionFeatureExtractor.from_image_encoder(
            _image_encoder(config, load_backbone_weights), name="feature_extractor"
        )
    model = JointEmbeddingModel(
        vocabulary_size=vocabulary_size,
        embedding_dim=config.embedding_dim,
        word_dim=config.word_dim,
        encoder=config.encoder,
        margin=config.margin,
        feature_extractor=feature_extractor,
    )
    model(batch if batch is not None else _embedding_dummy_batch(config))
    return model


def _embedding_dummy_batch(config):
    """A one-example batch that builds every weight of the joint embedding."""
    batch = {"tokens": np.full((1, 2), 4, np.int32), "token_mask": np.ones((1, 2), bool)}
    if config.image.cached:
        batch["region_features"] = np.zeros((1, 1, int(config.image.feature_dim)), np.float32)
    else:
        height, width = config.data.image_size
        batch.update(
            images=np.zeros((1, height, width, 3), np.float32),
            boxes=np.array([[[0.0, 0.0, 1.0, 1.0]]], np.float32),
            region_mask=np.ones((1, 1), bool),
        )
    return batch


def build_scnlm_model(config, vocabulary_size, num_tags, content_dim):
    """A built `SCNLMModel` of an `SCNLMConfig`; `content_dim` is the embedding run's joint-space size."""
    model = SCNLMModel(
        vocabulary_size=vocabulary_size, num_tags=num_tags, content_dim=content_dim,
        context_size=config.context_size, structure_size=config.structure_size, word_dim=config.word_dim,
        tag_dim=config.tag_dim, factor_dim=config.factor_dim,
    )
    model.build()
    return model


def build_proposal_model(config, load_backbone_weights=True):
    """A built `ProposalModel` of a `ProposalConfig`, its backbone the config's image encoder."""
    image = _image_encoder(config, load_backbone_weights)
    height, width = (int(size) for size in config.data.image_size)
    backbone = build_backbone(image.backbone, image.weights, trainable=not image.frozen, input_shape=(height, width, 3), filters=image.filters)
    feature_stride = backbone.stride if config.feature_stride is None else min(int(config.feature_stride), backbone.stride)
    model = ProposalModel(
        image_size=(height, width), feature_stride=feature_stride, feature_layer=backbone.layer_at_stride(feature_stride),
        anchor_sizes=config.anchor_sizes,
        aspect_ratios=config.aspect_ratios, filters=config.filters, positive_iou=config.positive_iou,
        negative_iou=config.negative_iou, samples_per_image=config.samples_per_image,
        positive_fraction=config.positive_fraction, max_proposals=config.max_proposals,
        nms_iou_threshold=config.nms_iou_threshold, seed=config.seed, backbone=backbone, upsampling=config.upsampling,
        refinement=BoxRefinementHead(name="refinement") if config.refine_boxes else None,
        name="proposal_model",
    )
    model({"images": np.zeros((1, height, width, 3), np.float32)})
    return model
