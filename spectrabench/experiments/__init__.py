"""Calibration experiments: phase 1 (how many documents a task needs) and phase 2 (when to trust the learned
predictor). Pure: numbers in, numbers out; the store is read in `store.experiment_queries` and figures are drawn
in `experiments.plots`."""
