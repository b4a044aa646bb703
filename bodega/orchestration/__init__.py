"""Orchestration modes on chat completions (``orchestration_mode``): one
request answered by several model runs — critique, debate, ensemble,
pipeline — each run a normal generation through ``Model.stream``."""
