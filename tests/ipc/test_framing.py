"""Framing and codec: partial frames, oversize frames, garbage, round trips."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Sequence
from typing import Any

import msgspec
import pytest

from ipc import messages as m
from ipc.framing import (
    DEFAULT_MAX_FRAME,
    HEADER,
    Codec,
    FrameDecoder,
    FrameTooLarge,
    ProtocolError,
    encode_frame,
)

SERVER_MESSAGES: list[msgspec.Struct] = [
    m.Hello(protocol_version=7, server_pid=4242),
    m.Generate(
        req_id=3,
        messages=[
            m.ChatMessage(role="system", content="Be brief.", name="sys"),
            m.ChatMessage(role="user", content="Héllo ✓"),
        ],
        prompt="Once upon",
        max_tokens=64,
        stop=["\n\n", "</s>"],
        tools=[
            m.ToolSpec(
                name="f",
                description="d",
                parameters={"type": "object", "properties": {}},
                strict=True,
            )
        ],
        tool_choice="required",
        parallel_tool_calls=False,
        response_format=m.JsonSchemaFormat(schema={"type": "object"}, name="r", strict=True),
        chat_template_kwargs={"enable_thinking": False},
        logprobs=True,
        top_logprobs=2,
        logit_bias={5: -100.0},
        ignore_eos=True,
        min_tokens=3,
        reasoning_effort="low",
        request_id="req-1",
        sampling=m.Sampling(
            temperature=0.5,
            top_p=0.9,
            top_k=40,
            min_p=0.05,
            seed=1234,
            presence_penalty=0.1,
            frequency_penalty=0.2,
            repetition_penalty=1.1,
        ),
    ),
    m.Cancel(req_id=5),
    m.GetStats(req_id=6),
    m.Shutdown(),
    m.Transcribe(
        req_id=7,
        audio=m.ShmRef(name="bd1-a", size=10),
        filename="a.wav",
        task="translate",
        language="de",
        prompt="Names: Ada.",
        temperature=0.2,
        word_timestamps=True,
        request_id="req-2",
    ),
    m.Embed(
        req_id=8,
        texts=["a"],
        token_ids=[[1, 2]],
        truncate=True,
        dimensions=8,
        embedding_type="sparse",
        return_sparse=True,
        request_id="req-3",
    ),
    m.Rerank(req_id=9, query="q", documents=["d1", "d2"], request_id="req-4"),
    m.ReleaseShm(name="bd1-b"),
    m.GenerateImage(
        req_id=10,
        prompt="a fox",
        negative_prompt="blur",
        n=2,
        width=64,
        height=48,
        steps=3,
        steps_share=0.5,
        guidance_scale=2.5,
        seed=7,
        images=[m.ShmRef(name="bd1-i", size=9)],
        mask=m.ShmRef(name="bd1-m", size=9),
        strength=0.5,
        output_format="webp",
        output_compression=20,
        transparent=True,
        partial_images=2,
        request_id="req-5",
    ),
]

HANDLER_MESSAGES: list[msgspec.Struct] = [
    m.Ready(protocol_version=7, pid=99, context_length=8192, engine="llama.cpp"),
    m.Delta(
        req_id=3,
        text="Paris ",
        n_tokens=2,
        reasoning="hm",
        tool_calls=[m.ToolCallDelta(index=0, id="call_1", name="f", arguments="{}")],
        logprobs=[
            m.TokenLogprob(
                token="Paris",
                bytes=[80],
                logprob=-0.1,
                top=[m.TopLogprob(token="P", bytes=[80], logprob=-2.0)],
            )
        ],
    ),
    m.Finished(
        req_id=3,
        reason="stop",
        usage=m.Usage(prompt_tokens=10, completion_tokens=20, cached_tokens=4),
        stop_sequence="\n\n",
    ),
    m.Failed(req_id=4, kind="context_length_exceeded", message="too long", param="messages"),
    m.Stats(
        req_id=6,
        pid=99,
        rss_bytes=123_456_789,
        tokens_generated=1000,
        memory=m.EngineMemory(weights_bytes=90_000_000, active_bytes=1_500_000),
        counters=m.EngineCounters(batches=3),
    ),
    m.Segment(
        req_id=7,
        id=0,
        start=0.0,
        end=1.5,
        text=" Hello.",
        seek=3,
        tokens=[1, 2],
        temperature=0.2,
        avg_logprob=-0.3,
        compression_ratio=1.2,
        no_speech_prob=0.01,
        words=[m.Word(word=" Hello", start=0.0, end=0.5, probability=0.9)],
    ),
    m.Transcript(req_id=7, language="en", duration=1.5, n_segments=1, language_name="english"),
    m.Embeddings(
        req_id=8,
        rows=1,
        dim=2,
        vectors=b"\0" * 8,
        counts=[1],
        sparse=[{1: 0.5}],
        prompt_tokens=3,
    ),
    m.RerankResult(req_id=9, scores=[0.5, 0.1], prompt_tokens=4),
    m.ImageProgress(req_id=10, index=1, step=2, steps=3, preview=m.ShmRef(name="bd1-p", size=5)),
    m.ImageResult(
        req_id=10, index=1, image=m.ShmRef(name="bd1-r", size=5), width=64, height=48, seed=8
    ),
    m.ImagesDone(req_id=10, n=2, prompt_tokens=5),
]

OTHER_STRUCTS: list[msgspec.Struct] = [
    m.ShmRef(name="bd123-0badcafe", size=300_000),
    m.ToolCall(id="call_1", name="f", arguments="{}"),
    m.ToolSpec(name="f", description="d", parameters={"type": "object"}, strict=True),
    m.JsonSchemaFormat(schema={"type": "object"}, name="n", strict=True),
    m.TopLogprob(token="a", bytes=[97], logprob=-1.0),
    m.TokenLogprob(
        token="a", bytes=[97], logprob=-1.0, top=[m.TopLogprob(token="b", bytes=[98], logprob=-2.0)]
    ),
    m.ToolCallDelta(index=1, id="call_2", name="g", arguments="{"),
    m.Word(word="w", start=0.1, end=0.2, probability=0.5),
    m.ChatMessage(
        role="assistant",
        content="Hi",
        name="bot",
        tool_calls=[m.ToolCall(id="call_1", name="f", arguments='{"a": 1}')],
        tool_call_id="call_0",
        reasoning_content="thinking",
        parts=[m.TextPart(text="a"), m.ImagePart(image=m.ShmRef(name="bd1-ab", size=3))],
    ),
    m.TextPart(text="look"),
    m.ImagePart(image=m.ShmRef(name="bd1-ab", size=3), detail="low"),
    m.Sampling(
        temperature=0.0,
        top_p=0.5,
        top_k=1,
        min_p=0.1,
        seed=1,
        presence_penalty=-0.5,
        frequency_penalty=0.5,
        repetition_penalty=1.3,
    ),
    m.Usage(prompt_tokens=1, completion_tokens=2, cached_tokens=3),
    m.EngineMemory(
        weights_bytes=1,
        active_bytes=2,
        cache_bytes=3,
        peak_bytes=4,
        model_buffer_bytes=5,
        kv_cache_bytes=6,
        compute_buffer_bytes=7,
    ),
    m.EngineCounters(
        cache_entries=1,
        cache_hits=2,
        batches=3,
        rows_embedded=4,
        spec_tokens=5,
        spec_accepted=6,
        spec_draft_length=7,
    ),
]

ALL_SAMPLES = SERVER_MESSAGES + HANDLER_MESSAGES + OTHER_STRUCTS


def _frames(msgs: Sequence[msgspec.Struct]) -> bytes:
    return b"".join(encode_frame(msg) for msg in msgs)


def test_samples_cover_every_struct_in_messages() -> None:
    structs = {
        obj
        for obj in vars(m).values()
        if inspect.isclass(obj)
        and issubclass(obj, msgspec.Struct)
        and obj.__module__.startswith("ipc.")
    }
    assert {type(s) for s in ALL_SAMPLES} == structs
    assert set(typing.get_args(m.ServerMessage)) == {type(s) for s in SERVER_MESSAGES}
    assert set(typing.get_args(m.HandlerMessage)) == {type(s) for s in HANDLER_MESSAGES}


@pytest.mark.parametrize("msg", ALL_SAMPLES, ids=lambda s: type(s).__name__)
def test_samples_use_non_default_values(msg: msgspec.Struct) -> None:
    for field in msgspec.structs.fields(msg):
        if field.default is not msgspec.NODEFAULT:
            default = field.default
        elif field.default_factory is not msgspec.NODEFAULT:
            default = field.default_factory()
        else:
            continue
        assert getattr(msg, field.name) != default, field.name


@pytest.mark.parametrize(
    ("union", "msg"),
    [(m.ServerMessage, s) for s in SERVER_MESSAGES]
    + [(m.HandlerMessage, s) for s in HANDLER_MESSAGES]
    + [(type(s), s) for s in OTHER_STRUCTS],
    ids=lambda x: type(x).__name__,
)
def test_round_trip(union: Any, msg: msgspec.Struct) -> None:
    codec: Codec[Any] = Codec(union)
    frame = encode_frame(msg)
    (body,) = FrameDecoder().feed(frame)
    assert HEADER.unpack_from(frame)[0] == len(body) == len(frame) - HEADER.size
    decoded = codec.decode(body)
    assert type(decoded) is type(msg)
    assert decoded == msg


def test_codec_type() -> None:
    assert Codec(m.ShmRef).type is m.ShmRef


def test_split_at_every_byte_boundary() -> None:
    msgs = SERVER_MESSAGES[:3]
    data = _frames(msgs)
    codec: Codec[m.ServerMessage] = Codec(m.ServerMessage)
    for cut in range(len(data) + 1):
        decoder = FrameDecoder()
        bodies = decoder.feed(data[:cut]) + decoder.feed(data[cut:])
        assert [codec.decode(b) for b in bodies] == msgs, cut
        assert decoder.pending == 0


def test_one_byte_at_a_time() -> None:
    data = _frames(HANDLER_MESSAGES)
    decoder = FrameDecoder()
    bodies: list[bytes] = []
    for i in range(len(data)):
        bodies += decoder.feed(data[i : i + 1])
        consumed = sum(HEADER.size + len(b) for b in bodies)
        assert decoder.pending == i + 1 - consumed
    codec: Codec[m.HandlerMessage] = Codec(m.HandlerMessage)
    assert [codec.decode(b) for b in bodies] == HANDLER_MESSAGES
    assert decoder.pending == 0


def test_pending_counts_partial_frame() -> None:
    frame = encode_frame(m.Cancel(req_id=1))
    decoder = FrameDecoder()
    assert decoder.feed(frame[:2]) == []
    assert decoder.pending == 2
    assert decoder.feed(frame[2:-1]) == []
    assert decoder.pending == len(frame) - 1
    assert len(decoder.feed(frame[-1:])) == 1
    assert decoder.pending == 0


def test_many_frames_in_one_feed() -> None:
    msgs = [m.Delta(req_id=i, text=str(i) * (i % 7)) for i in range(2000)]
    data = _frames(msgs)
    decoder = FrameDecoder()
    bodies = decoder.feed(data + encode_frame(msgs[0])[:3])
    codec: Codec[m.HandlerMessage] = Codec(m.HandlerMessage)
    assert [codec.decode(b) for b in bodies] == msgs
    assert decoder.pending == 3


def test_empty_feed() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(b"") == []
    assert decoder.pending == 0


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\xc1",  # never used in msgpack
        b"\x93\x01\x02",  # truncated array
        msgspec.msgpack.encode({"type": "nope", "req_id": 1}),
        msgspec.msgpack.encode({"type": "cancel"}),  # missing field
        msgspec.msgpack.encode({"type": "cancel", "req_id": "one"}),  # wrong type
        msgspec.msgpack.encode([1, 2, 3]),
        msgspec.msgpack.encode(m.Delta(req_id=1, text="x")),  # other direction
    ],
)
def test_garbage_body_is_protocol_error(body: bytes) -> None:
    codec: Codec[m.ServerMessage] = Codec(m.ServerMessage)
    with pytest.raises(ProtocolError, match="invalid message"):
        codec.decode(body)


def test_garbage_keeps_the_msgspec_message() -> None:
    codec: Codec[m.ServerMessage] = Codec(m.ServerMessage)
    body = msgspec.msgpack.encode({"type": "cancel", "req_id": "one"})
    with pytest.raises(ProtocolError, match=r"Expected `int`, got `str` - at `\$.req_id`"):
        codec.decode(body)


def test_oversize_header_raises_without_buffering() -> None:
    decoder = FrameDecoder(max_frame=100)
    with pytest.raises(FrameTooLarge):
        decoder.feed(HEADER.pack(101) + b"x" * 50)
    assert decoder.pending == 0
    assert isinstance(decoder.error, FrameTooLarge)
    # The stream cannot be resynchronised: the decoder stays broken.
    with pytest.raises(FrameTooLarge):
        decoder.feed(encode_frame(m.Cancel(req_id=1)))
    assert decoder.pending == 0


def test_oversize_header_split_across_feeds() -> None:
    decoder = FrameDecoder()
    header = HEADER.pack(2**32 - 1)
    assert decoder.feed(header[:3]) == []
    with pytest.raises(FrameTooLarge):
        decoder.feed(header[3:])
    assert decoder.pending == 0


def test_oversize_after_good_frames_in_same_feed() -> None:
    decoder = FrameDecoder(max_frame=100)
    good = encode_frame(m.Cancel(req_id=1))
    # Frames before the bad header are delivered; the next call raises.
    bodies = decoder.feed(good + good + HEADER.pack(1000) + b"x" * 1000)
    assert bodies == [good[HEADER.size :]] * 2
    assert decoder.pending == 0
    assert decoder.error is not None
    with pytest.raises(FrameTooLarge):
        decoder.feed(b"")


def test_frame_of_exactly_max_size_passes() -> None:
    msg = m.Delta(req_id=1, text="x" * 100)
    size = len(encode_frame(msg)) - HEADER.size
    frame = encode_frame(msg, max_frame=size)
    (body,) = FrameDecoder(max_frame=size).feed(frame)
    assert Codec(m.Delta).decode(body) == msg
    with pytest.raises(FrameTooLarge):
        encode_frame(msg, max_frame=size - 1)
    with pytest.raises(FrameTooLarge):
        FrameDecoder(max_frame=size - 1).feed(frame)


def test_encode_oversize_message() -> None:
    with pytest.raises(FrameTooLarge, match="Delta"):
        encode_frame(m.Delta(req_id=1, text="x" * 200), max_frame=100)
    big = m.Delta(req_id=1, text="x" * (DEFAULT_MAX_FRAME + 1))
    with pytest.raises(FrameTooLarge):
        encode_frame(big)
    # The encoder is still good afterwards.
    assert FrameDecoder().feed(encode_frame(m.Cancel(req_id=2)))


def test_frame_too_large_is_a_protocol_error() -> None:
    assert issubclass(FrameTooLarge, ProtocolError)
