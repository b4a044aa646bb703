"""The engine catalog: what both processes must agree on, declared once.

File sniffing (``files``), which engine serves which model_type and which
load options each honours (``engines``), parser names (``parsers``) and the
load options with their single defaults (``options``). Pure: the standard
library and msgspec only; it imports neither bodega nor handlers, so the
HTTP process and the handler processes may both import it.
"""
