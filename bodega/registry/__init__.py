"""Handler processes, admission and the model registry."""
