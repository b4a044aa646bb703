"""OpenAI wire types, SSE encoding and error bodies."""
