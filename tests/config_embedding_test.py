import pytest

from vsa_tf.config import DataConfig, EmbeddingConfig, SCNLMConfig, load_config, save_config


@pytest.mark.parametrize("config_class", [EmbeddingConfig, SCNLMConfig])
def test_round_trip_through_a_file(tmp_path, config_class):
    config = config_class(data=DataConfig(dataset="d.json", images="images", image_size=(64, 48)), epochs=3)
    path = str(tmp_path / "config.json")
    save_config(config, path)
    loaded = load_config(config_class, path)
    assert loaded == config and isinstance(loaded.data, DataConfig) and loaded.data.image_size == (64, 48)


def test_kinds_and_validation():
    assert EmbeddingConfig().kind == "embedding" and SCNLMConfig().kind == "scnlm"
    with pytest.raises(ValueError, match="'gru'"):
        EmbeddingConfig(encoder="gru")
    with pytest.raises(ValueError, match="'caption'"):
        SCNLMConfig(kind="caption")
    assert SCNLMConfig(tagger="spacy").tagger == "spacy"
    with pytest.raises(ValueError, match="'stanza'"):
        SCNLMConfig(tagger="stanza")
