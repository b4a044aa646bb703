"""One chat request made ready for an engine: prompt, output parser, constraint.

Shared by both language-model engines so that tools, ``tool_choice``,
``response_format`` and reasoning behave the same on each:

- ``tool_choice: "none"`` hides the tools; ``"auto"`` shows them and parses
  calls out of the answer when the model was loaded with a ``tool_call_parser``
  (or ``enable_auto_tool_choice``); ``"required"`` or a named function forces
  calls in the parser's markup by constrained decoding.
- ``response_format`` constrains the answer to its JSON schema; a reasoning
  section (``<think>...</think>``) may come first, outside the constraint.
"""

from __future__ import annotations

from dataclasses import dataclass

from catalog.options import LoadOptions
from handlers.engine_protocol import EngineError
from handlers.lm.chat_template import ChatTemplate, tool_definition
from handlers.lm.constraints import check_schema
from handlers.parsing import OutputParser, ToolCallParser, reasoning_parser, tool_parser
from handlers.parsing.pattern import Alt, FreeText, Json, Lit, Pattern, optional, seq
from handlers.parsing.reasoning import prompt_opens_reasoning, reasoning_pattern
from ipc.messages import Generate, ToolSpec

# The markup used when calls must be forced but the model has no parser set.
DEFAULT_TOOL_PARSER = "qwen3"


# Reasoning before a constrained answer gets at most this share of max_tokens,
# so that the answer always has room to be complete.
REASONING_SHARE = 0.5
DEFAULT_REASONING_BUDGET = 1024
CHARS_PER_TOKEN = 4
THINK_CLOSE = "</think>"


@dataclass
class PreparedChat:
    """What an engine needs to run one chat request."""

    prompt: str
    parser: OutputParser | None
    # The whole output's grammar (reasoning section included), or None.
    constraint: Pattern | None
    # The tool-call markup is parsed: a call ends the answer with "tool_calls".
    parses_tools: bool
    # When the prompt opened the reasoning: the answer's own grammar, the text
    # that ends the reasoning and the most tokens the reasoning may take.
    answer: Pattern | None = None
    reasoning_end: str | None = None
    reasoning_budget: int = 0


def prepare_chat(request: Generate, template: ChatTemplate, spec: LoadOptions) -> PreparedChat:
    """Render the prompt and pick the parsers and constraint of ``request``."""
    tools = _offered_tools(request)
    forced = request.tool_choice not in ("auto", "none")
    parser_name = spec.tool_call_parser or (
        DEFAULT_TOOL_PARSER if (spec.enable_auto_tool_choice or forced) else None
    )
    tool_defs = [tool_definition(t) for t in tools]
    calls = tool_parser(parser_name or DEFAULT_TOOL_PARSER, tool_defs) if tools else None
    prompt = template.render(
        request.messages or [],
        tools=tools,
        tool_prompt=calls.system_prompt if calls else None,
        format_call=calls.format_call if calls else None,
        kwargs=request.chat_template_kwargs,
        reasoning_effort=request.reasoning_effort,
    )
    in_reasoning = bool(spec.reasoning_parser) and prompt_opens_reasoning(prompt)
    reasoning = (
        reasoning_parser(spec.reasoning_parser, starts_in_reasoning=in_reasoning)
        if spec.reasoning_parser
        else None
    )
    parses_tools = calls is not None and parser_name is not None
    parser = (
        OutputParser(reasoning, calls if parses_tools else None)
        if reasoning is not None or parses_tools
        else None
    )
    prepared = PreparedChat(
        prompt=prompt, parser=parser, constraint=None, parses_tools=parses_tools
    )
    answer = _answer_pattern(request, tools, calls if parses_tools else None)
    if answer is None:
        return prepared
    prepared.constraint = answer
    if in_reasoning and reasoning is not None:
        # The output starts inside the reasoning: free text up to a budget,
        # then the end of the reasoning, then the constrained answer.
        budget = int((request.max_tokens or DEFAULT_REASONING_BUDGET) * REASONING_SHARE)
        prepared.answer = seq(optional(Lit("\n\n")), answer)
        prepared.reasoning_end = THINK_CLOSE
        prepared.reasoning_budget = max(1, budget)
        thinking = FreeText("<", max_length=budget * CHARS_PER_TOKEN)
        prepared.constraint = seq(thinking, Lit(THINK_CLOSE), prepared.answer)
    elif spec.reasoning_parser is not None:
        prefix = reasoning_pattern(spec.reasoning_parser)
        if prefix is not None:
            prepared.constraint = seq(prefix, answer)
    return prepared


def _offered_tools(request: Generate) -> list[ToolSpec]:
    if request.tool_choice == "none":
        return []
    if request.tool_choice in ("auto", "required"):
        return list(request.tools)
    chosen = [t for t in request.tools if t.name == request.tool_choice]
    if not chosen:
        raise EngineError(
            f"tool_choice names {request.tool_choice!r}, which is not in tools",
            param="tool_choice",
        )
    return chosen


def _answer_pattern(
    request: Generate, tools: list[ToolSpec], calls: ToolCallParser | None
) -> Pattern | None:
    """The grammar the answer must follow, or None when it is free."""
    response = None
    if request.response_format is not None:
        check_schema(request.response_format.schema)
        response = Json(request.response_format.schema)
    if not tools or calls is None:
        return response
    defs = [tool_definition(t) for t in tools]
    pattern = calls.calls_pattern(defs, request.parallel_tool_calls)
    if request.tool_choice not in ("auto", "none"):
        return pattern
    # "auto" with a response format: either calls or the formatted answer.
    return Alt((pattern, response)) if response is not None else None
