"""Versioned migrations, declared once for both storage engines.

A migration is a function of a `Migration`: `m.ddl(...)` runs a DDL statement whose
column types are placeholders the engine's dialect fills in ({ID}, {INT}, {REAL},
{TEXT}, {WITHOUT_ROWID}: store/dialect.py), and `m.execute(...)` runs plain SQL in the
common subset where a migration must move data. MIGRATIONS lists them in order. To
change the schema, append a function to MIGRATIONS; never edit one that has shipped.

The version: SQLite keeps it in `PRAGMA user_version`, as every Kanal database did
before PostgreSQL (so existing files keep upgrading in place); PostgreSQL in the table
`kanal_migrations` (one row per applied migration, with when). `migrate` applies what
is pending in one transaction (DDL is transactional on both engines) under the writer
lock (SQLite's write lock, PostgreSQL's advisory writer lock), and reads the version
only once it holds the lock, so concurrent `migrate` calls are safe: the second finds
nothing left to do.

Why no migration library: alembic would bring SQLAlchemy for what is the loop at the
bottom of this module, and keeps its own version table where existing databases count
in `user_version`; yoyo-migrations keeps migrations as SQL per engine (the schema twice)
with its own version and lock tables. Neither knows Kanal's writer lock.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from ..contacts import check_email, check_phone, normalise_country
from ..money import TRUSTED_KEY_KINDS, order_id, order_value
from . import engagement, funnel_days, reports, row_counts, score_counts
from .activity import encode_days
from .connection import Connection, Params
from .db import transaction
from .dialect import SQLITE, Dialect
from .partitions import partition_log


class Migration:
    """What a migration step runs its statements through."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.dialect: Dialect = conn.dialect

    def ddl(self, template: str) -> None:
        """Run a DDL statement with the engine's column types filled in."""
        self.conn.execute(self.dialect.ddl(template))

    def execute(self, sql: str, params: Params = ()) -> Any:
        """Run a statement as it is (common-subset SQL)."""
        return self.conn.execute(sql, params)


def _m001_foundation(m: Migration) -> None:
    m.ddl("CREATE TABLE meta (key {TEXT} PRIMARY KEY, value {TEXT})")
    m.ddl("CREATE TABLE sources (id {ID}, name {TEXT} NOT NULL, created_at {INT} NOT NULL)")
    m.ddl("CREATE UNIQUE INDEX idx_sources_name ON sources (name)")
    m.ddl(
        """CREATE TABLE keys (
            id {ID},
            kind {TEXT} NOT NULL,
            source_id {INT} REFERENCES sources(id),
            name {TEXT},
            prefix {TEXT} NOT NULL,
            key_hash {TEXT} NOT NULL,
            secret {TEXT},
            created_at {INT} NOT NULL,
            revoked_at {INT}
        )"""
    )
    m.ddl("CREATE UNIQUE INDEX idx_keys_key_hash ON keys (key_hash)")
    # AUTOINCREMENT: ids are never reused after a delete (`kanal forget`), so a
    # consumer's cursor can never miss an event that takes an old id.
    m.ddl(
        """CREATE TABLE events (
            id {ID},
            source_id {INT} NOT NULL REFERENCES sources(id),
            message_id {TEXT} NOT NULL,
            type {TEXT} NOT NULL,
            event {TEXT},
            user_id {TEXT},
            anonymous_id {TEXT},
            origin {TEXT} NOT NULL,
            key_kind {TEXT} NOT NULL,
            verified {INT} NOT NULL DEFAULT 0,
            timestamp {INT} NOT NULL,
            received_at {INT} NOT NULL,
            body {TEXT} NOT NULL
        )"""
    )
    m.ddl("CREATE UNIQUE INDEX events_message ON events(source_id, message_id)")
    m.ddl(
        """CREATE TABLE failed_events (
            id {ID}, source_id {INT}, key_kind {TEXT}, received_at {INT} NOT NULL,
            reason {TEXT} NOT NULL, body {TEXT} NOT NULL
        )"""
    )
    m.ddl("CREATE TABLE cursors (name {TEXT} PRIMARY KEY, position {INT} NOT NULL)")
    m.ddl("CREATE TABLE leases (name {TEXT} PRIMARY KEY, owner {TEXT} NOT NULL, "
          "expires_at {REAL} NOT NULL)")
    m.ddl(
        """CREATE TABLE event_stats (
            day {TEXT} NOT NULL, origin {TEXT} NOT NULL, type {TEXT} NOT NULL,
            count {INT} NOT NULL, PRIMARY KEY (day, origin, type)
        ){WITHOUT_ROWID}"""
    )


def _m002_profiles(m: Migration) -> None:
    # Single customer view (profiles/): written only by the processor's profiles step,
    # `kanal profiles rebuild` and `kanal forget`.
    m.ddl(
        """CREATE TABLE profiles (
            id {ID},
            created_at {INT} NOT NULL,
            first_seen {INT},
            last_seen {INT},
            state {TEXT} NOT NULL
        )"""
    )
    m.ddl("CREATE INDEX profiles_last_seen ON profiles(last_seen)")
    m.ddl(
        """CREATE TABLE identities (
            kind {TEXT} NOT NULL, value {TEXT} NOT NULL, profile_id {INT} NOT NULL,
            first_event {INT}, PRIMARY KEY (kind, value)
        ){WITHOUT_ROWID}"""
    )
    m.ddl("CREATE INDEX identities_profile ON identities(profile_id)")
    m.ddl(
        """CREATE TABLE profile_events (
            profile_id {INT} NOT NULL, timestamp {INT} NOT NULL, event_id {INT} NOT NULL,
            PRIMARY KEY (profile_id, timestamp, event_id)
        ){WITHOUT_ROWID}"""
    )
    m.ddl("CREATE INDEX profile_events_event ON profile_events(event_id)")
    m.ddl(
        """CREATE TABLE merges (
            id {ID},
            into_profile {INT} NOT NULL, from_profile {INT} NOT NULL,
            event_id {INT}, reason {TEXT} NOT NULL, at {INT} NOT NULL
        )"""
    )
    m.ddl("CREATE INDEX merges_into ON merges(into_profile)")
    m.ddl(
        """CREATE TABLE suppressions (
            hash {TEXT} PRIMARY KEY, created_at {INT} NOT NULL, note {TEXT}
        ){WITHOUT_ROWID}"""
    )
    m.ddl(
        """CREATE TABLE segment_definitions (
            name {TEXT} PRIMARY KEY, version {INT} NOT NULL, definition {TEXT} NOT NULL,
            updated_at {INT} NOT NULL
        )"""
    )
    m.ddl(
        """CREATE TABLE segment_members (
            segment {TEXT} NOT NULL, profile_id {INT} NOT NULL, entered_at {INT} NOT NULL,
            PRIMARY KEY (segment, profile_id)
        ){WITHOUT_ROWID}"""
    )
    m.ddl("CREATE INDEX segment_members_profile ON segment_members(profile_id)")


def _m003_tracking(m: Migration) -> None:
    # Email tracking (tracking/): one row per tracked send, one per link it carried.
    # No foreign key to the outbox: a send's tracking outlives a pruned outbox row.
    m.ddl(
        """CREATE TABLE tracking_sends (
            outbox_id {INT} PRIMARY KEY,
            profile_id {INT} NOT NULL,
            message {TEXT},
            journey {TEXT},
            channel {TEXT} NOT NULL,
            topic {TEXT},
            sent_at {INT} NOT NULL
        )"""
    )
    m.ddl("CREATE INDEX tracking_sends_profile ON tracking_sends(profile_id)")
    m.ddl(
        """CREATE TABLE tracking_links (
            outbox_id {INT} NOT NULL, idx {INT} NOT NULL, url {TEXT} NOT NULL,
            PRIMARY KEY (outbox_id, idx)
        ){WITHOUT_ROWID}"""
    )


def _m004_outbox(m: Migration) -> None:
    # One row per message to send (messages/): written by the enqueue API inside its
    # caller's transaction and by the dispatcher. Times are epoch ms.
    m.ddl(
        """CREATE TABLE outbox (
            id {ID},
            idempotency_key {TEXT} NOT NULL UNIQUE,
            profile_id {INT} NOT NULL,
            message {TEXT} NOT NULL,
            kind {TEXT} NOT NULL,
            topic {TEXT},
            channel {TEXT},
            candidates {TEXT} NOT NULL DEFAULT '[]',
            journey {TEXT},
            step {TEXT},
            data {TEXT} NOT NULL DEFAULT '{{}}',
            state {TEXT} NOT NULL,
            reason {TEXT},
            attempts {INT} NOT NULL DEFAULT 0,
            next_attempt_at {INT} NOT NULL,
            claim_token {TEXT},
            claimed_by {TEXT},
            claimed_at {INT},
            send_token {TEXT},
            recipient {TEXT},
            language {TEXT},
            provider_id {TEXT},
            created_at {INT} NOT NULL,
            updated_at {INT} NOT NULL,
            sent_at {INT}
        )"""
    )
    m.ddl("CREATE INDEX outbox_due ON outbox(state, channel, next_attempt_at)")
    m.ddl("CREATE INDEX outbox_profile ON outbox(profile_id)")


def _m005_journeys(m: Migration) -> None:
    # Journeys (journeys/): versions of journey files, runs (one person in one journey),
    # their timers, conversions, split assignments and a per-run log. Written by the
    # processor's journeys step and the timer worker, each in its own transaction.
    m.ddl(
        """CREATE TABLE journey_versions (
            journey {TEXT} NOT NULL, version {INT} NOT NULL, hash {TEXT} NOT NULL,
            text {TEXT} NOT NULL, path {TEXT}, created_at {INT} NOT NULL,
            PRIMARY KEY (journey, version)
        )"""
    )
    m.ddl("CREATE UNIQUE INDEX journey_versions_hash ON journey_versions(journey, hash)")
    m.ddl(
        """CREATE TABLE journeys (
            name {TEXT} PRIMARY KEY, version {INT} NOT NULL, enabled {INT} NOT NULL,
            updated_at {INT} NOT NULL
        )"""
    )
    m.ddl(
        """CREATE TABLE journey_runs (
            id {ID},
            journey {TEXT} NOT NULL,
            version {INT} NOT NULL,
            profile_id {INT} NOT NULL,
            state {TEXT} NOT NULL,
            step {TEXT},
            wait_event {TEXT},
            dedupe {TEXT},
            trigger_event {INT},
            context {TEXT} NOT NULL DEFAULT '{{}}',
            entered_at {INT} NOT NULL,
            updated_at {INT} NOT NULL,
            ended_at {INT},
            end_reason {TEXT}
        )"""
    )
    m.ddl("CREATE INDEX journey_runs_profile ON journey_runs(profile_id, journey)")
    m.ddl("CREATE INDEX journey_runs_journey ON journey_runs(journey, state)")
    m.ddl("CREATE UNIQUE INDEX journey_runs_dedupe "
               "ON journey_runs(journey, profile_id, dedupe) WHERE dedupe IS NOT NULL")
    m.ddl(
        """CREATE TABLE journey_timers (
            run_id {INT} PRIMARY KEY, due_at {INT} NOT NULL, step {TEXT} NOT NULL,
            kind {TEXT} NOT NULL, attempts {INT} NOT NULL DEFAULT 0
        )"""
    )
    m.ddl("CREATE INDEX journey_timers_due ON journey_timers(due_at)")
    m.ddl(
        """CREATE TABLE journey_conversions (
            run_id {INT} PRIMARY KEY, journey {TEXT} NOT NULL, version {INT} NOT NULL,
            profile_id {INT} NOT NULL, event_id {INT}, event {TEXT} NOT NULL,
            revenue {REAL}, at {INT} NOT NULL
        )"""
    )
    m.ddl("CREATE INDEX journey_conversions_journey ON journey_conversions(journey)")
    m.ddl(
        """CREATE TABLE journey_assignments (
            run_id {INT} NOT NULL, step {TEXT} NOT NULL, arm {TEXT} NOT NULL,
            at {INT} NOT NULL, PRIMARY KEY (run_id, step)
        ){WITHOUT_ROWID}"""
    )
    m.ddl(
        """CREATE TABLE journey_log (
            id {ID}, run_id {INT} NOT NULL,
            at {INT} NOT NULL, step {TEXT}, what {TEXT} NOT NULL, detail {TEXT}
        )"""
    )
    m.ddl("CREATE INDEX journey_log_run ON journey_log(run_id)")
    m.ddl(
        """CREATE TABLE journey_schedules (
            journey {TEXT} PRIMARY KEY, next_at {INT} NOT NULL,
            after_profile {INT} NOT NULL DEFAULT 0
        )"""
    )


def _m006_outbox_provider_index(m: Migration) -> None:
    # Provider callbacks (Twilio status) find their outbox row by the provider's id.
    m.ddl("CREATE INDEX outbox_provider ON outbox(channel, provider_id) "
               "WHERE provider_id IS NOT NULL")


def _m007_message_controls(m: Migration) -> None:
    # Journey controls (messages/controls.py): a send's priority (the daily budget goes
    # to the highest) and what it does in quiet hours or over a cap (JSON), and a log of
    # what the dispatcher decided about a row besides sending it (deferred, skipped).
    m.ddl("ALTER TABLE outbox ADD COLUMN priority {INT} NOT NULL DEFAULT 0")
    m.ddl("ALTER TABLE outbox ADD COLUMN controls {TEXT}")
    m.ddl(
        """CREATE TABLE outbox_log (
            id {ID}, outbox_id {INT} NOT NULL,
            at {INT} NOT NULL, what {TEXT} NOT NULL, detail {TEXT}
        )"""
    )
    m.ddl("CREATE INDEX outbox_log_row ON outbox_log(outbox_id)")
    m.ddl("CREATE INDEX outbox_profile_sent ON outbox(profile_id, sent_at)")
    # The claim takes due rows highest priority first: one index range per priority
    # (outbox.claim), instead of sorting every due row on each claim.
    m.ddl("CREATE INDEX outbox_claim ON outbox(state, channel, priority, next_attempt_at)")


def _m008_reports(m: Migration) -> None:
    # Reports (reports/): marketing spend per channel, campaign or journey, entered by
    # the admin API (kanal.toml's [costs] is read at report time), and the dashboard's
    # sign-in sessions (a hash of the cookie's token, never the token).
    m.ddl(
        """CREATE TABLE costs (
            dimension {TEXT} NOT NULL, key {TEXT} NOT NULL, amount {REAL} NOT NULL,
            currency {TEXT}, updated_at {INT} NOT NULL,
            PRIMARY KEY (dimension, key)
        ){WITHOUT_ROWID}"""
    )
    m.ddl(
        """CREATE TABLE dashboard_sessions (
            token_hash {TEXT} PRIMARY KEY, key_id {INT} NOT NULL, csrf {TEXT} NOT NULL,
            created_at {INT} NOT NULL, expires_at {INT} NOT NULL
        ){WITHOUT_ROWID}"""
    )


def _m009_daily_aggregates(m: Migration) -> None:
    # The KPI overview's daily figures, kept by the processor's profiles step so that the
    # overview reads a few rows a day instead of the log (reports/kpis.py). Days are UTC
    # day numbers (timestamp // 86 400 000). Only people's own events count (key_kind
    # other than 'kanal'), and only those on a timeline (profile_events), as before.
    #   active_days   one row per person and day they did something
    #   active_spans  people active on `day` whose previous active day was `prev_day`
    #                 (-2**40: none), so that distinct people over a window are a sum
    #                 (store/profiles.py explains)
    #   track_daily   track events per day and name; revenue is their order value
    m.ddl(
        """CREATE TABLE active_days (
            day {INT} NOT NULL, profile_id {INT} NOT NULL,
            PRIMARY KEY (day, profile_id)
        ){WITHOUT_ROWID}"""
    )
    # Merges and `kanal forget` find a person's rows by profile.
    m.ddl("CREATE INDEX active_days_profile ON active_days(profile_id)")
    m.ddl(
        """CREATE TABLE active_spans (
            day {INT} NOT NULL, prev_day {INT} NOT NULL, people {INT} NOT NULL,
            PRIMARY KEY (day, prev_day)
        ){WITHOUT_ROWID}"""
    )
    m.ddl(
        """CREATE TABLE track_daily (
            day {INT} NOT NULL, event {TEXT} NOT NULL, count {INT} NOT NULL,
            revenue {REAL} NOT NULL, PRIMARY KEY (day, event)
        ){WITHOUT_ROWID}"""
    )
    # Backfill from the timelines the processor has already built, so an upgraded
    # database reports the same figures at once. The day is floored as Python floors.
    day = ("CASE WHEN {t} >= 0 THEN {t} / 86400000 "
           "ELSE ({t} + 1) / 86400000 - 1 END")
    m.execute(
        f"INSERT INTO active_days (day, profile_id) "
        f"SELECT DISTINCT {day.format(t='pe.timestamp')}, pe.profile_id "
        "FROM profile_events pe JOIN events e ON e.id = pe.event_id "
        "WHERE e.key_kind != 'kanal'"
    )
    m.execute(
        "INSERT INTO active_spans (day, prev_day, people) "
        "SELECT day, prev_day, count(*) FROM (SELECT day, coalesce(lag(day) OVER "
        f"(PARTITION BY profile_id ORDER BY day), {-(2 ** 40)}) AS prev_day "
        "FROM active_days) AS spans GROUP BY day, prev_day"
    )
    tracks: dict[tuple[int, str], tuple[int, float]] = {}
    for ts, name, properties in m.conn.stream(
            f"SELECT e.timestamp, e.event, {m.dialect.json_value('e.body', 'properties')} "
            "FROM events e WHERE e.type = 'track' AND e.key_kind != 'kanal' "
            "AND e.event IS NOT NULL AND e.id IN (SELECT event_id FROM profile_events)"):
        key = (int(ts) // 86_400_000, str(name))
        count, revenue = tracks.get(key, (0, 0.0))
        tracks[key] = (count + 1, revenue + order_value(properties))
    m.conn.executemany("INSERT INTO track_daily (day, event, count, revenue) "
                       "VALUES (?, ?, ?, ?)", [(*k, n, r) for k, (n, r) in tracks.items()])


def _m010_products(m: Migration) -> None:
    # Products (products/): the catalogue (trusted: written by feeds, `kanal products
    # import` and the admin API only), one price per currency, price and stock history,
    # what people did with products (kept by the processor's products step), back-in-stock
    # requests, the recommendation lists the worker builds, and what recommendation links
    # were shown, clicked and bought. Times are epoch ms; money is {REAL}.
    m.ddl(
        """CREATE TABLE products (
            id {TEXT} PRIMARY KEY,
            sku {TEXT},
            name {TEXT} NOT NULL,
            url {TEXT},
            image_url {TEXT},
            currency {TEXT} NOT NULL,
            price {REAL},
            sale_price {REAL},
            availability {TEXT} NOT NULL,
            in_stock {INT} NOT NULL,
            stock {INT},
            brand {TEXT},
            category {TEXT},
            categories {TEXT} NOT NULL DEFAULT '[]',
            parent_id {TEXT},
            attributes {TEXT} NOT NULL DEFAULT '{{}}',
            source {TEXT} NOT NULL,
            hash {TEXT} NOT NULL,
            created_at {INT} NOT NULL,
            updated_at {INT} NOT NULL,
            deleted_at {INT}
        )"""
    )
    m.ddl("CREATE INDEX products_sku ON products(sku)")
    m.ddl("CREATE INDEX products_source ON products(source)")
    m.ddl(
        """CREATE TABLE product_prices (
            product_id {TEXT} NOT NULL, currency {TEXT} NOT NULL, price {REAL} NOT NULL,
            sale_price {REAL}, PRIMARY KEY (product_id, currency)
        )"""
    )
    m.ddl(
        """CREATE TABLE product_history (
            id {ID},
            product_id {TEXT} NOT NULL,
            at {INT} NOT NULL,
            what {TEXT} NOT NULL,
            currency {TEXT},
            old_price {REAL},
            new_price {REAL},
            old_availability {TEXT},
            new_availability {TEXT},
            source {TEXT}
        )"""
    )
    m.ddl("CREATE INDEX product_history_product ON product_history(product_id, id)")
    m.ddl(
        """CREATE TABLE product_activity (
            profile_id {INT} NOT NULL, kind {TEXT} NOT NULL, product_id {TEXT} NOT NULL,
            first_at {INT} NOT NULL, last_at {INT} NOT NULL, count {INT} NOT NULL,
            PRIMARY KEY (profile_id, kind, product_id)
        )"""
    )
    m.ddl("CREATE INDEX product_activity_product "
               "ON product_activity(product_id, kind, last_at)")
    m.ddl(
        """CREATE TABLE product_orders (
            order_key {TEXT} NOT NULL, product_id {TEXT} NOT NULL, profile_id {INT} NOT NULL,
            at {INT} NOT NULL, quantity {REAL} NOT NULL, price {REAL}, currency {TEXT},
            PRIMARY KEY (order_key, product_id)
        )"""
    )
    m.ddl("CREATE INDEX product_orders_profile ON product_orders(profile_id, at)")
    m.ddl("CREATE INDEX product_orders_at ON product_orders(at)")
    m.ddl("CREATE INDEX product_orders_product ON product_orders(product_id, at)")
    m.ddl(
        """CREATE TABLE product_alerts (
            profile_id {INT} NOT NULL, product_id {TEXT} NOT NULL, created_at {INT} NOT NULL,
            notified_at {INT}, PRIMARY KEY (product_id, profile_id)
        )"""
    )
    m.ddl("CREATE INDEX product_alerts_profile ON product_alerts(profile_id)")
    m.ddl(
        """CREATE TABLE product_recs (
            kind {TEXT} NOT NULL, product_id {TEXT} NOT NULL, items {TEXT} NOT NULL,
            built_at {INT} NOT NULL, PRIMARY KEY (kind, product_id)
        )"""
    )
    m.ddl(
        """CREATE TABLE product_rec_links (
            outbox_id {INT} NOT NULL, url {TEXT} NOT NULL, product_id {TEXT} NOT NULL,
            kind {TEXT} NOT NULL, message {TEXT}, journey {TEXT}, at {INT} NOT NULL,
            PRIMARY KEY (outbox_id, url)
        )"""
    )
    m.ddl("CREATE INDEX product_rec_links_at ON product_rec_links(at)")
    m.ddl(
        """CREATE TABLE product_rec_clicks (
            id {ID}, profile_id {INT} NOT NULL, product_id {TEXT} NOT NULL,
            kind {TEXT} NOT NULL, message {TEXT}, journey {TEXT}, outbox_id {INT} NOT NULL,
            event_id {INT} NOT NULL UNIQUE, at {INT} NOT NULL
        )"""
    )
    m.ddl("CREATE INDEX product_rec_clicks_person "
               "ON product_rec_clicks(profile_id, product_id, at)")
    m.ddl(
        """CREATE TABLE product_rec_conversions (
            order_key {TEXT} NOT NULL, product_id {TEXT} NOT NULL, profile_id {INT} NOT NULL,
            kind {TEXT} NOT NULL, message {TEXT}, journey {TEXT}, outbox_id {INT} NOT NULL,
            clicked_at {INT} NOT NULL, at {INT} NOT NULL, revenue {REAL} NOT NULL,
            PRIMARY KEY (order_key, product_id)
        )"""
    )
    m.ddl("CREATE INDEX product_rec_conversions_at ON product_rec_conversions(at)")
    m.ddl(
        """CREATE TABLE product_feeds (
            name {TEXT} PRIMARY KEY, url {TEXT} NOT NULL, next_at {INT} NOT NULL,
            last_attempt_at {INT}, last_success_at {INT}, status {TEXT}, detail {TEXT},
            etag {TEXT}, last_modified {TEXT}
        )"""
    )


def _m011_deliverability(m: Migration) -> None:
    # Deliverability (deliverability/): the email suppression list with its reasons;
    # every bounce and complaint reported by a provider webhook or a DSN (one row per
    # report, `key` dedupes a repeated one); the daily send and feedback counts the
    # deliverability report reads (journey '' for sends outside journeys); and counters
    # of messages handed to providers per period (warm-up ramps, recipient-domain
    # throttles). Declared once for both engines.
    m.ddl(
        """CREATE TABLE email_suppressions (
            address {TEXT} PRIMARY KEY,
            reason {TEXT} NOT NULL,
            detail {TEXT},
            source {TEXT} NOT NULL,
            outbox_id {INT},
            created_at {INT} NOT NULL,
            updated_at {INT} NOT NULL
        )"""
    )
    m.ddl(
        """CREATE TABLE email_feedback (
            id {ID},
            key {TEXT} NOT NULL UNIQUE,
            kind {TEXT} NOT NULL,
            address {TEXT} NOT NULL,
            outbox_id {INT},
            channel {TEXT},
            journey {TEXT},
            domain {TEXT} NOT NULL,
            provider {TEXT} NOT NULL,
            detail {TEXT},
            day {INT} NOT NULL,
            at {INT} NOT NULL
        )"""
    )
    m.ddl("CREATE INDEX email_feedback_address ON email_feedback(address, kind, at)")
    m.ddl("CREATE INDEX email_feedback_outbox ON email_feedback(outbox_id)")
    m.ddl(
        """CREATE TABLE email_daily (
            day {INT} NOT NULL,
            channel {TEXT} NOT NULL,
            journey {TEXT} NOT NULL,
            domain {TEXT} NOT NULL,
            sent {INT} NOT NULL DEFAULT 0,
            hard {INT} NOT NULL DEFAULT 0,
            soft {INT} NOT NULL DEFAULT 0,
            complaints {INT} NOT NULL DEFAULT 0,
            PRIMARY KEY (day, channel, journey, domain)
        )"""
    )
    m.ddl(
        """CREATE TABLE send_counts (
            scope {TEXT} NOT NULL,
            period {INT} NOT NULL,
            count {INT} NOT NULL,
            PRIMARY KEY (scope, period)
        )"""
    )
    # Webhooks and DSNs find the outbox row by the id it was sent under (the SMTP
    # channel's Message-ID, or a provider's id), whatever the channel.
    m.ddl("CREATE INDEX outbox_provider_id ON outbox(provider_id) "
               "WHERE provider_id IS NOT NULL")
    # Email already sent counts in the daily report from the start.
    from .deliverability import backfill_daily

    backfill_daily(m.conn)


def _m012_order_copies(m: Migration) -> None:
    # Copies of the same order (store/orders.py): which one the reports count. Filled
    # from the log the processor has already applied, and the KPI overview's figures and
    # journey conversions corrected to count each order once, as the profiles did.
    m.ddl(
        """CREATE TABLE order_copies (
            event_id {INT} PRIMARY KEY,
            event {TEXT} NOT NULL,
            order_id {TEXT} NOT NULL,
            trusted {INT} NOT NULL,
            counted {INT} NOT NULL,
            repeat {INT} NOT NULL,
            value {REAL} NOT NULL,
            timestamp {INT} NOT NULL
        )"""
    )
    m.ddl("CREATE INDEX order_copies_order ON order_copies(event, order_id)")
    m.ddl("CREATE INDEX order_copies_uncounted ON order_copies(timestamp) "
          "WHERE counted = 0")
    conn = m.conn
    orders: dict[tuple[str, str], list[tuple[int, bool, float, int]]] = {}
    for eid, name, key_kind, ts, body in conn.execute(
            "SELECT e.id, e.event, e.key_kind, e.timestamp, e.body FROM events e "
            "WHERE e.type = 'track' AND e.key_kind != 'kanal' AND e.event IS NOT NULL "
            "AND e.id IN (SELECT event_id FROM profile_events) ORDER BY e.id"):
        if "order_id" not in body and "orderId" not in body and "checkout_id" not in body:
            continue
        try:
            props = json.loads(body).get("properties")
        except (ValueError, AttributeError):
            continue
        oid = order_id(props) if isinstance(props, dict) else None
        if oid is not None:
            orders.setdefault((str(name), oid), []).append(
                (int(eid), key_kind in TRUSTED_KEY_KINDS, order_value(props), int(ts)))
    rows = []
    for (name, oid), copies in orders.items():
        winner = next((c for c in copies if c[1]), copies[0])
        for eid, trusted, value, ts in copies:
            rows.append((eid, name, oid, int(trusted), int(eid == winner[0]),
                         int(eid != copies[0][0]), value, ts))
            if eid != winner[0]:
                day = ts // 86_400_000
                conn.execute("UPDATE track_daily SET count = count - 1, revenue = revenue - ? "
                             "WHERE day = ? AND event = ?", (value, day, name))
        if winner[0] != copies[0][0]:
            conn.execute("UPDATE journey_conversions SET revenue = ? WHERE event_id = ?",
                         (winner[2], copies[0][0]))
    conn.executemany(
        "INSERT INTO order_copies (event_id, event, order_id, trusted, counted, repeat, "
        "value, timestamp) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)


def _m013_normalised_contacts(m: Migration) -> None:
    # Email and phone identities normalised one way (contacts.py): emails checked and
    # lower-cased, phones in E.164 (a national number read in its profile's country).
    # What changed is listed in contact_fixes (`kanal profiles contact-fixes`):
    #   normalised  the identity now holds the normalised value
    #   invalid     not a valid address or number: no longer an identity (the trait stays)
    #   conflict    the normalised value is another profile's identity: that profile
    #               keeps it; `kanal profiles rebuild` merges the two by the merge rules
    m.ddl(
        """CREATE TABLE contact_fixes (
            id {ID},
            kind {TEXT} NOT NULL,
            value {TEXT} NOT NULL,
            profile_id {INT} NOT NULL,
            outcome {TEXT} NOT NULL,
            normalised {TEXT},
            other_profile {INT},
            detail {TEXT},
            at {INT} NOT NULL
        )"""
    )
    conn = m.conn
    now = int(time.time() * 1000)
    rows = conn.execute("SELECT kind, value, profile_id FROM identities "
                        "WHERE kind IN ('email', 'phone') ORDER BY kind, value").fetchall()
    fixes = []
    for kind, value, pid in rows:
        checked = check_email(value) if kind == "email" else \
            check_phone(value, _profile_country(conn, int(pid)))
        if checked.value == value:
            continue
        outcome, other, row = "invalid", None, None
        if checked.value is not None:
            row = conn.execute("SELECT profile_id FROM identities WHERE kind = ? "
                               "AND value = ?", (kind, checked.value)).fetchone()
            other = None if row is None or int(row[0]) == int(pid) else int(row[0])
            outcome = "conflict" if other is not None else "normalised"
        if outcome == "normalised" and row is None:
            conn.execute("UPDATE identities SET value = ? WHERE kind = ? AND value = ?",
                         (checked.value, kind, value))
        else:
            conn.execute("DELETE FROM identities WHERE kind = ? AND value = ?", (kind, value))
        fixes.append((kind, value, int(pid), outcome, checked.value, other, checked.reason,
                      now))
    conn.executemany(
        "INSERT INTO contact_fixes (kind, value, profile_id, outcome, normalised, "
        "other_profile, detail, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", fixes)


def _profile_country(conn: Connection, profile_id: int) -> str | None:
    """The country in a profile's stored state (profiles/state.py: loc, else inf)."""
    row = conn.execute("SELECT state FROM profiles WHERE id = ?", (profile_id,)).fetchone()
    try:
        state = json.loads(row[0]) if row is not None else {}
    except ValueError:
        return None
    for section in ("loc", "inf"):
        entry = (state.get(section) or {}).get("country") if isinstance(state, dict) else None
        if isinstance(entry, list) and entry:
            return normalise_country(entry[0])
    return None


def _m014_login_failures(m: Migration) -> None:
    # Failed dashboard sign-ins (dashboard/auth.py), counted per client address and the
    # prefix of the admin key that was tried, so guesses wait and the owner, signing in
    # from elsewhere or with another key, doesn't; kept in the database so every process
    # sees them and `kanal dashboard unlock` can clear them.
    m.ddl(
        """CREATE TABLE login_failures (
            id {ID},
            address {TEXT} NOT NULL,
            prefix {TEXT} NOT NULL,
            at {INT} NOT NULL
        )"""
    )
    m.ddl("CREATE INDEX login_failures_bucket ON login_failures(address, prefix, at)")


def _m015_safe_sends(m: Migration) -> None:
    # Safe sends (issue 13).
    # - journeys.first_enabled_at: when a journey was first enabled (not per version);
    #   a trigger event from before it, less the trigger's max_age, starts no run.
    #   Journeys enabled today count from their first version.
    m.ddl("ALTER TABLE journeys ADD COLUMN first_enabled_at {INT}")
    m.execute("UPDATE journeys SET first_enabled_at = (SELECT min(v.created_at) "
              "FROM journey_versions v WHERE v.journey = journeys.name) WHERE enabled = 1")
    # - journey_runs.trusted: whether the run's trigger was trusted data (a secret key, a
    #   valid userHash, an import, Kanal's own); a link built from an untrusted trigger's
    #   properties must point at a host in [tracking] link_hosts. Runs so far take it
    #   from their trigger event (a run without one, a schedule's, is trusted).
    m.ddl("ALTER TABLE journey_runs ADD COLUMN trusted {INT} NOT NULL DEFAULT 1")
    m.execute("UPDATE journey_runs SET trusted = coalesce((SELECT e.verified FROM events e "
              "WHERE e.id = journey_runs.trigger_event), 0) "
              "WHERE trigger_event IS NOT NULL")
    # - outbox.untrusted: the keys of `data` that came from untrusted input (JSON list).
    m.ddl("ALTER TABLE outbox ADD COLUMN untrusted {TEXT}")
    # - journey_refusals: trigger events that started no run, counted per journey, reason
    #   and hour (`kanal serve` names journeys that refused events as too old; simulate
    #   sums them).
    m.ddl(
        """CREATE TABLE journey_refusals (
            journey {TEXT} NOT NULL, code {TEXT} NOT NULL, hour {INT} NOT NULL,
            count {INT} NOT NULL, PRIMARY KEY (journey, code, hour)
        )"""
    )


def _m016_predict(m: Migration) -> None:
    # Predictive scores (predict/): one row per fit (its parameters, counts, distributions
    # and calibration as JSON in `record`), and each customer's scores from the latest
    # fit that reached them. Written only by a fit (`kanal predict fit`, or the fit's
    # own process started on schedule by `kanal serve`) and by `kanal profiles rebuild`.
    m.ddl(
        """CREATE TABLE predict_fits (
            id {ID},
            model_version {TEXT} NOT NULL,
            started_at {INT} NOT NULL,
            finished_at {INT},
            as_of {INT} NOT NULL,
            status {TEXT} NOT NULL,
            message {TEXT},
            record {TEXT} NOT NULL
        )"""
    )
    m.ddl(
        """CREATE TABLE predict_scores (
            profile_id {INT} PRIMARY KEY,
            fit_id {INT} NOT NULL,
            stage {TEXT} NOT NULL,
            churn_risk {TEXT},
            recency_score {INT} NOT NULL,
            frequency_score {INT} NOT NULL,
            monetary_score {INT} NOT NULL,
            p_active {REAL},
            expected_90 {REAL},
            expected_365 {REAL},
            predicted_value {REAL},
            historic_value {REAL} NOT NULL,
            next_order_at {INT},
            inputs {TEXT} NOT NULL
        )"""
    )
    m.ddl("CREATE INDEX predict_scores_fit ON predict_scores(fit_id)")


def _m017_audiences(m: Migration) -> None:
    # Ads audiences (audiences/). audience_members: per audience, each row of hashed
    # identifiers Kanal has told (or is telling) the destination about, keyed by the
    # SHA-256 of that row, with its state (adding, added, removing, rejected): a member is
    # added once, and a removal stays until the destination acknowledges it (the hashes
    # are kept until then, also for a forgotten person, whose profile_id is NULL).
    # audience_skips: segment members not sent, and why (no consent, nothing to match on).
    # audience_holds: who journey steps put in an audience, per run (keep = 1: beyond the
    # run's end). audience_syncs: each audience's schedule, progress and last outcome;
    # audience_runs: one row per sync round.
    m.ddl(
        """CREATE TABLE audience_members (
            audience {TEXT} NOT NULL,
            row_key {TEXT} NOT NULL,
            profile_id {INT},
            payload {TEXT} NOT NULL,
            state {TEXT} NOT NULL,
            attempts {INT} NOT NULL DEFAULT 0,
            error {TEXT},
            retry_at {INT},
            updated_at {INT} NOT NULL,
            PRIMARY KEY (audience, row_key)
        )"""
    )
    m.ddl("CREATE INDEX audience_members_state ON audience_members(audience, state, "
          "row_key)")
    m.ddl("CREATE INDEX audience_members_profile ON audience_members(profile_id)")
    # who has rows, in SQL (the round's diff): audience, person, state
    m.ddl("CREATE INDEX audience_members_who ON audience_members(audience, profile_id, "
          "state)")
    m.ddl(
        """CREATE TABLE audience_skips (
            audience {TEXT} NOT NULL,
            profile_id {INT} NOT NULL,
            reason {TEXT} NOT NULL,
            PRIMARY KEY (audience, profile_id)
        )"""
    )
    m.ddl("CREATE INDEX audience_skips_profile ON audience_skips(profile_id)")
    m.ddl(
        """CREATE TABLE audience_holds (
            audience {TEXT} NOT NULL,
            profile_id {INT} NOT NULL,
            run_id {INT} NOT NULL,
            keep {INT} NOT NULL,
            created_at {INT} NOT NULL,
            PRIMARY KEY (audience, profile_id, run_id)
        )"""
    )
    m.ddl("CREATE INDEX audience_holds_run ON audience_holds(run_id)")
    m.ddl("CREATE INDEX audience_holds_profile ON audience_holds(profile_id)")
    m.ddl(
        """CREATE TABLE audience_syncs (
            audience {TEXT} PRIMARY KEY,
            destination {TEXT},
            identifiers {TEXT},
            mark {INT} NOT NULL DEFAULT 0,
            run_id {INT},
            synced_at {INT},
            next_at {INT},
            retry_at {INT},
            requested_at {INT},
            dirty_at {INT},
            failures {INT} NOT NULL DEFAULT 0,
            last_error {TEXT},
            error_at {INT}
        )"""
    )
    m.ddl(
        """CREATE TABLE audience_runs (
            id {ID},
            audience {TEXT} NOT NULL,
            reason {TEXT} NOT NULL,
            started_at {INT} NOT NULL,
            finished_at {INT},
            added {INT} NOT NULL DEFAULT 0,
            removed {INT} NOT NULL DEFAULT 0,
            rejected {INT} NOT NULL DEFAULT 0,
            batches {INT} NOT NULL DEFAULT 0,
            skipped_consent {INT} NOT NULL DEFAULT 0,
            skipped_identifiers {INT} NOT NULL DEFAULT 0,
            note {TEXT},
            error {TEXT}
        )"""
    )
    m.ddl("CREATE INDEX audience_runs_audience ON audience_runs(audience, id)")


def _m018_onsite(m: Migration) -> None:
    # On-site messages, sign-up forms and web push (onsite/). `onsite_queue` holds the
    # expiry of an outbox row queued for the `onsite` channel (a journey's send step);
    # `signups` the sign-up form submissions waiting for their double opt-in (the
    # confirmation token, made when the message goes out, is kept as a SHA-256 hash);
    # `onsite_exposures` who saw (or was held out of) which arm of a campaign first, for
    # the experiments report.
    m.ddl(
        """CREATE TABLE onsite_queue (
            outbox_id {INT} PRIMARY KEY,
            profile_id {INT} NOT NULL,
            expires_at {INT} NOT NULL
        )"""
    )
    m.ddl("CREATE INDEX onsite_queue_expiry ON onsite_queue(expires_at)")
    m.ddl(
        """CREATE TABLE signups (
            id {ID},
            token_hash {TEXT} UNIQUE,
            channel {TEXT} NOT NULL,
            address {TEXT} NOT NULL,
            topic {TEXT},
            campaign {TEXT},
            message {TEXT},
            consent_text {TEXT} NOT NULL,
            anonymous_id {TEXT},
            source_id {INT} NOT NULL,
            base_url {TEXT} NOT NULL,
            created_at {INT} NOT NULL,
            expires_at {INT} NOT NULL,
            state {TEXT} NOT NULL,
            attempts {INT} NOT NULL DEFAULT 0,
            next_attempt_at {INT} NOT NULL,
            reason {TEXT},
            sent_at {INT},
            confirmed_at {INT}
        )"""
    )
    m.ddl("CREATE INDEX signups_due ON signups(state, next_attempt_at)")
    m.ddl("CREATE INDEX signups_address ON signups(channel, address, created_at)")
    m.ddl(
        """CREATE TABLE onsite_exposures (
            campaign {TEXT} NOT NULL,
            profile_id {INT} NOT NULL,
            arm {TEXT} NOT NULL,
            first_at {INT} NOT NULL,
            PRIMARY KEY (campaign, profile_id)
        )"""
    )
def _m019_event_partitions(m: Migration) -> None:
    # Several nodes on one PostgreSQL, and retention (issue 19): the event log is
    # partitioned by month there (the month is in the id), with the messageId dedupe in
    # event_keys (store/partitions.py), so `kanal events prune` drops old months whole.
    # SQLite keeps one table and its unique index: nothing to do.
    if m.dialect.partitioned_events:
        partition_log(m.conn, int(time.time() * 1000))


def _m020_operator_pages(m: Migration) -> None:
    # The dashboard's operator pages (issue 23). Segment sizes over time: one row per
    # segment and day (days since the epoch, UTC), the member count the segment sweeper
    # saw at its first sweep that day. Outbox rows by state, newest first, for the
    # Messages page's filter (the due index starts with state but orders by channel).
    # Identities by value: the People search (and the admin API's `?q=`) looks a prefix
    # up across every kind, which the (kind, value) key can't serve.
    m.ddl(
        """CREATE TABLE segment_days (
            segment {TEXT} NOT NULL, day {INT} NOT NULL, members {INT} NOT NULL,
            recorded_at {INT} NOT NULL,
            PRIMARY KEY (segment, day)
        ){WITHOUT_ROWID}"""
    )
    m.ddl("CREATE INDEX outbox_state_id ON outbox(state, id)")
    m.ddl("CREATE INDEX identities_value ON identities(value)")


def _m021_kept_reports(m: Migration) -> None:
    # Attribution kept as the processor applies events (issue 18; store/credits.py):
    # touch keys (channel, campaign, journey) by a hash id; the touchpoints and
    # conversions of each profile (`touched`: how many touchpoints a conversion credits,
    # `fresh`: how many of them the profile's previous conversion doesn't, so distinct
    # touchpoints of a window are a sum; `prev_ts`: that previous conversion's time when
    # it is within the lookback) and their totals per day; each conversion's credit per
    # model and key; and those
    # credits summed per UTC day (days since the epoch), so a report reads days, not
    # events. Empty here: the processor's attribution step fills them from the log it
    # has applied (reports/credits.py), and the reports read the log until it has.
    m.ddl(
        """CREATE TABLE attribution_keys (
            id {INT} PRIMARY KEY, channel {TEXT} NOT NULL, campaign {TEXT} NOT NULL,
            journey {TEXT} NOT NULL
        )"""
    )
    m.ddl(
        """CREATE TABLE attribution_touchpoints (
            profile_id {INT} NOT NULL, timestamp {INT} NOT NULL, event_id {INT} NOT NULL,
            key_id {INT} NOT NULL,
            PRIMARY KEY (profile_id, timestamp, event_id)
        ){WITHOUT_ROWID}"""
    )
    m.ddl(
        """CREATE TABLE attribution_conversions (
            event_id {INT} PRIMARY KEY, profile_id {INT} NOT NULL, timestamp {INT} NOT NULL,
            revenue {REAL} NOT NULL, touched {INT} NOT NULL, fresh {INT} NOT NULL,
            prev_ts {INT}
        )"""
    )
    m.ddl("CREATE INDEX attribution_conversions_profile "
          "ON attribution_conversions(profile_id, timestamp, event_id)")
    m.ddl("CREATE INDEX attribution_conversions_time "
          "ON attribution_conversions(timestamp, prev_ts, touched, fresh, revenue)")
    m.ddl(
        """CREATE TABLE attribution_days (
            day {INT} PRIMARY KEY, conversions {INT} NOT NULL, revenue {REAL} NOT NULL,
            unattributed {INT} NOT NULL, unattributed_revenue {REAL} NOT NULL,
            fresh {INT} NOT NULL
        )"""
    )
    m.ddl(
        """CREATE TABLE attribution_credits (
            event_id {INT} NOT NULL, model {INT} NOT NULL, key_id {INT} NOT NULL,
            weight {REAL} NOT NULL,
            PRIMARY KEY (event_id, model, key_id)
        ){WITHOUT_ROWID}"""
    )
    m.ddl(
        """CREATE TABLE attribution_daily (
            day {INT} NOT NULL, model {INT} NOT NULL, key_id {INT} NOT NULL,
            n {INT} NOT NULL, conversions {REAL} NOT NULL, revenue {REAL} NOT NULL,
            PRIMARY KEY (day, model, key_id)
        ){WITHOUT_ROWID}"""
    )
    # Journey funnels and experiments read the runs that entered in a window, and the
    # stages their sent messages reached: one row per outbox row and stage, filled here
    # from the log the processor has applied and kept by its engagement step.
    m.ddl("CREATE INDEX journey_runs_entered ON journey_runs(journey, entered_at)")
    m.ddl("CREATE INDEX journey_runs_entered_any ON journey_runs(entered_at)")
    m.ddl(
        """CREATE TABLE outbox_engagement (
            outbox_id {INT} NOT NULL, stage {TEXT} NOT NULL,
            PRIMARY KEY (outbox_id, stage)
        ){WITHOUT_ROWID}"""
    )
    conn = m.conn
    rows: set[tuple[int, str]] = set()
    for name, outbox_id, bot in reports.outbox_events(conn, list(engagement.STAGE_OF)):
        if not bot:
            rows.add((outbox_id, engagement.STAGE_OF[name]))
    engagement.record(conn, rows)


def _m022_kept_funnels(m: Migration) -> None:
    # Journey funnels and experiments kept per journey and day of entry, and the triggers
    # that mark a day when its runs change (store/funnel_days.py). Every day with runs
    # starts marked: the processor keeps them while idle; reports count a marked day
    # from the runs meanwhile.
    funnel_days.create(m.conn)


def _m023_score_counts(m: Migration) -> None:
    # People per predicted stage and churn risk, kept by triggers on predict_scores
    # (store/score_counts.py): the predictions page reads them instead of every score.
    score_counts.create(m.conn)



def _m024_product_activity_clustered(m: Migration) -> None:
    # #18: product_activity kept its rows in rowid order beside a copy of its key (an
    # index of its own): a product view wrote both, a page each, and the key's copy was
    # about 5 bytes of every stored event. On SQLite the rows now live in their key's
    # order (WITHOUT ROWID, as the other per-person tables); PostgreSQL's table is
    # unchanged.
    if m.dialect.name != SQLITE:
        return
    index = "sqlite_autoindex_product_activity_1"  # the rowid table's copy of its key
    if not m.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (index,)).fetchone():
        return  # already in key order
    m.ddl(
        """CREATE TABLE product_activity_keyed (
            profile_id {INT} NOT NULL, kind {TEXT} NOT NULL, product_id {TEXT} NOT NULL,
            first_at {INT} NOT NULL, last_at {INT} NOT NULL, count {INT} NOT NULL,
            PRIMARY KEY (profile_id, kind, product_id)
        ){WITHOUT_ROWID}"""
    )
    # Read through the key's index: the rows come in key order without a sort (held in
    # memory: temp_store=MEMORY), and the new table is written by appending.
    m.execute("INSERT INTO product_activity_keyed SELECT profile_id, kind, product_id, "
              f"first_at, last_at, count FROM product_activity INDEXED BY {index} "
              "ORDER BY profile_id, kind, product_id")
    m.execute("DROP TABLE product_activity")
    m.execute("ALTER TABLE product_activity_keyed RENAME TO product_activity")
    m.ddl("CREATE INDEX product_activity_product "
          "ON product_activity(product_id, kind, last_at)")


def _m025_product_activity_by_product(m: Migration) -> None:
    # #18: the index by product had last_at in its key, so a person viewing a product
    # again moved their entry: on a big database a page read and written per view
    # (a quarter of the processor's time on top of 10M events). By (product, kind) the entry
    # never moves; a price drop's few reads of a product's viewers test last_at on the
    # rows instead.
    m.execute("DROP INDEX product_activity_product")
    m.ddl("CREATE INDEX product_activity_product ON product_activity(product_id, kind)")


def _m026_journey_log_steps(m: Migration) -> None:
    # #18: keeping a journey day reads the steps its runs logged; with the step in the
    # index by run it reads the index alone, not a log row (a page of its own) per line.
    m.execute("DROP INDEX journey_log_run")
    m.ddl("CREATE INDEX journey_log_run ON journey_log(run_id, step)")


def _m027_attribution_hourly(m: Migration) -> None:
    # #18: a report window's parts of days (today so far, the first day's hours) were
    # credited from the conversions themselves, a read per conversion: at 10M events the
    # attribution page's time depended on the hour of the day it was loaded. Credits
    # summed per hour serve the whole hours; only what is left of an hour at each end is
    # read from the conversions (store/credits.py). Filled from the credits kept so far.
    m.ddl(
        """CREATE TABLE attribution_hourly (
            hour {INT} NOT NULL, model {INT} NOT NULL, key_id {INT} NOT NULL,
            n {INT} NOT NULL, conversions {REAL} NOT NULL, revenue {REAL} NOT NULL,
            PRIMARY KEY (hour, model, key_id)
        ){WITHOUT_ROWID}"""
    )
    m.execute(
        "INSERT INTO attribution_hourly (hour, model, key_id, n, conversions, revenue) "
        "SELECT v.timestamp / 3600000, c.model, c.key_id, COUNT(*), SUM(c.weight), "
        "SUM(c.weight * v.revenue) FROM attribution_credits c "
        "JOIN attribution_conversions v ON v.event_id = c.event_id "
        "GROUP BY v.timestamp / 3600000, c.model, c.key_id")


def _m028_product_activity_by_first_view(m: Migration) -> None:
    # #18: in the index by (product, kind) a new viewer's entry went where their profile
    # id fell among the product's viewers: on top of 10M events a product view by someone
    # new to the product wrote a page of its own (1,218 of a 5,000-event batch's 7,952
    # pages). With the time of their first view next in the key, a product's new viewers
    # are appended at its end, where the batch's other new viewers of it are; a repeat
    # view still leaves the entry where it is (first_at moves only for an older view
    # arriving late).
    m.execute("DROP INDEX product_activity_product")
    m.ddl("CREATE INDEX product_activity_product "
          "ON product_activity(product_id, kind, first_at)")


def _m029_row_counts(m: Migration) -> None:
    # #18: the number of profiles, kept by triggers (store/row_counts.py): the overview
    # counted every profile on each load.
    row_counts.create(m.conn)


def _m030_conversions_sharing_touchpoints(m: Migration) -> None:
    # #18: a report's distinct touchpoints read, in the window's first lookback, each
    # conversion whose previous one came before the window: 30 days of conversions, 2.3
    # ms at 10M events and growing with them. Only those that share touchpoints with the
    # previous one (touched > fresh: 14% of them in bench_scale's shop) add anything, so
    # they alone are indexed (store/credits.py `credited_touchpoints`).
    m.ddl("CREATE INDEX attribution_conversions_shared "
          "ON attribution_conversions(timestamp, prev_ts, touched, fresh) "
          "WHERE touched > fresh")


def _m031_merge_indexes(m: Migration) -> None:
    # #18: a merge moves the person's rows of every table by profile; these three had no
    # index by profile, so each merge (a tenth of the people log in after browsing)
    # read the whole table: journey conversions, on-site exposures and the orders credited
    # to recommendations, all growing with everything the shop ever did.
    m.ddl("CREATE INDEX journey_conversions_profile ON journey_conversions(profile_id)")
    m.ddl("CREATE INDEX onsite_exposures_profile ON onsite_exposures(profile_id)")
    m.ddl("CREATE INDEX product_rec_conversions_profile "
          "ON product_rec_conversions(profile_id)")


def _m032_touchpoints_on_the_timeline(m: Migration) -> None:
    # #18: a touchpoint is an event on a person's timeline; it had a table of its own,
    # keyed like the timeline (profile, timestamp, event), so every batch wrote a page of
    # each for nearly every person with a touchpoint: on top of 10M events 4,541 of the
    # 29,647 pages 20,000 events wrote. Its key now rides on its timeline row, the page
    # the batch writes anyway (store/credits.py). A touchpoint whose event was pruned
    # keeps its row (store/retention.py).
    m.ddl("ALTER TABLE profile_events ADD COLUMN key_id {INT}")
    m.execute("INSERT INTO profile_events (profile_id, timestamp, event_id, key_id) "
              "SELECT profile_id, timestamp, event_id, key_id FROM attribution_touchpoints "
              "WHERE true ON CONFLICT (profile_id, timestamp, event_id) "
              "DO UPDATE SET key_id = excluded.key_id")
    m.ddl("DROP TABLE attribution_touchpoints")


def _m033_forget_indexes(m: Migration) -> None:
    # #18: `kanal forget` deleted a person's merges (into or from them), their queued
    # on-site messages and their sign-ups by their anonymousId by reading each table
    # whole, inside the write lock; merges grow with every log-in that joins a visitor.
    m.ddl("CREATE INDEX merges_from ON merges(from_profile)")
    m.ddl("CREATE INDEX onsite_queue_profile ON onsite_queue(profile_id)")
    m.ddl("CREATE INDEX signups_anonymous ON signups(anonymous_id) "
          "WHERE anonymous_id IS NOT NULL")


def _m034_active_days_on_the_profile(m: Migration) -> None:
    # #18: a person's active days had a table of their own, whose index by person cost a
    # page per person and batch (3,042 of the 24,956 pages 20,000 events on top of 10M
    # wrote). They are now a column of the profile row, which the processor reads and
    # writes anyway (store/activity.py: the first day, then each day's distance from the
    # one before).
    m.ddl("ALTER TABLE profiles ADD COLUMN active_days {TEXT}")
    top = m.execute("SELECT max(profile_id) FROM active_days").fetchone()[0]
    step = 50_000
    for low in range(0, int(top or 0) + 1, step):
        days: dict[int, list[int]] = {}
        for pid, day in m.execute(
                "SELECT profile_id, day FROM active_days WHERE profile_id >= ? "
                "AND profile_id < ? ORDER BY profile_id, day", (low, low + step)):
            days.setdefault(int(pid), []).append(int(day))
        m.conn.executemany("UPDATE profiles SET active_days = ? WHERE id = ?",
                           [(encode_days(d), pid) for pid, d in days.items()])
    m.ddl("DROP TABLE active_days")


MIGRATIONS: list[Callable[[Migration], None]] = [
    _m001_foundation,
    _m002_profiles,
    _m003_tracking,
    _m004_outbox,
    _m005_journeys,
    _m006_outbox_provider_index,
    _m007_message_controls,
    _m008_reports,
    _m009_daily_aggregates,
    _m010_products,
    _m011_deliverability,
    _m012_order_copies,
    _m013_normalised_contacts,
    _m014_login_failures,
    _m015_safe_sends,
    _m016_predict,
    _m017_audiences,
    _m018_onsite,
    _m019_event_partitions,
    _m020_operator_pages,
    _m021_kept_reports,
    _m022_kept_funnels,
    _m023_score_counts,
    _m024_product_activity_clustered,
    _m025_product_activity_by_product,
    _m026_journey_log_steps,
    _m027_attribution_hourly,
    _m028_product_activity_by_first_view,
    _m029_row_counts,
    _m030_conversions_sharing_touchpoints,
    _m031_merge_indexes,
    _m032_touchpoints_on_the_timeline,
    _m033_forget_indexes,
    _m034_active_days_on_the_profile,
]

_VERSIONS = "kanal_migrations"


def schema_version(conn: Connection) -> int:
    """The migration level of this database (0: empty)."""
    if conn.dialect.name == SQLITE:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    exists = conn.execute("SELECT to_regclass(?) IS NOT NULL", (_VERSIONS,)).fetchone()[0]
    if not exists:
        return 0
    row = conn.execute(f"SELECT max(version) FROM {_VERSIONS}").fetchone()
    return int(row[0] or 0)


def _set_version(conn: Connection, number: int) -> None:
    if conn.dialect.name == SQLITE:
        conn.execute(f"PRAGMA user_version={int(number)}")
    else:
        conn.execute(f"INSERT INTO {_VERSIONS} (version, applied_at) VALUES (?, ?)",
                     (number, int(time.time() * 1000)))


def migrate(conn: Connection) -> int:
    """Apply every pending migration; return the new version. Safe to run concurrently."""
    with transaction(conn):
        if conn.dialect.name != SQLITE:
            conn.execute(f"CREATE TABLE IF NOT EXISTS {_VERSIONS} (version BIGINT PRIMARY KEY, "
                         "applied_at BIGINT NOT NULL)")
        current = schema_version(conn)
        if current > len(MIGRATIONS):
            raise RuntimeError(
                f"database schema version {current} is newer than this Kanal "
                f"({len(MIGRATIONS)}); upgrade Kanal"
            )
        step = Migration(conn)
        for number, apply in enumerate(MIGRATIONS[current:], start=current + 1):
            apply(step)
            _set_version(conn, number)
    return len(MIGRATIONS)
