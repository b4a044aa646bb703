"""The protocol the server and its handlers share: messages, framing, shared memory."""
