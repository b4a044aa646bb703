# ruff: noqa: E501  (canned provider responses keep their real, long lines)
"""A local stand-in for the tools' providers: canned answers in each provider's real
format (DuckDuckGo HTML, Google News RSS, SearXNG JSON, arXiv Atom) and failing modes."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

DUCKDUCKGO_HTML = """<!DOCTYPE html>
<html><head><title>python trio at DuckDuckGo</title></head><body>
<div class="serp__results"><div id="links" class="results">
  <div class="result results_links results_links_deep result--ad ">
    <div class="links_main links_deep result__body">
      <h2 class="result__title">
        <a rel="nofollow" class="result__a"
           href="https://duckduckgo.com/y.js?ad_domain=ads.example&amp;u3=x">Buy Python</a>
      </h2>
      <a class="result__snippet" href="https://duckduckgo.com/y.js?u3=x">An ad.</a>
    </div>
  </div>
  <div class="result results_links results_links_deep web-result ">
    <div class="links_main links_deep result__body">
      <h2 class="result__title">
        <a rel="nofollow" class="result__a"
           href="//duckduckgo.com/l/?uddg=https%3A%2F%2Ftrio.readthedocs.io%2Fen%2Fstable%2F&amp;rut=abc">
           Trio: a friendly <b>Python</b> library for async concurrency and I/O</a>
      </h2>
      <div class="result__extras"><div class="result__extras__url">
        <a class="result__url" href="//duckduckgo.com/l/?uddg=https%3A%2F%2Ftrio.readthedocs.io%2F">
          trio.readthedocs.io</a>
      </div></div>
      <a class="result__snippet" href="//duckduckgo.com/l/?uddg=https%3A%2F%2Ftrio.readthedocs.io%2F">
        The Trio project aims to produce a production-quality, <b>permissively licensed</b>,
        async/await-native I/O library for Python &amp; friends.</a>
      <div class="clear"></div>
    </div>
  </div>
  <div class="result results_links results_links_deep web-result ">
    <div class="links_main links_deep result__body">
      <h2 class="result__title">
        <a rel="nofollow" class="result__a" href="https://github.com/python-trio/trio">
          GitHub - python-trio/trio</a>
      </h2>
      <a class="result__snippet" href="https://github.com/python-trio/trio">Trio &#8211;
        a friendly Python library for async concurrency.</a>
    </div>
  </div>
  <div class="result results_links results_links_deep web-result ">
    <div class="links_main links_deep result__body">
      <h2 class="result__title">
        <a rel="nofollow" class="result__a" href="https://pypi.org/project/trio/">trio &middot; PyPI</a>
      </h2>
      <a class="result__snippet" href="https://pypi.org/project/trio/">Release history.</a>
    </div>
  </div>
</div></div></body></html>
"""

DUCKDUCKGO_NO_RESULTS = """<html><body><div class="results">
<div class="no-results">No results.</div></div></body></html>"""

GOOGLE_NEWS_RSS = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<rss xmlns:media="http://search.yahoo.com/mrss/" version="2.0"><channel>
<generator>NFE/5.0</generator><title>"open models" - Google News</title>
<link>https://news.google.com/search?q=open+models&amp;hl=en-US&amp;gl=US&amp;ceid=US:en</link>
<language>en-US</language><copyright>2026 Google LLC</copyright>
<description>Google News</description>
<item>
  <title>Open models close the gap - The Example Times</title>
  <link>https://news.google.com/rss/articles/CBMiAAAA?oc=5</link>
  <guid isPermaLink="false">CBMiAAAA</guid>
  <pubDate>Sun, 22 Nov 2026 18:30:00 GMT</pubDate>
  <description>&lt;a href="https://news.google.com/rss/articles/CBMiAAAA?oc=5" target="_blank"&gt;Open models close the gap&lt;/a&gt;&amp;nbsp;&amp;nbsp;&lt;font color="#6f6f6f"&gt;The Example Times&lt;/font&gt;</description>
  <source url="https://www.example-times.com">The Example Times</source>
</item>
<item>
  <title>Local inference on a laptop - Gadget Weekly</title>
  <link>https://news.google.com/rss/articles/CBMiBBBB?oc=5</link>
  <guid isPermaLink="false">CBMiBBBB</guid>
  <pubDate>Sat, 21 Nov 2026 09:05:00 GMT</pubDate>
  <description>&lt;a href="https://news.google.com/rss/articles/CBMiBBBB?oc=5"&gt;Local inference on a laptop&lt;/a&gt;</description>
  <source url="https://gadget.example">Gadget Weekly</source>
</item>
</channel></rss>
"""

SEARXNG_JSON: dict[str, Any] = {
    "query": "trio",
    "number_of_results": 0,
    "results": [
        {
            "url": "https://trio.readthedocs.io/",
            "title": "Trio documentation",
            "content": "A friendly Python library for async concurrency and I/O.",
            "engine": "duckduckgo",
            "parsed_url": ["https", "trio.readthedocs.io", "/", "", "", ""],
            "engines": ["duckduckgo", "brave"],
            "positions": [1, 2],
            "score": 4.0,
            "category": "general",
            "publishedDate": None,
        },
        {
            "url": "https://news.example/trio-1.0",
            "title": "Trio 1.0 released",
            "content": None,
            "engine": "bing news",
            "score": 1.0,
            "category": "news",
            "publishedDate": "2026-11-20T10:00:00",
        },
    ],
    "answers": [],
    "corrections": [],
    "infoboxes": [],
    "suggestions": [],
    "unresponsive_engines": [],
}

ARXIV_ATOM = """<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <link href="http://arxiv.org/api/query?search_query%3Dall%3Aattention&amp;id_list%3D&amp;start%3D0&amp;max_results%3D2" rel="self" type="application/atom+xml"/>
  <title type="html">ArXiv Query: search_query=all:attention&amp;id_list=&amp;start=0&amp;max_results=2</title>
  <id>http://arxiv.org/api/cHxbiOdZaP56ODnBPIenZhzg5f8</id>
  <updated>2026-11-23T00:00:00-05:00</updated>
  <opensearch:totalResults xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/">184302</opensearch:totalResults>
  <opensearch:startIndex xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/">0</opensearch:startIndex>
  <opensearch:itemsPerPage xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/">2</opensearch:itemsPerPage>
  <entry>
    <id>http://arxiv.org/abs/1706.03762v7</id>
    <updated>2023-08-02T00:41:18Z</updated>
    <published>2017-06-12T17:57:34Z</published>
    <title>Attention Is All You
  Need</title>
    <summary>  The dominant sequence transduction models are based on complex recurrent or
convolutional neural networks in an encoder-decoder configuration.
</summary>
    <author><name>Ashish Vaswani</name></author>
    <author><name>Noam Shazeer</name></author>
    <arxiv:comment xmlns:arxiv="http://arxiv.org/schemas/atom">15 pages, 5 figures</arxiv:comment>
    <link href="http://arxiv.org/abs/1706.03762v7" rel="alternate" type="text/html"/>
    <link title="pdf" href="http://arxiv.org/pdf/1706.03762v7" rel="related" type="application/pdf"/>
    <arxiv:primary_category xmlns:arxiv="http://arxiv.org/schemas/atom" term="cs.CL" scheme="http://arxiv.org/schemas/atom"/>
    <category term="cs.CL" scheme="http://arxiv.org/schemas/atom"/>
    <category term="cs.LG" scheme="http://arxiv.org/schemas/atom"/>
  </entry>
  <entry>
    <id>http://arxiv.org/abs/2005.14165v4</id>
    <updated>2020-07-22T19:47:17Z</updated>
    <published>2020-05-28T17:29:03Z</published>
    <title>Language Models are Few-Shot Learners</title>
    <summary>Recent work has demonstrated substantial gains on many NLP tasks.</summary>
    <author><name>Tom B. Brown</name></author>
    <arxiv:doi xmlns:arxiv="http://arxiv.org/schemas/atom">10.48550/arXiv.2005.14165</arxiv:doi>
    <link href="http://arxiv.org/abs/2005.14165v4" rel="alternate" type="text/html"/>
    <link title="pdf" href="http://arxiv.org/pdf/2005.14165v4" rel="related" type="application/pdf"/>
    <arxiv:primary_category xmlns:arxiv="http://arxiv.org/schemas/atom" term="cs.CL" scheme="http://arxiv.org/schemas/atom"/>
    <category term="cs.CL" scheme="http://arxiv.org/schemas/atom"/>
  </entry>
</feed>
"""

ARXIV_ERROR = """<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title type="html">ArXiv Query: search_query=&amp;id_list=&amp;start=0&amp;max_results=-1</title>
  <id>http://arxiv.org/api/lXaZ3IRPtmBHYExRbr9ek2mGhrg</id>
  <opensearch:totalResults xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/">1</opensearch:totalResults>
  <entry>
    <id>http://arxiv.org/api/errors#max_results_must_be_non-negative</id>
    <title>Error</title>
    <summary>max_results must be non-negative</summary>
    <link href="http://arxiv.org/api/errors#max_results_must_be_non-negative" rel="alternate" type="text/html"/>
  </entry>
</feed>
"""

# path prefix -> (content type, body)
CANNED: dict[str, tuple[str, bytes]] = {
    "/ddg": ("text/html; charset=UTF-8", DUCKDUCKGO_HTML.encode()),
    "/news": ("application/rss+xml; charset=UTF-8", GOOGLE_NEWS_RSS.encode()),
    "/searx": ("application/json", json.dumps(SEARXNG_JSON).encode()),
    "/arxiv": ("application/atom+xml; charset=utf-8", ARXIV_ATOM.encode()),
}

MODES = (
    "ok",  # the canned answer
    "status500",  # HTTP 500
    "slow",  # no answer for SLOW_SECONDS
    "trickle",  # headers at once, then one byte every 0.2 s (each read is fast, the total is not)
    "oversize",  # OVERSIZE bytes with a Content-Length
    "oversize_chunked",  # OVERSIZE bytes, chunked, no Content-Length
    "garbage",  # 200 with bytes in no format
    "drop",  # closes the connection without answering
    "no_results",  # DuckDuckGo's "No results." page
    "arxiv_error",  # arXiv's error feed
)
SLOW_SECONDS = 3.0
OVERSIZE = 512 * 1024


class FakeProviders:
    """The stand-in server; set ``mode`` to pick its next answers."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.requests: list[tuple[str, dict[str, list[str]], dict[str, str]]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                owner.requests.append((parts.path, parse_qs(parts.query), dict(self.headers)))
                try:
                    owner.answer(self, parts.path)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeProviders:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answer(self, h: BaseHTTPRequestHandler, path: str) -> None:
        """Answer one request according to ``mode``."""
        mode = self.mode
        prefix = "/" + path.strip("/").split("/")[0]
        content_type, body = CANNED.get(prefix, ("text/plain", b"not found"))
        status = 200 if prefix in CANNED else 404
        if mode == "status500":
            status, content_type, body = 500, "text/plain", b"internal error"
        elif mode == "slow":
            time.sleep(SLOW_SECONDS)
        elif mode == "drop":
            h.close_connection = True
            h.connection.close()
            return
        elif mode == "garbage":
            body = b"\x00\xff<<<this is { not [ anything"
        elif mode == "no_results":
            body = DUCKDUCKGO_NO_RESULTS.encode()
        elif mode == "arxiv_error":
            body = ARXIV_ERROR.encode()
        elif mode == "oversize":
            body = b"x" * OVERSIZE
        elif mode in ("trickle", "oversize_chunked"):
            h.send_response(200)
            h.send_header("Content-Type", content_type)
            h.send_header("Transfer-Encoding", "chunked")
            h.end_headers()
            chunk, pause, count = (b"x" * 8192, 0.0, OVERSIZE // 8192)
            if mode == "trickle":
                chunk, pause, count = b"x", 0.2, int(SLOW_SECONDS / 0.2)
            for _ in range(count):
                h.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                h.wfile.flush()
                time.sleep(pause)
            h.wfile.write(b"0\r\n\r\n")
            return
        h.send_response(status)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def last_query(self) -> dict[str, list[str]]:
        """The query string of the last request."""
        return self.requests[-1][1]
