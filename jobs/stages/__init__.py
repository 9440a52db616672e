"""The pipeline's stages: one module per ``mrs_pipeline`` task (the spec notes' script names), each a ``main()``
around pure transforms. Stages import ``jobs.lib`` and each other, nothing above (tests/test_layers.py)."""
