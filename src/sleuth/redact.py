"""Secrets out of everything people see: the one place every surface redacts URLs.

Two kinds of URL pass through sleuth:

- **data URLs** (an events source ``postgres://user:pw@host/db#events``, the alert store): the
  password and any secret-looking query value are hidden, the rest (user, host, port, database,
  table) stays, because that is what a person needs to tell sources apart;
- **channel URLs** (apprise: ``slack://T000/B000/XXXX``, ``json://user:pw@host/path?token=…``):
  tokens hide in user names, passwords, paths, queries and even the "host" (a Slack token), so
  only ``scheme://host[:port]/…`` of a real network host is shown, with a short irreversible hash
  that tells two channels apart.

:func:`redact_text` redacts every data URL inside free text (an engine's error message, a log
line): the CLI's error printer, the dashboard and the store's run rows use it.
"""
from __future__ import annotations

import hashlib
import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
#: query keys whose values are secrets (``?password=…``, ``?access_token=…``, ``?sig=…``)
SECRET_KEY = re.compile(r"pass|pwd|token|secret|key|auth|sig|credential", re.I)
#: a URL inside text: ``scheme://`` up to whitespace or a closing quote/bracket
URL_IN_TEXT = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>)\]]+")


def url_hash(url: str) -> str:
    """A stable, irreversible name for a URL (what the store keeps for a channel)."""
    return hashlib.sha256(url.encode()).hexdigest()[:16]


def redact_url(url: str) -> str:
    """A data URL with its password and secret query values replaced by ``***``.

    >>> redact_url("postgresql://bob:pw@127.0.0.1:5432/shop?sslpassword=x#events")
    'postgresql://bob:***@127.0.0.1:5432/shop?sslpassword=***#events'
    >>> redact_url("duckdb:///data/shop.duckdb#events")
    'duckdb:///data/shop.duckdb#events'
    >>> redact_url("sc://spark.example:443/;use_ssl=true;token=abc#events")
    'sc://spark.example:443/;use_ssl=true;token=***#events'
    """
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        # Spark Connect keeps its parameters in the path: sc://host:15002/;token=…;user_id=…
        parts = parts._replace(path=re.sub(r";([^;=]+)=([^;]*)", lambda m: f";{m.group(1)}="
                                           f"{MASK if SECRET_KEY.search(m.group(1)) else m.group(2)}", parts.path))
        if "@" in netloc:
            userinfo, _, hostport = netloc.rpartition("@")
            user, colon, _ = userinfo.partition(":")
            netloc = f"{user}:{MASK}@{hostport}" if colon else f"{userinfo}@{hostport}"
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            query = urlencode([(k, MASK if SECRET_KEY.search(k) else v) for k, v in pairs], safe="*")
        out = f"{parts.scheme}://{netloc}{parts.path}" if "://" in url else urlunsplit(
            (parts.scheme, netloc, parts.path, "", ""))
        return out + (f"?{query}" if query else "") + (f"#{parts.fragment}" if parts.fragment else "")
    except ValueError:  # unparsable: hide anything between '//' user ':' and '@', and every query
        text = re.sub(r"(//[^/:@]*:)[^@/]*@", rf"\1{MASK}@", url)
        return re.sub(r"\?.*?(#|$)", rf"?{MASK}\1", text)


def redact_channel(url: str) -> str:
    """``scheme://host[:port]/…#hash`` for a URL with a network host, else ``scheme:///…#hash``.

    >>> redact_channel("slack://T000/B000/XXXX").startswith("slack:///…#")
    True
    >>> redact_channel("json://alice:pw@127.0.0.1:8080/hook?token=t").startswith("json://127.0.0.1:8080/…#")
    True
    """
    try:
        parts = urlsplit(url)
        scheme, host, port = parts.scheme or "?", parts.hostname or "", parts.port
    except ValueError:
        scheme, host, port = url.partition(":")[0] or "?", "", None
    looks_like_host = host == "localhost" or "." in host or ":" in host
    shown = f"{host}:{port}" if looks_like_host and port else host if looks_like_host else ""
    return f"{scheme}://{shown}/…#{url_hash(url)[:8]}"


def redact_text(text: str, channels: list[str] | tuple[str, ...] = ()) -> str:
    """Free text with every URL in it redacted (the ``channels`` URLs by :func:`redact_channel`,
    any other by :func:`redact_url`)."""
    if not text:
        return text
    for url in channels:
        if url and url in text:
            text = text.replace(url, redact_channel(url))
    return URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)


def redact_source(source: object) -> str:
    """How a source is named in output and in the store: a URL redacted, a path as it is."""
    return redact_text(str(source))


__all__ = ["MASK", "redact_channel", "redact_source", "redact_text", "redact_url", "url_hash"]
