"""Project configuration: one YAML file (conf/mrs.yaml by default), validated at start.

Every error names the offending key, e.g. ``conf/mrs.yaml: detection.score_off: must be below score_on``.
"""

from __future__ import annotations

import math
import os
from datetime import date, datetime
from pathlib import Path
from typing import Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from jobs.lib.names import DETECTION_TYPES, IMPACT_VECTORS

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO_ROOT / "conf" / "mrs.yaml"


class ConfigError(ValueError):
    """A configuration file is missing, unreadable or invalid."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Paths(_Strict):
    landing: Path
    lakehouse: Path
    metastore: Path
    artifacts: Path  # files for people, not tables: the t-SNE plot


class SparkSettings(_Strict):
    app_name: str = "mrs"
    conf: dict[str, str] = Field(default_factory=dict)


class Pipeline(_Strict):
    tick_minutes: int = Field(15, ge=5, le=1440)
    grain: Literal["store", "store_sku"] = "store_sku"
    default_run_id: str = Field("demo-001", pattern=r"^[A-Za-z0-9_.-]+$")

    @field_validator("tick_minutes")
    @classmethod
    def _divides_day(cls, v: int) -> int:
        if 1440 % v:
            raise ValueError("must divide a day (1440 minutes) evenly")
        return v


class Ingest(_Strict):
    required_columns: list[str]
    optional_columns: list[str]


def opening_score(false_alarm_budget: float, tick_seconds: int) -> float:
    """The anomaly score a report opens at: the tail probability per tick and direction that spends a false-alarm
    budget of ``false_alarm_budget`` reports per 100 series-days, on the score's scale (-log10(p) / 10)."""
    alpha = false_alarm_budget / 100.0 / (86400 / tick_seconds) / 2.0
    return -math.log10(alpha) / 10.0


class Detection(_Strict):
    model_version: str
    lookback_days: int = Field(14, ge=2, le=90)
    min_history_days: int = Field(7, ge=1)
    min_day_coverage: float = Field(0.5, gt=0, le=1)
    trim: float = Field(0.2, ge=0, lt=0.5)
    weekly_min_days: int = Field(3, ge=2)
    floor_rate: float = Field(0.05, gt=0)
    baseline_rel_error: float = Field(0.1, ge=0)
    windows: list[int]
    false_alarm_budget: float = Field(0.5, gt=0, le=100)  # reports per 100 series-days the threshold allows
    score_off: float = Field(0.2, gt=0, lt=1)
    off_ticks: int = Field(3, ge=1)
    severity_scale: float = Field(1.0, gt=0)
    series_batches: int = Field(64, ge=1, le=100_000)

    def score_on(self, tick_seconds: int) -> float:
        return opening_score(self.false_alarm_budget, tick_seconds)

    @model_validator(mode="after")
    def _consistent(self) -> Detection:
        if self.min_history_days > self.lookback_days:
            raise ValueError("min_history_days: must not exceed lookback_days")
        if not self.windows:
            raise ValueError("windows: needs at least one window")
        if any(w < 1 for w in self.windows):
            raise ValueError("windows: every window must be at least 1 tick")
        return self


class Clustering(_Strict):
    library_version: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    library_file: Path  # the library a fresh install ships with (used until the Delta table holds the version)
    distance: Literal["euclidean", "cosine"] = "euclidean"
    reference_days: int = Field(7, ge=1, le=60)  # history for a series' usual price per unit
    feature_weights: dict[str, float] = Field(default_factory=dict)  # unlisted features weigh 1
    k_min: int = Field(3, ge=2)
    k_max: int = Field(12, ge=2)
    seed: int = 7
    tsne_perplexity: float = Field(15.0, gt=1)

    @model_validator(mode="after")
    def _consistent(self) -> Clustering:
        from jobs.lib.features import FEATURES

        unknown = sorted(set(self.feature_weights) - set(FEATURES))
        if unknown:
            raise ValueError(f"feature_weights: unknown feature(s) {unknown}; known: {list(FEATURES)}")
        if any(w < 0 for w in self.feature_weights.values()):
            raise ValueError("feature_weights: weights must not be negative")
        if self.k_min > self.k_max:
            raise ValueError("k_min: must not exceed k_max")
        return self


class Attribution(_Strict):
    model_version: str
    tier_medium: float = Field(0.5, gt=0, lt=1)  # spec decision 10: Low below this ...
    tier_high: float = Field(0.8, gt=0, le=1)  # ... Medium below this, High from it
    degraded_factor: float = Field(0.8, gt=0, le=1)  # confidence multiplier when a feed is missing
    temperature: float = Field(1.0, gt=0)  # softmax temperature over the categories' evidence scores
    campaign_lead_days: float = Field(3.0, ge=0)  # a campaign launched this close before the report is news
    prior: dict[str, float]  # base score per detection type
    weights: dict[str, float]  # evidence kind -> weight of its strength in [0, 1]
    signal_categories: dict[str, str]  # contextual_data.signal_type -> detection type
    impact_vectors: dict[str, str]  # detection type -> impact vector

    @model_validator(mode="after")
    def _consistent(self) -> Attribution:
        if self.tier_medium >= self.tier_high:
            raise ValueError("tier_medium: must be below tier_high")
        for field in ("prior", "impact_vectors"):
            bad = sorted(set(getattr(self, field)) ^ set(DETECTION_TYPES))
            if bad:
                raise ValueError(f"{field}: needs exactly the detection types {list(DETECTION_TYPES)}; check {bad}")
        for signal, category in self.signal_categories.items():
            if category not in DETECTION_TYPES:
                raise ValueError(f"signal_categories: {signal} maps to unknown detection type {category!r}")
        for category, vector in self.impact_vectors.items():
            if vector not in IMPACT_VECTORS:
                raise ValueError(f"impact_vectors: {category} maps to unknown impact vector {vector!r}")
        return self


class Cohorting(_Strict):
    gap_minutes: int = Field(30, ge=0)  # temporal adjacency: a report this close after another joins its event
    lookback_hours: int = Field(12, ge=1)  # an event ended longer ago than this is final and no longer recomputed
    # Stores of one retailer or one region may share a cause (spec decision 4).
    shared_cause_scope: list[Literal["retailer_id", "region"]] = ["retailer_id", "region"]

    @model_validator(mode="after")
    def _consistent(self) -> Cohorting:
        if self.lookback_hours * 60 <= self.gap_minutes:
            raise ValueError("lookback_hours: must be longer than gap_minutes")
        return self


WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class AutomationRule(_Strict):
    name: str = Field(pattern=r"^[a-z0-9_]+$")  # edits are written by author automation:<name>
    weekdays: list[Literal[WEEKDAYS]] = list(WEEKDAYS)  # UTC day of the tick the rule may act on
    min_confidence: float = Field(0.7, ge=0, le=1)  # acts on reports whose confidence exceeds this
    action: Literal["auto_confirm"] = "auto_confirm"


class Automation(_Strict):
    rules: list[AutomationRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> Automation:
        names = [r.name for r in self.rules]
        if len(names) != len(set(names)):
            raise ValueError(f"rules: rule names must be unique, got {names}")
        return self


class Protection(_Strict):
    # Review statuses whose anomalous sales are fed to the MMM and the bandit as "do not credit campaigns".
    include_statuses: list[Literal["proposed", "confirmed", "auto_confirmed", "rejected"]] = [
        "confirmed",
        "auto_confirmed",
    ]


class Scope(_Strict):
    """What a subscriber covers; an empty list means every value."""

    retailer_id: list[str] = Field(default_factory=list)
    region: list[str] = Field(default_factory=list)
    category: list[str] = Field(default_factory=list)


class Subscriber(_Strict):
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    name: str = ""
    scope: Scope = Scope()
    health: bool = False  # also receives pipeline health alerts (stale or degraded runs)


class Alerts(_Strict):
    severity_threshold: float = Field(0.9, ge=0, le=1)
    high_impact_categories: list[str] = ["Social/Viral Event", "Competitor Stockout"]
    smtp_conn_id: str = "smtp_default"  # the Airflow connection the DAG hands to the alerting job
    sender: str = "mrs-alerts@localhost"
    link_base: str = "http://localhost:8080"  # links in alerts open the event from here
    subscribers: list[Subscriber] = Field(default_factory=list)

    @model_validator(mode="after")
    def _known_categories(self) -> Alerts:
        bad = sorted(set(self.high_impact_categories) - set(DETECTION_TYPES))
        if bad:
            raise ValueError(f"high_impact_categories: unknown detection type(s) {bad}")
        return self


class Health(_Strict):
    max_lag_minutes: float = Field(60.0, ge=0)  # newer data than this behind the interval's end: stale
    min_coverage: float = Field(0.9, ge=0, le=1)  # a smaller share of expected series x ticks: degraded
    max_error_rate: float = Field(0.05, ge=0, le=1)  # a larger quarantined share: degraded
    expected_series_days: int = Field(7, ge=1)  # series seen this many days before the interval are expected


class Maintenance(_Strict):
    max_files_per_partition: int = Field(4, ge=1)  # more data files per partition after compaction: degraded
    vacuum_retention_hours: int = Field(168, ge=0)  # unreferenced files kept this long (time travel, readers)


class AnomalyCounts(_Strict):
    social_viral: int = Field(3, ge=0)
    competitor_stockout: int = Field(2, ge=0)
    promo_with_campaign: int = Field(2, ge=0)
    store_incident: int = Field(2, ge=0)
    feed_duplication: int = Field(1, ge=0)
    unit_glitch: int = Field(2, ge=0)


class Generator(_Strict):
    seed: int = 7
    start: date
    days: int = Field(21, ge=2)
    retailers: int = Field(2, ge=1)
    regions: int = Field(3, ge=1)
    stores_per_retailer: int = Field(6, ge=1)
    skus: int = Field(8, ge=1)
    categories: int = Field(3, ge=1)
    anomalies: AnomalyCounts = AnomalyCounts()
    first_anomaly_day: int = Field(8, ge=0)
    bad_rows_per_file: int = Field(6, ge=0)
    missing_input_hours: list[datetime] = Field(default_factory=list)

    @model_validator(mode="after")
    def _room_for_anomalies(self) -> Generator:
        if self.first_anomaly_day >= self.days:
            raise ValueError("first_anomaly_day: must be before the last generated day")
        if self.categories > self.skus:
            raise ValueError("categories: cannot exceed skus")
        return self


class Config(_Strict):
    paths: Paths
    spark: SparkSettings = SparkSettings()
    pipeline: Pipeline = Pipeline()
    ingest: Ingest
    detection: Detection
    clustering: Clustering
    attribution: Attribution
    cohorting: Cohorting = Cohorting()
    automation: Automation = Automation()
    protection: Protection = Protection()
    alerts: Alerts = Alerts()
    health: Health = Health()
    maintenance: Maintenance = Maintenance()
    generator: Generator
    source: Path = Field(DEFAULT_CONFIG, exclude=True)

    @property
    def tick_seconds(self) -> int:
        return self.pipeline.tick_minutes * 60

    @model_validator(mode="after")
    def _consistent(self) -> Config:
        on = self.detection.score_on(self.tick_seconds)
        if self.detection.score_off >= on:
            raise ValueError(
                f"detection.score_off: must be below the score a report opens at ({on:.3f}, from "
                f"false_alarm_budget {self.detection.false_alarm_budget} at {self.pipeline.tick_minutes}-minute ticks)"
            )
        return self


def _resolve(base: Path, p: Path) -> Path:
    return p if p.is_absolute() else (base / p).resolve()


def apply_overrides(raw: dict, overrides: dict) -> dict:
    """Set ``{"section.key": value}`` entries in a raw config mapping, in place."""
    for dotted, value in overrides.items():
        node = raw
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return raw


_M = TypeVar("_M", bound=BaseModel)


def read_yaml(path: Path) -> dict:
    """A config file's top-level mapping, or a ConfigError naming the file."""
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections")
    return raw


def validate(model: type[_M], raw: dict, path: Path) -> _M:
    """Validate a raw mapping; every problem is reported as ``file: dotted.key: message``."""
    try:
        return model.model_validate(raw)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            key = ".".join(str(p) for p in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            if ":" in msg and msg.split(":")[0].replace(".", "_").isidentifier():
                # model-level checks name the field themselves ("score_off: must be ...")
                key = f"{key}.{msg.split(':')[0]}" if key else msg.split(":")[0]
                msg = msg.split(":", 1)[1].strip()
            problems.append(f"{key}: {msg}")
        raise ConfigError(f"{path}: " + "; ".join(problems)) from None


def derive_config(root: Path, overrides: dict, base: str | os.PathLike = DEFAULT_CONFIG) -> Config:
    """Write ``base`` (``conf/mrs.yaml``) with ``overrides`` (dotted keys) to ``root/mrs.yaml`` and load it: a
    config for a test, a benchmark or an evaluation that subprocesses (Airflow tasks, jobs) can read too."""
    raw = read_yaml(Path(base))
    apply_overrides(raw, overrides)
    root.mkdir(parents=True, exist_ok=True)
    path = root / "mrs.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_config(path)


def load_config(path: str | os.PathLike | None = None, overrides: dict | None = None) -> Config:
    """Read and validate a config file; relative paths resolve against the repository root."""
    path = Path(path or os.environ.get("MRS_CONFIG") or DEFAULT_CONFIG)
    raw = read_yaml(path)
    apply_overrides(raw, overrides or {})
    cfg = validate(Config, {**raw, "source": path}, path)
    root = REPO_ROOT
    paths = Paths(**{k: _resolve(root, v) for k, v in cfg.paths.model_dump().items()})
    clustering = cfg.clustering.model_copy(update={"library_file": _resolve(root, cfg.clustering.library_file)})
    return cfg.model_copy(update={"paths": paths, "clustering": clustering})
