"""Search tools against a local stand-in speaking each provider's real format."""

from __future__ import annotations

import time

import msgspec
import pytest

from bodega.errors import ToolProviderFailed
from bodega.settings import ConfigError, build_settings
from bodega.tools.arxiv import academic_search, arxiv_query, parse_arxiv
from bodega.tools.config import (
    AcademicSearchConfig,
    NewsSearchConfig,
    ToolsSection,
    WebSearchConfig,
    tools_with_env,
)
from bodega.tools.search import news_search, parse_duckduckgo, web_search
from tests.tools.providers import ARXIV_ATOM, DUCKDUCKGO_HTML, FakeProviders


def config_for(fake: FakeProviders, **web: str) -> ToolsSection:
    return ToolsSection(
        timeout=1.0,
        max_response_bytes=64 * 1024,
        web_search=WebSearchConfig(**{"url": f"{fake.url}/ddg/html/", **web}),  # type: ignore[arg-type]
        news_search=NewsSearchConfig(url=f"{fake.url}/news/rss?hl=en-US&gl=US&ceid=US:en"),
        academic_search=AcademicSearchConfig(url=f"{fake.url}/arxiv/api/query"),
    )


def test_duckduckgo_page_parsing() -> None:
    hits = parse_duckduckgo(DUCKDUCKGO_HTML.encode())
    assert [h.url for h in hits] == [
        "https://trio.readthedocs.io/en/stable/",  # unwrapped from //duckduckgo.com/l/?uddg=
        "https://github.com/python-trio/trio",
        "https://pypi.org/project/trio/",
    ]  # the ad is skipped
    assert hits[0].title == "Trio: a friendly Python library for async concurrency and I/O"
    assert hits[0].snippet.startswith("The Trio project aims to produce")
    assert "Python & friends." in hits[0].snippet
    assert hits[1].snippet.startswith("Trio \u2013 a friendly")
    assert hits[2].title == "trio \u00b7 PyPI"


def test_arxiv_parsing() -> None:
    total, papers = parse_arxiv(ARXIV_ATOM.encode())
    assert total == 184302
    first, second = papers
    assert first.id == "1706.03762v7"
    assert first.title == "Attention Is All You Need"
    assert first.authors == ["Ashish Vaswani", "Noam Shazeer"]
    assert first.summary.startswith("The dominant sequence transduction models")
    assert first.url == "http://arxiv.org/abs/1706.03762v7"
    assert first.pdf_url == "http://arxiv.org/pdf/1706.03762v7"
    assert first.primary_category == "cs.CL"
    assert first.categories == ["cs.CL", "cs.LG"]
    assert first.published == "2017-06-12T17:57:34Z"
    assert second.doi == "10.48550/arXiv.2005.14165"


def test_arxiv_query_building() -> None:
    assert arxiv_query("attention is all") == "all:attention AND all:is AND all:all"
    assert arxiv_query('"large language" models') == 'all:"large language" AND all:models'
    assert arxiv_query("ti:transformer AND cat:cs.CL") == "ti:transformer AND cat:cs.CL"


async def test_web_search_duckduckgo(providers: FakeProviders) -> None:
    result = await web_search(config_for(providers), "python trio", 2)
    assert result.provider == "duckduckgo"
    assert [h.url for h in result.results] == [
        "https://trio.readthedocs.io/en/stable/",
        "https://github.com/python-trio/trio",
    ]
    path, query, headers = providers.requests[-1]
    assert path == "/ddg/html/"
    assert query == {"q": ["python trio"]}
    assert "bodega" in headers["User-Agent"]


async def test_web_search_duckduckgo_no_results(providers: FakeProviders) -> None:
    providers.mode = "no_results"
    assert (await web_search(config_for(providers), "zzzz", 5)).results == []


async def test_web_search_searxng(providers: FakeProviders) -> None:
    config = config_for(providers, provider="searxng", url=f"{providers.url}/searx/search")
    result = await web_search(config, "trio", 5)
    assert result.provider == "searxng"
    assert [h.title for h in result.results] == ["Trio documentation", "Trio 1.0 released"]
    assert result.results[0].snippet.startswith("A friendly Python library")
    assert result.results[1].published == "2026-11-20T10:00:00"
    assert providers.last_query() == {
        "q": ["trio"],
        "format": ["json"],
        "categories": ["general"],
    }


async def test_news_search_rss(providers: FakeProviders) -> None:
    result = await news_search(config_for(providers), "open models", 5)
    assert result.provider == "rss"
    first, second = result.results
    assert first.title == "Open models close the gap - The Example Times"
    assert first.url == "https://news.google.com/rss/articles/CBMiAAAA?oc=5"
    assert first.source == "The Example Times"
    assert first.published == "2026-11-22T18:30:00+00:00"
    assert first.snippet == "Open models close the gap The Example Times"
    assert second.source == "Gadget Weekly"
    # the feed URL's own parameters are kept, the query is added
    assert providers.last_query() == {
        "hl": ["en-US"],
        "gl": ["US"],
        "ceid": ["US:en"],
        "q": ["open models"],
    }


async def test_academic_search(providers: FakeProviders) -> None:
    result = await academic_search(config_for(providers), "attention", 1, "submittedDate")
    assert result.total_results == 184302
    assert [p.id for p in result.results] == ["1706.03762v7"]
    assert providers.last_query() == {
        "search_query": ["all:attention"],
        "start": ["0"],
        "max_results": ["1"],
        "sortBy": ["submittedDate"],
        "sortOrder": ["descending"],
    }


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("status500", "answered HTTP 500"),
        ("slow", "did not answer within 1 s"),
        ("trickle", "did not answer within 1 s"),
        ("oversize", "larger than 65536 bytes"),
        ("oversize_chunked", "larger than 65536 bytes"),
        ("drop", "could not be reached"),
        ("garbage", ""),
    ],
)
@pytest.mark.parametrize("tool", ["web", "news", "academic"])
async def test_provider_failures(
    providers: FakeProviders, mode: str, reason: str, tool: str
) -> None:
    providers.mode = mode
    config = config_for(providers)
    start = time.monotonic()
    with pytest.raises(ToolProviderFailed) as caught:
        if tool == "web":
            await web_search(config, "q", 5)
        elif tool == "news":
            await news_search(config, "q", 5)
        else:
            await academic_search(config, "q", 5, "relevance")
    assert caught.value.status == 502
    assert reason in caught.value.message
    assert time.monotonic() - start < 2.5  # the 1 s budget bounds the whole exchange


async def test_searxng_garbage(providers: FakeProviders) -> None:
    providers.mode = "garbage"
    config = config_for(providers, provider="searxng", url=f"{providers.url}/searx/search")
    with pytest.raises(ToolProviderFailed, match="not valid search JSON"):
        await web_search(config, "q", 5)


async def test_arxiv_error_feed(providers: FakeProviders) -> None:
    providers.mode = "arxiv_error"
    with pytest.raises(ToolProviderFailed, match="max_results must be non-negative"):
        await academic_search(config_for(providers), "q", 5, "relevance")


async def test_unreachable_provider() -> None:
    from tests.helpers import free_port

    config = ToolsSection(
        timeout=2, web_search=WebSearchConfig(url=f"http://127.0.0.1:{free_port()}/")
    )
    with pytest.raises(ToolProviderFailed, match="DuckDuckGo could not be reached"):
        await web_search(config, "q", 5)


def test_env_overrides_config() -> None:
    section = ToolsSection(timeout=3)
    env = {
        "BODEGA_TOOLS_TIMEOUT": "2.5",
        "BODEGA_TOOLS_MAX_RESPONSE_BYTES": "4096",
        "BODEGA_TOOLS_WEB_SEARCH_PROVIDER": "searxng",
        "BODEGA_TOOLS_WEB_SEARCH_URL": "http://searx.local/search",
        "BODEGA_TOOLS_NEWS_SEARCH_URL": "https://news.example/rss",
        "BODEGA_TOOLS_ACADEMIC_SEARCH_URL": "http://arxiv.local/api/query",
    }
    tools = tools_with_env(section, env)
    assert tools.timeout == 2.5
    assert tools.max_response_bytes == 4096
    assert tools.web_search == WebSearchConfig(provider="searxng", url="http://searx.local/search")
    assert tools.news_search.url == "https://news.example/rss"
    assert tools.academic_search.url == "http://arxiv.local/api/query"
    assert tools_with_env(section, {}) == section


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("BODEGA_TOOLS_TIMEOUT", "soon"),
        ("BODEGA_TOOLS_TIMEOUT", "-1"),
        ("BODEGA_TOOLS_WEB_SEARCH_PROVIDER", "google"),
        ("BODEGA_TOOLS_NEWS_SEARCH_URL", "ftp://x"),
    ],
)
def test_bad_env_is_a_config_error(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        build_settings(model_path="/x.gguf")


def test_config_file_tools_section(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "config.yaml"
    path.write_text(
        "models: []\ntools:\n  timeout: 4\n  news_search:\n    provider: searxng\n"
        "    url: http://searx.local/search\n"
    )
    settings = build_settings(config_path=str(path))
    assert settings.tools.timeout == 4
    assert settings.tools.news_search.provider == "searxng"
    assert settings.tools.web_search.url.startswith("https://html.duckduckgo.com/")
    path.write_text("tools:\n  web_search:\n    engine: bing\n")
    with pytest.raises(ConfigError, match="engine"):
        build_settings(config_path=str(path))


def test_results_encode() -> None:
    hits = parse_duckduckgo(DUCKDUCKGO_HTML.encode())
    assert b'"snippet"' in msgspec.json.encode(hits)
