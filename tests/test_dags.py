"""DAG integrity: imports cleanly, is configured for safe scheduling, and no two tasks write one table."""

import importlib
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
    assert {"mrs_pipeline", "mrs_cluster_library"} <= set(dagbag.dags)


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
        ("build_minority_report_cohorts", "hydrate_minority_reports"),
        ("hydrate_minority_reports", "render_event_charts"),
    }
    assert dag.catchup is True
    assert dag.task_dict["detect_anomalies"].depends_on_past is True


def test_stages_take_the_data_interval_from_templates(dagbag):
    dag = dagbag.dags["mrs_pipeline"]
    stages = [t.task_id for t in dag.tasks if t.task_id not in ("reset_requested", "reset_run_id")]
    assert len(stages) == 7
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


def test_each_table_has_exactly_one_writer_task(dagbag):
    """Across every DAG: Delta on a local disk must never see two tasks append to one table."""
    from jobs.lib.tables import TABLES

    writers: dict[str, list[str]] = {}
    for dag in dagbag.dags.values():
        for t in dag.tasks:
            app = getattr(t, "application", None)
            if app:
                module = importlib.import_module(f"jobs.{Path(app).stem}")
                for table in module.WRITES:
                    writers.setdefault(table, []).append(f"{dag.dag_id}.{t.task_id}")
    assert set(writers) == set(TABLES)
    assert all(len(tasks) == 1 for tasks in writers.values()), writers
