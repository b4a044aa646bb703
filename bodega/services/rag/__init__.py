"""Document Q&A (RAG): PDF text -> chunks -> embeddings -> FAISS on disk ->
retrieval -> a grounded prompt for the chat model."""
