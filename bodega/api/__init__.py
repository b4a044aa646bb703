"""HTTP routes: decode, call a service, encode JSON or SSE."""
