"""DuckDB store: the history every report and predictor reads. Only the driver process writes it."""
