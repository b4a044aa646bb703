"""``/v1/responses``: check a request, run it (answer, stream or background),
store it, and serve what is stored."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing

import trio

from bodega.cache.cache import ResponseCache
from bodega.errors import BodegaError, InvalidRequest
from bodega.registry.registry import TEXT_MODELS, Registry
from bodega.services.vision.fetch import FetchPolicy
from bodega.tools.registry import Toolbox

from .inputs import chat_body, new_id, parse_items, parse_tools
from .run import Prepared, ResponseRun, snapshot
from .store import ResponseNotFound, ResponseStore
from .types import CreateResponse, InputItemList, Item, Response, TextConfig, TextFormat

Spawn = Callable[..., None]


class ResponsesService:
    """Creates, stores, cancels and serves responses."""

    def __init__(
        self,
        store: ResponseStore,
        registry: Registry,
        toolbox: Toolbox,
        policy: FetchPolicy,
        cache: ResponseCache | None = None,
    ) -> None:
        self.store = store
        self.cache = cache
        self.registry = registry
        self.toolbox = toolbox
        self.policy = policy
        # Background responses now running: their cancel scope and an event set when they end.
        self.running: dict[str, tuple[trio.CancelScope, trio.Event]] = {}

    async def prepare(self, body: CreateResponse) -> Prepared:
        """Check ``body`` and resolve its conversation and model."""
        for name in ("conversation", "prompt"):
            if getattr(body, name) is not None:
                raise InvalidRequest(
                    f"{name} is not supported: Bodega keeps conversations with "
                    "store and previous_response_id",
                    param=name,
                )
        if body.background and not body.store:
            raise InvalidRequest("background responses need store: true", param="background")
        if body.background and body.stream:
            raise InvalidRequest(
                "a background response cannot be streamed; poll GET /v1/responses/{id}",
                param="stream",
            )
        tools = parse_tools(body.tools, self.toolbox)
        items = parse_items(body.input)
        if body.previous_response_id is not None:
            try:
                previous = await self.store.get(body.previous_response_id)
            except ResponseNotFound:
                raise ResponseNotFound(
                    f"Previous response {body.previous_response_id!r} is not stored.",
                    param="previous_response_id",
                ) from None
            items = previous.input_items + previous.response.output + items
        chat_body(body, items, tools)  # every check that needs no model, before loading one
        model = await self.registry.find(body.model, kinds=TEXT_MODELS)
        response = Response(
            id=new_id("resp"),
            created_at=int(time.time()),
            status="in_progress",
            model=model.id,
            instructions=body.instructions,
            max_output_tokens=body.max_output_tokens,
            max_tool_calls=body.max_tool_calls,
            metadata=body.metadata or {},
            parallel_tool_calls=body.parallel_tool_calls is not False,
            previous_response_id=body.previous_response_id,
            reasoning=body.reasoning,
            store=body.store,
            background=body.background,
            temperature=body.temperature,
            top_p=body.top_p,
            top_logprobs=body.top_logprobs,
            text=body.text or TextConfig(format=TextFormat(type="text")),
            tool_choice=body.tool_choice or "auto",
            tools=body.tools,
            truncation=body.truncation or "disabled",
            user=body.user,
        )
        limit = body.max_tool_calls or self.store.config.max_tool_calls
        return Prepared(body, model, tools, items, response, limit)

    def _run(self, prepared: Prepared, *, stream: bool) -> ResponseRun:
        return ResponseRun(prepared, self.toolbox, self.policy, stream, self.cache)

    async def answer(self, prepared: Prepared) -> Response:
        """A whole response; a failure is an error status (stored as ``failed``)."""
        run = self._run(prepared, stream=False)
        response = await run.run_to_end()
        await self._keep(prepared)
        if run.error is not None:
            raise run.error
        return response

    async def stream(self, prepared: Prepared) -> AsyncGenerator[bytes, None]:
        """The events of a streamed response; its first generation has started."""
        run = self._run(prepared, stream=True)
        first, frames = await run.begin()

        async def events() -> AsyncGenerator[bytes, None]:
            kept = False
            async with aclosing(run.events(first, frames)) as inner:
                async for event in inner:
                    if not kept and prepared.response.status != "in_progress":
                        kept = True
                        await self._keep(prepared)  # stored before the client reads the end
                    yield event

        return events()

    async def _keep(self, prepared: Prepared) -> None:
        if prepared.body.store:
            with trio.CancelScope(shield=True):
                await self.store.put(prepared.response, prepared.items)

    async def background(self, prepared: Prepared, spawn: Spawn) -> Response:
        """Store ``prepared`` as queued and run it detached (``spawn`` starts a task
        in the server's nursery); the response as queued."""
        prepared.response.status = "queued"
        await self._keep(prepared)
        scope, done = trio.CancelScope(), trio.Event()
        self.running[prepared.response.id] = (scope, done)
        queued = snapshot(prepared.response)
        spawn(self._detached, prepared, scope, done)
        return queued

    async def _detached(
        self, prepared: Prepared, scope: trio.CancelScope, done: trio.Event
    ) -> None:
        response = prepared.response
        try:
            with scope:
                response.status = "in_progress"
                await self._keep(prepared)
                run = self._run(prepared, stream=False)
                try:
                    await run.run_to_end()
                except BodegaError as exc:
                    run.builder.fail(exc.code or exc.type, exc.message)
            if scope.cancelled_caught:
                response.status = "cancelled"
            await self._keep(prepared)
        finally:
            del self.running[response.id]
            done.set()

    async def cancel(self, response_id: str) -> Response:
        """Stop a background response; one that already ended is returned as it is."""
        stored = await self.store.get(response_id)
        if not stored.response.background:
            raise InvalidRequest("only background responses can be cancelled", param="response_id")
        running = self.running.get(response_id)
        if running is not None:
            scope, done = running
            scope.cancel()
            await done.wait()
            stored = await self.store.get(response_id)
        return stored.response

    async def input_items(
        self,
        response_id: str,
        *,
        limit: int = 20,
        newest_first: bool = True,
        after: str | None = None,
    ) -> InputItemList:
        """One page of the conversation items that went into ``response_id``."""
        items: list[Item] = list((await self.store.get(response_id)).input_items)
        if newest_first:
            items.reverse()
        if after is not None:
            ids = [item.id for item in items]
            if after not in ids:
                raise InvalidRequest(f"no input item has the id {after!r}", param="after")
            items = items[ids.index(after) + 1 :]
        page = items[:limit]
        return InputItemList(
            data=page,
            first_id=page[0].id if page else None,
            last_id=page[-1].id if page else None,
            has_more=len(items) > limit,
        )
