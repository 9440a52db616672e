"""DFU clustering for demand forecasting (spec note 003): features, KMeans with K selection, labels, dim_dfu update."""
