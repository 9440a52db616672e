"""The analyst loop between ticks: edits, the refresh they trigger, and the rereview of ended reports."""
