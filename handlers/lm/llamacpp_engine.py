"""Language models in GGUF files on llama.cpp, through the xllamacpp package.

xllamacpp runs llama.cpp's server loop in-process: it batches the requests it
is handed from several threads into shared decode steps (continuous batching
over ``n_parallel`` slots) and reuses each slot's KV cache by longest common
prefix (its prompt cache; off with ``prompt_cache_size: 0``). Each call blocks
its thread and streams chunks to a callback; returning True from the callback
stops that request.

llama.cpp rounds its context up (to a multiple of 256 tokens), so the engine
holds each request to ``context_length`` itself: the first chunk reports the
prompt's length (``return_progress``), and every later chunk is one token.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from catalog.options import LoadOptions
from handlers.convert.gguf import GGUFError, read_metadata, trained_context_length
from handlers.engine_protocol import Emit, EngineError, LoadError, ShouldStop
from handlers.lm.chat_output import OutputStream
from handlers.lm.chat_request import prepare_chat
from handlers.lm.chat_template import ChatTemplate
from handlers.lm.constraints import UnsupportedSchema, to_lark
from handlers.lm.llamacpp_knobs import set_knobs
from handlers.lm.llamacpp_reports import load_log, logprobs_of
from handlers.lm.request_checks import (
    PENALTY_WINDOW,
    check_logit_bias,
    check_max_tokens,
    constraint_param,
    context_exceeded,
    eos_rules,
    finish_reason,
)
from handlers.lm.stop_text import StopTextFilter
from handlers.vision.llamacpp_media import (
    PASS_THROUGH_TEMPLATE,
    chat_body,
    projector_path,
    request_media,
)
from ipc.messages import (
    EngineMemory,
    Finished,
    Generate,
    Sampling,
    Usage,
)

DEFAULT_CONTEXT_LENGTH = 32768
# For GGUF files that carry no chat template.
CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
# llama.cpp's sampler chain in mlx-lm's order: penalties, then the filters on
# the unscaled distribution, then the temperature. DRY, XTC, typical-p and
# top-n-sigma are left out, so they are off whatever llama.cpp's defaults are.
SAMPLERS = ["penalties", "top_p", "min_p", "top_k", "temperature"]


def sampling_fields(sampling: Sampling) -> dict[str, Any]:
    """llama.cpp's request fields for ``sampling``, every value explicit so that
    llama.cpp's own defaults (temperature 0.8, top_k 40, min_p 0.05...) never
    apply; no ``seed`` draws a fresh one."""
    fields: dict[str, Any] = {
        "temperature": sampling.temperature,
        "dynatemp_range": 0.0,
        "top_p": sampling.top_p,
        "top_k": sampling.top_k,
        "min_p": sampling.min_p,
        "presence_penalty": sampling.presence_penalty,
        "frequency_penalty": sampling.frequency_penalty,
        "repeat_penalty": sampling.repetition_penalty,
        "repeat_last_n": PENALTY_WINDOW,
        "mirostat": 0,
        "samplers": list(SAMPLERS),
    }
    if sampling.temperature == 0 and not sampling.top_k:
        # Greedy: the argmax whatever the filters. top_k 1 finds it in one pass;
        # with top_k off llama.cpp sorts the whole vocabulary per token and
        # stream (-7% aggregate at 8 streams on the embedded model).
        fields["top_k"] = 1
    if sampling.seed is not None:
        fields["seed"] = sampling.seed
    return fields


@dataclass
class _Outcome:
    """How one llama.cpp call ended."""

    ended: str | None  # llama.cpp's finish reason, or "length" at our context end
    usage: Usage


class LlamaCppEngine:
    """A GGUF model served by llama.cpp with ``max_concurrency`` slots."""

    name = "llamacpp"

    def __init__(self, spec: LoadOptions) -> None:
        import xllamacpp

        path = Path(spec.model_path)
        try:
            meta = read_metadata(path, skip_arrays=False)
        except (OSError, GGUFError) as exc:
            raise LoadError(f"cannot read GGUF file {path}: {exc}") from exc
        trained = trained_context_length(meta)
        self.context_length = spec.context_length or min(
            trained or DEFAULT_CONTEXT_LENGTH, DEFAULT_CONTEXT_LENGTH
        )
        self.parallel = max(1, spec.max_concurrency)

        params = xllamacpp.CommonParams()
        params.model.path = str(path)
        # Each slot gets the full context length; the KV cache is split evenly.
        params.n_ctx = self.context_length * self.parallel
        params.n_parallel = self.parallel
        params.cont_batching = True
        params.use_jinja = True
        params.ctx_shift = False  # the end of the context ends a request ("length")
        self._cache_prompt = spec.prompt_cache_size > 0
        params.cache_prompt = self._cache_prompt
        if not self._cache_prompt:
            params.cache_ram_mib = 0  # nor does its host-memory prompt cache keep any
        params.warmup = False
        if spec.model_type == "multimodal":
            params.mmproj.path = str(projector_path(spec))
            params.chat_template = PASS_THROUGH_TEMPLATE  # image requests: llamacpp_media
            params.reasoning_format = xllamacpp.common_reasoning_format.COMMON_REASONING_FORMAT_NONE
        if not os.environ.get("BODEGA_ENGINE_LOGS"):
            params.verbosity = 1  # llama.cpp's per-request timing lines are noise in our log
        # llama.cpp also opens its own HTTP port on localhost; lock it with a
        # key nobody knows, so no local process can bypass our admission.
        params.api_keys = [secrets.token_hex(32)]
        params.cpuparams.n_threads = spec.n_threads or max(1, os.cpu_count() or 1)
        params.cpuparams_batch.n_threads = params.cpuparams.n_threads
        set_knobs(params, spec)
        self._spec = spec
        self._template = _chat_template(meta, spec)
        self._vocab_size = len(meta.get("tokenizer.ggml.tokens") or [])
        try:
            with load_log(params, bool(os.environ.get("BODEGA_ENGINE_LOGS"))) as log:
                self._server = xllamacpp.Server(params)
        except Exception as exc:  # the binding raises plain RuntimeError
            raise LoadError(f"llama.cpp could not load {path}: {exc}") from exc
        self._buffers = log.sizes  # llama.cpp's own model, KV cache and compute buffers
        self._model_bytes = path.stat().st_size

    def request_body(self, request: Generate) -> dict[str, Any]:
        """The llama.cpp request for ``request``, less its prompt and grammar."""
        check_max_tokens(request)
        body: dict[str, Any] = {
            "stream": True,
            "stream_options": {"include_usage": True},
            "return_progress": True,
            "cache_prompt": self._cache_prompt,
            **sampling_fields(request.sampling),
        }
        if request.max_tokens is not None:
            body["max_tokens"] = request.max_tokens
        # Stop sequences are matched here (``_stream``), not by llama.cpp,
        # whose OpenAI-style chunks do not say which one ended the text.
        if request.logprobs:
            body["logprobs"] = max(1, request.top_logprobs)
        if request.logit_bias:
            check_logit_bias(request.logit_bias, self._vocab_size)
            body["logit_bias"] = [[token, bias] for token, bias in request.logit_bias.items()]
        return body

    def generate(self, request: Generate, emit: Emit, should_stop: ShouldStop) -> Finished:
        """Run one chat or prompt completion, streaming each token to ``emit``.

        Chat prompts are rendered by our template code (tools, past calls,
        ``chat_template_kwargs``) and sent to llama.cpp as raw prompts, so
        both engines parse tool calls and reasoning the same way.
        """
        body = self.request_body(request)
        parses_tools = False
        if request.messages is not None:
            request, media = request_media(request, self._spec)
            prepared = prepare_chat(request, self._template, self._spec)
            body["prompt"] = prepared.prompt
            if prepared.constraint is not None:
                param = constraint_param(request)
                body["grammar"] = _checked_grammar(to_lark(prepared.constraint, param), param)
            output = OutputStream(emit, prepared.parser)
            parses_tools = prepared.parses_tools
            if media:
                body = chat_body(body, prepared.prompt, media)
        else:
            body["prompt"] = request.prompt or ""
            output = OutputStream(emit, None)
        ignore_eos, min_tokens = eos_rules(request, "grammar" in body)
        if ignore_eos:
            body["ignore_eos"] = True

        stop = StopTextFilter(request.stop)
        if min_tokens:
            outcome = self._with_min_tokens(body, min_tokens, request, output, should_stop, stop)
        else:
            outcome = self._stream(body, request, output, should_stop, stop)
        output.close()
        return Finished(
            req_id=request.req_id,
            reason=finish_reason(
                outcome.ended,
                cancelled=should_stop() and outcome.ended is None,
                tool_calls=parses_tools and output.tool_calls > 0,
            ),
            usage=outcome.usage,
            stop_sequence=stop.matched,
        )

    def _with_min_tokens(
        self,
        body: dict[str, Any],
        min_tokens: int,
        request: Generate,
        output: OutputStream,
        should_stop: ShouldStop,
        stop: StopTextFilter,
    ) -> _Outcome:
        """llama.cpp has no ``min_tokens``: the first ``min_tokens`` tokens are
        decoded past end-of-sequence and without stop strings, then the rest
        continues from them (their ids come with their log-probabilities)."""
        first = min_tokens if request.max_tokens is None else min(min_tokens, request.max_tokens)
        head = dict(body)
        head.update(ignore_eos=True, max_tokens=first, logprobs=max(1, request.top_logprobs))
        ids: list[int] = []
        start = self._stream(head, request, output, should_stop, None, ids)
        n = start.usage.completion_tokens
        left = None if request.max_tokens is None else request.max_tokens - n
        room = self.context_length - start.usage.prompt_tokens - n
        if should_stop() or n < first or left == 0 or room < 1 or len(ids) != n:
            return start
        rest = {**body, "prompt": [body["prompt"], *ids]}
        if left is not None:
            rest["max_tokens"] = left
        end = self._stream(rest, request, output, should_stop, stop)
        usage = msgspec.structs.replace(
            start.usage, completion_tokens=n + end.usage.completion_tokens
        )
        return _Outcome(ended=end.ended, usage=usage)

    def _stream(
        self,
        body: dict[str, Any],
        request: Generate,
        output: OutputStream,
        should_stop: ShouldStop,
        stop: StopTextFilter | None,
        ids: list[int] | None = None,
    ) -> _Outcome:
        """One llama.cpp call, its tokens into ``output`` (and their ids into
        ``ids``); text from a ``stop`` sequence on is dropped and ends the call."""
        state: dict[str, Any] = {"ended": None, "usage": None, "error": None, "prompt": None}
        counted = 0
        progress: dict[str, Any] = {}

        def on_chunk(chunk: dict[str, Any]) -> bool:
            nonlocal counted
            if "error" in chunk:
                state["error"] = chunk["error"]
                return True
            if "prompt_progress" in chunk:
                if not progress:
                    progress.update(chunk["prompt_progress"])
                    if progress.get("total", 0) >= self.context_length:
                        return True  # no room for an answer: refused below
                return should_stop()
            if chunk.get("usage"):
                state["usage"] = chunk["usage"]
            for choice in chunk.get("choices") or ():
                if choice.get("finish_reason"):
                    state["ended"] = choice["finish_reason"]
                    continue
                text = choice.get("text", (choice.get("delta") or {}).get("content"))
                if text is None:
                    continue
                raw = choice.get("logprobs")
                if ids is not None and raw:
                    ids.extend(int(e["id"]) for e in raw.get("content") or [] if "id" in e)
                logprobs = logprobs_of(raw, request.top_logprobs) if request.logprobs else None
                # Each chunk is one token; ``stop`` holds back text that may
                # start a stop sequence and releases it with a later one.
                hit = False
                if stop is not None:
                    text, hit = stop.feed(text)
                output.add(text, 1, logprobs)
                counted += 1
                if hit:
                    state["ended"] = "stop"
                    return True
                if counted >= self.context_length - progress.get("total", 0):
                    state["ended"] = "length"  # the end of our context
                    return True
            return should_stop()

        handle = self._server.handle_completions
        if "messages" in body:  # with images: llamacpp_media.chat_body
            handle = self._server.handle_chat_completions
        # JSON both ways through msgspec: xllamacpp's own (the stdlib's) took
        # 2 ms for a body carrying a 600 KB image as base64.
        result = handle(msgspec.json.encode(body), lambda raw: on_chunk(msgspec.json.decode(raw)))
        if isinstance(result, bytes | str):
            result = msgspec.json.decode(result) if result else None
        if isinstance(result, dict) and "error" in result:
            state["error"] = result["error"]
        prompt_tokens = int(progress.get("total", 0))
        if state["error"] is not None:
            raise self._request_error(state["error"], request)
        if prompt_tokens >= self.context_length:
            raise context_exceeded(request, prompt_tokens, self.context_length)
        if stop is not None and not stop.matched:
            output.add(stop.flush(), 0)  # the end came first: held text is answer
        usage = state["usage"] or {}
        return _Outcome(
            ended=state["ended"],
            usage=Usage(
                prompt_tokens=int(usage.get("prompt_tokens", prompt_tokens)),
                completion_tokens=int(usage.get("completion_tokens", counted)),
                cached_tokens=int(
                    (usage.get("prompt_tokens_details") or {}).get(
                        "cached_tokens", progress.get("cache", 0)
                    )
                ),
            ),
        )

    def _request_error(self, error: dict[str, Any], request: Generate) -> EngineError:
        if error.get("type") == "exceed_context_size_error":
            return context_exceeded(
                request, int(error.get("n_prompt_tokens", 0)), self.context_length
            )
        return EngineError(str(error.get("message", "llama.cpp rejected the request")))

    def memory(self) -> EngineMemory:
        """The size of the weights file and llama.cpp's buffers (its load log)."""
        return EngineMemory(weights_bytes=self._model_bytes, **self._buffers)

    def close(self) -> None:
        """Stop llama.cpp's loop and free the model."""
        del self._server


def _checked_grammar(grammar: str, param: str) -> str:
    """``grammar`` if llguidance compiles it; llama.cpp would only log the error
    and decode unconstrained, so an unsupported schema must be refused here."""
    from llguidance import LLMatcher

    error = LLMatcher.validate_grammar(grammar)
    if error:
        reason = error.splitlines()[0].split(": ", 1)[-1]
        raise UnsupportedSchema(
            f"the schema cannot be used for constrained decoding: {reason}", param=param
        )
    return grammar


def _chat_template(meta: dict[str, Any], spec: LoadOptions) -> ChatTemplate:
    """The model's chat template (or ``chat_template_file``), checked at load."""
    source = meta.get("tokenizer.chat_template") or CHATML_TEMPLATE
    if spec.chat_template_file:
        try:
            source = Path(spec.chat_template_file).read_text()
        except OSError as exc:
            raise LoadError(f"cannot read chat_template_file: {exc}") from exc
    tokens = meta.get("tokenizer.ggml.tokens") or []

    def token(key: str) -> str:
        index = meta.get(key)
        return str(tokens[index]) if isinstance(index, int) and index < len(tokens) else ""

    try:
        return ChatTemplate(
            source,
            bos_token=token("tokenizer.ggml.bos_token_id"),
            eos_token=token("tokenizer.ggml.eos_token_id"),
        )
    except Exception as exc:  # jinja2's TemplateSyntaxError and friends
        raise LoadError(f"the chat template is not valid Jinja: {exc}") from exc
