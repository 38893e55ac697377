import pytest

from rlkd.config import ConfigError, RunConfig, describe_fields, load_config


def test_defaults_are_valid():
    config = load_config()

    assert config == RunConfig()
    assert config.methods == ["none", "kd", "dro", "temperature", "rl"]
    assert config.distill.kd_weight_init == [1.0, 1.0, 1.0]


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("student:\n  hidden_size: 128\n  num_heads: 2\ncontroller:\n  group_size: 6\n")

    config = load_config(path, ["controller.group_size=8", "distill.softmax_temperature=4", "methods=kd,rl"])

    assert config.student.hidden_size == 128
    assert config.controller.group_size == 8
    assert config.distill.softmax_temperature == 4.0
    assert config.methods == ["kd", "rl"]


def test_smoke_profile_is_small_and_overridable():
    config = load_config(smoke_test=True, overrides=["student.hidden_size=32"])

    assert config.data.max_tweets_per_file is not None
    assert config.student.hidden_size == 32


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("distill.softmax_temperature=-1", "distill.softmax_temperature"),
        ("distill.softmax_temperature=nan", "distill.softmax_temperature"),
        ("controller.group_size=1", "controller.group_size"),
        ("distill.kd_weight_init=[1, 1]", "distill.kd_weight_init"),
        ("distill.kd_weight_init=[1, inf, 1]", "distill.kd_weight_init"),
        ("distill.loss=cosine", "distill.loss"),
        ("controller.reward_design=accuracy", "controller.reward_design"),
        ("methods=kd,magic", "methods"),
        ("student.num_heads=3", "student.num_heads"),
        ("student.hidden_size=wide", "student.hidden_size"),
        ("scaling.num_workers=0", "scaling.num_workers"),
        ("data.mode=loose", "data.mode"),
        ("student.colour=red", "student.colour"),
        ("seeds=0", "seeds"),
        ("baselines.dro_step_size=0", "baselines.dro_step_size"),
        ("baselines.dro_loss=f1", "baselines.dro_loss"),
        ("baselines.temperature_tau=0.5", "baselines.temperature_tau"),
        ("controller.estimator=oracle", "controller.estimator"),
        ("controller.balanced_lambda=-1", "controller.balanced_lambda"),
        ("controller.kl_beta=-0.1", "controller.kl_beta"),
        ("controller.clip_epsilon=1.5", "controller.clip_epsilon"),
        ("controller.std_floor=0", "controller.std_floor"),
        ("controller.update_epochs=0", "controller.update_epochs"),
        ("controller.ref_update_interval=0", "controller.ref_update_interval"),
        ("controller.applied=worst", "controller.applied"),
    ],
)
def test_invalid_value_names_field(override, field):
    with pytest.raises(ConfigError) as raised:
        load_config(overrides=[override])

    assert field in str(raised.value)


def test_missing_config_file_is_reported(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "absent.yaml")


def test_invalid_yaml_is_reported(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("student: [1, 2\n")

    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(path)


def test_every_field_has_help():
    for name, _default, help_text in describe_fields():
        assert help_text, f"{name} has no help text"


def test_config_file_wins_over_smoke_profile(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("student:\n  num_layers: 2\n  hidden_size: 128\n  num_heads: 4\n")

    config = load_config(path, ["student.num_layers=3"], smoke_test=True)

    assert config.student.hidden_size == 128
    assert config.student.num_heads == 4
    assert config.student.num_layers == 3
    assert config.data.max_tweets_per_file is not None


def test_tag_maps_from_yaml(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("data:\n  tag_maps:\n    tagalog_mix:\n      TL: other\n      EN: en\n")

    config = load_config(path)

    assert config.data.tag_maps == {"tagalog_mix": {"TL": "other", "EN": "en"}}


def test_tag_map_with_unknown_language(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("data:\n  tag_maps:\n    mine:\n      FR: fr\n")

    with pytest.raises(ConfigError, match="data.tag_maps.mine.FR"):
        load_config(path)
