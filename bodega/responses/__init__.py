"""OpenAI\x27s Responses API: request conversion, output assembly, events and the store."""
