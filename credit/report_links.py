"""Signed, expiring http links to a run's report files, served read-only by the API.

A browser link (from a Prefect UI artifact) cannot send the admin bearer token, so a report is
also reachable with ``/reports/<run_id>/<file>?expires=<unix seconds>&sig=<hex>``, where
``sig`` is HMAC-SHA256 over ``"<run_id>/<file>\\n<expires>"`` with a key derived from the
admin token (``BATI_ADMIN_TOKEN``): a link opens one file, until it expires, and only on an
API that has the same token. Flows call :func:`signed_url`; the API calls :func:`verify`.
Neither the token nor the key ever appears in a link.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import quote, urlencode

from schemas.settings import setting

TOKEN_ENV = "BATI_ADMIN_TOKEN"
API_URL_ENV = "BATI_API_URL"
DEFAULT_API_URL = "http://127.0.0.1:8000"
DEFAULT_TTL_SECONDS = 24 * 3600
MAX_TTL_SECONDS = 31 * 24 * 3600  # the API refuses links that claim to live longer
_CONTEXT = b"bati-report-links-v1"


def _key(token: str) -> bytes:
    return hmac.new(token.encode("utf-8"), _CONTEXT, hashlib.sha256).digest()


def signature(token: str, run_id: str, file: str, expires: int) -> str:
    """The hex signature of one file of one run until ``expires`` (unix seconds)."""
    message = f"{run_id}/{file}\n{int(expires)}".encode()
    return hmac.new(_key(token), message, hashlib.sha256).hexdigest()


def signed_path(
    run_id: str, file: str, *, token: str, ttl_seconds: int = DEFAULT_TTL_SECONDS
) -> str:
    """``/reports/<run_id>/<file>?expires=...&sig=...`` (path and query, no host)."""
    ttl = max(1, min(int(ttl_seconds), MAX_TTL_SECONDS))
    expires = int(time.time()) + ttl
    query = urlencode({"expires": expires, "sig": signature(token, run_id, file, expires)})
    return f"/reports/{quote(run_id, safe='')}/{quote(file, safe='/')}?{query}"


def signed_url(
    run_id: str,
    file: str,
    *,
    base_url: str | None = None,
    token: str | None = None,
    ttl_seconds: int = DEFAULT_TTL_SECONDS,
) -> str | None:
    """A browser link to ``file`` of run ``run_id`` on the API (``BATI_API_URL``, default
    http://127.0.0.1:8000), or ``None`` when no admin token is configured (reports are off)."""
    token = token if token is not None else setting("admin_token") or ""
    if not token:
        return None
    base = (base_url or setting("api_url")).rstrip("/")
    return base + signed_path(run_id, file, token=token, ttl_seconds=ttl_seconds)


def verify(token: str, run_id: str, file: str, expires: str, sig: str) -> str | None:
    """Why the link is refused (one phrase), or ``None`` when it is valid now."""
    try:
        when = int(expires)
    except (TypeError, ValueError):
        return "the link's expiry is not a number"
    now = time.time()
    if when < now:
        return "the link has expired"
    if when > now + MAX_TTL_SECONDS + 60:
        return "the link's expiry is too far ahead"
    expected = signature(token, run_id, file, when)
    if not hmac.compare_digest(expected.encode(), str(sig).encode("utf-8", "replace")):
        return "the link's signature is not valid"
    return None


def report_link(run_id: str, file: str, *, base_url: str | None = None) -> str:
    """The http link to put in a Prefect artifact: signed (opens in a browser) when an admin
    token is configured, else the plain ``/reports`` URL (it needs the bearer header)."""
    signed = signed_url(run_id, file, base_url=base_url)
    if signed is not None:
        return signed
    base = (base_url or setting("api_url")).rstrip("/")
    return f"{base}/reports/{quote(run_id, safe='')}/{quote(file, safe='/')}"


#: The look of every report page (the EDA report adds its own rules after these).
PAGE_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;
max-width:1200px;color:#1a202c;line-height:1.45;padding:0 1rem}
h1{border-bottom:3px solid #2b6cb0;padding-bottom:.3rem}
h2{margin-top:2.2rem;border-bottom:1px solid #cbd5e0;padding-bottom:.2rem}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;margin:.6rem 0;font-size:.9rem}
th,td{border:1px solid #e2e8f0;padding:.25rem .6rem;text-align:left;vertical-align:top}
th{background:#edf2f7}
code{background:#edf2f7;padding:0 .2rem;border-radius:3px;overflow-wrap:anywhere}
"""


def markdown_page(markdown: str, title: str) -> str:
    """A self-contained HTML page of a Markdown report (tables scroll sideways on a narrow
    window; raw HTML in the Markdown is escaped, not rendered)."""
    import html

    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown)
    body = body.replace("<table>", '<div class="scroll"><table>').replace(
        "</table>", "</table></div>"
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{PAGE_CSS}</style></head>"
        f"<body>{body}</body></html>"
    )
