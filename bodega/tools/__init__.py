"""Built-in tools: a safe calculator and web, news and academic (arXiv) search.

Served by ``bodega/api/tools.py`` in the HTTP process; nothing here imports a
model engine.
"""
