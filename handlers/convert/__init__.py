"""Converters: GGUF and CTranslate2 files to MLX folders."""
