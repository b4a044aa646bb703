"""The inference-service model catalog and presets (issue 19): ``config``
parses ``models.yaml`` / ``presets.yaml``, ``models`` turns entries into
ModelSpecs and resolves role names, ``routes`` serves load/unload by id."""
