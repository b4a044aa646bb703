"""Chat completions: an OpenAI chat request -> the handler's ``Generate``."""

from __future__ import annotations

from bodega.errors import InvalidRequest
from bodega.openai.requests import (
    ChatCompletionRequest,
    ChatMessageIn,
    ContentPart,
    ResponseFormat,
)
from bodega.registry.model import Model
from bodega.services.vision.fetch import FetchPolicy
from bodega.services.vision.images import RequestImages, request_images
from ipc.messages import (
    ChatMessage,
    Generate,
    ImagePart,
    JsonSchemaFormat,
    TextPart,
    ToolCall,
    ToolSpec,
)

from .sampling import sampling_of, stop_of, with_defaults

# Bounds on what a request may ask the engine to compile or render.
MAX_TOOLS = 128


async def chat_message(
    request: ChatCompletionRequest, model: Model, policy: FetchPolicy
) -> tuple[Generate, RequestImages]:
    """The ``Generate`` of ``request`` for ``model`` (its defaults applied) and
    its images, fetched, checked and stored; released again if the request
    turns out bad. The caller releases them once the answer is done."""
    images = await request_images(request, model, policy)
    try:
        message = chat_request(request, images.parts)
        return with_defaults(message, request, model.spec.defaults), images
    except BaseException:
        images.release()
        raise


def chat_request(
    request: ChatCompletionRequest, images: dict[tuple[int, int], ImagePart] | None = None
) -> Generate:
    """The ``Generate`` of a chat request, checked; ``images`` are its image
    parts by (message, part) position, stored (``vision.images``)."""
    tools = [
        ToolSpec(
            name=t.function.name,
            description=t.function.description,
            parameters=t.function.parameters or {"type": "object", "properties": {}},
            strict=bool(t.function.strict),
        )
        for t in request.tools or []
    ]
    if len(tools) > MAX_TOOLS:
        raise InvalidRequest(f"tools takes at most {MAX_TOOLS} functions", param="tools")
    return Generate(
        req_id=0,
        messages=chat_messages(request, images or {}),
        max_tokens=max_tokens_of(request),
        stop=stop_of(request),
        sampling=sampling_of(request),
        tools=tools,
        tool_choice=_tool_choice(request, tools),
        parallel_tool_calls=request.parallel_tool_calls is not False,
        response_format=_response_format(request.response_format),
        chat_template_kwargs=request.chat_template_kwargs or {},
        logprobs=bool(request.logprobs),
        top_logprobs=_top_logprobs(request),
        logit_bias=logit_bias_of(request.logit_bias),
        ignore_eos=request.ignore_eos,
        min_tokens=request.min_tokens,
        reasoning_effort=request.reasoning_effort,
    )


def chat_messages(
    request: ChatCompletionRequest, images: dict[tuple[int, int], ImagePart]
) -> list[ChatMessage]:
    """Check the request's messages and flatten their text content; a message
    with images keeps its parts in order."""
    return [_message(i, m, images) for i, m in enumerate(request.messages)]


def _parts(
    i: int, content: list[ContentPart], images: dict[tuple[int, int], ImagePart]
) -> list[TextPart | ImagePart]:
    parts: list[TextPart | ImagePart] = []
    for j, part in enumerate(content):
        if part.type == "text" and part.text is not None:
            parts.append(TextPart(text=part.text))
        elif part.type == "image_url" and (i, j) in images:
            parts.append(images[(i, j)])
        else:
            kind = "a text part without text" if part.type == "text" else repr(part.type)
            raise InvalidRequest(
                f"Content parts are text or image_url; {kind} is not supported.",
                param=f"messages[{i}].content[{j}]",
            )
    return parts


def _message(
    i: int, message: ChatMessageIn, images: dict[tuple[int, int], ImagePart]
) -> ChatMessage:
    content = message.content
    parts = None
    if isinstance(content, list):
        parts = _parts(i, content, images)
        content = "".join(p.text for p in parts if isinstance(p, TextPart))
        if not any(isinstance(p, ImagePart) for p in parts):
            parts = None
    if message.tool_calls and message.role != "assistant":
        raise InvalidRequest(
            "only assistant messages carry tool_calls", param=f"messages[{i}].tool_calls"
        )
    if message.role == "tool" and not message.tool_call_id:
        raise InvalidRequest(
            "a tool message needs the tool_call_id it answers",
            param=f"messages[{i}].tool_call_id",
        )
    calls = [
        ToolCall(id=c.id, name=c.function.name, arguments=c.function.arguments)
        for c in message.tool_calls or []
    ]
    role = "system" if message.role == "developer" else message.role
    return ChatMessage(
        role=role,
        content=content,
        parts=parts,
        name=message.name,
        tool_calls=calls or None,
        tool_call_id=message.tool_call_id,
        reasoning_content=message.reasoning_content,
    )


def _tool_choice(request: ChatCompletionRequest, tools: list[ToolSpec]) -> str:
    choice = request.tool_choice
    if choice is None:
        return "auto"
    if not tools and choice != "none":
        raise InvalidRequest("tool_choice needs tools", param="tool_choice")
    if isinstance(choice, str):
        return choice
    name = choice.function.name
    if name not in {t.name for t in tools}:
        raise InvalidRequest(
            f"tool_choice names {name!r}, which is not one of the tools",
            param="tool_choice.function.name",
        )
    return name


def _response_format(fmt: ResponseFormat | None) -> JsonSchemaFormat | None:
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        # llama.cpp's extension: json_object with a schema constrains to it.
        return JsonSchemaFormat(schema=fmt.schema or {"type": "object"}, name="json_object")
    spec = fmt.json_schema
    if spec is None:
        raise InvalidRequest(
            "response_format of type json_schema needs json_schema",
            param="response_format.json_schema",
        )
    if spec.schema is None:
        raise InvalidRequest(
            "response_format.json_schema needs a schema",
            param="response_format.json_schema.schema",
        )
    return JsonSchemaFormat(schema=spec.schema, name=spec.name, strict=bool(spec.strict))


def _top_logprobs(request: ChatCompletionRequest) -> int:
    if request.top_logprobs and not request.logprobs:
        raise InvalidRequest("top_logprobs needs logprobs: true", param="top_logprobs")
    return request.top_logprobs or 0


def logit_bias_of(bias: dict[str, float] | None) -> dict[int, float]:
    """``logit_bias`` with its token-id keys as integers."""
    out: dict[int, float] = {}
    for key, value in (bias or {}).items():
        try:
            token = int(key)
        except ValueError:
            raise InvalidRequest(
                f"logit_bias keys are token ids; {key!r} is not", param="logit_bias"
            ) from None
        if token < 0:
            raise InvalidRequest(f"logit_bias token id {token} is negative", param="logit_bias")
        out[token] = value
    return out


def max_tokens_of(request: ChatCompletionRequest) -> int | None:
    """``max_completion_tokens`` wins over the older ``max_tokens``."""
    return request.max_completion_tokens or request.max_tokens
