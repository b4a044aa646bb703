"""XML from providers, parsed with defusedxml when it is installed."""

from __future__ import annotations

from xml.etree.ElementTree import Element, ParseError

from bodega.errors import ToolProviderFailed

try:
    from defusedxml.ElementTree import fromstring as _fromstring
except ImportError:  # pragma: no cover - defusedxml is a dependency
    from xml.etree.ElementTree import fromstring as _fromstring


def parse_xml(body: bytes, provider: str) -> Element:
    """The root element of ``body``, or ``ToolProviderFailed`` naming ``provider``."""
    try:
        root: Element = _fromstring(body)
    except (ParseError, ValueError) as exc:  # defusedxml's refusals are ValueErrors
        raise ToolProviderFailed(f"{provider}'s response is not valid XML: {exc}") from None
    return root
