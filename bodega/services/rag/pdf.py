"""Text out of a PDF, page by page, with pypdf (pure Python: no engine).

Blocking and CPU-bound: callers run it in a worker thread.
"""

from __future__ import annotations

import io
import logging

from bodega.errors import UnprocessableContent, UnsupportedMediaType

PDF_MAGIC = b"%PDF-"
# The magic may follow a little junk (some writers prepend bytes).
MAGIC_WINDOW = 1024


def looks_like_pdf(data: bytes) -> bool:
    """Whether ``data`` starts (within its first KiB) like a PDF file."""
    return PDF_MAGIC in data[:MAGIC_WINDOW]


def extract_pages(data: bytes, max_pages: int) -> list[str]:
    """The text of each page (1-based page ``i + 1``).

    Raises UnsupportedMediaType (415) for something that is not a PDF, and
    UnprocessableContent (422) for an encrypted, corrupt or oversized one.
    """
    if not looks_like_pdf(data):
        raise UnsupportedMediaType("The file is not a PDF (no %PDF- header).", param="file")
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            raise UnprocessableContent(
                "The PDF is encrypted; upload a copy without a password.", param="file"
            )
        if len(reader.pages) > max_pages:
            raise UnprocessableContent(
                f"The PDF has {len(reader.pages)} pages, more than the {max_pages} allowed.",
                param="file",
            )
        return [page.extract_text() or "" for page in reader.pages]
    except UnprocessableContent:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        raise UnprocessableContent(
            f"The PDF is corrupt or unreadable: {type(exc).__name__}: {exc}", param="file"
        ) from None
    except RecursionError:
        raise UnprocessableContent(
            "The PDF is corrupt (its structure loops).", param="file"
        ) from None
