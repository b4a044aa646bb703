"""Model handler subprocesses: one engine per process, driven over ipc."""
