# The same environment as `make setup`, in an image: Python 3.11, Java 17, the pinned packages, Delta's jars.
FROM python:3.11-slim-bookworm

RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless make procps \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/mrs
COPY pyproject.toml requirements.lock Makefile ./
COPY jobs/ jobs/
COPY schemas/ schemas/
RUN make setup PYTHON=python3.11 \
 # PostgreSQL driver for an Airflow metadata database outside SQLite (docker-compose.yaml uses it).
 && .venv/bin/uv pip install --python .venv/bin/python -q "psycopg2-binary>=2.9"
COPY conf/ conf/
COPY dags/ dags/

ENV PATH=/opt/mrs/.venv/bin:$PATH \
    TZ=UTC \
    SPARK_CONF_DIR=/opt/mrs/.cache/spark-conf \
    PYSPARK_PYTHON=/opt/mrs/.venv/bin/python \
    PYSPARK_DRIVER_PYTHON=/opt/mrs/.venv/bin/python \
    MRS_CONFIG=/opt/mrs/conf/mrs.yaml \
    AIRFLOW_HOME=/opt/mrs/.data/airflow \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/mrs/dags \
    AIRFLOW__CORE__LOAD_EXAMPLES=False

EXPOSE 8080
CMD ["make", "airflow"]
