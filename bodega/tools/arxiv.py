"""Academic search through the arXiv API (Atom XML)."""

from __future__ import annotations

import re
from typing import Literal
from xml.etree.ElementTree import Element

import msgspec

from bodega.errors import ToolProviderFailed
from bodega.tools.config import ToolsSection
from bodega.tools.http import fetch
from bodega.tools.xml import parse_xml

ATOM = "{http://www.w3.org/2005/Atom}"
ARXIV = "{http://arxiv.org/schemas/atom}"
OPENSEARCH = "{http://a9.com/-/spec/opensearch/1.1/}"

SortBy = Literal["relevance", "lastUpdatedDate", "submittedDate"]

_FIELDED = re.compile(r"\b(ti|au|abs|co|jr|cat|rn|id|all):|\b(AND|OR|ANDNOT)\b")
_WORDS = re.compile(r'"[^"]+"|[^\s"]+')
_SPACES = re.compile(r"\s+")


class Paper(msgspec.Struct, kw_only=True):
    """One arXiv entry."""

    id: str
    title: str
    authors: list[str]
    summary: str
    published: str | None
    updated: str | None
    url: str
    pdf_url: str | None
    primary_category: str | None
    categories: list[str]
    doi: str | None


class PaperResults(msgspec.Struct, kw_only=True):
    """``academic_search`` results."""

    query: str
    provider: str
    total_results: int | None
    results: list[Paper]


def arxiv_query(query: str) -> str:
    """arXiv's ``search_query``: plain words are ANDed over all fields; fielded queries
    (``ti:``, ``au:``, ``cat:``, ``AND``/``OR``) pass through."""
    if _FIELDED.search(query):
        return query
    return " AND ".join(f"all:{word}" for word in _WORDS.findall(query))


async def academic_search(
    config: ToolsSection, query: str, max_results: int, sort_by: SortBy
) -> PaperResults:
    """Search arXiv for ``query``."""
    params = {
        "search_query": arxiv_query(query),
        "start": "0",
        "max_results": str(max_results),
        "sortBy": sort_by,
        "sortOrder": "descending",
    }
    accept = "application/atom+xml, application/xml;q=0.9"
    body = await fetch(config, "arXiv", config.academic_search.url, params, accept=accept)
    total, papers = parse_arxiv(body)
    return PaperResults(
        query=query, provider="arxiv", total_results=total, results=papers[:max_results]
    )


def parse_arxiv(body: bytes) -> tuple[int | None, list[Paper]]:
    """``(totalResults, entries)`` of an arXiv API Atom feed."""
    root = parse_xml(body, "arXiv")
    if root.tag != f"{ATOM}feed":
        raise ToolProviderFailed("arXiv's response is not an Atom feed")
    entries = root.findall(f"{ATOM}entry")
    for entry in entries:  # arXiv reports a bad query as an entry whose id is an error URL
        if "/api/errors" in (entry.findtext(f"{ATOM}id") or ""):
            message = _text(entry.findtext(f"{ATOM}summary")) or "unknown error"
            raise ToolProviderFailed(f"arXiv refused the query: {message}")
    total_text = (root.findtext(f"{OPENSEARCH}totalResults") or "").strip()
    total = int(total_text) if total_text.isdigit() else None
    return total, [_paper(entry) for entry in entries]


def _paper(entry: Element) -> Paper:
    links = entry.findall(f"{ATOM}link")
    abs_id = _text(entry.findtext(f"{ATOM}id"))
    url = next((link.get("href", "") for link in links if link.get("rel") == "alternate"), abs_id)
    pdf = next((link.get("href") for link in links if link.get("title") == "pdf"), None)
    primary = entry.find(f"{ARXIV}primary_category")
    return Paper(
        id=abs_id.rsplit("/abs/", 1)[-1],
        title=_text(entry.findtext(f"{ATOM}title")),
        authors=[_text(a.findtext(f"{ATOM}name")) for a in entry.findall(f"{ATOM}author")],
        summary=_text(entry.findtext(f"{ATOM}summary")),
        published=_text(entry.findtext(f"{ATOM}published")) or None,
        updated=_text(entry.findtext(f"{ATOM}updated")) or None,
        url=url,
        pdf_url=pdf,
        primary_category=primary.get("term") if primary is not None else None,
        categories=[c.get("term", "") for c in entry.findall(f"{ATOM}category")],
        doi=_text(entry.findtext(f"{ARXIV}doi")) or None,
    )


def _text(value: str | None) -> str:
    return _SPACES.sub(" ", value or "").strip()
