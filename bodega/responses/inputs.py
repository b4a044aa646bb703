"""A Responses request and its conversation -> the chat request the chat service runs.

Everything is checked here, so that a 400 names the Responses field
(``input[2].content[0].image_url``, ``text.format.schema``, ``tools[1].type``)
rather than the chat field it becomes.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from dataclasses import dataclass, field
from typing import Any

import msgspec

from bodega.errors import InvalidRequest, from_validation_error
from bodega.openai.requests import (
    ChatCompletionRequest,
    ChatMessageIn,
    ContentPart,
    FunctionCallIn,
    FunctionIn,
    ImageUrl,
    JsonSchemaIn,
    NamedFunction,
    NamedToolChoice,
    ResponseFormat,
    ToolCallIn,
    ToolIn,
)
from bodega.tools.registry import Toolbox

from .types import (
    CreateResponse,
    FunctionCallItem,
    FunctionCallOutputItem,
    InputImage,
    InputText,
    Item,
    MessageItem,
    OutputText,
    ReasoningItem,
    Refusal,
    TextFormat,
)

LOGPROBS = "message.output_text.logprobs"
ENCRYPTED_REASONING = "reasoning.encrypted_content"
# ``include`` values that add data about items Bodega never produces.
NO_EFFECT_INCLUDES = frozenset(
    {
        "message.input_image.image_url",
        "web_search_call.action.sources",
        "web_search_call.results",
        "file_search_call.results",
        "code_interpreter_call.outputs",
        "computer_call_output.output.image_url",
    }
)
BUILTIN_ALIASES = {"web_search_preview": "web_search"}
_ID_PREFIX = {
    "message": "msg",
    "function_call": "fc",
    "function_call_output": "fco",
    "reasoning": "rs",
}
_OPAQUE = b"bodega-reasoning:"


def new_id(prefix: str) -> str:
    """A fresh item or response id such as ``msg_…``."""
    return f"{prefix}_{secrets.token_hex(12)}"


def item_id(item: Item) -> str:
    """A fresh id for ``item``'s kind."""
    return new_id(_ID_PREFIX[type(item).__struct_config__.tag])  # type: ignore[index]


def parse_items(raw: str | list[dict[str, Any]]) -> list[Item]:
    """``input`` as items, each with an id (given or fresh)."""
    if isinstance(raw, str):
        items: list[Item] = [MessageItem(role="user", content=raw)]
    else:
        typed = [item if "type" in item else {**item, "type": "message"} for item in raw]
        try:
            items = msgspec.convert(typed, list[Item])
        except msgspec.ValidationError as exc:
            raise from_validation_error(
                msgspec.ValidationError(str(exc).replace("`$", "`$.input"))
            ) from None
    for item in items:
        if item.id is None:
            item.id = item_id(item)
        if isinstance(item, MessageItem) and isinstance(item.content, str):
            # Stored and listed as OpenAI lists them: content as parts.
            text = item.content
            item.content = [OutputText(text=text) if item.role == "assistant" else InputText(text)]
    return items


def opaque_reasoning(text: str) -> str:
    """The ``encrypted_content`` of a reasoning item: its text, opaque but not secret."""
    return base64.urlsafe_b64encode(_OPAQUE + text.encode()).decode()


def _reasoning_text(index: int, item: ReasoningItem) -> str:
    if item.content:
        return "".join(part.text for part in item.content)
    if item.encrypted_content:
        try:
            raw = base64.urlsafe_b64decode(item.encrypted_content)
        except (binascii.Error, ValueError):
            raw = b""
        if not raw.startswith(_OPAQUE):
            raise InvalidRequest(
                "encrypted_content was not made by this server",
                param=f"input[{index}].encrypted_content",
            )
        return raw[len(_OPAQUE) :].decode()
    return "".join(part.text for part in item.summary)


@dataclass
class Tools:
    """The request's tools: function tools the client runs, built-ins the server runs."""

    chat: list[ToolIn] = field(default_factory=list)
    builtins: set[str] = field(default_factory=set)


def parse_tools(raw: list[dict[str, Any]], toolbox: Toolbox) -> Tools:
    """``tools``: ``function`` tools, and Bodega's built-in tools by their name
    as ``type`` (``{"type": "calculator"}``, ``{"type": "web_search"}``)."""
    tools = Tools()
    for i, spec in enumerate(raw):
        kind = spec.get("type")
        if kind == "function":
            fields = {k: v for k, v in spec.items() if k != "type"}
            try:
                function = msgspec.convert(fields, FunctionIn)
            except msgspec.ValidationError as exc:
                raise from_validation_error(
                    msgspec.ValidationError(str(exc).replace("`$", f"`$.tools[{i}]"))
                ) from None
            tools.chat.append(ToolIn(function=function))
            continue
        name = BUILTIN_ALIASES.get(str(kind), str(kind))
        if name not in toolbox.tools:
            known = ", ".join(["function", *sorted(toolbox.tools)])
            raise InvalidRequest(
                f"tools[{i}].type {kind!r} is not supported; supported types: {known}",
                param=f"tools[{i}].type",
            )
        definition = toolbox.tools[name].definition()["function"]
        tools.chat.append(ToolIn(function=msgspec.convert(definition, FunctionIn)))
        tools.builtins.add(name)
    return tools


def _tool_choice(choice: str | dict[str, Any] | None, tools: Tools) -> Any:
    if choice is None or isinstance(choice, str):
        if choice not in (None, "auto", "none", "required"):
            raise InvalidRequest(
                f"tool_choice {choice!r} is not one of auto, none, required",
                param="tool_choice",
            )
        return choice
    kind = choice.get("type")
    name = choice.get("name") if kind == "function" else BUILTIN_ALIASES.get(str(kind), kind)
    if not isinstance(name, str) or name not in {t.function.name for t in tools.chat}:
        raise InvalidRequest(
            f"tool_choice names {name!r}, which is not one of the tools", param="tool_choice"
        )
    return NamedToolChoice(function=NamedFunction(name=name))


def _response_format(fmt: TextFormat | None) -> ResponseFormat | None:
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return ResponseFormat(type="json_object")
    if fmt.schema is None:
        raise InvalidRequest(
            "text.format of type json_schema needs a schema", param="text.format.schema"
        )
    if fmt.name is None:
        raise InvalidRequest(
            "text.format of type json_schema needs a name", param="text.format.name"
        )
    spec = JsonSchemaIn(
        name=fmt.name, schema=fmt.schema, description=fmt.description, strict=fmt.strict
    )
    return ResponseFormat(type="json_schema", json_schema=spec)


def _parts(index: int, content: list[Any]) -> list[ContentPart]:
    parts = []
    for j, part in enumerate(content):
        if isinstance(part, InputImage):
            if part.image_url is None:
                raise InvalidRequest(
                    "images are given by image_url (a URL or a data: URL); file_id needs "
                    "the Files API, which Bodega does not serve",
                    param=f"input[{index}].content[{j}].image_url",
                )
            url = ImageUrl(url=part.image_url, detail=part.detail)
            parts.append(ContentPart(type="image_url", image_url=url))
        else:
            text = part.refusal if isinstance(part, Refusal) else part.text
            parts.append(ContentPart(type="text", text=text))
    return parts


def chat_messages(instructions: str | None, items: list[Item]) -> list[ChatMessageIn]:
    """The chat messages of a conversation: function calls join the assistant
    message before them, reasoning goes to the assistant turn after it."""
    messages: list[ChatMessageIn] = []
    if instructions:
        messages.append(ChatMessageIn(role="system", content=instructions))
    reasoning: str | None = None

    def assistant() -> ChatMessageIn:
        nonlocal reasoning
        last = messages[-1] if messages else None
        if last is None or last.role != "assistant":
            last = ChatMessageIn(role="assistant", content=None)
            messages.append(last)
        if reasoning is not None:
            last.reasoning_content, reasoning = reasoning, None
        return last

    for i, item in enumerate(items):
        if isinstance(item, ReasoningItem):
            reasoning = (reasoning or "") + _reasoning_text(i, item)
        elif isinstance(item, FunctionCallItem):
            message = assistant()
            call = ToolCallIn(
                id=item.call_id, function=FunctionCallIn(name=item.name, arguments=item.arguments)
            )
            message.tool_calls = [*(message.tool_calls or []), call]
        elif isinstance(item, FunctionCallOutputItem):
            output = item.output
            text = output if isinstance(output, str) else "".join(p.text or "" for p in output)
            messages.append(ChatMessageIn(role="tool", content=text, tool_call_id=item.call_id))
        elif item.role == "assistant":
            message = ChatMessageIn(role="assistant")
            if reasoning is not None:
                message.reasoning_content, reasoning = reasoning, None
            message.content = _text_of(i, item)
            messages.append(message)
        else:
            content = item.content
            if isinstance(content, list):
                parts = _parts(i, content)
                if any(p.type == "image_url" for p in parts):
                    messages.append(ChatMessageIn(role=item.role, content=parts))
                    continue
                content = "".join(p.text or "" for p in parts)
            messages.append(ChatMessageIn(role=item.role, content=content))
    return messages


def _text_of(index: int, item: MessageItem) -> str:
    if isinstance(item.content, str):
        return item.content
    if any(isinstance(p, InputImage) for p in item.content):
        raise InvalidRequest("assistant messages carry text only", param=f"input[{index}].content")
    return "".join(p.refusal if isinstance(p, Refusal) else p.text for p in item.content)  # type: ignore[union-attr]


def check_include(include: list[str]) -> None:
    """Every ``include`` value is one Bodega honours or one that names items it never makes."""
    for i, value in enumerate(include):
        if value not in (LOGPROBS, ENCRYPTED_REASONING) and value not in NO_EFFECT_INCLUDES:
            raise InvalidRequest(f"include value {value!r} is not supported", param=f"include[{i}]")


def chat_body(request: CreateResponse, items: list[Item], tools: Tools) -> ChatCompletionRequest:
    """The chat request that answers ``request`` over the conversation ``items``."""
    if not items:
        raise InvalidRequest("input is empty and there is no previous response", param="input")
    check_include(request.include)
    text = request.text
    if text is not None and text.verbosity not in (None, "medium"):
        raise InvalidRequest(
            "text.verbosity other than medium cannot be honoured by these models",
            param="text.verbosity",
        )
    messages = chat_messages(request.instructions, items)
    logprobs = LOGPROBS in request.include or bool(request.top_logprobs)
    effort = request.reasoning.effort if request.reasoning else None
    return ChatCompletionRequest(
        model=request.model,
        messages=messages,
        max_completion_tokens=request.max_output_tokens,
        temperature=request.temperature,
        top_p=request.top_p,
        seed=request.seed,
        tools=tools.chat or None,
        tool_choice=_tool_choice(request.tool_choice, tools),
        parallel_tool_calls=request.parallel_tool_calls,
        response_format=_response_format(text.format if text else None),
        logprobs=logprobs or None,
        top_logprobs=request.top_logprobs if logprobs else None,
        reasoning_effort=effort,
        user=request.user,
        service_tier=request.service_tier,
    )
