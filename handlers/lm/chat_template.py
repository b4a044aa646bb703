"""Chat templates: OpenAI messages and tools -> one prompt string.

Both language-model engines render prompts here, so that tools, past tool
calls and ``chat_template_kwargs`` reach every model the same way. A model
whose template renders ``tools`` itself gets them as structured data; for one
that does not (SmolLM2, many small models) the tool-call parser's own
instructions go into the system message and past calls and results are
written in the parser's markup, so the model sees a conversation it can follow.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from handlers.engine_protocol import EngineError
from ipc.messages import ChatMessage, TextPart, ToolSpec

# ``reasoning_effort`` values that switch a template's thinking off.
NO_THINKING_EFFORTS = ("none", "minimal")


class ChatTemplate:
    """A Hugging Face style Jinja chat template, rendered in a sandbox."""

    def __init__(self, source: str, *, bos_token: str = "", eos_token: str = "") -> None:
        from jinja2.exceptions import TemplateError
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        def raise_exception(message: str) -> None:
            raise TemplateError(message)

        def tojson(value: Any, indent: int | None = None, ensure_ascii: bool = False) -> str:
            return json.dumps(value, indent=indent, ensure_ascii=ensure_ascii)

        env = ImmutableSandboxedEnvironment(
            trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
        )
        env.filters["tojson"] = tojson
        env.globals["raise_exception"] = raise_exception
        env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
        self._template = env.from_string(source)
        self._error = TemplateError
        self.source = source
        self.bos_token = bos_token
        self.eos_token = eos_token
        # Templates that mention tools render them (and tool messages) themselves.
        self.renders_tools = "tools" in source

    def render(
        self,
        messages: list[ChatMessage],
        *,
        tools: list[ToolSpec] | None = None,
        tool_prompt: Callable[[list[dict[str, Any]]], str] | None = None,
        format_call: Callable[[str, dict[str, Any]], str] | None = None,
        kwargs: dict[str, Any] | None = None,
        reasoning_effort: str | None = None,
    ) -> str:
        """The prompt for ``messages`` ending with the assistant's turn.

        ``tool_prompt(tools)`` and ``format_call(name, arguments)`` come from
        the tool-call parser and are used only when the template cannot
        render tools itself. ``kwargs`` (``chat_template_kwargs``) win over
        the variables derived from ``reasoning_effort``.
        """
        openai_tools = [tool_definition(t) for t in tools or []]
        if self.renders_tools:
            rendered = [_structured(m) for m in messages]
        else:
            rendered = _as_text(messages, openai_tools, tool_prompt, format_call)
        context: dict[str, Any] = {
            "bos_token": self.bos_token,
            "eos_token": self.eos_token,
            **self.effort_variables(reasoning_effort),
            **(kwargs or {}),
            "messages": rendered,
            "add_generation_prompt": True,
        }
        if openai_tools and self.renders_tools:
            context["tools"] = openai_tools
        try:
            return self._template.render(**context)
        except self._error as exc:
            raise EngineError(f"the chat template failed: {exc}", param="messages") from exc
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise EngineError(f"the chat template failed: {exc}", param="messages") from exc

    def effort_variables(self, reasoning_effort: str | None) -> dict[str, Any]:
        """Template variables for OpenAI's ``reasoning_effort``: the effort
        itself (harmony / gpt-oss templates read it) and, for a template with
        a thinking switch, ``enable_thinking`` off at "none" and "minimal"."""
        if reasoning_effort is None:
            return {}
        variables: dict[str, Any] = {"reasoning_effort": reasoning_effort}
        if "enable_thinking" in self.source:
            variables["enable_thinking"] = reasoning_effort not in NO_THINKING_EFFORTS
        return variables


def tool_definition(tool: ToolSpec) -> dict[str, Any]:
    """The OpenAI ``tools`` entry of ``tool``."""
    function: dict[str, Any] = {"name": tool.name}
    if tool.description:
        function["description"] = tool.description
    function["parameters"] = tool.parameters or {"type": "object", "properties": {}}
    return {"type": "function", "function": function}


def parse_arguments(arguments: str) -> dict[str, Any]:
    """A past call's ``arguments`` text as an object (templates expect one)."""
    try:
        value = json.loads(arguments) if arguments else {}
    except ValueError:
        return {"_raw": arguments}
    return value if isinstance(value, dict) else {"_value": value}


def _content(message: ChatMessage) -> str | list[dict[str, Any]]:
    """The message's text, or, with images, its parts as multimodal templates
    take them: ``{"type": "text", "text": ...}`` and ``{"type": "image"}``."""
    if message.parts is None:
        return message.content or ""
    return [
        {"type": "text", "text": p.text} if isinstance(p, TextPart) else {"type": "image"}
        for p in message.parts
    ]


def _structured(message: ChatMessage) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role, "content": _content(message)}
    if message.name:
        out["name"] = message.name
    if message.tool_calls:
        out["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": parse_arguments(call.arguments)},
            }
            for call in message.tool_calls
        ]
    if message.tool_call_id:
        out["tool_call_id"] = message.tool_call_id
    if message.reasoning_content:
        out["reasoning_content"] = message.reasoning_content
    return out


def _as_text(
    messages: list[ChatMessage],
    tools: list[dict[str, Any]],
    tool_prompt: Callable[[list[dict[str, Any]]], str] | None,
    format_call: Callable[[str, dict[str, Any]], str] | None,
) -> list[dict[str, Any]]:
    """Messages for a template that knows only role and content."""
    out: list[dict[str, Any]] = []
    for message in messages:
        content = message.content or ""
        role = message.role
        if message.tool_calls:
            calls = [
                format_call(c.name, parse_arguments(c.arguments))
                if format_call
                else json.dumps({"name": c.name, "arguments": parse_arguments(c.arguments)})
                for c in message.tool_calls
            ]
            content = "\n".join([content, *calls]) if content else "\n".join(calls)
        if role == "tool":
            # Most plain templates know no "tool" role: results come back as the user.
            role = "user"
            content = f"<tool_response>\n{content}\n</tool_response>"
        out.append(
            {"role": role, "content": content if message.parts is None else _content(message)}
        )
    if tools and tool_prompt is not None:
        instructions = tool_prompt(tools)
        if out and out[0]["role"] == "system":
            out[0] = {"role": "system", "content": f"{out[0]['content']}\n\n{instructions}"}
        else:
            out.insert(0, {"role": "system", "content": instructions})
    return out
