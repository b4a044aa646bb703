"""Request logic with no HTTP objects."""
