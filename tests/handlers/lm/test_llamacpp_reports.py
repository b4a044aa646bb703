"""llama.cpp's buffer sizes, read from its load log by the llama.cpp engine."""

from __future__ import annotations

import pytest

from bodega.settings import embedded_lm_path
from catalog.options import LoadOptions
from handlers.lm.llamacpp_reports import MIB, parse_buffer_sizes

# A dry run fitting the parameters (no weights), the model on two devices, a draft.
LOG = """\
0.00.027 I llama_model_loader: loaded meta data with 33 key-value pairs and 272 tensors
0.00.218 I load_tensors:          CPU model buffer size =     0.00 MiB
0.00.222 I llama_kv_cache:        CPU KV buffer size =     0.00 MiB
0.00.230 I sched_reserve:        CPU compute buffer size =    15.14 MiB
0.00.265 I llama_model_loader: loaded meta data with 33 key-value pairs and 272 tensors
0.00.407 I load_tensors:   CPU_Mapped model buffer size =    10.00 MiB
0.00.407 I load_tensors:        CUDA0 model buffer size =    80.00 MiB
0.00.411 I llama_context:        CPU  output buffer size =     0.50 MiB
0.00.411 I llama_kv_cache:      CUDA0 KV buffer size =    12.00 MiB
0.00.422 I sched_reserve:      CUDA0 compute buffer size =    15.50 MiB
0.00.500 I llama_model_loader: loaded meta data with 20 key-value pairs and 100 tensors
0.00.600 I load_tensors:   CPU_Mapped model buffer size =     5.00 MiB
0.00.601 I llama_kv_cache:        CPU KV buffer size =     1.00 MiB
0.00.602 I sched_reserve:        CPU compute buffer size =     2.00 MiB
0.03.413 D ~llama_context:        CPU compute buffer size is  15.1426 MiB, matches expectation
"""


def test_sizes_sum_devices_and_models_and_skip_the_dry_run() -> None:
    assert parse_buffer_sizes(LOG) == {
        "model_buffer_bytes": 95 * MIB,
        "kv_cache_bytes": 13 * MIB,
        "compute_buffer_bytes": 18 * MIB,
    }
    assert parse_buffer_sizes("no such lines\n") == {}


@pytest.mark.skipif(embedded_lm_path() is None, reason="the embedded model is not installed")
def test_the_engine_reports_llama_cpp_buffers(capfd: pytest.CaptureFixture[str]) -> None:
    from handlers.lm.llamacpp_engine import LlamaCppEngine

    path = embedded_lm_path()
    assert path is not None
    spec = LoadOptions(model_path=path, model_id="m", context_length=512, engine="llamacpp")
    engine = LlamaCppEngine(spec)
    try:
        memory = engine.memory()
        # 30 layers x 512 tokens x 2 (K, V) x 3 kv heads x 64 x 2 bytes (f16)
        assert memory.kv_cache_bytes == 30 * 512 * 2 * 3 * 64 * 2
        assert 0.9 < memory.model_buffer_bytes / memory.weights_bytes <= 1.0
        assert memory.compute_buffer_bytes > 0
        assert "buffer size" not in capfd.readouterr().err  # the info lines stay out of the log
    finally:
        engine.close()
