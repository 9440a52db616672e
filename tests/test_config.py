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


def test_default_clustering_config_is_the_notes():
    from jobs.dfu.config import load_clustering_config

    c = load_clustering_config()
    n = c.clustering
    assert (n.min_months_history, n.time_window_months, n.k_range, n.min_cluster_size_pct) == (12, 24, (3, 12), 1.0)
    assert (n.feature_scaling, n.use_pca) == ("standard", False)
    lab = n.labeling
    assert (lab.volume_thresholds.high, lab.volume_thresholds.low) == (0.75, 0.25)
    assert (lab.cv_thresholds.steady, lab.cv_thresholds.volatile) == (0.3, 0.8)
    assert (lab.seasonality_threshold, lab.zero_demand_threshold) == (0.5, 0.2)
    assert c.mlflow.experiment == "dfu_clustering" and c.mlflow.tracking_uri.startswith("sqlite:////")
    assert c.output_dir.is_absolute()


@pytest.mark.parametrize(
    ("section", "named"),
    [
        ({"clustering": {"k_range": [5, 4]}}, "clustering.k_range"),
        ({"clustering": {"min_months_history": 30}}, "clustering.min_months_history"),
        ({"clustering": {"feature_scaling": "zscore"}}, "clustering.feature_scaling"),
        ({"clustering": {"feature_weights": {"colour": 1}}}, "clustering.feature_weights"),
        ({"clustering": {"labeling": {"volume_thresholds": {"low": 0.9}}}}, "clustering.labeling.volume_thresholds"),
        ({"clustering": {"labeling": {"cv_treshold": 1}}}, "clustering.labeling.cv_treshold"),
        ({"generator": {"end_month": "2025-12-15"}}, "generator.end_month"),
    ],
)
def test_bad_clustering_config_names_the_key(tmp_path, section, named):
    import yaml

    from jobs.dfu.config import DEFAULT_CLUSTERING_CONFIG, load_clustering_config

    raw = yaml.safe_load(DEFAULT_CLUSTERING_CONFIG.read_text())
    for key, value in section.items():
        for sub, v in value.items():
            if isinstance(v, dict) and isinstance(raw[key].get(sub), dict):
                raw[key][sub] = {**raw[key][sub], **v}
            else:
                raw[key][sub] = v
    path = tmp_path / "clustering.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError) as e:
        load_clustering_config(path)
    assert named in str(e.value)
