# Minority Report System — every entry point. `make demo` and `make test` set up everything they need.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

ROOT    := $(abspath .)
VENV    := $(ROOT)/.venv
BIN     := $(VENV)/bin
PY      := $(BIN)/python
PYTHON  ?= python3.11
UV_VERSION := 0.13.9

# One environment for jobs, Airflow and tests: UTC, the venv's python for Spark workers, the jar cache.
export TZ := UTC
export PATH := $(BIN):$(PATH)
export PYSPARK_PYTHON := $(PY)
export PYSPARK_DRIVER_PYTHON := $(PY)
export SPARK_CONF_DIR := $(ROOT)/.cache/spark-conf
export MRS_CONFIG ?= $(ROOT)/conf/mrs.yaml
export AIRFLOW_HOME ?= $(ROOT)/.data/airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(ROOT)/dags
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__UNIT_TEST_MODE := False
# Spark jobs run as clients of the warm local session `make airflow` starts (`make spark-server`); set
# {"conn_type": "spark", "host": "local[*]"} (or a cluster's master) to spark-submit each job instead.
SPARK_CONNECT_PORT ?= 15002
# The extra names the socket of the job runner the server starts beside it (jobs/runtime/job_runner.py).
export AIRFLOW_CONN_MRS_SPARK ?= {"conn_type": "spark_connect", "host": "127.0.0.1", "port": $(SPARK_CONNECT_PORT), "extra": {"job_runner": "$(or $(TMPDIR),/tmp)/mrs-jobs-$(SPARK_CONNECT_PORT).sock"}}
# Alerts are emailed through this connection; by default to the local mailbox `make airflow` starts.
export AIRFLOW_CONN_SMTP_DEFAULT ?= {"conn_type": "smtp", "host": "127.0.0.1", "port": 8025, "extra": {"disable_tls": true}}
POOL := mrs_lakehouse_writers

INSTALLED := $(VENV)/.installed
JARS      := $(ROOT)/.cache/jars/.complete

.PHONY: help setup jars demo test test-fast lint format airflow spark-server sql tables-doc evaluate evaluate-demo evaluate-seeds bench nab cluster-library tsne lock clean \
	cluster-generate cluster-features cluster-train cluster-label cluster-update cluster-all cluster-evaluate \
	cluster-demo cluster-api mlflow-ui
help:
	@echo "make demo      generate data, run mrs_pipeline through Airflow, print detection quality"
	@echo "make test      lint and run the whole test suite (what CI runs)"
	@echo "make test-fast lint and run the unit and job-level tests (no Airflow end to end, no whole-pipeline runs)"
	@echo "make airflow   start Airflow (standalone, SQLite) with the project's DAGs"
	@echo "make sql       Spark SQL shell with every table in schema mrs"
	@echo "make tables-doc  docs/tables.md from the column descriptions in schemas/ (a test fails when it is stale)"
	@echo "make spark-server  the warm Spark session (Spark Connect, port SPARK_CONNECT_PORT) the jobs run in"
	@echo "make evaluate  quality on fresh data (EVAL_SEEDS=$(EVAL_SEEDS)) and on the NAB series, one table (also in BENCHMARKS.md)"
	@echo "make evaluate-demo   detection, attribution, clustering and cohort quality of the demo run"
	@echo "make evaluate-seeds  attribution targets on seeds other than the demo's (SEEDS=...); exit 1 below them"
	@echo "make nab       detection over ../shared/data/nab's real series, NAB standard-profile score"
	@echo "make bench     speed and scale at SCALES=$(SCALES) -> BENCHMARKS.md, docs/benchmarks/*.json (long: M ~1 h)"
	@echo "make cluster-library  rebuild the shipped cluster library from a generated history"
	@echo "make tsne      t-SNE map of the active run's reports (table + PNG in .data/artifacts)"
	@echo "DFU clustering (spec note 003; files in DFU_DIR=$(DFU_DIR)):"
	@echo "make cluster-generate  write generated DFUs with known demand patterns (fact_sales_monthly, dim_item, dim_dfu)"
	@echo "make cluster-features  feature matrix per DFU (Spark): Delta dfu_clustering_features + clustering_features.csv"
	@echo "make cluster-train     KMeans over K_RANGE (default: config), K by elbow/silhouette/gap/min size; MLflow run"
	@echo "make cluster-label     business labels per cluster: cluster_labels.csv, cluster_profiles.json"
	@echo "make cluster-update    MERGE labels into dim_dfu.cluster_assignment (DRY_RUN=1: print counts only)"
	@echo "make cluster-all       features, train, label, update"
	@echo "make cluster-evaluate  labels against the generated DFUs' true patterns (adjusted Rand index, majority labels)"
	@echo "make cluster-demo      generate, cluster-all, evaluate"
	@echo "make cluster-api       serve GET /domains/dfu/clusters on 127.0.0.1:8090"
	@echo "make mlflow-ui         the MLflow UI over the dfu_clustering experiment on 127.0.0.1:5000"

# Setup echoes no recipe lines (its commands print their own errors): `make demo`'s output is the demo's story.
$(INSTALLED): requirements.lock pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	@$(PY) -m pip install -q "uv==$(UV_VERSION)"
	@$(BIN)/uv pip install -q --python $(PY) -r requirements.lock
	@$(BIN)/uv pip install -q --python $(PY) --no-deps -e .
	@touch $@

$(JARS): $(INSTALLED) jobs/runtime/fetch_jars.py
	@$(PY) -m jobs.runtime.fetch_jars --dest $(ROOT)/.cache/jars --conf-dir $(SPARK_CONF_DIR)

setup: $(INSTALLED) $(JARS)
jars: $(JARS)

# The story on stdout (under 60 lines), Airflow's and Spark's output in .data/demo/demo.log; DEMO_VERBOSE=1 streams it.
demo: setup
	@$(PY) -m jobs.quality.demo

test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

# The edit loop: unit and job-level tests, without the Airflow end-to-end runs and whole-pipeline runs.
test-fast: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -m "not e2e and not slow"

lint: $(INSTALLED)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: $(INSTALLED)
	$(BIN)/ruff check --fix . && $(BIN)/ruff format .

airflow: setup
	$(BIN)/airflow db migrate > /dev/null
	$(BIN)/airflow pools set $(POOL) 1 "one writer of the Delta lakehouse at a time, across DAGs" > /dev/null
	@echo "Airflow UI: http://localhost:8080 — user 'admin', password printed below (also in $(AIRFLOW_HOME)/simple_auth_manager_passwords.json.generated)"
	@echo "Alert emails land in $(ROOT)/.data/mailbox (a local SMTP server on 127.0.0.1:8025)"
	@echo "Spark jobs run in the warm Spark session at sc://127.0.0.1:$(SPARK_CONNECT_PORT) (Spark UI http://localhost:4040)"
	$(PY) -m jobs.runtime.mailbox --port 8025 --dir $(ROOT)/.data/mailbox & m=$$!; \
	  $(PY) -m jobs.runtime.spark_server --port $(SPARK_CONNECT_PORT) & s=$$!; \
	  trap "kill $$m $$s" EXIT; $(BIN)/airflow standalone

spark-server: setup
	$(PY) -m jobs.runtime.spark_server --port $(SPARK_CONNECT_PORT)

# Comments first: a table written before its column descriptions (or since one changed) gets them before registering.
sql: setup
	$(PY) -m jobs.runtime.register_catalog --comments
	$(PY) -m jobs.runtime.register_catalog --sql > $(ROOT)/.cache/register_catalog.sql
	cd $(ROOT)/.data && $(BIN)/spark-sql --conf spark.sql.catalogImplementation=hive \
	  --conf spark.sql.warehouse.dir=$(ROOT)/.data/metastore/warehouse \
	  --conf "spark.hadoop.javax.jdo.option.ConnectionURL=jdbc:derby:;databaseName=$(ROOT)/.data/metastore/metastore_db;create=true" \
	  --conf spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension \
	  --conf spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog \
	  --conf spark.sql.session.timeZone=UTC \
	  -i $(ROOT)/.cache/register_catalog.sql

tables-doc: $(INSTALLED)
	$(PY) -m jobs.runtime.tables_doc

EVAL_SEEDS ?= 202 303 404
evaluate: setup
	$(PY) -m jobs.quality.evaluate --seeds $(EVAL_SEEDS)
	$(PY) -m jobs.quality.report

evaluate-demo: setup
	$(PY) -m jobs.quality.evaluate_detection
	$(PY) -m jobs.quality.evaluate_attribution
	$(PY) -m jobs.quality.evaluate_cohorts

nab: setup
	$(PY) -m jobs.quality.evaluate_nab

SCALES ?= S M
bench: setup
	$(PY) -m jobs.quality.bench --scale $(SCALES)
	$(PY) -m jobs.quality.report

SEEDS ?= 202 303
evaluate-seeds: setup
	$(PY) -m jobs.quality.evaluate_attribution --seeds $(SEEDS) --check

# The library a fresh install ships: learned from a generated history (seed 101, not the demo's 7).
cluster-library: setup
	$(PY) -m jobs.library.build_cluster_library --mode generate --seed 101 --export conf/cluster_library.json

tsne: setup
	$(PY) -m jobs.library.embed_reports

# DFU clustering (spec note 003): the note's script steps, one target each.
DFU_CONFIG ?= $(ROOT)/conf/clustering_config.yaml
DFU_DIR    ?= $(ROOT)/.data/dfu/clustering
K_RANGE    ?=
DRY_RUN    ?=
DFU        := $(PY) -m jobs.dfu
cluster-generate: setup
	$(DFU).generate --config $(DFU_CONFIG)
cluster-features: setup
	$(DFU).features --config $(DFU_CONFIG) --output $(DFU_DIR)/clustering_features.csv
cluster-train: setup
	$(DFU).train --config $(DFU_CONFIG) --input $(DFU_DIR)/clustering_features.csv --output-dir $(DFU_DIR) \
	  $(if $(K_RANGE),--k-range $(K_RANGE))
cluster-label: setup
	$(DFU).label --config $(DFU_CONFIG) --centroids $(DFU_DIR)/cluster_centroids.csv \
	  --assignments $(DFU_DIR)/cluster_assignments.csv --metadata $(DFU_DIR)/cluster_metadata.json --output $(DFU_DIR)
cluster-update: setup
	$(DFU).update --config $(DFU_CONFIG) --input $(DFU_DIR) $(if $(DRY_RUN),--dry-run)
cluster-all: cluster-features cluster-train cluster-label cluster-update
cluster-evaluate: setup
	$(DFU).evaluate --config $(DFU_CONFIG) --input $(DFU_DIR) --check
cluster-demo: cluster-generate cluster-all cluster-evaluate
cluster-api: setup
	$(DFU).api --config $(DFU_CONFIG)
mlflow-ui: setup
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(ROOT)/.data/mlflow/mlflow.db --host 127.0.0.1 --port 5000

lock: $(INSTALLED)
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 -q -o requirements.lock

clean:
	rm -rf .data .cache/spark-conf .pytest_cache
