"""The built-in tools: their argument Structs, OpenAI definitions, and the toolbox."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

import msgspec
import trio
from msgspec import Meta

from bodega.errors import InvalidRequest, ToolNotFound, from_validation_error
from bodega.tools import calculator
from bodega.tools.arxiv import SortBy, academic_search
from bodega.tools.config import ToolsSection
from bodega.tools.search import news_search, web_search

A = TypeVar("A", bound=msgspec.Struct)

Query = Annotated[str, Meta(min_length=1, max_length=500, description="What to search for.")]
MaxResults = Annotated[int, Meta(ge=1, le=20, description="How many results to return (1-20).")]


class CalculatorArgs(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Arguments of ``calculator``."""

    expression: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=calculator.MAX_LENGTH,
            description="An arithmetic expression, e.g. `(2**100 + 1) / 3` or `sqrt(2) * pi`.",
        ),
    ]


class SearchArgs(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Arguments of ``web_search`` and ``news_search``."""

    query: Query
    max_results: MaxResults = 5


class AcademicSearchArgs(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Arguments of ``academic_search``."""

    query: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=500,
            description="Words to find in arXiv papers, or an arXiv query such as "
            "`ti:transformer AND cat:cs.CL`.",
        ),
    ]
    max_results: MaxResults = 5
    sort_by: Annotated[SortBy, Meta(description="Result order.")] = "relevance"


@dataclass(frozen=True)
class Tool(Generic[A]):
    """A built-in tool: a name, a description, an arguments Struct and a coroutine."""

    name: str
    description: str
    arguments: type[A]
    run: Callable[[A], Awaitable[object]]

    def definition(self) -> dict[str, Any]:
        """The tool in OpenAI ``tools`` format, parameters as JSON Schema."""
        _, components = msgspec.json.schema_components([self.arguments])
        schema = dict(components[self.arguments.__name__])
        schema.pop("title", None)
        schema.pop("description", None)
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": schema,
            },
        }

    def parse_arguments(self, raw: bytes) -> A:
        """Decode (= validate) ``raw`` JSON; a 400 names the field as ``arguments.<field>``.

        ``raw`` may also be a JSON string holding the object, as in an OpenAI tool call.
        """
        try:
            if raw.lstrip().startswith(b'"'):
                raw = msgspec.json.decode(raw, type=str).encode()
            return msgspec.json.decode(raw, type=self.arguments)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            if not isinstance(exc, msgspec.ValidationError):
                raise InvalidRequest(
                    f"`arguments` is a string that is not a JSON object: {exc}",
                    param="arguments",
                ) from None
            error = from_validation_error(exc)
        if error.param:
            param = f"arguments.{error.param}"
            message = error.message.replace(f"`{error.param}`", f"`{param}`")
        else:
            param, message = "arguments", f"{error.message} in `arguments`"
        raise InvalidRequest(message, param=param)


class Toolbox:
    """The tools this server offers, by name."""

    def __init__(self, tools: list[Tool[Any]]) -> None:
        self.tools = {tool.name: tool for tool in tools}

    def definitions(self) -> list[dict[str, Any]]:
        """Every tool in OpenAI ``tools`` format."""
        return [tool.definition() for tool in self.tools.values()]

    def get(self, name: str) -> Tool[Any]:
        """The tool called ``name``, or a 404 listing the known ones."""
        tool = self.tools.get(name)
        if tool is None:
            known = ", ".join(sorted(self.tools))
            raise ToolNotFound(f"Unknown tool `{name}`; known tools: {known}", param="tool_name")
        return tool

    async def execute(self, name: str, raw_arguments: bytes) -> object:
        """Validate ``raw_arguments`` for tool ``name`` and run it."""
        tool = self.get(name)
        return await tool.run(tool.parse_arguments(raw_arguments))


async def _calculate(args: CalculatorArgs) -> calculator.Calculation:
    """Evaluate off the event loop. The calculator stops itself after its time budget;
    should a step ever overrun it, the request still ends (the thread is abandoned)."""
    try:
        with trio.fail_after(calculator.TIME_BUDGET + 1):
            return await trio.to_thread.run_sync(
                calculator.calculate, args.expression, abandon_on_cancel=True
            )
    except trio.TooSlowError:
        error: Exception = calculator.CalculatorError("the calculation took too long")
    except calculator.CalculatorError as exc:
        error = exc
    raise InvalidRequest(
        f"Cannot evaluate `arguments.expression`: {error}",
        param="arguments.expression",
        code="invalid_expression",
    )


def build_toolbox(config: ToolsSection) -> Toolbox:
    """The built-in tools, their network providers configured by ``config``."""

    async def run_web(args: SearchArgs) -> object:
        return await web_search(config, args.query, args.max_results)

    async def run_news(args: SearchArgs) -> object:
        return await news_search(config, args.query, args.max_results)

    async def run_academic(args: AcademicSearchArgs) -> object:
        return await academic_search(config, args.query, args.max_results, args.sort_by)

    return Toolbox(
        [
            Tool(
                "calculator",
                "Evaluate an arithmetic expression exactly: + - * / // % **, parentheses, "
                "integers and decimals (exact), functions "
                + ", ".join(calculator.FUNCTIONS)
                + "; constants pi, e, tau.",
                CalculatorArgs,
                _calculate,
            ),
            Tool(
                "web_search",
                "Search the web; returns titles, URLs and snippets.",
                SearchArgs,
                run_web,
            ),
            Tool(
                "news_search",
                "Search recent news articles; returns titles, URLs, sources and dates.",
                SearchArgs,
                run_news,
            ),
            Tool(
                "academic_search",
                "Search academic papers on arXiv; returns titles, authors, abstracts, "
                "dates and links.",
                AcademicSearchArgs,
                run_academic,
            ),
        ]
    )
