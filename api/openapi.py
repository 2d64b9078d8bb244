"""The OpenAPI 3.1 document and a self-contained interactive docs page (no CDN, no script).

The document is generated from the app itself: :func:`build_openapi` walks ``app.url_map`` and
reads each view's ``@endpoint`` declaration (:mod:`api.contract`: request model, response model,
error statuses, auth, summary); the schemas are those pydantic models, the same ones that
validate requests and build responses. A route without a declaration is an error
(:class:`UndocumentedRoute`), so nothing is served undocumented.
"""

from __future__ import annotations

import copy
import html
import json
import re
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from api import payloads as p
from api.config import Settings
from api.contract import Endpoint, endpoints, spec_of

REF = "#/components/schemas/{model}"
ERROR_TEXT = {
    400: "Malformed JSON or body framing, the request did not arrive within its time limit, "
    "or a bad query parameter",
    401: "Missing or malformed bearer token",
    403: "Wrong token, or admin endpoints disabled",
    404: "Unknown customer, version or report file, or the version is not a scorecard",
    409: "Promotion refused (already champion, nothing to roll back to, artifact fails its "
    "check), or the champion cannot score the inputs this API serves",
    413: "Body larger than the configured limit, or scoring it exceeds the time budget",
    415: "Content-Type is not application/json",
    422: "Validation error: every bad field is named in details",
    503: "No champion loaded yet, the registry database is unavailable, or its schema is not "
    "the one this code expects",
}


def _set_max_items(schema: dict[str, Any], prop: str, limit: int) -> None:
    """Publish a configured list limit (``maxItems``) on ``schema.properties[prop]``."""
    node = schema["properties"][prop]
    for branch in [node, *node.get("anyOf", [])]:
        if branch.get("type") == "array":
            branch["maxItems"] = limit


class UndocumentedRoute(RuntimeError):
    """A route has no ``@endpoint`` declaration, so the API contract would be incomplete."""


_VARIABLE = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")
_PATH_PARAMS = {
    "int": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
    "default": {"type": "string"},
}


def _routes(app: Flask) -> list[tuple[str, str, Endpoint, list[dict[str, Any]]]]:
    """(OpenAPI path, method, declaration, path parameters) of every route of ``app``."""
    out = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        spec = spec_of(app.view_functions[rule.endpoint])
        if spec is None:
            raise UndocumentedRoute(f"route {rule.rule} ({rule.endpoint}) has no @endpoint")
        params = []
        for converter, name in _VARIABLE.findall(rule.rule):
            schema = _PATH_PARAMS.get(converter or "default", _PATH_PARAMS["default"])
            params.append({"name": name, "in": "path", "required": True, "schema": dict(schema)})
        path = _VARIABLE.sub(lambda m: "{" + m.group(2) + "}", rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            out.append((path, method.lower(), spec, params))
    return out


def build_openapi(app: Flask, settings: Settings) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``app``'s routes (limits published as ``maxItems``)."""
    routes = _routes(app)
    inputs = {spec.body for _, _, spec, _ in routes if spec.body is not None}
    outputs = {spec.ok for _, _, spec, _ in routes if spec.ok is not None} | {p.ErrorResponse}
    refs, top = models_json_schema(
        [(m, "validation") for m in sorted(inputs, key=lambda m: m.__name__)]
        + [(m, "serialization") for m in sorted(outputs, key=lambda m: m.__name__)],
        ref_template=REF,
    )
    schemas = copy.deepcopy(top.get("$defs", {}))

    def ref(model: type[BaseModel], mode: str) -> dict[str, str]:
        return dict(refs[(model, mode)])

    def name_of(model: type[BaseModel], mode: str) -> str:
        return ref(model, mode)["$ref"].rsplit("/", 1)[-1]

    if p.BatchRequest in inputs:
        batch = schemas[name_of(p.BatchRequest, "validation")]
        _set_max_items(batch, "customers", settings.max_batch)
    if p.ScoreRequest in inputs or p.BatchRequest in inputs:
        one = schemas[name_of(p.ScoreRequest, "validation")]
        _set_max_items(one, "transactions", settings.max_transactions)
    request_id_header = {
        "X-Request-ID": {
            "description": "The server's id of this request (also in the prediction log)",
            "schema": {"type": "string"},
        }
    }
    error_ref = ref(p.ErrorResponse, "serialization")
    paths: dict[str, Any] = {}
    for path, method, spec, params in routes:
        ok_schema = spec.ok_schema if spec.ok is None else ref(spec.ok, "serialization")
        responses: dict[str, Any] = {
            "200": {
                "description": "OK",
                "headers": request_id_header,
                "content": {spec.media: {"schema": ok_schema}},
            }
        }
        for code in sorted(set(spec.errors)):
            responses[str(code)] = {
                "description": ERROR_TEXT[code],
                "headers": request_id_header,
                "content": {"application/json": {"schema": error_ref}},
            }
        operation: dict[str, Any] = {
            "operationId": spec.op,
            "summary": spec.summary,
            "tags": [spec.tag],
            "responses": responses,
        }
        if spec.body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": ref(spec.body, "validation")}},
            }
        if params:
            operation["parameters"] = params
        if spec.admin:
            operation["security"] = [{"bearerAuth": []}]
        paths.setdefault(path, {})[method] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Bati Bank credit scoring API",
            "version": "1.0.0",
            "description": (
                "Real-time credit risk scores for buy-now-pay-later on Xente transactions, "
                f"served from the model registry's champion of {settings.model_name!r}. Every "
                'error has the shape {"error": {"code", "message", "details"}}; a request '
                "id travels in X-Request-ID. Limits: body "
                f"{settings.max_body_bytes} bytes, {settings.max_batch} customers per batch, "
                f"{settings.max_transactions} transactions per customer."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The admin token (env BATI_ADMIN_TOKEN)",
                }
            },
        },
    }


# -------------------------------------------------------------------------------------------
# Docs page
# -------------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:70rem;color:#1b1b1b}
h1{margin-bottom:.2rem} .op{border:1px solid #ccd;border-radius:6px;margin:1rem 0;padding:.6rem 1rem}
.m{font-weight:bold;text-transform:uppercase;display:inline-block;width:4rem}
.get{color:#0a6} .post{color:#c60} code,pre,textarea{font-family:ui-monospace,monospace;font-size:.85rem}
pre{background:#f5f5f8;padding:.6rem;overflow:auto;max-height:24rem} textarea{width:100%;height:9rem}
table{border-collapse:collapse} td,th{border-bottom:1px solid #eee;padding:.2rem .6rem;text-align:left}
button{margin:.4rem 0} .out{white-space:pre-wrap}
"""

_JS = """
async function send(id, method, path){
  const box=document.getElementById('body-'+id), out=document.getElementById('out-'+id);
  const ver=document.getElementById('ver-'+id), tok=document.getElementById('tok-'+id);
  let url=path; if(ver){url=path.replace('{version}', encodeURIComponent(ver.value));}
  const headers={}; if(box){headers['Content-Type']='application/json';}
  if(tok && tok.value){headers['Authorization']='Bearer '+tok.value;}
  out.textContent='...';
  try{
    const r=await fetch(url,{method:method.toUpperCase(),headers:headers,body:box?box.value:undefined});
    const text=await r.text(); let shown=text;
    try{shown=JSON.stringify(JSON.parse(text),null,2);}catch(e){}
    out.textContent=r.status+' '+r.statusText+'\\n'+shown;
  }catch(e){out.textContent='request failed: '+e;}
}
"""


def _example(doc: dict[str, Any], ref: dict[str, str]) -> str:
    name = ref["$ref"].rsplit("/", 1)[-1]
    schema = doc["components"]["schemas"].get(name, {})
    examples = schema.get("examples")
    if examples:
        return json.dumps(examples[0], indent=2)
    props = schema.get("properties", {})
    sample = {
        k: (v.get("examples") or [""])[0]
        for k, v in props.items()
        if k in schema.get("required", [])
    }
    return json.dumps(sample, indent=2)


def render_docs(doc: dict[str, Any]) -> str:
    """The interactive docs page for ``doc`` (one HTML string, inline CSS and JS only)."""
    e = html.escape
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{e(doc['info']['title'])}</title><style>{_CSS}</style></head><body>",
        f"<h1>{e(doc['info']['title'])}</h1><p>OpenAPI {e(doc['openapi'])} &middot; "
        f"version {e(doc['info']['version'])} &middot; <a href='/openapi.json'>openapi.json</a></p>",
        f"<p>{e(doc['info']['description'])}</p><h2>Endpoints</h2>",
    ]
    n = 0
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            n += 1
            codes = ", ".join(
                f"<b>{e(c)}</b> {e(r.get('description', ''))}" for c, r in op["responses"].items()
            )
            parts.append(
                f"<div class='op' id='{e(op['operationId'])}'><span class='m {e(method)}'>"
                f"{e(method)}</span> <code>{e(path)}</code> &mdash; {e(op['summary'])}"
                f"<p>Responses: {codes}</p>"
            )
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            if any(x.get("name") == "version" for x in op.get("parameters", [])):
                parts.append(f"<label>version <input id='ver-{n}' value='1' size='6'></label> ")
            if op.get("security"):
                parts.append(
                    f"<label>admin token <input id='tok-{n}' type='password' size='30'></label>"
                )
            if body:
                name = body["schema"]["$ref"].rsplit("/", 1)[-1]
                parts.append(
                    f"<p>Body: <a href='#schema-{e(name)}'>{e(name)}</a></p>"
                    f"<textarea id='body-{n}'>{e(_example(doc, body['schema']))}</textarea>"
                )
            parts.append(
                f"<br><button onclick=\"send({n}, '{e(method)}', '{e(path)}')\">Send</button>"
                f"<pre class='out' id='out-{n}'></pre></div>"
            )
    parts.append("<h2>Schemas</h2>")
    for name, schema in doc["components"]["schemas"].items():
        parts.append(
            f"<details id='schema-{e(name)}'><summary><code>{e(name)}</code> "
            f"{e(schema.get('description', '').splitlines()[0] if schema.get('description') else '')}"
            f"</summary><pre>{e(json.dumps(schema, indent=2))}</pre></details>"
        )
    parts.append(f"<script>{_JS}</script></body></html>")
    return "".join(parts)


bp = Blueprint("docs", __name__)
docs_endpoint = endpoints(tag="docs", ok=None)  # every route of this blueprint
OPENAPI_KEY = "bati_openapi"


@bp.get("/openapi.json")
@docs_endpoint(
    op="openapi",
    summary="This OpenAPI 3.1 document",
    ok_schema={"type": "object"},
)
def openapi_json() -> Response:
    """The OpenAPI 3.1 document."""
    return jsonify(live_document())


def live_document() -> dict[str, Any]:
    """The document with its example customer replaced by one of the served snapshot, so the
    documented bodies work as they are (cached per customer)."""
    from api.payloads import EXAMPLE_CUSTOMER
    from api.state import get_state

    doc = current_app.extensions[OPENAPI_KEY]
    served = get_state().holder.current
    customer = next(iter(served.table), None) if served is not None else None
    if customer is None or customer == EXAMPLE_CUSTOMER:
        return doc
    cached = current_app.extensions.get("bati_openapi_live")
    if cached is None or cached[0] != customer:
        text = json.dumps(doc).replace(f'"{EXAMPLE_CUSTOMER}"', json.dumps(customer))
        cached = (customer, json.loads(text))
        current_app.extensions["bati_openapi_live"] = cached
    return cached[1]


@bp.get("/docs")
@docs_endpoint(
    op="docs",
    summary="Interactive documentation page",
    media="text/html",
    ok_schema={"type": "string"},
)
def docs() -> Response:
    """Interactive docs rendered from the OpenAPI document."""
    doc = live_document()
    cached = current_app.extensions.get("bati_docs_html")
    if cached is None or cached[0] is not doc:
        cached = (doc, render_docs(doc))
        current_app.extensions["bati_docs_html"] = cached
    return Response(cached[1], mimetype="text/html")
