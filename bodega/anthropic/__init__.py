"""Anthropic's Messages API (``/v1/messages``) on Bodega's chat service.

``requests`` types the request bodies, ``convert`` turns one into an OpenAI
``ChatCompletionRequest`` (so generation takes the one chat path),
``responses`` types the answers and stream events, ``service`` runs a request
and ``errors`` renders errors in Anthropic's shape.
"""
