import pytest

from jobs.lib.config import ConfigError, load_config


def test_default_config_is_valid():
    cfg = load_config()
    assert cfg.pipeline.tick_minutes == 15
    assert cfg.tick_seconds == 900
    assert cfg.paths.lakehouse.is_absolute()


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ({"pipeline.tick_minutes": 7}, "pipeline.tick_minutes"),
        ({"pipeline.tick_minutes": 2}, "pipeline.tick_minutes"),
        ({"pipeline.grain": "region"}, "pipeline.grain"),
        ({"detection.score_off": 0.9}, "detection.score_off"),
        ({"detection.thresholds": [5.0]}, "detection.thresholds"),
        ({"detection.lookback_dayz": 3}, "detection.lookback_dayz"),
        ({"generator.first_anomaly_day": 99}, "generator.first_anomaly_day"),
    ],
)
def test_bad_config_names_the_key(override, named):
    with pytest.raises(ConfigError) as e:
        load_config(None, override)
    assert named in str(e.value)


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"config file not found: .*nope\.yaml"):
        load_config(tmp_path / "nope.yaml")


def test_unreadable_yaml_is_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("paths: [unclosed")
    with pytest.raises(ConfigError, match=r"bad\.yaml: not valid YAML"):
        load_config(bad)
