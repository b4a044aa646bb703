"""Web and news search: DuckDuckGo's HTML endpoint, RSS search feeds and SearXNG's JSON API."""

from __future__ import annotations

import email.utils
import re
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlsplit
from xml.etree.ElementTree import Element

import msgspec

from bodega.errors import ToolProviderFailed
from bodega.tools.config import NewsSearchConfig, ToolsSection, WebSearchConfig
from bodega.tools.http import fetch
from bodega.tools.xml import parse_xml

_SPACES = re.compile(r"\s+")


class SearchHit(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One search result."""

    title: str
    url: str
    snippet: str = ""
    source: str | None = None
    published: str | None = None


class SearchResults(msgspec.Struct, kw_only=True):
    """``web_search`` and ``news_search`` results."""

    query: str
    provider: str
    results: list[SearchHit]


async def web_search(config: ToolsSection, query: str, max_results: int) -> SearchResults:
    """Search the web with the configured provider."""
    web: WebSearchConfig = config.web_search
    if web.provider == "searxng":
        hits = await _searxng(config, web.url, query, "general", max_results)
    else:
        body = await fetch(config, "DuckDuckGo", web.url, {"q": query}, accept="text/html")
        hits = parse_duckduckgo(body)[:max_results]
    return SearchResults(query=query, provider=web.provider, results=hits)


async def news_search(config: ToolsSection, query: str, max_results: int) -> SearchResults:
    """Search news with the configured provider."""
    news: NewsSearchConfig = config.news_search
    if news.provider == "searxng":
        hits = await _searxng(config, news.url, query, "news", max_results)
    else:
        accept = "application/rss+xml, application/xml;q=0.9, text/xml;q=0.8"
        body = await fetch(config, "the news feed", news.url, {"q": query}, accept=accept)
        hits = parse_rss(body)[:max_results]
    return SearchResults(query=query, provider=news.provider, results=hits)


# -- DuckDuckGo HTML -------------------------------------------------------------------


class _DuckDuckGoPage(HTMLParser):
    """Collects ``a.result__a`` (title, link) and ``.result__snippet`` of organic results."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hits: list[dict[str, str]] = []
        self.in_ad = False
        self.saw_results = False
        self.no_results = False
        self.field: str | None = None
        self.field_tag = ""
        self.nesting = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        classes = (values.get("class") or "").split()
        if self.field is not None:
            self.nesting += tag == self.field_tag
            return
        if tag == "div" and "result" in classes:
            self.in_ad = "result--ad" in classes
        if "no-results" in classes:
            self.no_results = True
        if tag == "a" and "result__a" in classes:
            self.saw_results = True
            href = _unwrap_duckduckgo(values.get("href") or "")
            if self.in_ad or not href:
                return
            self.hits.append({"title": "", "url": href, "snippet": ""})
            self._capture("title", tag)
        elif "result__snippet" in classes and self.hits and not self.in_ad:
            self._capture("snippet", tag)

    def _capture(self, field: str, tag: str) -> None:
        self.field, self.field_tag, self.nesting = field, tag, 0

    def handle_endtag(self, tag: str) -> None:
        if self.field is not None and tag == self.field_tag:
            if self.nesting:
                self.nesting -= 1
            else:
                self.field = None

    def handle_data(self, data: str) -> None:
        if self.field is not None:
            self.hits[-1][self.field] += data


def _unwrap_duckduckgo(href: str) -> str:
    """The target of a ``//duckduckgo.com/l/?uddg=...`` redirect; ``""`` for ad links."""
    if href.startswith("//"):
        href = "https:" + href
    parts = urlsplit(href)
    if parts.path.endswith("/y.js"):
        return ""
    if parts.path.startswith("/l/") and (not parts.netloc or "duckduckgo" in parts.netloc):
        target = parse_qs(parts.query).get("uddg")
        return target[0] if target else ""
    return href if parts.scheme in ("http", "https") else ""


def parse_duckduckgo(body: bytes) -> list[SearchHit]:
    """The organic results of a ``html.duckduckgo.com/html/`` page."""
    page = _DuckDuckGoPage()
    page.feed(body.decode("utf-8", errors="replace"))
    page.close()
    if not page.saw_results and not page.no_results:
        raise ToolProviderFailed(
            "DuckDuckGo's response is not a results page (it may be rate-limiting this host)"
        )
    return [
        SearchHit(title=_clean(h["title"]), url=h["url"], snippet=_clean(h["snippet"]))
        for h in page.hits
    ]


# -- RSS -------------------------------------------------------------------------------


def parse_rss(body: bytes) -> list[SearchHit]:
    """The items of an RSS 2.0 feed (e.g. Google News search)."""
    root = parse_xml(body, "the news feed")
    channel = root.find("channel")
    if root.tag != "rss" or channel is None:
        raise ToolProviderFailed("the news feed's response is not an RSS feed")
    return [_rss_item(item) for item in channel.iter("item")]


def _rss_item(item: Element) -> SearchHit:
    source = item.find("source")
    return SearchHit(
        title=_clean(item.findtext("title") or ""),
        url=(item.findtext("link") or "").strip(),
        snippet=_clean(strip_html(item.findtext("description") or "")),
        source=_clean(source.text or "") if source is not None and source.text else None,
        published=_rfc822_to_iso(item.findtext("pubDate")),
    )


def _rfc822_to_iso(text: str | None) -> str | None:
    if not text:
        return None
    try:
        return email.utils.parsedate_to_datetime(text.strip()).isoformat()
    except (TypeError, ValueError):
        return text.strip()


# -- SearXNG ---------------------------------------------------------------------------


class _SearxResult(msgspec.Struct):
    url: str
    title: str = ""
    content: str | None = None
    engine: str | None = None
    publishedDate: str | None = None


class _SearxResponse(msgspec.Struct):
    results: list[_SearxResult]


async def _searxng(
    config: ToolsSection, url: str, query: str, category: str, max_results: int
) -> list[SearchHit]:
    params = {"q": query, "format": "json", "categories": category}
    body = await fetch(config, "SearXNG", url, params, accept="application/json")
    return parse_searxng(body)[:max_results]


def parse_searxng(body: bytes) -> list[SearchHit]:
    """The results of a SearXNG ``/search?format=json`` answer."""
    try:
        response = msgspec.json.decode(body, type=_SearxResponse)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ToolProviderFailed(f"SearXNG's response is not valid search JSON: {exc}") from None
    return [
        SearchHit(
            title=_clean(r.title),
            url=r.url,
            snippet=_clean(r.content or ""),
            source=r.engine,
            published=r.publishedDate,
        )
        for r in response.results
    ]


# -- text ------------------------------------------------------------------------------


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def strip_html(html: str) -> str:
    """The text of an HTML fragment."""
    parser = _Text()
    parser.feed(html)
    parser.close()
    return " ".join(parser.parts)


def _clean(text: Any) -> str:
    return _SPACES.sub(" ", str(text).replace("\xa0", " ")).strip()
