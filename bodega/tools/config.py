"""The ``tools:`` section of ``config.yaml`` and its environment overrides."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from bodega.env_overrides import overridden, variable

HttpUrl = Annotated[str, Meta(pattern=r"^https?://[^\s/]+", max_length=2048)]

DUCKDUCKGO_URL = "https://html.duckduckgo.com/html/"
GOOGLE_NEWS_RSS_URL = "https://news.google.com/rss/search?hl=en-US&gl=US&ceid=US:en"
ARXIV_URL = "http://export.arxiv.org/api/query"
DEFAULT_USER_AGENT = "Mozilla/5.0 (compatible; bodega/0.1; +https://github.com/bodega)"


class WebSearchConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """``web_search``: DuckDuckGo's HTML endpoint, or a SearXNG ``/search`` URL."""

    provider: Literal["duckduckgo", "searxng"] = "duckduckgo"
    url: HttpUrl = DUCKDUCKGO_URL


class NewsSearchConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """``news_search``: an RSS search feed taking ``q`` (Google News), or SearXNG."""

    provider: Literal["rss", "searxng"] = "rss"
    url: HttpUrl = GOOGLE_NEWS_RSS_URL


class AcademicSearchConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """``academic_search``: the arXiv API."""

    provider: Literal["arxiv"] = "arxiv"
    url: HttpUrl = ARXIV_URL


class ToolsSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The ``tools:`` section of ``config.yaml``."""

    timeout: Annotated[float, Meta(gt=0, le=300)] = 10.0
    max_response_bytes: Annotated[int, Meta(ge=1024, le=256 * 1024 * 1024)] = 2 * 1024 * 1024
    user_agent: Annotated[str, Meta(min_length=1, max_length=512)] = DEFAULT_USER_AGENT
    web_search: WebSearchConfig = msgspec.field(default_factory=WebSearchConfig)
    news_search: NewsSearchConfig = msgspec.field(default_factory=NewsSearchConfig)
    academic_search: AcademicSearchConfig = msgspec.field(default_factory=AcademicSearchConfig)


# environment variable -> (subsection or None, key)
ENV_KEYS: dict[str, tuple[str | None, str]] = {
    "BODEGA_TOOLS_TIMEOUT": (None, "timeout"),
    "BODEGA_TOOLS_MAX_RESPONSE_BYTES": (None, "max_response_bytes"),
    "BODEGA_TOOLS_USER_AGENT": (None, "user_agent"),
    "BODEGA_TOOLS_WEB_SEARCH_PROVIDER": ("web_search", "provider"),
    "BODEGA_TOOLS_WEB_SEARCH_URL": ("web_search", "url"),
    "BODEGA_TOOLS_NEWS_SEARCH_PROVIDER": ("news_search", "provider"),
    "BODEGA_TOOLS_NEWS_SEARCH_URL": ("news_search", "url"),
    "BODEGA_TOOLS_ACADEMIC_SEARCH_URL": ("academic_search", "url"),
}


def tools_with_env(section: ToolsSection, environ: Mapping[str, str]) -> ToolsSection:
    """``section`` with the ``BODEGA_TOOLS_*`` variables of ``environ`` applied on top.

    Raises ``ValueError`` naming the variable when a value does not validate.
    """
    return overridden(
        section,
        (
            (variable(name), (key,) if sub is None else (sub, key), environ[name])
            for name, (sub, key) in ENV_KEYS.items()
            if name in environ
        ),
    )
