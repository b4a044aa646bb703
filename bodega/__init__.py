"""Bodega: a local inference engine that speaks the OpenAI API."""

__version__ = "0.1.0"
