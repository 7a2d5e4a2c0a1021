"""Tests for the lm-eval boundary."""
