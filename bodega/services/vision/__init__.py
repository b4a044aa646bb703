"""Images in requests: data URLs, the guarded fetcher for http(s) URLs."""
