"""The ingest path itself, free of any web framework: authenticate → read → parse →
validate → enrich → append. `wsgi.py` calls it for every POST under /v1/."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import IO, Any

from ..errors import BadRequest, PayloadTooLarge, RateLimited, Unauthorized
from ..runtime import Runtime
from ..store.events import EventRow, FailedRow
from ..store.keys import KeyInfo
from .body import MAX_BATCH_BYTES, MAX_BATCH_EVENTS, MAX_MESSAGE_BYTES, parse_json, read_body
from .enrich import Enricher, RequestInfo, client_ip
from .ratelimit import retry_after_seconds
from .spec import SHORT_PATHS, TYPES, InvalidMessage, normalize

_FAILED_BODY_LIMIT = MAX_MESSAGE_BYTES


@dataclass(frozen=True, slots=True)
class Incoming:
    """What ingest needs of an HTTP request."""

    stream: IO[bytes]
    content_length: int | None
    content_encoding: str | None
    authorization: str | None
    remote_addr: str | None
    forwarded_for: str | None
    user_agent: str | None


def key_from_authorization(header: str | None) -> str | None:
    """The write key of an Authorization header: the Basic user, or a Bearer token."""
    if not header:
        return None
    scheme, _, credentials = header.strip().partition(" ")
    scheme = scheme.lower()
    credentials = credentials.strip()
    if scheme == "bearer":
        return credentials or None
    if scheme != "basic":
        return None
    try:
        decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.partition(":")[0] or None


def _resolve(runtime: Runtime, key: Any) -> KeyInfo:
    if not isinstance(key, str) or not key:
        raise Unauthorized("a write key is required (HTTP Basic user or writeKey)",
                           code="missing_key")
    info = runtime.keys.get(key)
    if info is None:
        raise Unauthorized("unknown or revoked write key", code="unknown_key")
    if info.kind == "admin":
        raise Unauthorized("an admin key can't send events; use a public or secret key",
                           code="wrong_key_kind")
    return info


def _failed(info: KeyInfo, received: float, reason: str, body: Any) -> FailedRow:
    text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=True, default=str)
    return FailedRow(info.source_id, info.kind, int(received * 1000), reason[:500],
                     text[:_FAILED_BODY_LIMIT])


def accept(runtime: Runtime, kind: str, request: Incoming) -> dict[str, Any]:
    """Accept one message (track, identify, …) or a batch; return the 200 answer's body.

    Raises an HTTPError (400, 401, 413, 429) or StorageError (503); nothing is stored
    then, except the failed-events rows of an authenticated request.
    """
    message_type = SHORT_PATHS.get(kind, kind)
    is_batch = kind in ("batch", "b", "import")
    if not is_batch and message_type not in TYPES:
        raise BadRequest(f"no ingest route /v1/{kind}", code="unknown_route")
    received = runtime.clock.now()
    header_key = key_from_authorization(request.authorization)
    info = _resolve(runtime, header_key) if header_key else None

    limit = MAX_BATCH_BYTES if is_batch else MAX_MESSAGE_BYTES
    raw = read_body(request.stream, content_length=request.content_length,
                    encoding=request.content_encoding, limit=limit)
    try:
        payload = parse_json(raw)
        if not isinstance(payload, dict):
            raise BadRequest("the body must be a JSON object", code="invalid")
    except BadRequest as exc:
        if info is not None:  # authenticated: keep what was sent, with the reason
            runtime.writer.write((), [_failed(info, received, exc.message,
                                              raw.decode("utf-8", "replace"))])
        raise
    if info is None:
        info = _resolve(runtime, payload.get("writeKey"))

    ip = client_ip(request.remote_addr, request.forwarded_for, runtime.trusted_proxies)
    wait = runtime.limiter.check((info.id, ip))
    if wait:
        raise RateLimited("too many requests; slow down", retry_after=retry_after_seconds(wait))

    req = RequestInfo(ip=ip, user_agent=request.user_agent,
                      received_at=received, batch_sent_at=payload.get("sentAt"))
    rows: list[EventRow] = []
    failed: list[FailedRow] = []
    secrets = runtime.keys.secrets(info.source_id) if info.source_id else []
    enrich = Enricher(info, req, anonymize=runtime.config.anonymize_ip, secrets=secrets)
    suppressions = runtime.suppressions
    blocks = suppressions.blocks if suppressions.active() else None

    if is_batch:
        items = payload.get("batch")
        if not isinstance(items, list):
            reason = "batch must be a list of messages"
            runtime.writer.write((), [_failed(info, received, reason, payload)])
            raise BadRequest(reason, code="invalid")
        if len(items) > MAX_BATCH_EVENTS:
            raise PayloadTooLarge(f"batch has {len(items)} messages; the limit is "
                                  f"{MAX_BATCH_EVENTS}", code="batch_too_large")
        context = payload.get("context")
        integrations = payload.get("integrations")
        batch_context = context if isinstance(context, dict) else None
        batch_integrations = integrations if isinstance(integrations, dict) else None
        batch_key = header_key or payload.get("writeKey")
        for item in items:
            try:
                if isinstance(item, dict) and item.get("writeKey", batch_key) != batch_key:
                    raise InvalidMessage("writeKey differs from the batch's key")
                msg = normalize(item, batch_context=batch_context,
                                batch_integrations=batch_integrations)
                if blocks is not None and blocks(msg):
                    continue  # a forgotten person: not stored, and not said so
                rows.append(enrich(msg))
            except InvalidMessage as err:
                failed.append(_failed(info, received, str(err), item))
        stored = runtime.writer.write(rows, failed)
        return {"success": True, "stored": stored, "duplicates": len(rows) - stored,
                "failed": len(failed)}

    try:
        msg = normalize(payload, expected_type=message_type)
        if blocks is None or not blocks(msg):
            rows.append(enrich(msg))
    except InvalidMessage as err:
        runtime.writer.write((), [_failed(info, received, str(err), payload)])
        raise BadRequest(str(err), code="invalid_message") from None
    stored = runtime.writer.write(rows) if rows else 0
    return {"success": True, "stored": stored, "duplicates": len(rows) - stored}
