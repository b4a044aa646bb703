"""Embeddings and rerank on sentence-transformers."""
