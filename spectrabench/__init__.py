"""SpectraBench: schedule lm-evaluation-harness runs for many models x many tasks, and learn from every run."""

__version__ = "0.1.0"
