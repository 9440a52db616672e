"""MRS Spark jobs: one module per pipeline stage, each with ``main()`` around pure transforms."""
