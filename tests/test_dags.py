"""DAG integrity: imports cleanly, is configured for safe scheduling, and no two tasks write one table."""

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory, monkeypatch_module):
    monkeypatch_module.setenv("AIRFLOW_HOME", str(tmp_path_factory.mktemp("airflow")))
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_dags_import_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert {
        "mrs_pipeline",
        "mrs_cluster_library",
        "mrs_analyst_edit",
        "mrs_rereview",
        "mrs_maintenance",
        "dfu_clustering",
    } <= set(dagbag.dags)


def test_every_dag_has_docs_tags_retries_and_one_active_run(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.doc_md, dag_id
        assert dag.tags, dag_id
        assert dag.max_active_runs == 1, dag_id
        for t in dag.tasks:
            assert t.retries >= 1, f"{dag_id}.{t.task_id} has no retries"


def test_pipeline_task_graph(dagbag):
    dag = dagbag.dags["mrs_pipeline"]
    edges = {(t.task_id, d) for t in dag.tasks for d in t.downstream_task_ids}
    assert edges == {
        ("reset_requested", "reset_run_id"),
        ("reset_requested", "ingest"),
        ("reset_run_id", "ingest"),
        ("ingest", "detect_anomalies"),
        ("detect_anomalies", "cluster_minority_report"),
        ("cluster_minority_report", "propose_cause_for_minority"),
        ("propose_cause_for_minority", "build_minority_report_cohorts"),
        ("build_minority_report_cohorts", "build_minority_reports_finalised_log_from_edits"),
        ("build_minority_reports_finalised_log_from_edits", "hydrate_minority_reports"),
        ("hydrate_minority_reports", "render_event_charts"),
        ("render_event_charts", "build_protection_feed"),
        ("build_protection_feed", "check_pipeline_health"),
        ("check_pipeline_health", "send_alerts"),
    }
    assert dag.catchup is True
    assert dag.task_dict["detect_anomalies"].depends_on_past is True
    # Each scheduled run's data interval is one tick (Airflow 3's default for a timedelta is a zero-length one).
    assert type(dag.timetable).__name__ == "DeltaDataIntervalTimetable"
    assert dag.timetable.delta.total_seconds() == 15 * 60


def test_stages_take_the_data_interval_from_templates(dagbag):
    dag = dagbag.dags["mrs_pipeline"]
    stages = [t.task_id for t in dag.tasks if t.task_id not in ("reset_requested", "reset_run_id")]
    assert len(stages) == 11
    for task_id in stages:
        args = dag.task_dict[task_id].application_args
        assert "{{ params.start or (data_interval_start | ts) }}" in args
        assert "{{ params.end or (data_interval_end | ts) }}" in args


def test_params_are_validated(dagbag):
    from airflow.sdk.exceptions import ParamValidationError

    params = dagbag.dags["mrs_pipeline"].params
    assert params.get_param("start").resolve("2025-08-04T00:00:00Z") == "2025-08-04T00:00:00Z"
    assert params.get_param("reset_run_id").resolve("demo-002") == "demo-002"
    for key, bad in (("start", "last tuesday"), ("end", "2025-13"), ("reset_run_id", "no spaces allowed")):
        with pytest.raises(ParamValidationError):
            params.get_param(key).resolve(bad)


def test_cluster_library_dag_is_manual_and_validates_its_form(dagbag):
    from airflow.sdk.exceptions import ParamValidationError

    dag = dagbag.dags["mrs_cluster_library"]
    assert type(dag.timetable).__name__ == "NullTimetable"  # manual only
    assert {(t.task_id, d) for t in dag.tasks for d in t.downstream_task_ids} == {
        ("build_cluster_library", "embed_reports")
    }
    assert dag.params.get_param("mode").resolve("generate") == "generate"
    with pytest.raises(ParamValidationError):
        dag.params.get_param("mode").resolve("retrain everything")
    with pytest.raises(ParamValidationError):
        dag.params.get_param("seed").resolve(-1)


def test_no_two_tasks_ever_write_one_table_at_once(dagbag):
    """Delta on a local disk must never see two tasks append to one table at the same time: within a DAG each
    table has one writer task; across DAGs, every writer task runs in the one-slot writer pool."""
    from jobs.lib.names import WRITER_POOL
    from jobs.lib.tables import TABLES

    writers: dict[str, list[tuple[str, str]]] = {}
    for dag in dagbag.dags.values():
        for t in dag.tasks:
            app = getattr(t, "application", None)
            if app:
                module = importlib.import_module(".".join(Path(app).relative_to(REPO).with_suffix("").parts))
                for table in module.WRITES:
                    writers.setdefault(table, []).append((dag.dag_id, t.task_id))
    # The forecasting platform loads these (`make cluster-generate` writes generated ones for a demo).
    loaded_upstream = {"fact_sales_monthly", "dim_item", "dfu_pattern_truth"}
    assert set(writers) == set(TABLES) - loaded_upstream
    for table, tasks in writers.items():
        dags = [d for d, _ in tasks]
        assert len(dags) == len(set(dags)), f"{table} has two writer tasks in one DAG: {tasks}"
        if len(tasks) > 1:
            for dag_id, task_id in tasks:
                assert dagbag.dags[dag_id].task_dict[task_id].pool == WRITER_POOL, (table, dag_id, task_id)
    # Shared by the pipeline, the edit and the rereview DAGs: serialised by the pool.
    assert {d for d, _ in writers["minority_reports_finalised_log"]} == {
        "mrs_pipeline",
        "mrs_analyst_edit",
        "mrs_rereview",
    }


def test_rereview_runs_downstream_of_the_pipeline_only(dagbag):
    from jobs.lib.names import FINALISED_ASSET

    pipeline, rereview = dagbag.dags["mrs_pipeline"], dagbag.dags["mrs_rereview"]
    outlets = pipeline.task_dict["build_minority_reports_finalised_log_from_edits"].outlets
    assert [a.uri for a in outlets] == [FINALISED_ASSET]
    assert type(rereview.timetable).__name__ == "AssetTriggeredTimetable"
    assert [t.task_id for t in rereview.topological_sort()] == [
        "build_rereview_worklist",
        "rereview_cluster_reports",
        "rereview_propose_cause",
        "refresh_reports",
    ]
    # Nothing in the rereview DAG detects anomalies or starts another DAG.
    apps = {Path(t.application).stem for t in rereview.tasks}
    assert not apps & {"ingest", "detect_anomalies"}
    assert all(type(t).__name__ == "SparkJobOperator" for t in rereview.tasks)


def test_maintenance_is_daily_from_the_data_interval_in_the_writer_pool(dagbag):
    from jobs.lib.names import WRITER_POOL

    dag = dagbag.dags["mrs_maintenance"]
    (task,) = dag.tasks
    assert type(dag.timetable).__name__ == "DeltaDataIntervalTimetable" and dag.catchup is False
    assert dag.timetable.delta.total_seconds() == 86400
    # OPTIMIZE and VACUUM rewrite every table: serialised with every other writer.
    assert task.pool == WRITER_POOL
    assert "{{ data_interval_end | ts }}" in task.application_args


def test_edit_form_offers_the_taxonomy_and_refuses_bad_input(dagbag):
    from airflow.sdk.exceptions import ParamValidationError

    from jobs.lib.names import DETECTION_TYPES

    dag = dagbag.dags["mrs_analyst_edit"]
    assert type(dag.timetable).__name__ == "NullTimetable"
    params = dag.params
    assert params.get_param("cause").schema["enum"] == [None, *DETECTION_TYPES]
    assert params.get_param("cause").resolve("Competitor Stockout") == "Competitor Stockout"
    for key, bad in (("cause", "Aliens"), ("author", ""), ("target_id", "MR-123"), ("decision", "maybe")):
        with pytest.raises(ParamValidationError):
            params.get_param(key).resolve(bad)
    assert "--request-id={{ run_id }}" in dag.task_dict["record_edit"].application_args


def test_alerts_get_the_airflow_smtp_connection(dagbag):
    env = dagbag.dags["mrs_pipeline"].task_dict["send_alerts"].env_vars
    assert set(env) == {"MRS_SMTP_HOST", "MRS_SMTP_PORT", "MRS_SMTP_USER", "MRS_SMTP_PASSWORD", "MRS_SMTP_STARTTLS"}
    assert all("conn.get('smtp_default')" in v for v in env.values())


def test_dfu_clustering_runs_the_notes_steps_monthly(dagbag):
    from airflow.sdk.exceptions import ParamValidationError

    dag = dagbag.dags["dfu_clustering"]
    assert [t.task_id for t in dag.topological_sort()] == [
        "cluster_features",
        "cluster_train",
        "cluster_label",
        "cluster_update",
    ]
    assert type(dag.timetable).__name__ == "CronDataIntervalTimetable" and dag.catchup is False
    # The month comes from the form or the data interval, never from the clock.
    features = dag.task_dict["cluster_features"]
    assert any("data_interval_start" in a for a in features.application_args)
    assert "--dry-run={{ params.dry_run | lower }}" in dag.task_dict["cluster_update"].application_args
    assert "--use-pca" in dag.task_dict["cluster_train"].bash_command
    params = dag.params
    assert params.get_param("as_of").resolve("2025-11") == "2025-11"
    assert params.get_param("k_range").resolve([3, 8]) == [3, 8]
    for key, bad in (("as_of", "2025-13"), ("k_range", [1, 5]), ("k_range", [3]), ("min_cluster_size_pct", 80)):
        with pytest.raises(ParamValidationError):
            params.get_param(key).resolve(bad)


def test_a_stage_task_imports_no_library_its_workers_or_charts_need():
    """Every Airflow task is a fresh client process: scipy, scikit-learn and matplotlib (~1-3 s each to import)
    belong inside the functions that run in the Python workers or draw, not at a stage module's top."""
    heavy = ("scipy", "sklearn", "matplotlib")
    code = f"import sys, jobs.runtime.pipeline; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
