"""The cluster library clustering matches against, and the t-SNE map of reports around it (offline jobs)."""
