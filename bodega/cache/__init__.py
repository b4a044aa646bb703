"""The response cache of chat and legacy completions (the LLM Service's ``cache:``).

Import from the modules (``cache.cache``, ``cache.config``): settings imports
the config alone, and the cache imports the registry, which imports settings.
"""
