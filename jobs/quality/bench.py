"""``make bench``: how fast the pipeline turns a tick into reports, how that scales, and what it costs to run.

Per scale (``--scale S M``), on data from the project's generator, in one warm Spark session (Spark Connect):

- **I/O floor**: read the landing CSVs and write them once as Delta;
- **output floor**: copy the rows the backfill wrote, table by table, once as Delta (no compute). A backfill
  reads its input and writes its output at least once, so I/O floor + output floor is the least it can take;
- **bulk backfill**: every stage over the whole range in one run (run_id ``bench-backfill``). This is also the
  notes' naive stateless design's cost for the last tick: it replays all history to compute it;
- **scheduled ticks**: the mean of 10 consecutive ticks after 3 days of history and of 10 after the whole
  range, both ending at 23:30 so that only the history differs (run_id ``bench-ticks``, the history before each
  built by a range run, then one tick run alone: a scheduled tick follows a scheduled tick), every stage in
  turn, each stage timed. Ten ticks are one Delta checkpoint interval: every tenth commit of a table also writes
  its checkpoint (about 1 s a table here), so a single tick's cost depends on where it falls in that cycle;
  each window pays every table's checkpoint once. The history ratio compares the ticks of each window that
  carried no open report (the same work: no report can open within the baseline's 7-day warm-up, so the early
  window never carries one), and reports the window means too;
- **through Airflow**: a tick end to end (``airflow dags test mrs_pipeline``, its 12 tasks as Spark Connect
  clients) twice: the tick just before the late window, which carries whatever open reports the data holds
  then, and the tick after it. What the second costs beyond the window's ticks without reports is the fixed
  cost of tasks;
- **fixed cost of a stage**: a probe job (session, one Delta read, one Delta commit) by ``spark-submit`` (a cold
  JVM) and as a Spark Connect client;
- **Delta log health**: data files, commits and checkpoints per table, before and after table maintenance;
- **memory**: peak resident memory of the Spark driver JVM (local mode: the executors too), of Spark's Python
  workers, and of the client, sampled every 0.2 s.

Ratios come from one run on one machine, so they hold on a noisy machine. The results go to
``docs/benchmarks/bench_<scale>.json`` (raw figures, for comparison between commits) and ``BENCHMARKS.md``.

    python -m jobs.quality.bench [--scale S M] [--root .data/bench]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path

import psutil

from jobs.lib.config import REPO_ROOT, Config, derive_config

# S: 20 stores x 10 SKUs, 21 days; M: 200 stores x 50 SKUs = 10,000 series, 28 days (~27 million rows).
SCALES = {
    "S": {"retailers": 2, "stores_per_retailer": 10, "skus": 10, "days": 21, "regions": 4, "categories": 3},
    "M": {"retailers": 4, "stores_per_retailer": 50, "skus": 50, "days": 28, "regions": 8, "categories": 5},
}
# Bars of issue 7, checked at scale M (reported at every scale).
BARS = {"tick_history_ratio": 1.3, "replay_speedup": 10.0, "backfill_io_ratio": 5.0, "airflow_tick_s": 90.0}
RESULTS = REPO_ROOT / "docs" / "benchmarks"
GiB = 1024**3
# The scheduled ticks measured: result key and days of history before them (None: the whole range). Older JSON
# also has tick_early_0015 (a single tick at 00:15, for the time of day), which render() still shows.
TICKS = (("tick_early_0015", 3), ("tick_early", 3), ("tick_late", None))
MEASURED = ("tick_early", "tick_late")
# Ticks per measurement: Delta's default checkpoint interval (delta.checkpointInterval), so that every window
# includes each per-tick table's checkpoint exactly once, whatever its commit count when the window starts.
WINDOW = 10
# A tick "carries reports" when this stage wrote rows: every open report is clustered again each tick. Only ticks
# that carry none compare the cost of history alone: the baseline's warm-up (min_history_days) keeps reports out
# of the window after 3 days, while the late window carries whatever the data holds then.
REPORT_STAGE, REPORT_STAGE_TABLE = "cluster_minority_report", "minority_reports_clustered_log"


# -- set-up -------------------------------------------------------------------------------------------------------
def scale_config(scale: str, root: Path) -> Config:
    g = SCALES[scale]
    overrides = {f"generator.{k}": v for k, v in g.items()}
    overrides.update(
        {
            "generator.missing_input_hours": [],
            "pipeline.default_run_id": "bench-ticks",
            **{f"paths.{p}": str(root / p) for p in ("landing", "lakehouse", "metastore", "artifacts")},
        }
    )
    return derive_config(root, overrides)


def generate_once(cfg: Config) -> dict:
    """Generate the scale's landing zone unless the same generator settings already wrote it."""
    from jobs.quality.generate_data import generate

    marker = cfg.paths.landing / ".generated.json"
    settings = cfg.generator.model_dump(mode="json")
    if marker.exists() and json.loads(marker.read_text())["settings"] == settings:
        return json.loads(marker.read_text())["counts"] | {"seconds": 0.0, "reused": True}
    t = time.perf_counter()
    counts = generate(cfg, cfg.paths.landing)
    marker.write_text(json.dumps({"settings": settings, "counts": counts}))
    return counts | {"seconds": round(time.perf_counter() - t, 1), "reused": False}


class MemorySampler:
    """Peak RSS of a Spark server's JVM, of the Python workers under it, and of this (client) process."""

    def __init__(self, server_pid: int, interval: float = 0.2):
        self.server = psutil.Process(server_pid)
        self.me = psutil.Process()
        self.interval = interval
        self.peak = {"driver_jvm": 0, "python_workers": 0, "client": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            jvm = workers = 0
            try:
                for p in self.server.children(recursive=True):
                    rss = p.memory_info().rss
                    if p.name() == "java":
                        jvm += rss
                    elif "python" in p.name() and any(a.name() == "java" for a in p.parents()):
                        workers += rss
            except psutil.Error:
                continue  # a worker ended while it was read
            self.peak["driver_jvm"] = max(self.peak["driver_jvm"], jvm)
            self.peak["python_workers"] = max(self.peak["python_workers"], workers)
            self.peak["client"] = max(self.peak["client"], self.me.memory_info().rss)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def snapshot(self) -> dict[str, float]:
        return {k: round(v / GiB, 2) for k, v in self.peak.items()}


# -- measurements -------------------------------------------------------------------------------------------------
def rows_written(result) -> int:
    """Rows a stage wrote, from its result: table name -> count, or -> {inserted, updated, deleted}."""
    from jobs.lib.tables import TABLES

    total = 0
    for key, value in (result or {}).items():
        if key in TABLES and isinstance(value, int):
            total += value
        elif isinstance(value, dict):
            total += sum(v for v in value.values() if isinstance(v, int)) if key in TABLES else rows_written(value)
    return total


def run_stages(spark, cfg: Config, start: datetime, end: datetime, run_id: str) -> dict:
    """Every stage over [start, end) in DAG order, each timed; rows in = sales rows of the interval."""
    from pyspark.sql import functions as F

    from jobs.lib.tables import Lakehouse
    from jobs.runtime.pipeline import STAGES

    stages = []
    for stage in STAGES:
        t = time.perf_counter()
        result = stage.run(spark, cfg, start, end, run_id)
        stages.append({"stage": stage.__name__.rsplit(".", 1)[-1], "seconds": time.perf_counter() - t,
                       "rows_out": rows_written(result)})  # fmt: skip
        print(f"  {stages[-1]['stage']}: {stages[-1]['seconds']:.1f} s", flush=True)
    sales = Lakehouse(spark, cfg).read("sales_timeseries_data", run_id)
    rows_in = sales.where((F.col("ts") >= F.lit(start)) & (F.col("ts") < F.lit(end))).count()
    total = sum(s["seconds"] for s in stages)
    for s in stages:
        s["rows_per_s"] = round(rows_in / s["seconds"]) if s["seconds"] else None
        s["seconds"] = round(s["seconds"], 2)
    rows_out = sum(s["rows_out"] for s in stages)
    return {"start": start.isoformat(), "end": end.isoformat(), "rows_in": rows_in, "rows_out": rows_out,
            "seconds": round(total, 2), "rows_per_s": round(rows_in / total), "stages": stages}  # fmt: skip


def mean_tick(runs: list[dict]) -> dict:
    """Consecutive ticks' ``run_stages`` results as one mean tick (per stage too); ``ticks_s`` keeps each tick's
    total, so the ticks that also wrote checkpoints show, and ``reports`` the report rows each one clustered."""
    n = len(runs)

    def mean(values) -> float:
        return sum(values) / n

    seconds, rows_in = mean(r["seconds"] for r in runs), round(mean(r["rows_in"] for r in runs))
    reports = [{x["stage"]: x["rows_out"] for x in r["stages"]}.get(REPORT_STAGE, 0) for r in runs]
    stages = []
    for same in zip(*(r["stages"] for r in runs), strict=True):
        s = mean(x["seconds"] for x in same)
        stages.append({"stage": same[0]["stage"], "seconds": round(s, 2),
                       "rows_out": round(mean(x["rows_out"] for x in same)),
                       "rows_per_s": round(rows_in / s) if s else None})  # fmt: skip
    return {"start": runs[0]["start"], "end": runs[-1]["end"], "rows_in": rows_in,
            "rows_out": round(mean(r["rows_out"] for r in runs)), "seconds": round(seconds, 2),
            "rows_per_s": round(rows_in / seconds), "stages": stages,
            "ticks_s": [r["seconds"] for r in runs],
            "reports": reports}  # fmt: skip


def quiet_mean(window: dict) -> float | None:
    """Mean seconds of a window's ticks that carried no report (None: all did, or older JSON)."""
    if "reports" not in window:
        return None
    quiet = [s for s, n in zip(window["ticks_s"], window["reports"], strict=True) if n == 0]
    return round(sum(quiet) / len(quiet), 2) if quiet else None


def io_floor(spark, cfg: Config, root: Path) -> dict:
    """Read every landing CSV and write it once as Delta, in the same session: the least a backfill can cost."""
    from jobs.stages.ingest import INPUT_COLUMNS

    t = time.perf_counter()
    schema = ", ".join(f"`{c}` STRING" for c in INPUT_COLUMNS)
    df = spark.read.option("header", True).schema(schema).csv(str(cfg.paths.landing / "unified_sales_data"))
    df.write.format("delta").mode("overwrite").save(str(root / "scratch" / "io_floor"))
    seconds = time.perf_counter() - t
    rows = spark.read.format("delta").load(str(root / "scratch" / "io_floor")).count()
    return {"seconds": round(seconds, 2), "rows": rows, "rows_per_s": round(rows / seconds)}


def output_floor(spark, cfg: Config, root: Path, run_id: str) -> dict:
    """Write what ``run_id`` wrote, once, as plain Delta copies (no compute): the least the backfill's own
    writes can cost. The notes' per-tick logs make the backfill write four rows per sales row."""
    from jobs.lib.tables import TABLES, Lakehouse

    lake = Lakehouse(spark, cfg)
    frames = {n: lake.read(n, run_id) for n, t in TABLES.items() if "run_id" in t.schema.fieldNames()}
    for frame in frames.values():
        frame.count()  # the reads warm up (file listing, the OS cache) outside the timing
    t = time.perf_counter()
    for name, frame in frames.items():
        frame.write.format("delta").mode("overwrite").save(str(root / "scratch" / "output_floor" / name))
    seconds = time.perf_counter() - t
    rows = sum(spark.read.format("delta").load(str(root / "scratch" / "output_floor" / n)).count() for n in frames)
    return {"seconds": round(seconds, 2), "rows": rows, "rows_per_s": round(rows / seconds)}


def probe(argv: list[str]) -> None:
    """A stage's fixed cost: build the session, read one Delta table, commit one row; prints the timings."""
    from pyspark.sql import functions as F

    from jobs.lib.config import load_config
    from jobs.lib.spark import build_spark
    from jobs.lib.tables import Lakehouse

    p = argparse.ArgumentParser()
    p.add_argument("--config", required=True)
    p.add_argument("--table", required=True)
    a = p.parse_args(argv)
    t0 = time.perf_counter()
    cfg = load_config(a.config)
    spark = build_spark(cfg, "bench-probe")
    t1 = time.perf_counter()
    Lakehouse(spark, cfg).read("ingest_audit_log").limit(1).count()
    t2 = time.perf_counter()
    spark.range(1).select(F.col("id").cast("string").alias("id")).write.format("delta").mode("append").save(a.table)
    t3 = time.perf_counter()
    spark.stop()
    print("PROBE " + json.dumps({"session_s": t1 - t0, "delta_read_s": t2 - t1, "delta_commit_s": t3 - t2}))


def fixed_costs(cfg: Config, root: Path, url: str, repeats: int = 3) -> dict:
    """The probe job by spark-submit (cold JVM, the classic way), as a Spark Connect client started as a new
    process, and as one forked from the job runner (as the Airflow tasks start it); medians."""
    from jobs.runtime.job_runner import default_socket, run_job

    table = root / "scratch" / "probe"
    # A Connect client leaves SPARK_REMOTE and SPARK_CONNECT_MODE_ENABLED set: a classic job must not see them.
    env = {k: v for k, v in os.environ.items() if k not in ("SPARK_REMOTE", "SPARK_CONNECT_MODE_ENABLED")}
    probe = ["probe", "--config", str(cfg.source), "--table", str(table)]
    classic = [str(Path(sys.executable).parent / "spark-submit"), "--master", "local[*]", str(Path(__file__)), *probe]
    connect = [sys.executable, "-m", "jobs.quality.bench", *probe]
    runner = default_socket(int(url.rstrip("/").rpartition(":")[2]))

    def forked(cmd, e):
        lines = []
        code = run_job(runner, "jobs.quality.bench", probe, e, str(REPO_ROOT), lines.append)
        return subprocess.CompletedProcess(cmd, code, "\n".join(lines), "\n".join(lines))

    def started(cmd, e):
        return subprocess.run(cmd, env=e, capture_output=True, text=True, cwd=REPO_ROOT, check=False)

    remote = {**env, "SPARK_REMOTE": url}
    out = {}
    for mode, run, cmd, e in (
        ("spark_submit", started, classic, env),
        ("spark_connect", started, connect, remote),
        ("job_runner", forked, connect, remote),
    ):
        runs = []
        for _ in range(repeats):
            t = time.perf_counter()
            res = run(cmd, e)
            wall = time.perf_counter() - t
            line = next((x for x in res.stdout.splitlines() if x.startswith("PROBE ")), None)
            if res.returncode or line is None:
                raise RuntimeError(f"probe ({mode}) failed: {res.stderr[-2000:]}")
            parts = json.loads(line.removeprefix("PROBE "))
            runs.append({"wall_s": wall, **parts, "process_start_s": wall - sum(parts.values())})
        out[mode] = {k: round(sorted(r[k] for r in runs)[len(runs) // 2], 2) for k in runs[0]}
    return out


def airflow_tick(cfg: Config, root: Path, url: str, smtp_port: int, start: datetime, end: datetime) -> dict:
    """One tick end to end through Airflow (``airflow dags test``), its tasks as clients of the warm session."""
    from jobs.lib.names import WRITER_POOL
    from jobs.runtime import mailbox
    from jobs.runtime.spark_server import airflow_connection

    env = {
        **os.environ,
        "AIRFLOW_HOME": str(root / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW_CONN_MRS_SPARK": airflow_connection(url),
        "AIRFLOW_CONN_SMTP_DEFAULT": mailbox.smtp_connection(smtp_port),
        "MRS_CONFIG": str(cfg.source),
    }
    airflow = str(Path(sys.executable).parent / "airflow")
    for args in (["db", "migrate"], ["pools", "set", WRITER_POOL, "1", "one lakehouse writer at a time"]):
        subprocess.run([airflow, *args], env=env, capture_output=True, check=True)
    conf = json.dumps({"start": start.isoformat(), "end": end.isoformat()})
    t = time.perf_counter()
    res = subprocess.run([airflow, "dags", "test", "mrs_pipeline", end.isoformat(), "--conf", conf], env=env,
                         capture_output=True, text=True, check=False)  # fmt: skip
    seconds = time.perf_counter() - t
    if res.returncode or "state=failed" in res.stdout + res.stderr:
        raise RuntimeError(f"airflow dags test failed:\n{(res.stdout + res.stderr)[-4000:]}")
    return {"start": start.isoformat(), "end": end.isoformat(), "seconds": round(seconds, 2), "tasks": 12}


def reports_clustered(spark, cfg: Config, start: datetime, end: datetime) -> int:
    """The open reports a tick carried: the rows the clustering stage wrote in it (every open report is
    clustered again each tick)."""
    from pyspark.sql import functions as F

    from jobs.lib.tables import Lakehouse

    mrcl = Lakehouse(spark, cfg).read(REPORT_STAGE_TABLE, "bench-ticks")
    return mrcl.where((F.col("written_at") >= F.lit(start)) & (F.col("written_at") < F.lit(end))).count()


def delta_health(spark, cfg: Config) -> dict[str, dict[str, int]]:
    """Per table: data files in the current version, commits and checkpoints in its log."""
    from jobs.lib.tables import TABLES, Lakehouse
    from jobs.runtime import maintain_tables

    lake = Lakehouse(spark, cfg)
    out = {}
    for name in TABLES:
        if not lake.exists(name):
            continue
        files, size = maintain_tables.detail(lake, name)
        log = Path(lake.path(name)) / "_delta_log"
        out[name] = {
            "files": files,
            "mib": round(size / 2**20, 1),
            "commits": len(list(log.glob("*.json"))),
            "checkpoints": len(list(log.glob("*.checkpoint*.parquet"))),
        }
    return out


# -- one scale ----------------------------------------------------------------------------------------------------
def bench_scale(scale: str, root: Path) -> dict:
    from jobs.lib.spark import build_spark
    from jobs.runtime import mailbox, maintain_tables
    from jobs.runtime.spark_server import local_server

    root = root / scale
    cfg = scale_config(scale, root)
    g = cfg.generator
    t0 = datetime.combine(g.start, datetime.min.time(), tzinfo=UTC)
    tick = timedelta(seconds=cfg.tick_seconds)
    end = t0 + timedelta(days=g.days)
    result: dict = {"scale": scale, "series": g.retailers * g.stores_per_retailer * g.skus, "days": g.days,
                    "tick_minutes": cfg.pipeline.tick_minutes}  # fmt: skip
    print(f"[{scale}] generating {result['series']:,} series x {g.days} days ...", flush=True)
    result["generate"] = generate_once(cfg)
    for sub in ("lakehouse", "scratch", "airflow", "artifacts", "mailbox"):
        subprocess.run(["rm", "-rf", str(root / sub)], check=True)

    with ExitStack() as stack:
        # Alerts go to a local mailbox, in-process and through Airflow alike.
        box = mailbox.start(root / "mailbox")
        stack.callback(box.stop)
        os.environ.update({"MRS_SMTP_HOST": "127.0.0.1", "MRS_SMTP_PORT": str(box.port), "MRS_SMTP_STARTTLS": "false"})
        t = time.perf_counter()
        url = stack.enter_context(local_server(str(cfg.source)))
        result["server_start_s"] = round(time.perf_counter() - t, 1)
        os.environ["SPARK_REMOTE"] = url
        server_pid = next(
            p.pid for p in psutil.Process().children() if "jobs.runtime.spark_server" in " ".join(p.cmdline())
        )
        memory = stack.enter_context(MemorySampler(server_pid))
        spark = build_spark(cfg, "bench")

        print(f"[{scale}] fixed cost of a stage ...", flush=True)
        result["fixed_cost"] = fixed_costs(cfg, root, url)
        print(f"  {result['fixed_cost']}", flush=True)
        print(f"[{scale}] I/O floor ...", flush=True)
        result["io_floor"] = io_floor(spark, cfg, root)
        print(f"[{scale}] bulk backfill of {g.days} days ...", flush=True)
        result["backfill"] = run_stages(spark, cfg, t0, end, "bench-backfill")
        print(f"[{scale}] output floor ...", flush=True)
        result["output_floor"] = output_floor(spark, cfg, root, "bench-backfill")
        # Scheduled ticks: the history by a range run, then the tick before, then the measured window. Both windows
        # end at one time of day (23:30, on day 4 and on the last day) so that only the history differs. A
        # scheduled tick follows a scheduled tick: the first tick after a range run of many days is kept apart
        # (tick_before), as it also pays for that run's aftermath in the server (not in the Connect session: a
        # new session after a month-long range run was measured as slow). Before the late window, one more tick
        # runs through Airflow: a tick that carries open reports, where the data holds any then.
        last = end - 2 * tick
        first = {"tick_early": last - timedelta(days=g.days - 4) - (WINDOW - 1) * tick,
                 "tick_late": last - (WINDOW - 1) * tick}  # fmt: skip
        print(f"[{scale}] {WINDOW} ticks after 3 and after {g.days} days ...", flush=True)
        since, result["tick_before"] = t0, {}
        for key in MEASURED:
            at = first[key]
            through_airflow = key == "tick_late"
            before = at - 2 * tick if through_airflow else at - tick
            run_stages(spark, cfg, since, before, "bench-ticks")
            result["tick_before"][key] = run_stages(spark, cfg, before, before + tick, "bench-ticks")["seconds"]
            if through_airflow:
                print(f"[{scale}] the tick before the late window through Airflow ...", flush=True)
                busy = airflow_tick(cfg, root, url, box.port, at - tick, at)
                result["airflow_tick_reports"] = {**busy, "reports": reports_clustered(spark, cfg, at - tick, at)}
                print(f"  {busy['seconds']} s, {result['airflow_tick_reports']['reports']} open reports", flush=True)
            files_before = delta_health(spark, cfg)  # the files a tick adds: those of the last window
            window = [run_stages(spark, cfg, at + i * tick, at + (i + 1) * tick, "bench-ticks") for i in range(WINDOW)]
            result[key] = mean_tick(window)
            since = at + WINDOW * tick
        files_after = delta_health(spark, cfg)
        print(f"[{scale}] the last tick through Airflow ...", flush=True)
        result["airflow_tick"] = airflow_tick(cfg, root, url, box.port, last + tick, end)
        print(f"  {result['airflow_tick']['seconds']} s", flush=True)
        print(f"[{scale}] table maintenance ...", flush=True)
        after_runs = delta_health(spark, cfg)
        t = time.perf_counter()
        maintained = maintain_tables.run(spark, cfg, end - timedelta(days=1), end)
        result["maintenance"] = {**maintained, "seconds": round(time.perf_counter() - t, 1)}
        result["delta"] = {
            "after_runs": after_runs,
            "after_maintenance": delta_health(spark, cfg),
            "files_per_tick": {
                n: round((d["files"] - files_before.get(n, {"files": 0})["files"]) / WINDOW, 1)
                for n, d in files_after.items()
            },
        }
        result["memory_gib"] = memory.snapshot()
        spark.stop()
    os.environ.pop("SPARK_REMOTE", None)
    result["ratios"] = ratios(result)
    return result


def ratios(r: dict) -> dict:
    work = r["tick_late"]["seconds"]
    windows = work / r["tick_early"]["seconds"]
    early, late = quiet_mean(r["tick_early"]), quiet_mean(r["tick_late"])
    # The Airflow tick after the window carried no report (where the data holds none then): its fixed cost is
    # what it takes beyond the window's ticks without reports.
    quiet = work if late is None else late
    equal = early is not None and late is not None
    return {
        # Equal work where both windows have ticks without reports; else the window means.
        "tick_history_ratio": round(late / early if equal else windows, 2),
        "tick_history_equal_work": equal,
        "tick_history_windows_ratio": round(windows, 2),
        "replay_speedup": round(r["backfill"]["seconds"] / work, 1),
        "backfill_io_ratio": round(r["backfill"]["seconds"] / r["io_floor"]["seconds"], 2),
        "backfill_full_io_ratio": round(
            r["backfill"]["seconds"] / (r["io_floor"]["seconds"] + r["output_floor"]["seconds"]), 2
        ),
        "airflow_tick_s": r["airflow_tick"]["seconds"],
        "airflow_fixed_share": round(1 - quiet / r["airflow_tick"]["seconds"], 2),
        **(
            {"airflow_tick_reports_s": r["airflow_tick_reports"]["seconds"]}
            if "airflow_tick_reports" in r  # absent from older JSON
            else {}
        ),
    }


# -- report -------------------------------------------------------------------------------------------------------
def machine() -> dict:
    java = subprocess.run(["java", "-version"], capture_output=True, text=True, check=False).stderr.splitlines()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO_ROOT)
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / GiB, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "java": java[0] if java else "unknown",
        **{p: version(p) for p in ("pyspark", "delta-spark", "apache-airflow")},
        "commit": commit.stdout.strip() or "unknown",
    }


def render(results: list[dict]) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`python -m jobs.quality.bench`, then `jobs.quality.report`); raw figures in "
        "`docs/benchmarks/bench_<scale>.json`.",
        "What each figure is: `jobs/quality/bench.py`'s docstring. Ratios come from one run, on one machine.",
        "",
    ]
    for r in results:
        m, q = r["machine"], r["ratios"]
        lines += [
            f"## Scale {r['scale']}: {r['series']:,} series, {r['days']} days of {r['tick_minutes']}-minute ticks",
            "",
            f"Measured {r['measured_on']} on {m['cores']} cores, {m['memory_gib']} GiB, {m['java']}, Python "
            f"{m['python']}, pyspark {m['pyspark']}, delta-spark {m['delta-spark']}, Airflow {m['apache-airflow']} "
            f"(commit {m['commit']}); command `{r['command']}`.",
            "",
            "| run | wall s | rows in | rows out | rows/s |",
            "| --- | ---: | ---: | ---: | ---: |",
            f"| I/O floor (CSV -> Delta once) | {r['io_floor']['seconds']} | {r['io_floor']['rows']:,} | "
            f"{r['io_floor']['rows']:,} | {r['io_floor']['rows_per_s']:,} |",
        ]
        if of := r.get("output_floor"):  # absent from older JSON
            lines.append(f"| output floor (the backfill's rows -> Delta once) | {of['seconds']} | | {of['rows']:,} | "
                         f"{of['rows_per_s']:,} |")  # fmt: skip
        at = {k: when(r[k], r["tick_minutes"]) for k, _ in TICKS if k in r}
        runs = [("backfill", "bulk backfill = full replay")]
        runs += [(k, f"tick after {n or r['days']} days, {at[k]}") for k, n in TICKS if k in r]
        for key, label in runs:
            x = r[key]
            lines.append(f"| {label} | {x['seconds']} | {x['rows_in']:,} | {x['rows_out']:,} | {x['rows_per_s']:,} |")
        busy = r.get("airflow_tick_reports")  # absent from older JSON
        if busy:
            lines.append(f"| tick through Airflow (12 tasks), {carrying(busy['reports'])}, "
                         f"{when(busy, r['tick_minutes'])} | {busy['seconds']} | | | |")  # fmt: skip
        quiet = f", {when(r['airflow_tick'], r['tick_minutes'])}" if busy else ""
        lines.append(f"| tick through Airflow (12 tasks){quiet} | {r['airflow_tick']['seconds']} | | | |")
        header = " | ".join(label for _, label in runs)
        lines += ["", "Per stage (seconds):", "", f"| stage | {header} |", "| --- |" + " ---: |" * len(runs)]
        for stages in zip(*(r[k]["stages"] for k, _ in runs), strict=True):
            lines.append(f"| {stages[0]['stage']} | " + " | ".join(str(x["seconds"]) for x in stages) + " |")
        spans = "; ".join(dict.fromkeys((at["tick_late"], at["tick_early"])))
        equal = ", the ticks that carried no report" if q.get("tick_history_equal_work") else ""
        bars = [
            (f"tick after all days / after 3 days ({spans}{equal})",
             q["tick_history_ratio"],
             f"<= {BARS['tick_history_ratio']}", q["tick_history_ratio"] <= BARS["tick_history_ratio"]),
            ("full replay / incremental tick", q["replay_speedup"], f">= {BARS['replay_speedup']}",
             q["replay_speedup"] >= BARS["replay_speedup"]),
            ("bulk backfill / I/O floor", q["backfill_io_ratio"], f"<= {BARS['backfill_io_ratio']}",
             q["backfill_io_ratio"] <= BARS["backfill_io_ratio"]),
            ("one tick through Airflow, s", q["airflow_tick_s"], f"< {BARS['airflow_tick_s']}",
             q["airflow_tick_s"] < BARS["airflow_tick_s"]),
            *([(f"one tick through Airflow, {carrying(busy['reports'])}, s", q["airflow_tick_reports_s"],
                f"< {BARS['airflow_tick_s']}", q["airflow_tick_reports_s"] < BARS["airflow_tick_s"])]
              if busy else []),
            ("peak driver JVM memory, GiB", r["memory_gib"]["driver_jvm"], "< 4", r["memory_gib"]["driver_jvm"] < 4),
        ]  # fmt: skip
        if "backfill_full_io_ratio" in q:
            full = q["backfill_full_io_ratio"]
            bars.insert(3, ("bulk backfill / (I/O floor + output floor)", full, f"<= {BARS['backfill_io_ratio']}",
                            full <= BARS["backfill_io_ratio"]))  # fmt: skip
        lines += ["", "| bar (issue 7's, for scale M) | here | bar | holds |", "| --- | ---: | ---: | --- |"]
        lines += [f"| {n} | {v} | {b} | {'yes' if ok else 'NO'} |" for n, v, b, ok in bars]
        if before := r.get("tick_before"):  # absent from older JSON
            label = dict(runs)
            firsts = "; ".join(f"{before[k]} s before the {label[k]}" for k, _ in TICKS if k in before)
            lines += ["", f"The tick before each measured one, the first after a range run: {firsts}."]
        if windows := [k for k, _ in TICKS if "ticks_s" in r.get(k, {})]:  # absent from older JSON
            each = "; ".join(f"{', '.join(map(str, r[k]['ticks_s']))} s ({dict(runs)[k]})" for k in windows)
            lines += ["", f"Each tick of a window (the slower ones also wrote Delta checkpoints): {each}."]
        if all("reports" in r[k] for k in MEASURED):  # absent from older JSON
            carried = "; ".join(f"{sum(n > 0 for n in r[k]['reports'])} of {len(r[k]['reports'])} after "
                                f"{n or r['days']} days" for k, n in TICKS if k in MEASURED)  # fmt: skip
            ratio = q["tick_history_windows_ratio"]
            lines += ["", f"Ticks that carried open reports (clustered again each tick): {carried}. The window "
                      f"means, those ticks included, give a history ratio of {ratio}."]  # fmt: skip
        if "tick_time_of_day_ratio" in q:
            lines += ["", f"Time of day: after 3 days, the tick at 23:30 takes {q['tick_time_of_day_ratio']} x the "
                      "tick at 00:15."]  # fmt: skip
        f = r["fixed_cost"]
        lines += [
            "",
            f"Fixed cost: of the tick through Airflow, {q['airflow_fixed_share']:.0%} is not the stages' own work "
            f"(Airflow, process start, imports). A probe stage (session, one Delta read, one commit) takes "
            f"{f['spark_submit']['wall_s']} s by spark-submit ({f['spark_submit']['process_start_s']} s process and "
            f"JVM start, {f['spark_submit']['session_s']} s session, {f['spark_submit']['delta_read_s']} s read, "
            f"{f['spark_submit']['delta_commit_s']} s commit) and {f['spark_connect']['wall_s']} s as a Spark "
            f"Connect client ({f['spark_connect']['process_start_s']} s process start and imports, "
            f"{f['spark_connect']['session_s']} s session, {f['spark_connect']['delta_read_s']} s read, "
            f"{f['spark_connect']['delta_commit_s']} s commit)"
            + (
                f", and {f['job_runner']['wall_s']} s forked from the job runner as the Airflow tasks start it "
                f"({f['job_runner']['process_start_s']} s fork and imports)"
                if "job_runner" in f
                else ""
            )
            + f". The warm server started in {r['server_start_s']} s.",
            "",
            f"Memory (peak RSS, GiB): driver JVM {r['memory_gib']['driver_jvm']}, Python workers "
            f"{r['memory_gib']['python_workers']}, client {r['memory_gib']['client']}.",
            "",
            "Delta tables: data files after the runs, files one scheduled tick adds, what a month of 15-minute "
            "ticks would add without maintenance (2,880 ticks), and files after `maintain_tables` (the daily "
            f"`mrs_maintenance` DAG; {r['maintenance']['seconds']} s here). Commits and checkpoints after the runs.",
            "",
            "| table | files | MiB | files per tick | a month of ticks | after maintenance | commits | checkpoints |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        d = r["delta"]
        for name, x in sorted(d["after_runs"].items()):
            per_tick = d["files_per_tick"].get(name, 0)
            after = d["after_maintenance"].get(name, {}).get("files", "")
            lines.append(
                f"| {name} | {x['files']} | {x['mib']} | {per_tick} | {per_tick * 2880:,.0f} | {after} | "
                f"{x['commits']} | {x['checkpoints']} |"
            )
        lines.append("")
    return "\n".join(lines)


def when(tick: dict, minutes: int) -> str:
    """When a measured tick ran: "at 23:30", or for a window "mean of 10 ticks, 21:15-23:30" (tick starts)."""
    if "ticks_s" not in tick:  # a single tick (older JSON)
        return f"at {tick['start'][11:16]}"
    last = datetime.fromisoformat(tick["end"]) - timedelta(minutes=minutes)
    return f"mean of {len(tick['ticks_s'])} ticks, {tick['start'][11:16]}-{last:%H:%M}"


def carrying(reports: int) -> str:
    return f"carrying {reports or 'no'} open report{'' if reports == 1 else 's'}"


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["probe"]:
        return probe(argv[1:])
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", nargs="+", choices=sorted(SCALES), default=["S", "M"])
    p.add_argument("--root", type=Path, default=REPO_ROOT / ".data" / "bench", help="data and tables (scratch)")
    a = p.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    for scale in a.scale:
        r = bench_scale(scale, a.root)
        r["machine"] = machine()
        r["measured_on"] = datetime.now(UTC).strftime("%Y-%m-%d")  # when it was measured: a report, not data
        r["command"] = f"make bench SCALES={scale}"
        (RESULTS / f"bench_{scale}.json").write_text(json.dumps(r, indent=1) + "\n")
        print(json.dumps(r["ratios"]), flush=True)


if __name__ == "__main__":
    main()
