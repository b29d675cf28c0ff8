"""The `google_ads` destination: a Customer Match user list (Google Ads API, REST).

Settings (`[audiences.NAME]`, destination = "google_ads"):
    customer_id        the Google Ads account (123-456-7890 or 1234567890)
    user_list_id       the Customer Match list's id
    developer_token    { env = "GOOGLE_ADS_DEVELOPER_TOKEN" }
    login_customer_id  the manager account, when access goes through one (optional)
    access_token       an OAuth2 token … or client_id, client_secret and refresh_token,
                       exchanged for tokens as they expire
    api_version        default v26;  base_url  default https://googleads.googleapis.com
    batch_size         operations per request (at most 10,000);  timeout  seconds

Each batch is one OfflineUserDataJob: `offlineUserDataJobs:create` (type
CUSTOMER_MATCH_USER_LIST, with the EEA consent fields ad_user_data and
ad_personalization GRANTED on jobs that add people: Kanal only adds people who granted
consent category `advertising`), `:addOperations` with partial failure on (create or
remove operations, each one person's UserData), then `:run`. A batch counts as
acknowledged once its job runs; one job per batch means a batch cut short by a crash
is sent again as a new job, and never leaves other batches half done.
References:
https://developers.google.com/google-ads/api/docs/remarketing/audience-types/customer-match
https://developers.google.com/google-ads/api/reference/rpc/latest/OfflineUserDataJobService
https://developers.google.com/google-ads/api/reference/rpc/latest/UserIdentifier
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import requests

from .destination import ADD, BatchResult, Destination, Request, Row
from .errors import PermanentError, TransientError
from .http import json_object, request_failed, retry_after, setting_float, setting_int, text
from .person import Person, sha256

MAX_OPERATIONS = 10_000
"""Operations per request. A request may hold at most 100,000 user identifiers and a
UserData at most 20; Kanal sends at most 10 per person, so 10,000 operations stay within
both (https://developers.google.com/google-ads/api/docs/remarketing/audience-types/
customer-match, "Upload considerations")."""
MAX_IDENTIFIERS = 10
_DIGITS = re.compile(r"^\d+$")
# Errors worth trying again (https://developers.google.com/google-ads/api/docs/best-
# practices/error-types): quota, concurrent jobs on one list, Google's internal errors.
_TRANSIENT_STATUSES = frozenset({"RESOURCE_EXHAUSTED", "UNAVAILABLE", "INTERNAL",
                                 "DEADLINE_EXCEEDED", "ABORTED"})
_TRANSIENT_CODES = frozenset({"RESOURCE_EXHAUSTED", "CONCURRENT_MODIFICATION",
                              "INTERNAL_ERROR", "TRANSIENT_ERROR", "DEADLINE_EXCEEDED"})


def _id(settings: Mapping[str, Any], key: str, *, required: bool = True) -> str:
    value = text(settings, key, required=required).replace("-", "")
    if value and not _DIGITS.match(value):
        raise ValueError(f"{key} must be digits (dashes allowed), not {settings.get(key)!r}")
    return value


class GoogleAdsDestination(Destination):
    """Keeps a Google Ads Customer Match list in step (hashed email, phone, address)."""

    name: ClassVar[str] = "google_ads"
    max_batch: ClassVar[int] = MAX_OPERATIONS

    def __init__(self, settings: Mapping[str, Any], *, audience: str,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(settings, audience=audience)
        self.customer_id = _id(settings, "customer_id")
        self.user_list_id = _id(settings, "user_list_id")
        self.login_customer_id = _id(settings, "login_customer_id", required=False)
        self.developer_token = text(settings, "developer_token", required=True)
        self.access_token = text(settings, "access_token") or None
        self.oauth = {k: text(settings, k) for k in ("client_id", "client_secret",
                                                     "refresh_token")}
        if self.access_token is None and not all(self.oauth.values()):
            raise ValueError("set access_token, or client_id, client_secret and "
                             "refresh_token (an OAuth2 refresh token for the Google Ads "
                             "API scope)")
        version = text(settings, "api_version") or "v26"
        base = (text(settings, "base_url") or "https://googleads.googleapis.com").rstrip("/")
        self.api = f"{base}/{version}"
        self.token_url = text(settings, "token_url") or "https://oauth2.googleapis.com/token"
        self.batch_size = setting_int(settings, "batch_size", MAX_OPERATIONS,
                                      high=MAX_OPERATIONS)
        self.timeout = setting_float(settings, "timeout", 30.0)
        self._clock = clock
        self._token: tuple[str, float] | None = None
        self._session = requests.Session()

    # -- rows and requests ---------------------------------------------------------------

    def row(self, person: Person) -> Row | None:
        """hashedEmail and hashedPhoneNumber (E.164 with '+'), trimmed, lower-cased and
        hashed; an addressInfo (hashed first and last name, country code and postal code
        as Google wants them: in clear) when the person has all four."""
        identifiers: list[dict[str, Any]] = [{"hashedEmail": sha256(e)} for e in person.emails]
        identifiers += [{"hashedPhoneNumber": sha256(p)} for p in person.phones]
        if not identifiers:
            return None
        if person.first_name and person.last_name and person.country and person.postal_code:
            identifiers.append({"addressInfo": {
                "hashedFirstName": sha256(person.first_name.strip().lower()),
                "hashedLastName": sha256(person.last_name.strip().lower()),
                "countryCode": person.country,
                "postalCode": "".join(person.postal_code.split())}})
        return {"userIdentifiers": identifiers[:MAX_IDENTIFIERS]}

    def _job(self, action: str) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            "userList": f"customers/{self.customer_id}/userLists/{self.user_list_id}"}
        if action == ADD:
            # Job-level consent applies to every user of the job (CustomerMatchUserList
            # Metadata.consent); everyone Kanal adds granted `advertising`.
            metadata["consent"] = {"adUserData": "GRANTED", "adPersonalization": "GRANTED"}
        return {"job": {"type": "CUSTOMER_MATCH_USER_LIST",
                        "customerMatchUserListMetadata": metadata}}

    @staticmethod
    def _operations(action: str, rows: Sequence[Row]) -> dict[str, Any]:
        verb = "create" if action == ADD else "remove"
        return {"operations": [{verb: dict(r)} for r in rows], "enablePartialFailure": True}

    def requests(self, action: str, rows: Sequence[Row]) -> list[Request]:
        """Create a job, add the batch's operations to it, run it."""
        jobs = f"{self.api}/customers/{self.customer_id}/offlineUserDataJobs"
        job = f"{self.api}/customers/{self.customer_id}/offlineUserDataJobs/{{job}}"
        return [Request("POST", f"{jobs}:create", self._job(action)),
                Request("POST", f"{job}:addOperations", self._operations(action, rows)),
                Request("POST", f"{job}:run", {})]

    # -- sending ---------------------------------------------------------------------------

    def send(self, action: str, rows: Sequence[Row]) -> BatchResult:
        """One job for the batch: create (answers `{resourceName}`), add operations
        (answers `{partialFailureError?, warning?}`: AddOfflineUserDataJobOperations
        Response), run (answers a long-running Operation `{name}`)
        (https://developers.google.com/google-ads/api/rest/reference/rest/latest/
        customers.offlineUserDataJobs)."""
        created = self._post(f"{self.api}/customers/{self.customer_id}/offlineUserDataJobs:"
                             "create", self._job(action))
        job = created.get("resourceName")
        if not isinstance(job, str) or "/offlineUserDataJobs/" not in job:
            raise TransientError(f"Google Ads created no job (answer: {created!r:.200})")
        added = self._post(f"{self.api}/{job}:addOperations", self._operations(action, rows))
        rejected = _partial_failures(added.get("partialFailureError"), len(rows))
        if len(rejected) < len(rows):
            self._post(f"{self.api}/{job}:run", {})
        return BatchResult(rejected=rejected)

    def _headers(self) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self._access_token()}",
                   "developer-token": self.developer_token,
                   "Content-Type": "application/json"}
        if self.login_customer_id:
            headers["login-customer-id"] = self.login_customer_id
        return headers

    def _post(self, url: str, body: Mapping[str, Any]) -> dict[str, Any]:
        for attempt in (1, 2):
            try:
                response = self._session.post(url, json=body, headers=self._headers(),
                                              timeout=self.timeout)
            except requests.RequestException as exc:
                raise request_failed("Google Ads", exc) from None
            with response:
                data = json_object(response)
                if 200 <= response.status_code < 300:
                    return data
                if response.status_code == 401 and self.access_token is None and attempt == 1:
                    self._token = None  # expired early or revoked: get a fresh one once
                    continue
                raise _error(response, data)
        raise PermanentError("Google Ads refused the refreshed access token")  # unreachable

    def _access_token(self) -> str:
        if self.access_token is not None:
            return self.access_token
        now = self._clock()
        if self._token is not None and self._token[1] > now:
            return self._token[0]
        # https://developers.google.com/identity/protocols/oauth2/web-server#offline
        try:
            response = self._session.post(self.token_url, timeout=self.timeout, data={
                "grant_type": "refresh_token", **self.oauth})
        except requests.RequestException as exc:
            raise request_failed("Google OAuth", exc) from None
        with response:
            data = json_object(response)
            token = data.get("access_token")
            if response.status_code == 200 and isinstance(token, str) and token:
                expires = data.get("expires_in")
                life = float(expires) if isinstance(expires, int | float) else 3600.0
                self._token = (token, now + max(life - 60, 30))
                return token
            message = (f"Google OAuth answered {response.status_code}: "
                       f"{data.get('error_description') or data.get('error') or ''}")
            if response.status_code == 429 or response.status_code >= 500:
                raise TransientError(message, retry_after=retry_after(response))
            raise PermanentError(message + " (check client_id, client_secret, refresh_token)")

    def close(self) -> None:
        """Close pooled connections."""
        self._session.close()


def _failures(status: Any) -> list[dict[str, Any]]:
    """The GoogleAdsFailure errors of a google.rpc.Status (error or partial failure)."""
    out: list[dict[str, Any]] = []
    details = status.get("details") if isinstance(status, dict) else None
    for detail in details if isinstance(details, list) else []:
        if isinstance(detail, dict) and isinstance(detail.get("errors"), list):
            out += [e for e in detail["errors"] if isinstance(e, dict)]
    return out


def _partial_failures(status: Any, size: int) -> dict[int, str]:
    """{operation index: why} of a partialFailureError (errors[].location.
    fieldPathElements: operations[index]); an error without an index refuses none
    (https://developers.google.com/google-ads/api/docs/best-practices/partial-failures)."""
    rejected: dict[int, str] = {}
    for error in _failures(status):
        path = (error.get("location") or {}).get("fieldPathElements") or []
        index = next((p.get("index") for p in path if isinstance(p, dict)
                      and p.get("fieldName") == "operations"), None)
        if isinstance(index, int) and 0 <= index < size:
            code = "/".join(f"{k}={v}" for k, v in (error.get("errorCode") or {}).items())
            rejected[index] = f"{code}: {error.get('message', '')}".strip(": ")
    return rejected


def _retry_delay(errors: list[dict[str, Any]]) -> float | None:
    for error in errors:
        delay = ((error.get("details") or {}).get("quotaErrorDetails") or {}).get("retryDelay")
        if isinstance(delay, str) and delay.endswith("s"):
            try:
                return float(delay[:-1])
            except ValueError:
                continue
    return None


def _error(response: requests.Response, data: Mapping[str, Any]) -> Exception:
    """An error answer `{"error": {code, message, status, details: [GoogleAdsFailure]}}`
    as Transient or PermanentError
    (https://developers.google.com/google-ads/api/rest/common/errors; quota errors carry
    quotaErrorDetails.retryDelay: https://developers.google.com/google-ads/api/docs/
    best-practices/quotas)."""
    found = data.get("error")
    error: dict[str, Any] = found if isinstance(found, dict) else {}
    failures = _failures(error)
    codes = {str(v) for f in failures for v in (f.get("errorCode") or {}).values()}
    detail = "; ".join(str(f.get("message")) for f in failures[:3] if f.get("message")) \
        or str(error.get("message") or response.text[:200])
    status = str(error.get("status") or "")
    message = f"Google Ads answered {response.status_code} {status}: {detail}".replace(
        "  ", " ")
    if (response.status_code == 429 or response.status_code >= 500
            or status in _TRANSIENT_STATUSES or codes & _TRANSIENT_CODES):
        return TransientError(message, retry_after=_retry_delay(failures)
                              or retry_after(response))
    return PermanentError(message)
