"""A traced, frozen copy of a SentenceTransformer's transformer, for small CPU passes.

``torch.jit.trace`` + ``freeze`` turn the Hugging Face model's eager forward
(hundreds of Python module calls) into one graph that shares the model's
weights (about 10 MB more memory). On the embedded all-MiniLM-L6-v2 here one
short text takes 7.7 instead of 10.1 ms on one thread; large batches, where
the matrix products dominate, gain nothing. (``optimize_for_inference``
would save another millisecond but copies every linear weight.)

A trace records one run, so anything shape-dependent that the model decides
in Python could be baked in. The traced copy is therefore used only when it
matches the eager model on probe batches of other shapes; otherwise (or for
models it does not fit) the eager model runs as before.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

log = logging.getLogger(__name__)

# Sentence vectors and token states may differ from eager by float32 rounding.
TOLERANCE = 1e-5
# (rows, longest row) of the probe batches; other rows are shorter (padded).
PROBE_SHAPES = ((1, 3), (3, 17), (2, 40))
EXAMPLE_SHAPE = (2, 16)


class TracedEncoder:
    """Runs a SentenceTransformer's modules with its transformer traced.

    Calling it with the features ``model(features)`` takes returns the same
    dict (``token_embeddings``, ``sentence_embedding``, ...).
    """

    def __init__(self, graph: Any, rest: list[Any], with_types: bool) -> None:
        self._graph = graph
        self._rest = rest
        self._with_types = with_types

    @classmethod
    def build(
        cls, model: Any, pad_id: int, vocab_size: int, with_types: bool
    ) -> TracedEncoder | None:
        """The traced encoder of ``model`` (fed ``token_type_ids`` when
        ``with_types``), or None when it does not apply or does not match the
        eager model."""
        import torch

        first = model[0]
        if not _is_plain_text_transformer(first) or model.device.type != "cpu":
            return None
        try:
            graph = _trace(first.model, with_types, pad_id, vocab_size)
        except Exception as exc:  # an architecture the tracer cannot follow
            log.info("embeddings: eager model (tracing failed: %s)", exc)
            return None
        encoder = cls(graph, list(model)[1:], with_types)
        generator = torch.Generator().manual_seed(0)
        for rows, width in PROBE_SHAPES:
            features = _probe(rows, width, pad_id, vocab_size, with_types, generator)
            with torch.inference_mode():
                want = model(dict(features))
                got = encoder(dict(features))
            mask = features["attention_mask"].unsqueeze(-1).bool()
            diff = max(
                (want["sentence_embedding"] - got["sentence_embedding"]).abs().max().item(),
                ((want["token_embeddings"] - got["token_embeddings"]) * mask).abs().max().item(),
            )
            if not diff <= TOLERANCE:
                log.info("embeddings: eager model (traced differs by %.2g)", diff)
                return None
        log.info("embeddings: small passes run a traced graph")
        return encoder

    def __call__(self, features: dict[str, Any]) -> dict[str, Any]:
        """The model's outputs for ``features`` (input ids, attention mask...)."""
        ids, mask = features["input_ids"], features["attention_mask"]
        if self._with_types:
            hidden = self._graph(ids, mask, features["token_type_ids"])
        else:
            hidden = self._graph(ids, mask)
        out = dict(features, token_embeddings=hidden)
        for module in self._rest:
            out = module(out)
        return out


def _is_plain_text_transformer(module: Any) -> bool:
    """A sentence-transformers ``Transformer`` whose text output is the model's
    last hidden state, with no prompt or custom forward to honour."""
    config = getattr(module, "modality_config", None)
    return (
        type(module).__name__ == "Transformer"
        and config == {"text": {"method": "forward", "method_output_name": "last_hidden_state"}}
        and getattr(module, "module_output_name", None) == "token_embeddings"
        and getattr(module, "model", None) is not None
    )


def _trace(hf_model: Any, with_types: bool, pad_id: int, vocab_size: int) -> Any:
    import torch

    class LastHidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = hf_model

        def forward(self, *inputs: Any) -> Any:
            names = ("input_ids", "attention_mask", "token_type_ids")
            return self.model(**dict(zip(names, inputs, strict=False)), return_dict=False)[0]

    rows, width = EXAMPLE_SHAPE
    example = _probe(rows, width, pad_id, vocab_size, with_types, torch.Generator().manual_seed(1))
    inputs = [example["input_ids"], example["attention_mask"]]
    if with_types:
        inputs.append(example["token_type_ids"])
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TracerWarnings: the probes check what they warn of
        traced = torch.jit.trace(LastHidden().eval(), tuple(inputs), check_trace=False)
        return torch.jit.freeze(traced)


def _probe(
    rows: int, width: int, pad_id: int, vocab_size: int, with_types: bool, generator: Any
) -> dict[str, Any]:
    """Random token rows, the first ``width`` long and the others shorter."""
    import torch

    ids = torch.randint(1, vocab_size, (rows, width), generator=generator)
    mask = torch.ones((rows, width), dtype=torch.long)
    for row in range(1, rows):
        length = max(1, width - 3 * row)
        ids[row, length:] = pad_id
        mask[row, length:] = 0
    features = {"input_ids": ids, "attention_mask": mask}
    if with_types:
        features["token_type_ids"] = torch.zeros_like(ids)
    return features
