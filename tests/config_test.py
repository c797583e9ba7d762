import json
import os
import re

import pytest

from vsa_tf.config import (
    AlignmentConfig,
    CaptionConfig,
    DataConfig,
    EmbeddingConfig,
    ImageEncoderConfig,
    ProposalConfig,
    load_config,
    migrate_flat_image_fields,
    save_config,
)


@pytest.mark.parametrize(
    "config",
    [
        AlignmentConfig(data=DataConfig(dataset="d.json", images="images"), optimizer="adam", learning_rate=2e-4),
        CaptionConfig(data=DataConfig(dataset="d.json", images="images"), image=ImageEncoderConfig(normalization="layer")),
    ],
    ids=["alignment", "caption"],
)
def test_round_trip_keeps_the_new_fields(tmp_path, config):
    path = str(tmp_path / "config.json")
    save_config(config, path)
    assert load_config(type(config), path) == config


def test_older_config_files_load_with_defaults(tmp_path):
    # A run folder written before `optimizer` existed keeps its old behaviour (SGD); a config without `image` gets today's.
    for config_class, field_name, default in ((AlignmentConfig, "optimizer", "sgd"), (CaptionConfig, "image", ImageEncoderConfig(normalization="layer"))):
        values = config_class().to_dict()
        del values[field_name]
        path = tmp_path / f"{field_name}.json"
        path.write_text(json.dumps(values))
        assert getattr(load_config(config_class, str(path)), field_name) == default


def test_configs_of_runs_saved_before_a_field_existed_load_with_the_value_they_were_trained_with(tmp_path):
    for config_class in (AlignmentConfig, CaptionConfig, EmbeddingConfig):
        values = config_class().to_dict()
        del values["patience"]
        values.pop("image_pretraining", None)
        path = tmp_path / f"{config_class.__name__}.json"
        path.write_text(json.dumps(values))
        loaded = load_config(config_class, str(path))
        assert loaded.patience == 0  # trained every epoch
        if config_class is CaptionConfig:
            assert loaded.image_pretraining == "none"
    # Today's defaults: early stopping after 5 epochs, Adam 1e-3 for the aligner, a pretrained CNN for the captioner.
    assert (AlignmentConfig().patience, AlignmentConfig().optimizer, AlignmentConfig().learning_rate) == (5, "adam", 1e-3)
    assert CaptionConfig().image_pretraining == "alignment"


@pytest.mark.parametrize(
    "config_class, field_name, older_value, default",
    [
        (ProposalConfig, "feature_stride", None, 16),  # older proposal runs read the backbone's output map
    ],
)
def test_files_saved_before_a_field_existed_keep_the_value_they_were_made_with(tmp_path, config_class, field_name, older_value, default):
    values = config_class().to_dict()
    del values[field_name]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(values))
    assert getattr(load_config(config_class, str(path)), field_name) == older_value
    assert getattr(config_class(), field_name) == default


def test_proposal_runs_saved_before_the_second_stage_read_without_it_and_the_flags_are_booleans():
    values = ProposalConfig().to_dict()
    del values["refine_boxes"]
    assert ProposalConfig.migrate(values)["refine_boxes"] is False  # filled in, not left to the default
    for field_name in ("refine_boxes", "horizontal_flip"):
        with pytest.raises(ValueError, match=rf"ProposalConfig.{field_name} must be True or False, received 'false'"):
            ProposalConfig(**{field_name: "false"})


def test_feature_stride_must_be_positive():
    with pytest.raises(ValueError, match="ProposalConfig.feature_stride must be >= 1 or None, received 0"):
        ProposalConfig(feature_stride=0)


@pytest.mark.parametrize("value", [-1, 1.5, True, "3"])
def test_patience_must_be_a_non_negative_integer(value):
    with pytest.raises(ValueError, match=re.escape(f"AlignmentConfig.patience must be an integer >= 0 (0 = train every epoch), received {value!r}")):
        AlignmentConfig(patience=value)


def test_rejects_unknown_choices_with_the_received_value():
    with pytest.raises(ValueError, match="AlignmentConfig.optimizer must be one of \\['sgd', 'adam'\\], received 'lbfgs'"):
        AlignmentConfig(optimizer="lbfgs")
    with pytest.raises(ValueError, match="CaptionConfig.cell must be one of \\['rnn', 'lstm'\\], received 'gru'"):
        CaptionConfig(cell="gru")
    with pytest.raises(ValueError, match="CaptionConfig.image_pretraining must be one of \\['alignment', 'none'\\], received 'imagenet'"):
        CaptionConfig(image_pretraining="imagenet")


@pytest.mark.parametrize(
    "field_name, value, message",
    [
        ("mode", "features", "ImageEncoderConfig.mode must be one of \\['pixels', 'cached'\\], received 'features'"),
        ("pooling", "max", "ImageEncoderConfig.pooling must be one of \\['flatten', 'average'\\], received 'max'"),
        ("normalization", "batch", "ImageEncoderConfig.normalization must be one of \\['none', 'l2', 'layer'\\], received 'batch'"),
        ("pool_size", 0, "ImageEncoderConfig.pool_size must be >= 1, received 0"),
        ("feature_dim", 0, "ImageEncoderConfig.feature_dim must be >= 1 or None, received 0"),
        ("filters", (4, 0), "ImageEncoderConfig.filters must be positive widths, received \\(4, 0\\)"),
        ("filters", (), "ImageEncoderConfig.filters must be positive widths, received \\(\\)"),
    ],
)
def test_image_encoder_config_rejects_bad_values_with_the_received_value(field_name, value, message):
    with pytest.raises(ValueError, match=message):
        ImageEncoderConfig(**{field_name: value})


def test_image_encoder_config_defaults_and_types():
    image = ImageEncoderConfig(filters=[4, 8])
    assert image.filters == (4, 8) and not image.cached and ImageEncoderConfig(mode="cached", feature_dim=6).cached
    assert (image.mode, image.backbone, image.weights, image.frozen) == ("pixels", "simple", None, False)
    assert (image.pool_size, image.pooling, image.feature_dim, image.normalization) == (2, "flatten", None, "none")
    with pytest.raises(ValueError, match="ImageEncoderConfig: unknown field\\(s\\) \\['feature_mode'\\]"):
        ImageEncoderConfig.from_dict({"feature_mode": "cached"})


@pytest.mark.parametrize("config_class", [AlignmentConfig, CaptionConfig, EmbeddingConfig])
def test_nested_image_round_trips_through_json(tmp_path, config_class):
    image = ImageEncoderConfig(mode="cached", weights="cnn.weights.h5", frozen=True, filters=(4, 8), pool_size=3, pooling="average", feature_dim=6)
    config = config_class(data=DataConfig(dataset="d.json", images="images"), image=image)
    path = str(tmp_path / "config.json")
    save_config(config, path)
    assert json.loads(open(path).read())["image"]["filters"] == [4, 8]
    loaded = load_config(config_class, path)
    assert loaded == config and isinstance(loaded.image, ImageEncoderConfig) and loaded.image.filters == (4, 8)
    assert config_class.from_json(config.to_json()) == config
    # The image may also be given as the dict read back from JSON.
    assert config_class(image=image.to_dict()).image == image
    with pytest.raises(ValueError, match="image: expected an ImageEncoderConfig or a JSON object, received str: 'cached'"):
        config_class(image="cached")


@pytest.mark.parametrize(
    "config_class, accepted",
    [(AlignmentConfig, ("none", "l2")), (CaptionConfig, ("none", "layer")), (EmbeddingConfig, ("none",))],
)
def test_each_model_config_accepts_its_image_normalizations(config_class, accepted):
    for normalization in ("none", "l2", "layer"):
        image = ImageEncoderConfig(normalization=normalization)
        if normalization in accepted:
            assert config_class(image=image).image.normalization == normalization
        else:
            message = f"{config_class.__name__}: image normalization must be one of {list(accepted)}, received '{normalization}'"
            with pytest.raises(ValueError, match=re.escape(message)):
                config_class(image=image)


def test_migrate_flat_image_fields_folds_an_old_config_into_image():
    old = {
        "kind": "alignment",
        "data": {"dataset": "d.json", "images": "images", "features": None},
        "feature_mode": "pixels",
        "backbone": "simple",
        "backbone_weights": "cnn.weights.h5",
        "backbone_frozen": True,
        "backbone_filters": [4, 8],
        "pool_size": 3,
        "feature_dim": None,
        "feature_normalization": "l2",
        "region_dim": 8,
        "beta": 0.5,
    }
    original = json.loads(json.dumps(old))
    migrated = migrate_flat_image_fields(old, dropped=("beta",))
    assert migrated == {
        "kind": "alignment",
        "data": {"dataset": "d.json", "images": "images", "features": None},
        "region_dim": 8,
        "image": {
            "mode": "pixels", "backbone": "simple", "weights": "cnn.weights.h5", "frozen": True, "filters": [4, 8],
            "pool_size": 3, "pooling": "average", "feature_dim": None, "normalization": "l2",
        },  # no `pooling` saved: the runs older than the field used "average"
    }
    assert old == original  # the saved values are not modified
    config = AlignmentConfig.from_dict(old)
    assert config.region_dim == 8 and config.image == ImageEncoderConfig(
        weights="cnn.weights.h5", frozen=True, filters=(4, 8), pool_size=3, pooling="average", normalization="l2"
    )
    # A caption run's `image_normalization` and a saved `pooling`; the mode defaults to pixels.
    caption = migrate_flat_image_fields({"kind": "caption", "image_normalization": "layer", "pooling": "flatten", "hidden_dim": 4})
    assert caption == {"kind": "caption", "hidden_dim": 4, "image": {"pooling": "flatten", "normalization": "layer", "mode": "pixels"}}
    # The joint embedding had no feature_mode: it used cached features whenever data.features was set.
    embedding = EmbeddingConfig.from_dict({"kind": "embedding", "data": {"features": "features"}, "backbone_filters": [4, 8]})
    assert embedding.image == ImageEncoderConfig(mode="cached", filters=(4, 8), pooling="average")
    # Values already in today's form come back as they are.
    today = AlignmentConfig().to_dict()
    assert migrate_flat_image_fields(today, dropped=("beta",)) is today


def test_data_config_split_options_round_trip_and_default_for_older_files(tmp_path):
    config = AlignmentConfig(data=DataConfig(dataset="captions.json", images="images", split_of_file="train"))
    path = str(tmp_path / "config.json")
    save_config(config, path)
    assert load_config(AlignmentConfig, path).data.split_of_file == "train"
    flickr = DataConfig(dataset="tokens.txt", split_files={"train": "train.txt", "test": "test.txt"})
    assert DataConfig.from_json(flickr.to_json()) == flickr
    values = DataConfig().to_dict()
    del values["split_of_file"], values["split_files"]
    older = DataConfig.from_dict(values)
    assert older.split_of_file is None and older.split_files is None


def test_data_config_rejects_a_bad_split_with_the_received_value():
    with pytest.raises(ValueError, match="DataConfig.split_of_file must be one of \\['train', 'val', 'test'\\] or None, received 'dev'"):
        DataConfig(split_of_file="dev")
    with pytest.raises(ValueError, match="DataConfig.split_files must map splits .* received \\{'restval': 'r.txt'\\}"):
        DataConfig(split_files={"restval": "r.txt"})


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_atomic_writes_give_the_mode_a_plain_open_would(tmp_path, umask, mode):
    from vsa_tf.config import atomic_write_bytes, atomic_write_text

    previous = os.umask(umask)
    try:
        atomic_write_text(str(tmp_path / "a.txt"), "text\n")
        atomic_write_bytes(str(tmp_path / "b.bin"), lambda stream: stream.write(b"\x00"))
        with open(tmp_path / "plain.txt", "w") as stream:
            stream.write("text\n")
    finally:
        os.umask(previous)
    modes = {name: os.stat(tmp_path / name).st_mode & 0o777 for name in ("a.txt", "b.bin", "plain.txt")}
    assert modes == {"a.txt": mode, "b.bin": mode, "plain.txt": mode}
    assert sorted(os.listdir(tmp_path)) == ["a.txt", "b.bin", "plain.txt"]  # no temporary file left


def test_the_demo_keeps_the_papers_sgd_and_a_dataset_pipeline_gets_the_commands_adam():
    from vsa_tf.config import DemoConfig, PipelineConfig

    demo = DemoConfig().pipeline_config()
    assert (demo.alignment_optimizer, demo.alignment_learning_rate, demo.alignment_batch_size, demo.alignment_epochs) == ("sgd", 1e-4, 50, 8)
    dataset = PipelineConfig()
    assert (dataset.alignment_optimizer, dataset.alignment_learning_rate, dataset.alignment_batch_size, dataset.alignment_epochs) == (
        "adam", 1e-3, 100, 20
    )
    with pytest.raises(ValueError, match=r"PipelineConfig.alignment_optimizer must be one of \['sgd', 'adam'\], received 'rmsprop'"):
        PipelineConfig(alignment_optimizer="rmsprop")
    assert (demo.alignment_hardest_negative, demo.alignment_warmup_epochs) == (False, 0)  # the demo: the paper's summed loss
    assert (dataset.alignment_hardest_negative, dataset.alignment_warmup_epochs) == (True, 2)
    for bad in (-1, 1.5, True, "2"):
        with pytest.raises(ValueError, match=rf"PipelineConfig.alignment_warmup_epochs must be an integer >= 0, received {bad!r}"):
            PipelineConfig(alignment_warmup_epochs=bad)
    with pytest.raises(ValueError, match=r"DemoConfig.alignment_hardest_negative must be True or False, received 'yes'"):
        DemoConfig(alignment_hardest_negative="yes")
