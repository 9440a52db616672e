"""Plumbing that runs the jobs: the warm Spark server and job runner, the Airflow operator, the range runner,
the mailbox, the jar fetcher, the catalog and table maintenance."""
