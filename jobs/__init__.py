"""MRS jobs, in wings by role; a wing imports only the wings below it (pyproject's [tool.importlinter]):

- ``library``: the cluster library and the t-SNE map (offline jobs);
- ``quality``: the data generator, evaluation, NAB, benchmarks, the demo;
- ``review``: analyst edits, the refresh they trigger, rereview;
- ``runtime``: the Spark server and job runner, the Airflow operator, the range runner, maintenance, the catalog;
- ``stages``: one module per ``mrs_pipeline`` task, each a ``main()`` around pure transforms;
- ``dfu``: DFU clustering for demand forecasting (spec note 003);
- ``lib``: configuration, the Spark session, the table registry, ticks, labels.
"""
