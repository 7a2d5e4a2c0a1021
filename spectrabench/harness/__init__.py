"""The lm-eval boundary: worker subprocess, result parsing, smoke models, code execution."""
