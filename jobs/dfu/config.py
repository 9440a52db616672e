"""The DFU clustering configuration (conf/clustering_config.yaml), validated at start.

Every error names the offending key, e.g. ``conf/clustering_config.yaml: clustering.k_range: ...``.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from jobs.lib.config import REPO_ROOT, _resolve, _Strict, read_yaml, validate

DEFAULT_CLUSTERING_CONFIG = REPO_ROOT / "conf" / "clustering_config.yaml"
PATTERNS = ("steady", "seasonal", "growing", "declining", "intermittent", "lumpy")


class VolumeThresholds(_Strict):
    high: float = Field(0.75, gt=0, lt=1)
    low: float = Field(0.25, gt=0, lt=1)

    @model_validator(mode="after")
    def _ordered(self) -> VolumeThresholds:
        if self.low >= self.high:
            raise ValueError("low: must be below high")
        return self


class CvThresholds(_Strict):
    steady: float = Field(0.3, gt=0)
    volatile: float = Field(0.8, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> CvThresholds:
        if self.steady >= self.volatile:
            raise ValueError("steady: must be below volatile")
        return self


class Intermittency(_Strict):
    adi: float = Field(1.32, gt=1)
    cv2: float = Field(0.49, gt=0)


class Labeling(_Strict):
    volume_thresholds: VolumeThresholds = VolumeThresholds()
    cv_thresholds: CvThresholds = CvThresholds()
    seasonality_threshold: float = Field(0.5, gt=0)
    zero_demand_threshold: float = Field(0.2, gt=0, lt=1)
    trend_threshold: float = Field(0.2, gt=0)
    intermittency: Intermittency = Intermittency()


FEATURE_WEIGHT_GROUPS = ("volume", "trend", "seasonality", "volatility", "growth", "item", "dfu")


class Clustering(_Strict):
    min_months_history: int = Field(12, ge=3)
    time_window_months: int = Field(24, ge=3)
    k_range: tuple[int, int] = (3, 12)
    min_cluster_size_pct: float = Field(1.0, ge=0, lt=100)
    feature_scaling: Literal["standard", "robust", "minmax"] = "standard"
    use_pca: bool = False
    labeling: Labeling = Labeling()
    random_state: int = 42
    low_variance_threshold: float = Field(0.01, ge=0)
    pca_variance: float = Field(0.95, gt=0, le=1)
    k_selection: Literal["vote", "elbow", "silhouette", "gap"] = "vote"
    silhouette_sample_size: int = Field(2000, ge=50)
    gap_references: int = Field(5, ge=1, le=100)
    max_category_levels: int = Field(8, ge=1)
    log_features: list[str] = Field(default_factory=list)
    exclude_features: list[str] = Field(default_factory=list)
    feature_weights: dict[str, float] = Field(default_factory=lambda: dict.fromkeys(FEATURE_WEIGHT_GROUPS, 1.0))

    @field_validator("k_range")
    @classmethod
    def _k_range(cls, v: tuple[int, int]) -> tuple[int, int]:
        lo, hi = v
        if lo < 2 or hi <= lo:
            raise ValueError("must be [low, high] with 2 <= low < high")
        return v

    @field_validator("feature_weights")
    @classmethod
    def _groups(cls, v: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(v) - set(FEATURE_WEIGHT_GROUPS))
        if unknown:
            raise ValueError(f"unknown groups {unknown}; known: {list(FEATURE_WEIGHT_GROUPS)}")
        if any(w < 0 for w in v.values()):
            raise ValueError("weights must be >= 0")
        return {**dict.fromkeys(FEATURE_WEIGHT_GROUPS, 1.0), **v}

    @model_validator(mode="after")
    def _window(self) -> Clustering:
        if self.min_months_history > self.time_window_months:
            raise ValueError("min_months_history: cannot exceed time_window_months")
        return self


class Mlflow(_Strict):
    tracking_uri: str = "sqlite:///.data/mlflow/mlflow.db"
    artifact_location: Path = Path(".data/mlflow/artifacts")
    experiment: str = "dfu_clustering"


class Postgres(_Strict):
    dsn_env: str = "DFU_POSTGRES_DSN"
    table: str = Field("dim_dfu", pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$")
    key_column: str = Field("dfu_id", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")


class Api(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(8090, ge=1, le=65535)


class Generator(_Strict):
    seed: int = 7
    items: int = Field(120, ge=1)
    locations: int = Field(5, ge=1)
    end_month: date = date(2025, 12, 1)
    months: int = Field(36, ge=3)
    short_history_pct: float = Field(0.05, ge=0, lt=1)
    patterns: list[str] = Field(default_factory=lambda: list(PATTERNS))

    @field_validator("end_month")
    @classmethod
    def _first_of_month(cls, v: date) -> date:
        if v.day != 1:
            raise ValueError("must be the first day of a month")
        return v

    @field_validator("patterns")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        unknown = sorted(set(v) - set(PATTERNS))
        if unknown or not v:
            raise ValueError(f"unknown patterns {unknown}; known: {list(PATTERNS)}")
        return v


class ClusteringConfig(_Strict):
    clustering: Clustering = Clustering()
    output_dir: Path = Path(".data/dfu/clustering")
    mlflow: Mlflow = Mlflow()
    postgres: Postgres = Postgres()
    api: Api = Api()
    generator: Generator = Generator()
    source: Path = Field(DEFAULT_CLUSTERING_CONFIG, exclude=True)


def load_clustering_config(path: str | os.PathLike | None = None) -> ClusteringConfig:
    """Read and validate the clustering config; relative paths (and sqlite URIs) resolve against the repo root."""
    path = Path(path or os.environ.get("DFU_CLUSTERING_CONFIG") or DEFAULT_CLUSTERING_CONFIG)
    cfg = validate(ClusteringConfig, {**read_yaml(path), "source": path}, path)
    uri = cfg.mlflow.tracking_uri
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = "sqlite:///" + str(_resolve(REPO_ROOT, Path(uri.removeprefix("sqlite:///"))))
    mlflow = cfg.mlflow.model_copy(
        update={"tracking_uri": uri, "artifact_location": _resolve(REPO_ROOT, cfg.mlflow.artifact_location)}
    )
    return cfg.model_copy(update={"output_dir": _resolve(REPO_ROOT, cfg.output_dir), "mlflow": mlflow})
