"""Reports built from the store: leaderboards and run summaries."""
