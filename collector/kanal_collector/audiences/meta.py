"""The `meta` destination: a customer-file Custom Audience (Marketing API).

Settings (`[audiences.NAME]`, destination = "meta"):
    audience_id    the Custom Audience's id (created in Ads Manager or with the API)
    access_token   a system user's token with ads_management: { env = "META_TOKEN" }
    app_secret     the app's secret: sends appsecret_proof with every call (optional)
    api_version    default v25.0;  base_url  default https://graph.facebook.com
    batch_size     rows per request (at most 10,000, Meta's limit);  timeout  seconds

Adding is `POST /{audience_id}/users`, removing `DELETE /{audience_id}/users`, each with
`payload = {"schema": [...], "data": [[...], ...]}`: one row per person, every value
SHA-256 hashed after Meta's normalisation (normalise.py).
Reference: https://developers.facebook.com/docs/marketing-api/reference/custom-audience/users
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import requests

from .destination import ADD, BatchResult, Destination, Request, Row
from .errors import PermanentError, TransientError
from .http import json_object, request_failed, retry_after, setting_float, setting_int, text
from .normalise import letters, phone_digits, postal_code, state_code
from .person import Person, sha256

# The columns Kanal fills, in the order they are sent; a batch's schema holds those any
# of its rows has (a missing value is sent as "", which Meta accepts in multi-key rows).
SCHEMA = ("EMAIL", "PHONE", "FN", "LN", "CT", "ST", "ZIP", "COUNTRY", "DOBY", "DOBM",
          "DOBD", "GEN")
MAX_ROWS = 10_000
"""Rows per request: "You can add … only a maximum of 10000 at a time" (reference above)."""
# Error codes worth trying again: temporary (1, 2) and rate limits (4 app, 17 user,
# 32 page, 341 application limit, 613 calls per ad account, 80003 custom audience
# calls, 80004 ads management calls).
# https://developers.facebook.com/docs/marketing-api/error-reference
# https://developers.facebook.com/docs/marketing-api/overview/rate-limiting
TRANSIENT_CODES = frozenset({1, 2, 4, 17, 32, 341, 613, 80003, 80004})


class MetaDestination(Destination):
    """Keeps a Meta Custom Audience in step (hashed email, phone, name, address, …)."""

    name: ClassVar[str] = "meta"
    max_batch: ClassVar[int] = MAX_ROWS

    def __init__(self, settings: Mapping[str, Any], *, audience: str) -> None:
        super().__init__(settings, audience=audience)
        self.audience_id = text(settings, "audience_id", required=True)
        if not self.audience_id.isdigit():
            raise ValueError(f"audience_id must be the Custom Audience's numeric id, not "
                             f"{self.audience_id!r}")
        self.access_token = text(settings, "access_token", required=True)
        self.app_secret = text(settings, "app_secret") or None
        version = text(settings, "api_version") or "v25.0"
        base = (text(settings, "base_url") or "https://graph.facebook.com").rstrip("/")
        self.url = f"{base}/{version}/{self.audience_id}/users"
        self.batch_size = setting_int(settings, "batch_size", MAX_ROWS, high=MAX_ROWS)
        self.timeout = setting_float(settings, "timeout", 30.0)
        self._session = requests.Session()

    def row(self, person: Person) -> Row | None:
        """EMAIL, PHONE (digits with the country code, no '+'), FN, LN, CT, ST, ZIP,
        COUNTRY, DOBY/DOBM/DOBD and GEN, each normalised as Meta documents and hashed."""
        country = person.country
        values: dict[str, str | None] = {
            "EMAIL": person.emails[0] if person.emails else None,
            "PHONE": phone_digits(person.phones[0]) if person.phones else None,
            "FN": letters(person.first_name) if person.first_name else None,
            "LN": letters(person.last_name) if person.last_name else None,
            "CT": letters(person.city) if person.city else None,
            "ST": state_code(person.state, country) if person.state else None,
            "ZIP": postal_code(person.postal_code, country) if person.postal_code else None,
            "COUNTRY": country.lower() if country else None,
            "DOBY": f"{person.birthday:%Y}" if person.birthday else None,
            "DOBM": f"{person.birthday:%m}" if person.birthday else None,
            "DOBD": f"{person.birthday:%d}" if person.birthday else None,
            "GEN": person.gender,
        }
        if not values["EMAIL"] and not values["PHONE"]:
            return None
        return {k: sha256(v) for k, v in values.items() if v}

    def payload(self, rows: Sequence[Row]) -> dict[str, Any]:
        """The `payload` parameter of a batch."""
        schema = [k for k in SCHEMA if any(k in r for r in rows)]
        return {"schema": schema, "data": [[str(r.get(k, "")) for k in schema] for r in rows]}

    def requests(self, action: str, rows: Sequence[Row]) -> list[Request]:
        """One POST (add) or DELETE (remove) of /{audience_id}/users."""
        return [Request("POST" if action == ADD else "DELETE", self.url,
                        {"payload": self.payload(rows)})]

    def send(self, action: str, rows: Sequence[Row]) -> BatchResult:
        """Send one batch; Meta answers `{audience_id, session_id, num_received,
        num_invalid_entries, invalid_entry_samples}`
        (https://developers.facebook.com/docs/marketing-api/reference/custom-audience/users,
        "Updating": return type)."""
        request = self.requests(action, rows)[0]
        form = {"payload": json.dumps(request.body["payload"], separators=(",", ":")),
                "access_token": self.access_token}
        if self.app_secret:
            # https://developers.facebook.com/docs/graph-api/securing-requests
            form["appsecret_proof"] = hmac.new(self.app_secret.encode(),
                                               self.access_token.encode(),
                                               hashlib.sha256).hexdigest()
        try:
            response = self._session.request(request.method, self.url, data=form,
                                             timeout=self.timeout)
        except requests.RequestException as exc:
            raise request_failed("Meta", exc) from None
        with response:
            data = json_object(response)
            if response.status_code == 200 and "error" not in data:
                return _result(data, len(rows))
            raise _error(response, data)

    def close(self) -> None:
        """Close pooled connections."""
        self._session.close()


def _result(data: Mapping[str, Any], sent: int) -> BatchResult:
    invalid = data.get("num_invalid_entries") or 0
    received = data.get("num_received")
    notes = []
    if isinstance(received, int) and received != sent:
        notes.append(f"Meta received {received} of {sent} rows")
    if isinstance(invalid, int) and invalid > 0:
        samples = data.get("invalid_entry_samples") or {}
        shown = "; ".join(f"{k}: {v}" for k, v in list(dict(samples).items())[:3]) \
            if isinstance(samples, Mapping) else ""
        notes.append(f"Meta found {invalid} invalid row(s)" + (f" ({shown})" if shown else ""))
    return BatchResult(note="; ".join(notes) or None)


def _business_wait(response: requests.Response) -> float | None:
    """Seconds until access is regained, from X-Business-Use-Case-Usage:
    `{business_id: [{type, call_count, total_cputime, total_time,
    estimated_time_to_regain_access (minutes)}]}`
    (https://developers.facebook.com/docs/graph-api/overview/rate-limiting)."""
    raw = response.headers.get("X-Business-Use-Case-Usage")
    try:
        usage = json.loads(raw) if raw else {}
    except ValueError:
        return None
    minutes = [entry.get("estimated_time_to_regain_access", 0)
               for entries in (usage.values() if isinstance(usage, dict) else [])
               if isinstance(entries, list) for entry in entries if isinstance(entry, dict)]
    waits = [float(m) * 60 for m in minutes if isinstance(m, int | float) and m > 0]
    return max(waits) if waits else None


def _error(response: requests.Response, data: Mapping[str, Any]) -> Exception:
    """A Graph API error answer `{"error": {message, type, code, error_subcode,
    error_user_msg, is_transient, fbtrace_id}}` as Transient or PermanentError
    (https://developers.facebook.com/docs/graph-api/guides/error-handling)."""
    found = data.get("error")
    error: dict[str, Any] = found if isinstance(found, dict) else {}
    code = error.get("code")
    sub = error.get("error_subcode")
    detail = str(error.get("error_user_msg") or error.get("message") or response.text[:200])
    label = f"{code}/{sub}" if sub else f"{code}"
    message = f"Meta answered {response.status_code} (error {label}): {detail}"
    if (code in TRANSIENT_CODES or error.get("is_transient") is True
            or response.status_code == 429 or response.status_code >= 500):
        return TransientError(message, retry_after=_business_wait(response)
                              or retry_after(response))
    return PermanentError(message)
