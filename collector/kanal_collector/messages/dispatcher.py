"""The dispatcher: a worker that takes due outbox rows and hands them to channels.

One row goes through three short transactions, and the provider call sits between
the second and the third, outside any transaction:

1. claim (BEGIN IMMEDIATE): due `queued` rows become `sending` under a fresh claim
   token, as many per channel as its rate limit allows;
2. prepare: the person is read again; consent, subscription (marketing) and
   suppression (always) are checked again; quiet hours, frequency caps and the daily
   budget (controls.py) may defer the row (back to `queued`, due later) or skip it;
   the message is rendered, the `before_send` hooks run, and the row is marked as
   being sent (`send_token`) — or it ends `skipped` / `failed` here;
3. the channel's `send`; then record: `sent` with the provider's id, a retry with
   exponential backoff and jitter for a TransientError (`failed` after `max_attempts`),
   `failed` for a PermanentError, each with its delivery event in the same transaction.

Never twice: a row left in `sending` by a dispatcher that is gone (its process died)
becomes `in_doubt` if the provider may have been called (its send_token is its claim),
unless the channel takes an idempotency key, in which case it is sent again with the
same key. A row that never reached the provider is simply queued again.

Several nodes. On PostgreSQL every `kanal serve` node runs a dispatcher: claims take
rows with FOR UPDATE SKIP LOCKED and no writer lock, so the nodes claim side by side and
the provider calls, the slow part, run in parallel; prepare and record keep the writer
lock, so the checks of caps and budgets see every row another node has prepared. A
dispatcher's owner is its node's id, and a claim belongs to a dispatcher that is gone
when its node's lease (store/leases.py) has expired: the survivors settle such rows
within `recover_every` seconds of that (a third of the lease time in `kanal serve`).
"""

from __future__ import annotations

import hashlib
import logging
import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from ..channels.base import (
    Channel,
    ChannelError,
    OutgoingMessage,
    PermanentError,
    RecipientGone,
    SendResult,
    TransientError,
)
from ..channels.plugins import (
    PULL_CHANNELS,
    build_channels,
    close_channels,
    configured_channels,
)
from ..clock import Clock
from ..config import Config
from ..store import deliverability as deliverability_store
from ..store import leases, meta
from ..store import outbox as store
from ..store import profiles as profile_store
from ..store.connection import DB_ERRORS, OUTBOX, Connection
from ..store.db import Database, transaction
from ..store.events import append_events
from . import hooks
from .catalog import Catalog, messages_dir
from .controls import DEFER, DEFERRED, SEND, SKIPPED, Controls, Decision, decide
from .delivery import delivery_event
from .eligibility import NO_CONTENT, NO_PROFILE, ChannelInfo, Person, Policy, check, load_person
from .errors import MessageError, SkipSend
from .languages import format_language
from .linkguard import LinkPolicy
from .renderer import Trust

log = logging.getLogger("kanal.dispatcher")

IN_DOUBT_REASON = ("interrupted between the provider call and recording it; check with "
                   "the provider, then `kanal outbox retry ID` if it was not sent")


class TokenBucket:
    """`rate` sends a second with bursts of `burst`, on an injected clock (seconds)."""

    def __init__(self, rate: float, burst: float | None, now: float) -> None:
        if rate <= 0:
            raise ValueError("rate_per_second must be positive")
        self.rate = rate
        self.burst = max(1.0, burst if burst is not None else rate)
        self.tokens = self.burst
        self.last = now

    def available(self, now: float) -> int:
        """Whole tokens available now."""
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.last) * self.rate)
        self.last = max(self.last, now)
        return int(self.tokens)

    def take(self, n: int, now: float) -> None:
        """Spend `n` tokens (after `available`)."""
        self.available(now)
        self.tokens -= n


@dataclass(frozen=True)
class Settings:
    """Dispatcher settings, from `[messages]` in kanal.toml."""

    batch_size: int = 50
    max_attempts: int = 8
    backoff_base: float = 30.0
    backoff_max: float = 6 * 3600.0
    stale_after: float = 900.0
    """A claim of another dispatcher this old (seconds) is treated as a crashed one."""

    @classmethod
    def from_config(cls, config: Config) -> Settings:
        """batch_size, max_attempts, backoff_base, backoff_max, stale_after."""
        section = config.section("messages")
        out = cls()
        try:
            return cls(
                batch_size=int(section.get("batch_size", out.batch_size)),
                max_attempts=int(section.get("max_attempts", out.max_attempts)),
                backoff_base=float(section.get("backoff_base", out.backoff_base)),
                backoff_max=float(section.get("backoff_max", out.backoff_max)),
                stale_after=float(section.get("stale_after", out.stale_after)),
            )
        except (TypeError, ValueError) as exc:
            raise ValueError(f"[messages]: {exc}") from None


def provider_key(row: store.OutboxRow, installation: str) -> str:
    """The idempotency key handed to providers: stable per row, safe in any header, and
    unique per installation (`installation` is the database's id, store/meta.py): the
    rows' own keys (`journey:cart:1:1`) repeat from one database to the next, and a
    provider shared by two shops must not drop one's message as the other's copy."""
    digest = hashlib.sha256(f"{installation}:{row.idempotency_key}".encode()).hexdigest()
    return f"kanal-{digest[:32]}"


@dataclass
class _Prepared:
    row: store.OutboxRow
    channel: Channel
    person: Person
    message: OutgoingMessage


class Dispatcher:
    """Delivers due outbox rows through channels (a Worker: `run_once` → rows handled)."""

    name = "dispatcher"
    shared = True
    """Runs on every node (claims keep the nodes apart), not only the lease holder."""
    wakes_on = (OUTBOX,)
    """Woken by other processes' hints that rows were queued."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        channels: Mapping[str, Channel],
        catalog: Catalog,
        *,
        policy: Policy | None = None,
        settings: Settings | None = None,
        before_send: Sequence[hooks.BeforeSend] | None = None,
        owner: str | None = None,
        rng: random.Random | None = None,
        controls: Controls | None = None,
        template_globals: Sequence[hooks.TemplateGlobals] = (),
        paused: Sequence[str] = (),
        link_policy: LinkPolicy | None = None,
        recover_every: float | None = None,
    ) -> None:
        self.db = db
        self.link_policy = link_policy or LinkPolicy()
        """Where links untrusted data builds may point ([tracking] link_hosts)."""
        self.paused = frozenset(paused)
        """Configured channels switched off (`enabled = false`): their rows wait."""
        self.clock = clock
        self.channels = dict(channels)
        self.catalog = catalog
        self.policy = policy or Policy()
        self.settings = settings or Settings()
        self.controls = controls or Controls()
        if self.settings.batch_size < 1 or self.settings.max_attempts < 1:
            raise ValueError("batch_size and max_attempts must be at least 1")
        self.before_send = list(hooks.before_send if before_send is None else before_send)
        self.template_globals = list(template_globals)
        self.owner = owner or f"dispatcher:{uuid.uuid4().hex[:12]}"
        self.recover_every = (min(60.0, self.settings.stale_after) if recover_every is None
                              else recover_every)
        """Seconds between looks for rows left in `sending` by dispatchers that are gone."""
        self.rng = rng or random.Random()
        now = clock.now()
        self._buckets: dict[str, TokenBucket] = {}
        for name, channel in self.channels.items():
            rate = channel.settings.get("rate_per_second") if channel.settings else None
            if rate:
                self._buckets[name] = TokenBucket(float(rate),
                                                  channel.settings.get("rate_burst"), now)
        self._conn: Connection | None = None
        self._recovered_at: float | None = None
        self._warned: set[str] = set()
        self._installation_id: str | None = None

    # -- the worker ---------------------------------------------------------------------

    def run_once(self) -> int:
        """Recover crashed sends when due, then claim and deliver one batch."""
        conn = self._connection()
        now = self.clock.now()
        if self._recovered_at is None or now - self._recovered_at >= self.recover_every:
            self.recover()
        self.catalog.refresh()
        claimed = self._claim(conn)
        for row in claimed:
            self._deliver(conn, row)
        return len(claimed)

    def drain(self, limit: int = 10_000) -> int:
        """Run until nothing is due now (tests, `kanal outbox dispatch`); rows handled."""
        total = 0
        while total < limit and (n := self.run_once()):
            total += n
        return total

    def close(self) -> None:
        """Close the connection and the channels."""
        close_channels(self.channels.values())
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _installation(self, conn: Connection) -> str:
        """The database's id (inside the caller's write transaction the first time)."""
        if self._installation_id is None:
            self._installation_id = meta.installation_id(conn)
        return self._installation_id

    def _connection(self) -> Connection:
        if self._conn is None:
            self._conn = self.db.connect()
        return self._conn

    # -- recovery -----------------------------------------------------------------------

    def recover(self) -> int:
        """Settle rows other dispatchers left in `sending`; returns how many.

        A row is settled when its dispatcher is gone: its owner is not a node whose
        lease is current (a dispatcher outside `kanal serve` holds none: every other
        owner counts as gone when it starts), or its claim is older than `stale_after`.
        Not yet handed to the provider → queued again; maybe handed → `in_doubt`, or
        queued again with the same idempotency key when the channel takes one.
        """
        conn = self._connection()
        now = self.clock.now()
        now_ms = int(now * 1000)
        before = now_ms - int(self.settings.stale_after * 1000)
        done = 0
        with transaction(conn):
            alive = leases.live_nodes(conn, now)
            for row in store.orphans(conn, not_owner=self.owner, alive=alive,
                                     claimed_before=before):
                assert row.claim_token is not None
                channel = self.channels.get(row.channel or "")
                if row.send_token != row.claim_token:
                    store.release(conn, [row.id], row.claim_token, next_attempt_at=now_ms,
                                  now=now_ms)
                elif (channel is not None and channel.supports_idempotency_key
                      and row.attempts < self.settings.max_attempts):
                    log.warning("outbox %s was interrupted mid-send; retrying with the same "
                                "idempotency key", row.id)
                    store.mark_retry(conn, row.id, row.claim_token, now=now_ms,
                                     reason="interrupted; retried with the same "
                                            "idempotency key", next_attempt_at=now_ms)
                else:
                    log.warning("outbox %s was interrupted mid-send: in doubt", row.id)
                    store.mark_final(conn, row.id, row.claim_token, "in_doubt",
                                     IN_DOUBT_REASON, now_ms)
                done += 1
        self._recovered_at = now
        return done

    # -- claim --------------------------------------------------------------------------

    def _claim(self, conn: Connection) -> list[store.OutboxRow]:
        now = self.clock.now()
        now_ms = int(now * 1000)
        token = uuid.uuid4().hex
        claimed: list[store.OutboxRow] = []
        with transaction(conn, claim=True):
            for name in sorted(store.due_channels(conn, now_ms)):
                if name in PULL_CHANNELS:
                    continue  # the snippet fetches these (onsite/pull.py)
                if name not in self.channels:
                    if name in self.paused:
                        if name not in self._warned:
                            self._warned.add(name)
                            log.warning("outbox rows wait for channel %r, which is "
                                        "switched off (enabled = false)", name)
                        continue
                    # The channel is gone from the config (a journey loaded before it
                    # went): fail its rows visibly rather than keep them forever.
                    failed = store.fail_channel(
                        conn, name, now_ms, f"no channel named {name!r} is configured "
                        f"([channels.{name}] in kanal.toml); `kanal outbox retry ID "
                        "--failed` once it is")
                    log.error("%d outbox row(s) failed: no channel named %r is configured",
                              failed, name)
                    continue
                limit = self.settings.batch_size - len(claimed)
                if limit <= 0:
                    break
                bucket = self._buckets.get(name)
                if bucket is not None:
                    limit = min(limit, bucket.available(now))
                rows = store.claim(conn, name, now_ms, limit, token=token, owner=self.owner)
                if bucket is not None:
                    bucket.take(len(rows), now)
                claimed.extend(rows)
        # Highest priority first across channels too: the budget check counts the
        # person's higher-priority rows still queued, not those claimed in this batch,
        # so those must be settled before a lower one is looked at.
        claimed.sort(key=lambda r: (-r.priority, r.next_attempt_at, r.id))
        return claimed

    # -- one row ------------------------------------------------------------------------

    def _deliver(self, conn: Connection, row: store.OutboxRow) -> None:
        assert row.claim_token is not None and row.channel is not None
        token = row.claim_token
        try:
            prepared = self._prepare(conn, row)
        except (MessageError, ChannelError) as exc:
            self._settle_failed(conn, row, token, f"{exc}")
            return
        except DB_ERRORS:
            # The database failed before the provider call: the send certainly didn't
            # happen, so give the row back rather than leave it to recovery.
            self._give_back(conn, row, token)
            raise
        except Exception as exc:
            log.exception("preparing outbox %s failed", row.id)
            self._settle_failed(conn, row, token, f"before_send failed: {exc!r}")
            return
        if prepared is None:
            return
        try:
            result = prepared.channel.send(prepared.message)
        except TransientError as exc:
            self._record_transient(conn, prepared, exc)
        except RecipientGone as exc:
            # The event names the identity, so the profiles step removes it (profiles
            # rebuild too): nothing is sent to it again.
            self._record_failed(conn, prepared, f"permanent: {exc}", gone=True)
        except PermanentError as exc:
            self._record_failed(conn, prepared, f"permanent: {exc}")
        except Exception as exc:
            # A plugin bug or an unwrapped network error: the provider may or may not
            # have taken the message.
            log.exception("channel %s raised on outbox %s", row.channel, row.id)
            if prepared.channel.supports_idempotency_key:
                self._record_transient(conn, prepared, TransientError(repr(exc)))
            else:
                with transaction(conn):
                    store.mark_final(conn, row.id, token, "in_doubt",
                                     f"channel raised {exc!r}", self._now_ms())
        else:
            self._record_sent(conn, prepared, result)

    def _prepare(self, conn: Connection, row: store.OutboxRow) -> _Prepared | None:
        assert row.claim_token is not None and row.channel is not None
        token = row.claim_token
        channel = self.channels[row.channel]
        now_ms = self._now_ms()
        with transaction(conn):
            installation = self._installation(conn)
            person = load_person(conn, row.profile_id)
            if person is None:
                store.mark_final(conn, row.id, token, "skipped", NO_PROFILE, now_ms)
                return None
            message = self.catalog.get(row.message)
            if not message.has_content(channel.kind):
                store.mark_final(conn, row.id, token, "failed",
                                 f"{NO_CONTENT}: message {row.message!r} has no "
                                 f"{channel.kind} content", now_ms)
                return None
            info = ChannelInfo(row.channel, channel.kind, channel.recipient_identity)
            topic = message.topic or row.topic
            recipient, why = check(conn, person, info, kind=row.kind, topic=topic,
                                   policy=self.policy)
            if why is not None or recipient is None:
                store.mark_final(conn, row.id, token, "skipped", why or "no recipient", now_ms)
                return None
            decision = decide(conn, row, person, row.channel, now_ms, self.controls,
                              channel_kind=channel.kind, recipient=recipient)
            if decision.action != SEND:
                self._hold(conn, row, token, decision, now_ms)
                return None
            target = hooks.RenderTarget(person.profile_id, person.traits, row.data, now_ms,
                                        outbox_id=row.id, message=row.message,
                                        journey=row.journey)
            extras = [make(conn, target) for make in self.template_globals]
            functions: dict[str, Any] = {}
            for extra in extras:
                functions.update(extra.globals())
            try:
                rendered = message.render(
                    channel.kind, traits=person.traits, profile=person.template_profile(),
                    data=row.data, language=person.computed.get("language"),
                    channel=row.channel, functions=functions,
                    trust=Trust(self.link_policy, row.untrusted, person.untrusted_traits))
            except SkipSend as exc:
                store.mark_final(conn, row.id, token, "skipped", str(exc), now_ms)
                return None
            if not store.prepare(conn, row.id, token, recipient=recipient,
                                 language=rendered.language, topic=message.topic,
                                 now=now_ms):
                return None  # the claim was settled by a recovery meanwhile
            for extra in extras:
                extra.record()
            # Warm-up ramps and throttles count what is handed to the provider.
            self.controls.sending.count(conn, channel=row.channel, channel_kind=channel.kind,
                                        recipient=recipient, now_ms=now_ms)
            row = replace(row, recipient=recipient, language=rendered.language, topic=topic,
                          profile_id=person.profile_id, send_token=token)
            content: dict[str, Any] = dict(rendered.content)
            for hook in self.before_send:
                content = hook(conn, row, content)
            headers = content.pop("headers", None) or {}
            envelope = content.pop("envelope_from", None)
            if channel.kind == "email":  # RFC 3282: the language the reader gets
                headers = {"Content-Language": format_language(rendered.language),
                           **headers}
        outgoing = OutgoingMessage(
            outbox_id=row.id, idempotency_key=provider_key(row, installation),
            recipient=recipient,
            content=content, headers={str(k): str(v) for k, v in dict(headers).items()},
            metadata={"message": row.message, "kind": row.kind, "topic": topic,
                      "journey": row.journey, "step": row.step,
                      "profile_id": person.profile_id, "language": rendered.language,
                      "attempt": row.attempts, "channel": row.channel,
                      **({"envelope_from": str(envelope)} if envelope else {})},
        )
        return _Prepared(row, channel, person, outgoing)

    def _hold(self, conn: Connection, row: store.OutboxRow, token: str,
              decision: Decision, now_ms: int) -> None:
        """Defer or skip a row a control held back, and log why (in the caller's tx)."""
        assert decision.reason is not None
        if decision.action == DEFER:
            assert decision.until_ms is not None
            done = store.defer(conn, row.id, token, until=decision.until_ms,
                               reason=decision.reason, now=now_ms)
            what = DEFERRED
        else:
            done = store.mark_final(conn, row.id, token, "skipped", decision.reason, now_ms)
            what = SKIPPED
        if done:
            store.log_decision(conn, row.id, now_ms, what, decision.detail())

    # -- outcomes -----------------------------------------------------------------------

    def _record_sent(self, conn: Connection, p: _Prepared, result: SendResult) -> None:
        now_ms = self._now_ms()
        provider_id = result.provider_id if result is not None else None
        with transaction(conn):
            if store.mark_sent(conn, p.row.id, self._token(p), provider_id=provider_id,
                               now=now_ms):
                self._event(conn, p, delivered=True, now_ms=now_ms,
                            detail={"provider_id": provider_id})
                if p.channel.kind == "email":  # the deliverability report's denominator
                    deliverability_store.add_daily(
                        conn, deliverability_store.day_of(now_ms), p.row.channel or "",
                        p.row.journey, deliverability_store.domain_of(p.row.recipient),
                        sent=1)
            else:
                log.error("outbox %s was sent but its claim was settled meanwhile", p.row.id)

    def _record_transient(self, conn: Connection, p: _Prepared,
                          exc: TransientError) -> None:
        attempts = p.row.attempts
        if attempts >= self.settings.max_attempts:
            self._record_failed(conn, p, f"gave up after {attempts} attempts: {exc}")
            return
        delay = self.backoff(attempts, exc.retry_after)
        now_ms = self._now_ms()
        with transaction(conn):
            store.mark_retry(conn, p.row.id, self._token(p), reason=f"transient: {exc}",
                             next_attempt_at=now_ms + int(delay * 1000), now=now_ms)

    def _record_failed(self, conn: Connection, p: _Prepared, reason: str, *,
                       gone: bool = False) -> None:
        now_ms = self._now_ms()
        detail: dict[str, Any] = {"reason": reason}
        if gone and p.channel.recipient_identity:
            detail.update(recipient_gone=True, identity_kind=p.channel.recipient_identity,
                          identity=p.message.recipient)
        with transaction(conn):
            if store.mark_final(conn, p.row.id, self._token(p), "failed", reason, now_ms):
                self._event(conn, p, delivered=False, now_ms=now_ms, detail=detail)

    def _settle_failed(self, conn: Connection, row: store.OutboxRow, token: str,
                       reason: str) -> None:
        with transaction(conn):
            store.mark_final(conn, row.id, token, "failed", reason, self._now_ms())

    def _give_back(self, conn: Connection, row: store.OutboxRow, token: str) -> None:
        try:
            with transaction(conn):
                now_ms = self._now_ms()
                store.release(conn, [row.id], token, next_attempt_at=now_ms, now=now_ms)
        except DB_ERRORS:
            log.exception("could not give outbox %s back; recovery will", row.id)

    def _event(self, conn: Connection, p: _Prepared, *, delivered: bool, now_ms: int,
               detail: dict[str, Any]) -> None:
        source = profile_store.first_source(conn)
        if source is None:
            return
        if p.channel.kind == "email":
            detail = {**detail, "email_subject": p.message.content.get("subject")}
        append_events(conn, [delivery_event(
            p.row, channel_kind=p.channel.kind, delivered=delivered, source_id=source,
            identities=p.person.identities, now_ms=now_ms, detail=detail)])

    def backoff(self, attempts: int, retry_after: float | None = None) -> float:
        """Seconds before attempt `attempts + 1`: exponential, capped, with jitter."""
        base = min(self.settings.backoff_max,
                   self.settings.backoff_base * 2 ** max(0, attempts - 1))
        delay = base * (0.5 + 0.5 * self.rng.random())
        if retry_after is not None and retry_after > 0:
            delay = max(delay, min(float(retry_after), self.settings.backoff_max))
        return delay

    def _token(self, p: _Prepared) -> str:
        assert p.row.claim_token is not None
        return p.row.claim_token

    def _now_ms(self) -> int:
        return int(self.clock.now() * 1000)


def link_policy(config: Config) -> LinkPolicy:
    """`[tracking] link_hosts`, and the tracking host (links Kanal itself rewrites to)."""
    from ..tracking.settings import TrackingSettings  # tracking imports the outbox row

    settings = TrackingSettings.from_config(config)
    hosts = list(settings.link_hosts)
    tracking = urlsplit(settings.send_base_url(config)).hostname
    if tracking:
        hosts.append(tracking.lower())
    return LinkPolicy(tuple(dict.fromkeys(hosts)))


def build_dispatcher(config: Config, db: Database, clock: Clock, *,
                     template_globals: Sequence[hooks.TemplateGlobals] = (),
                     owner: str | None = None) -> Dispatcher:
    """The dispatcher `kanal serve` runs: configured channels, the messages directory,
    and the template functions (`kanal serve` passes the products'). `owner` is the
    node's id (its claims belong to the node); it looks for rows of nodes that are
    gone three times per lease time."""
    from ..deliverability.hook import deliverability_hook  # it imports messages
    from ..onsite.pushclick import webpush_click_hook  # it imports tracking
    from ..tracking.hook import email_tracking_hook  # tracking imports the outbox row

    catalog = Catalog(directory=messages_dir(config))
    catalog.refresh()
    paused = [name for name, table in configured_channels(config).items()
              if table.get("enabled", True) is False]
    return Dispatcher(db, clock, build_channels(config), catalog, paused=paused,
                      link_policy=link_policy(config),
                      policy=Policy.from_config(config),
                      settings=Settings.from_config(config),
                      controls=Controls.from_config(config),
                      before_send=[email_tracking_hook(config, clock),
                                   webpush_click_hook(config, clock),
                                   deliverability_hook(config, clock), *hooks.before_send],
                      template_globals=template_globals, owner=owner,
                      recover_every=config.lease_seconds / 3)
