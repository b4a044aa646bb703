"""The Hugging Face cache and hub: list, download, delete, resolve repo ids."""
