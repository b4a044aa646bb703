"""An Anthropic Messages request -> the OpenAI ``ChatCompletionRequest`` that
the chat service turns into a ``Generate`` (one generation path for both APIs).

- ``system`` becomes a system message first; text blocks text parts; image
  blocks ``image_url`` parts (a ``data:`` URL of a base64 source, or its URL).
- An assistant's ``tool_use`` blocks become its ``tool_calls`` (arguments: the
  JSON text of ``input``), its ``thinking`` blocks its ``reasoning_content``.
- A user's ``tool_result`` blocks become ``tool`` messages (an ``is_error``
  result is prefixed ``Error:``); its other blocks a user message after them.
- ``thinking`` and ``output_config.effort`` become ``reasoning_effort``, which
  the chat template reads (``enable_thinking`` off for ``"none"``).

``ParamMap`` translates the OpenAI field an error names back into the
Anthropic field of this request (``messages[1].content[0].source``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Literal

from bodega.errors import BodegaError, InvalidRequest
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
    ReasoningEffort,
    ResponseFormat,
    ToolCallIn,
    ToolIn,
)
from bodega.services.chat import MAX_TOOLS
from bodega.services.sampling import MAX_STOP_SEQUENCES

from .requests import (
    Base64Source,
    CountTokensRequest,
    ImageBlock,
    MessageIn,
    MessagesRequest,
    RedactedThinkingBlock,
    TextBlock,
    ThinkingAdaptive,
    ThinkingBlock,
    ThinkingDisabled,
    ThinkingEnabled,
    ToolChoiceAny,
    ToolChoiceNone,
    ToolChoiceTool,
    ToolResultBlock,
    ToolUseBlock,
)

# OpenAI field -> Anthropic field, for errors that name a top-level field.
_TOP_LEVEL = {
    "stop": "stop_sequences",
    "tool_choice.function.name": "tool_choice.name",
    "tool_choice.function": "tool_choice",
    "parallel_tool_calls": "tool_choice.disable_parallel_tool_use",
    "reasoning_effort": "thinking",
    "response_format.json_schema.schema": "output_config.format.schema",
    "response_format": "output_config.format",
    "max_completion_tokens": "max_tokens",
}
# The rest of a content part's field path -> the image block's.
_PART_FIELDS = {".image_url.url": ".source", ".image_url": ".source"}
_MESSAGE_PARAM = re.compile(r"^messages\[(\d+)\](?:\.content\[(\d+)\])?(.*)$")


@dataclass
class ParamMap:
    """Where each OpenAI message and content part came from in the Anthropic request."""

    messages: dict[int, str] = field(default_factory=dict)
    parts: dict[tuple[int, int], str] = field(default_factory=dict)

    def anthropic(self, param: str | None) -> str | None:
        """The Anthropic field of an OpenAI ``param`` of the converted request."""
        if param is None:
            return None
        match = _MESSAGE_PARAM.match(param)
        if match is None:
            return _TOP_LEVEL.get(param, param)
        i, j, rest = int(match[1]), match[2], match[3]
        if j is not None and (i, int(j)) in self.parts:
            return self.parts[(i, int(j))] + _PART_FIELDS.get(rest, rest)
        if rest == ".tool_call_id":
            rest = ".tool_use_id"
        return self.messages.get(i, "messages") + (rest if j is None else "")

    def translate(self, exc: BodegaError) -> BodegaError:
        """``exc`` naming the Anthropic field (changed in place)."""
        exc.param = self.anthropic(exc.param)
        return exc


@dataclass
class _Builder:
    """The OpenAI messages being built, with where each came from."""

    messages: list[ChatMessageIn] = field(default_factory=list)
    where: ParamMap = field(default_factory=ParamMap)

    def add(self, message: ChatMessageIn, origin: str) -> int:
        self.where.messages[len(self.messages)] = origin
        self.messages.append(message)
        return len(self.messages) - 1


def chat_request(
    body: CountTokensRequest, *, has_reasoning_parser: bool
) -> tuple[ChatCompletionRequest, ParamMap]:
    """The chat request of an Anthropic request (``MessagesRequest`` or a
    count), checked; ``has_reasoning_parser``: the model splits reasoning off."""
    _refuse_unsupported(body)
    built = _Builder()
    if body.system:
        system = body.system
        text = system if isinstance(system, str) else "\n".join(b.text for b in system)
        built.add(ChatMessageIn(role="system", content=text), "system")
    for i, message in enumerate(body.messages):
        _add_message(built, i, message)
    if body.messages[-1].role == "assistant":
        raise InvalidRequest(
            "The last message is an assistant turn (a prefill): Bodega starts a new "
            "assistant turn after the last message and cannot continue one; end with a "
            "user turn.",
            param=f"messages[{len(body.messages) - 1}]",
        )
    full = body if isinstance(body, MessagesRequest) else None
    tools = _tools(body)
    choice, parallel = _tool_choice(body, tools)
    request = ChatCompletionRequest(
        model=body.model,
        messages=built.messages,
        max_tokens=full.max_tokens if full else 1,
        temperature=full.temperature if full else 0.0,
        top_p=full.top_p if full else None,
        top_k=full.top_k if full else None,
        stop=_stop_sequences(full.stop_sequences) if full else None,
        tools=tools or None,
        tool_choice=choice,
        parallel_tool_calls=parallel,
        response_format=_response_format(body),
        reasoning_effort=_reasoning_effort(body, full, has_reasoning_parser),
        service_tier=full.service_tier if full else None,
    )
    return request, built.where


def _refuse_unsupported(body: CountTokensRequest) -> None:
    for name in ("mcp_servers", "container", "context_management"):
        if getattr(body, name) is not None:
            raise InvalidRequest(
                f"{name} is not supported by this server (no remote MCP servers, "
                "containers or server-side context editing); leave it out.",
                param=name,
            )


def _add_message(built: _Builder, i: int, message: MessageIn) -> None:
    origin = f"messages[{i}]"
    if isinstance(message.content, str):
        built.add(ChatMessageIn(role=message.role, content=message.content), origin)
        return
    if message.role == "assistant":
        _add_assistant(built, i, message)
        return
    # A user turn: its tool results first (each a tool message), then the rest.
    parts: list[tuple[int, ContentPart]] = []
    for j, block in enumerate(message.content):
        param = f"{origin}.content[{j}]"
        if isinstance(block, ToolResultBlock):
            if parts:
                _add_user(built, origin, parts)
                parts = []
            text = _tool_result_text(block, param)
            tool = ChatMessageIn(role="tool", content=text, tool_call_id=block.tool_use_id)
            built.add(tool, param)
        elif isinstance(block, TextBlock):
            parts.append((j, ContentPart(type="text", text=block.text)))
        elif isinstance(block, ImageBlock):
            parts.append((j, ContentPart(type="image_url", image_url=_image_url(block))))
        else:
            raise InvalidRequest(
                f"A user turn takes text, image and tool_result blocks, not {block_type(block)}.",
                param=f"{param}.type",
            )
    if parts or not message.content:
        _add_user(built, origin, parts)


def _add_user(built: _Builder, origin: str, parts: list[tuple[int, ContentPart]]) -> None:
    index = built.add(ChatMessageIn(role="user", content=[p for _, p in parts]), origin)
    for k, (j, _) in enumerate(parts):
        built.where.parts[(index, k)] = f"{origin}.content[{j}]"


def _add_assistant(built: _Builder, i: int, message: MessageIn) -> None:
    text: list[str] = []
    reasoning: list[str] = []
    calls: list[ToolCallIn] = []
    for j, block in enumerate(message.content):
        if isinstance(block, TextBlock):
            text.append(block.text)
        elif isinstance(block, ThinkingBlock):
            reasoning.append(block.thinking)
        elif isinstance(block, ToolUseBlock):
            arguments = json.dumps(block.input, ensure_ascii=False)
            calls.append(ToolCallIn(id=block.id, function=FunctionCallIn(block.name, arguments)))
        else:
            raise InvalidRequest(
                f"An assistant turn takes text, thinking and tool_use blocks, not "
                f"{block_type(block)}.",
                param=f"messages[{i}].content[{j}].type",
            )
    message_in = ChatMessageIn(
        role="assistant",
        content="".join(text),
        tool_calls=calls or None,
        reasoning_content="".join(reasoning) or None,
    )
    built.add(message_in, f"messages[{i}]")


def block_type(block: object) -> str:
    """A block's ``type`` as a client wrote it, quoted."""
    if isinstance(block, RedactedThinkingBlock):
        return "'redacted_thinking' (encrypted reasoning no local model can read)"
    return repr(type(block).__struct_config__.tag)  # type: ignore[attr-defined]


def _tool_result_text(block: ToolResultBlock, param: str) -> str:
    content = block.content
    if isinstance(content, list):
        for k, item in enumerate(content):
            if not isinstance(item, TextBlock):
                raise InvalidRequest(
                    "A tool_result takes text here; images in tool results are not supported.",
                    param=f"{param}.content[{k}]",
                )
        content = "\n".join(item.text for item in content if isinstance(item, TextBlock))
    return f"Error: {content}" if block.is_error else content


def _image_url(block: ImageBlock) -> ImageUrl:
    source = block.source
    if isinstance(source, Base64Source):
        return ImageUrl(url=f"data:{source.media_type};base64,{source.data}")
    return ImageUrl(url=source.url)


def _tools(body: CountTokensRequest) -> list[ToolIn]:
    tools = body.tools or []
    if len(tools) > MAX_TOOLS:
        raise InvalidRequest(f"tools takes at most {MAX_TOOLS} tools", param="tools")
    names = [t.name for t in tools]
    for k, name in enumerate(names):
        if name in names[:k]:
            raise InvalidRequest(f"Two tools are named {name!r}.", param=f"tools[{k}].name")
    return [
        ToolIn(
            function=FunctionIn(
                name=t.name,
                description=t.description,
                parameters=t.input_schema,
                strict=t.strict,
            )
        )
        for t in tools
    ]


def _tool_choice(
    body: CountTokensRequest, tools: list[ToolIn]
) -> tuple[Literal["auto", "none", "required"] | NamedToolChoice | None, bool | None]:
    """OpenAI's ``tool_choice`` and ``parallel_tool_calls``."""
    choice = body.tool_choice
    if choice is None:
        return None, None
    if isinstance(choice, ToolChoiceNone):
        return "none", None
    if not tools:
        raise InvalidRequest("tool_choice needs tools.", param="tool_choice")
    parallel = not choice.disable_parallel_tool_use
    if isinstance(choice, ToolChoiceTool):
        if choice.name not in {t.function.name for t in tools}:
            raise InvalidRequest(
                f"tool_choice names {choice.name!r}, which is not one of the tools.",
                param="tool_choice.name",
            )
        return NamedToolChoice(function=NamedFunction(name=choice.name)), parallel
    return ("required" if isinstance(choice, ToolChoiceAny) else "auto"), parallel


def _stop_sequences(sequences: list[str] | None) -> list[str] | None:
    if not sequences:
        return None
    if len(sequences) > MAX_STOP_SEQUENCES:
        raise InvalidRequest(
            f"stop_sequences takes at most {MAX_STOP_SEQUENCES} sequences",
            param="stop_sequences",
        )
    for k, sequence in enumerate(sequences):
        if not sequence:
            raise InvalidRequest("A stop sequence is empty.", param=f"stop_sequences[{k}]")
    return sequences


def _response_format(body: CountTokensRequest) -> ResponseFormat | None:
    fmt = body.output_config.format if body.output_config else None
    if fmt is None:
        return None
    return ResponseFormat(
        type="json_schema", json_schema=JsonSchemaIn(name="output", schema=fmt.schema)
    )


# Thinking budgets -> the effort a chat template reads (gpt-oss, harmony).
_EFFORT_BY_BUDGET: tuple[tuple[int, ReasoningEffort], ...] = ((4096, "low"), (16384, "medium"))


def _reasoning_effort(
    body: CountTokensRequest, full: MessagesRequest | None, has_reasoning_parser: bool
) -> ReasoningEffort | None:
    effort = body.output_config.effort if body.output_config else None
    thinking = body.thinking
    if thinking is None:
        return effort
    if isinstance(thinking, ThinkingDisabled):
        return "none"
    if not has_reasoning_parser:
        raise InvalidRequest(
            "thinking needs a model that keeps its reasoning apart from its answer: "
            "load it with a reasoning_parser.",
            param="thinking",
        )
    if isinstance(thinking, ThinkingAdaptive):
        return effort or "medium"
    if full is not None and thinking.budget_tokens >= full.max_tokens:
        raise InvalidRequest(
            f"thinking.budget_tokens ({thinking.budget_tokens}) must be less than "
            f"max_tokens ({full.max_tokens}): the reasoning counts toward max_tokens.",
            param="thinking.budget_tokens",
        )
    if effort is not None:
        return effort
    budget = thinking.budget_tokens
    return next((name for limit, name in _EFFORT_BY_BUDGET if budget < limit), "high")


def thinking_shown(body: CountTokensRequest) -> bool:
    """Whether thinking blocks carry the reasoning text (``display: "omitted"`` empties them)."""
    thinking = body.thinking
    return not (
        isinstance(thinking, ThinkingEnabled | ThinkingAdaptive) and thinking.display == "omitted"
    )
