"""Run reports over http, read-only: ``GET /reports/<run_id>/<file>`` (admin).

The EDA report, evaluation plots, model card and monitoring reports a flow run writes to its
folder (``<BATI_VAR_DIR>/runs/<run_id>/``) open in a browser from the link in the Prefect UI.
Access: the admin bearer token, or a signed expiring link (:mod:`credit.report_links`), since a
browser link cannot send a header. Only files of the allowed types under the runs folder are
served: names are checked segment by segment (no ``..``, no hidden files, no backslashes) and
the resolved path (symbolic links followed) must stay inside the run's folder.
"""

from __future__ import annotations

import re
from pathlib import Path

from flask import Blueprint, Response, request, send_file

from api.contract import endpoint
from api.errors import ApiError
from api.http import require_admin
from api.state import get_state

bp = Blueprint("reports", __name__, url_prefix="/reports")

CONTENT_TYPES = {
    ".html": "text/html",  # Flask adds "; charset=utf-8" to text types
    ".png": "image/png",
    ".csv": "text/csv",
    ".md": "text/markdown",
}
_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,199}$")
MAX_DEPTH = 4
# Reports are our own files; still, a page served here runs no script and loads nothing remote.
REPORT_CSP = (
    "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; "
    "frame-ancestors 'none'; sandbox"
)


def runs_root() -> Path:
    """The runs folder the API serves from (settings ``runs_dir``, else BATI_VAR_DIR/runs)."""
    from schemas.defaults import var_path

    configured = get_state().settings.runs_dir
    return Path(configured) if configured else var_path() / "runs"


def _not_found() -> ApiError:
    return ApiError(404, "report_not_found", "no such report file")


def resolve(root: Path, run_id: str, file: str) -> Path:
    """The file to serve, or 404: every segment checked, the real path inside the run."""
    parts = file.split("/")
    if (
        not _SEGMENT.match(run_id)
        or not 1 <= len(parts) <= MAX_DEPTH
        or not all(_SEGMENT.match(part) for part in parts)
        or Path(parts[-1]).suffix.lower() not in CONTENT_TYPES
    ):
        raise _not_found()
    try:
        base = (root / run_id).resolve(strict=True)
        path = (base / Path(*parts)).resolve(strict=True)
        root_real = root.resolve(strict=True)
    except (OSError, RuntimeError):
        raise _not_found() from None
    if base.parent != root_real or not path.is_relative_to(base) or not path.is_file():
        raise _not_found()
    return path


def _authorise(run_id: str, file: str) -> None:
    """The bearer token, or a valid signed link (``expires`` and ``sig``)."""
    from credit.report_links import verify

    token = get_state().settings.token()
    if "sig" in request.args or "expires" in request.args:
        if token is None:
            raise ApiError(403, "admin_disabled", "reports are disabled (no BATI_ADMIN_TOKEN)")
        problem = verify(
            token, run_id, file, request.args.get("expires", ""), request.args.get("sig", "")
        )
        if problem:
            raise ApiError(403, "forbidden", problem)
        return
    require_admin(token)


@bp.get("/<run_id>/<path:file>")
@endpoint(
    op="report",
    tag="admin",
    ok=None,
    media="text/html",
    ok_schema={"type": "string", "description": "the file (html, png, csv or markdown)"},
    admin=True,
    errors=(401, 403, 404),
    summary="A run's report file, read-only (bearer token or a signed expiring link)",
)
def report(run_id: str, file: str) -> Response:
    """Serve one report file of one run."""
    _authorise(run_id, file)
    path = resolve(runs_root(), run_id, file)
    resp = send_file(
        path,
        mimetype=CONTENT_TYPES[path.suffix.lower()],
        conditional=False,
        max_age=0,
        download_name=path.name,
    )
    resp.headers["Content-Security-Policy"] = REPORT_CSP
    resp.headers["Cache-Control"] = "private, no-store"
    resp.headers["Referrer-Policy"] = "no-referrer"
    return resp
