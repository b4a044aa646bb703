"""Metrics, request ids and access logs."""
