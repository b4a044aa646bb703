"""The sizes an image request runs at: asked, the model's default, or on an
edit with ``size: auto`` the input image's, fitted to the model."""

from __future__ import annotations

import pytest

from handlers.engine_protocol import EngineError
from handlers.images.common import SizeRules, check_size, fitted_size

FLUX = SizeRules(default=(1024, 1024), multiple=16, smallest=64, largest=2048)


def test_asked_sizes_are_checked_against_the_model() -> None:
    assert check_size(None, None, FLUX) == (1024, 1024)
    assert check_size(96, 64, FLUX) == (96, 64)
    for width, height in ((72, 64), (32, 64), (4096, 64)):
        with pytest.raises(EngineError) as bad:
            check_size(width, height, FLUX)
        assert bad.value.param == "size"


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ((64, 64), (64, 64)),  # already fits
        ((100, 70), (96, 64)),  # rounded to multiples of 16
        ((4000, 3000), (2048, 1536)),  # scaled down, aspect kept
        ((40, 20), (128, 64)),  # scaled up to the smallest side
    ],
)
def test_an_edits_auto_size_is_the_images_fitted(
    image: tuple[int, int], expected: tuple[int, int]
) -> None:
    assert fitted_size(image, FLUX) == expected
