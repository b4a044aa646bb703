"""Chat completions: OpenAI chat requests -> handler ``Generate`` fields."""

from __future__ import annotations

from bodega.errors import InvalidRequest
from bodega.openai.requests import ChatCompletionRequest, unsupported_fields
from ipc.messages import ChatMessage

# Fields whose capability has not landed: refused, never silently ignored.
NOT_YET = (
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "logprobs",
    "top_logprobs",
    "logit_bias",
    "chat_template_kwargs",
)


def chat_messages(request: ChatCompletionRequest) -> list[ChatMessage]:
    """Check the request's messages and flatten their text content."""
    refused = unsupported_fields(request, NOT_YET)
    if refused:
        raise InvalidRequest(
            f"{', '.join(refused)} {'is' if len(refused) == 1 else 'are'} not supported yet",
            param=refused[0],
        )
    messages = []
    for i, message in enumerate(request.messages):
        if message.tool_calls is not None or message.role == "tool":
            raise InvalidRequest("tool messages are not supported yet", param=f"messages[{i}].role")
        content = message.content
        if isinstance(content, list):
            texts = []
            for j, part in enumerate(content):
                if part.type != "text" or part.text is None:
                    raise InvalidRequest(
                        f"content part of type {part.type!r} needs a multimodal model",
                        param=f"messages[{i}].content[{j}].type",
                    )
                texts.append(part.text)
            content = "".join(texts)
        role = "system" if message.role == "developer" else message.role
        messages.append(ChatMessage(role=role, content=content, name=message.name))
    return messages


def max_tokens_of(request: ChatCompletionRequest) -> int | None:
    """``max_completion_tokens`` wins over the older ``max_tokens``."""
    return request.max_completion_tokens or request.max_tokens
