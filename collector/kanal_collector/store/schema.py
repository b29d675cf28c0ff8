"""Versioned migrations, applied in order inside one write transaction.

The version lives in SQLite's `user_version`. Append new migrations at the end of
MIGRATIONS; never edit one that has shipped.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable

from sqlite_utils import Database as _Schema

from ..contacts import check_email, check_phone, normalise_country
from ..money import TRUSTED_KEY_KINDS, order_id, order_value
from .db import transaction


def _m001_foundation(db: _Schema) -> None:
    db.table("meta").create({"key": str, "value": str}, pk="key")
    db.table("sources").create(
        {"id": int, "name": str, "created_at": int}, pk="id", not_null={"name", "created_at"}
    )
    db.table("sources").create_index(["name"], unique=True)
    db.table("keys").create(
        {
            "id": int, "kind": str, "source_id": int, "name": str, "prefix": str,
            "key_hash": str, "secret": str, "created_at": int, "revoked_at": int,
        },
        pk="id",
        not_null={"kind", "prefix", "key_hash", "created_at"},
        foreign_keys=[("source_id", "sources", "id")],
    )
    db.table("keys").create_index(["key_hash"], unique=True)
    # AUTOINCREMENT: ids are never reused after a delete (`kanal forget`), so a
    # consumer's cursor can never miss an event that takes an old id.
    db.execute(
        """CREATE TABLE events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            source_id INTEGER NOT NULL REFERENCES sources(id),
            message_id TEXT NOT NULL,
            type TEXT NOT NULL,
            event TEXT,
            user_id TEXT,
            anonymous_id TEXT,
            origin TEXT NOT NULL,
            key_kind TEXT NOT NULL,
            verified INTEGER NOT NULL DEFAULT 0,
            timestamp INTEGER NOT NULL,
            received_at INTEGER NOT NULL,
            body TEXT NOT NULL
        )"""
    )
    db.execute("CREATE UNIQUE INDEX events_message ON events(source_id, message_id)")
    db.table("failed_events").create(
        {"id": int, "source_id": int, "key_kind": str, "received_at": int,
         "reason": str, "body": str},
        pk="id",
        not_null={"received_at", "reason", "body"},
    )
    db.table("cursors").create({"name": str, "position": int}, pk="name", not_null={"position"})
    db.table("leases").create(
        {"name": str, "owner": str, "expires_at": float}, pk="name",
        not_null={"owner", "expires_at"},
    )
    db.execute(
        """CREATE TABLE event_stats (
            day TEXT NOT NULL, origin TEXT NOT NULL, type TEXT NOT NULL,
            count INTEGER NOT NULL, PRIMARY KEY (day, origin, type)
        ) WITHOUT ROWID"""
    )


def _m002_profiles(db: _Schema) -> None:
    # Single customer view (profiles/): written only by the processor's profiles step,
    # `kanal profiles rebuild` and `kanal forget`.
    db.execute(
        """CREATE TABLE profiles (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            created_at INTEGER NOT NULL,
            first_seen INTEGER,
            last_seen INTEGER,
            state TEXT NOT NULL
        )"""
    )
    db.execute("CREATE INDEX profiles_last_seen ON profiles(last_seen)")
    db.execute(
        """CREATE TABLE identities (
            kind TEXT NOT NULL, value TEXT NOT NULL, profile_id INTEGER NOT NULL,
            first_event INTEGER, PRIMARY KEY (kind, value)
        ) WITHOUT ROWID"""
    )
    db.execute("CREATE INDEX identities_profile ON identities(profile_id)")
    db.execute(
        """CREATE TABLE profile_events (
            profile_id INTEGER NOT NULL, timestamp INTEGER NOT NULL, event_id INTEGER NOT NULL,
            PRIMARY KEY (profile_id, timestamp, event_id)
        ) WITHOUT ROWID"""
    )
    db.execute("CREATE INDEX profile_events_event ON profile_events(event_id)")
    db.execute(
        """CREATE TABLE merges (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            into_profile INTEGER NOT NULL, from_profile INTEGER NOT NULL,
            event_id INTEGER, reason TEXT NOT NULL, at INTEGER NOT NULL
        )"""
    )
    db.execute("CREATE INDEX merges_into ON merges(into_profile)")
    db.execute(
        """CREATE TABLE suppressions (
            hash TEXT PRIMARY KEY, created_at INTEGER NOT NULL, note TEXT
        ) WITHOUT ROWID"""
    )
    db.execute(
        """CREATE TABLE segment_definitions (
            name TEXT PRIMARY KEY, version INTEGER NOT NULL, definition TEXT NOT NULL,
            updated_at INTEGER NOT NULL
        )"""
    )
    db.execute(
        """CREATE TABLE segment_members (
            segment TEXT NOT NULL, profile_id INTEGER NOT NULL, entered_at INTEGER NOT NULL,
            PRIMARY KEY (segment, profile_id)
        ) WITHOUT ROWID"""
    )
    db.execute("CREATE INDEX segment_members_profile ON segment_members(profile_id)")


def _m003_tracking(db: _Schema) -> None:
    # Email tracking (tracking/): one row per tracked send, one per link it carried.
    # No foreign key to the outbox: a send's tracking outlives a pruned outbox row.
    db.execute(
        """CREATE TABLE tracking_sends (
            outbox_id INTEGER PRIMARY KEY,
            profile_id INTEGER NOT NULL,
            message TEXT,
            journey TEXT,
            channel TEXT NOT NULL,
            topic TEXT,
            sent_at INTEGER NOT NULL
        )"""
    )
    db.execute("CREATE INDEX tracking_sends_profile ON tracking_sends(profile_id)")
    db.execute(
        """CREATE TABLE tracking_links (
            outbox_id INTEGER NOT NULL, idx INTEGER NOT NULL, url TEXT NOT NULL,
            PRIMARY KEY (outbox_id, idx)
        ) WITHOUT ROWID"""
    )


def _m004_outbox(db: _Schema) -> None:
    # One row per message to send (messages/): written by the enqueue API inside its
    # caller's transaction and by the dispatcher. Times are epoch ms.
    db.execute(
        """CREATE TABLE outbox (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            idempotency_key TEXT NOT NULL UNIQUE,
            profile_id INTEGER NOT NULL,
            message TEXT NOT NULL,
            kind TEXT NOT NULL,
            topic TEXT,
            channel TEXT,
            candidates TEXT NOT NULL DEFAULT '[]',
            journey TEXT,
            step TEXT,
            data TEXT NOT NULL DEFAULT '{}',
            state TEXT NOT NULL,
            reason TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at INTEGER NOT NULL,
            claim_token TEXT,
            claimed_by TEXT,
            claimed_at INTEGER,
            send_token TEXT,
            recipient TEXT,
            language TEXT,
            provider_id TEXT,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            sent_at INTEGER
        )"""
    )
    db.execute("CREATE INDEX outbox_due ON outbox(state, channel, next_attempt_at)")
    db.execute("CREATE INDEX outbox_profile ON outbox(profile_id)")


def _m005_journeys(db: _Schema) -> None:
    # Journeys (journeys/): versions of journey files, runs (one person in one journey),
    # their timers, conversions, split assignments and a per-run log. Written by the
    # processor's journeys step and the timer worker, each in its own transaction.
    db.execute(
        """CREATE TABLE journey_versions (
            journey TEXT NOT NULL, version INTEGER NOT NULL, hash TEXT NOT NULL,
            text TEXT NOT NULL, path TEXT, created_at INTEGER NOT NULL,
            PRIMARY KEY (journey, version)
        )"""
    )
    db.execute("CREATE UNIQUE INDEX journey_versions_hash ON journey_versions(journey, hash)")
    db.execute(
        """CREATE TABLE journeys (
            name TEXT PRIMARY KEY, version INTEGER NOT NULL, enabled INTEGER NOT NULL,
            updated_at INTEGER NOT NULL
        )"""
    )
    db.execute(
        """CREATE TABLE journey_runs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            journey TEXT NOT NULL,
            version INTEGER NOT NULL,
            profile_id INTEGER NOT NULL,
            state TEXT NOT NULL,
            step TEXT,
            wait_event TEXT,
            dedupe TEXT,
            trigger_event INTEGER,
            context TEXT NOT NULL DEFAULT '{}',
            entered_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            ended_at INTEGER,
            end_reason TEXT
        )"""
    )
    db.execute("CREATE INDEX journey_runs_profile ON journey_runs(profile_id, journey)")
    db.execute("CREATE INDEX journey_runs_journey ON journey_runs(journey, state)")
    db.execute("CREATE UNIQUE INDEX journey_runs_dedupe "
               "ON journey_runs(journey, profile_id, dedupe) WHERE dedupe IS NOT NULL")
    db.execute(
        """CREATE TABLE journey_timers (
            run_id INTEGER PRIMARY KEY, due_at INTEGER NOT NULL, step TEXT NOT NULL,
            kind TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0
        )"""
    )
    db.execute("CREATE INDEX journey_timers_due ON journey_timers(due_at)")
    db.execute(
        """CREATE TABLE journey_conversions (
            run_id INTEGER PRIMARY KEY, journey TEXT NOT NULL, version INTEGER NOT NULL,
            profile_id INTEGER NOT NULL, event_id INTEGER, event TEXT NOT NULL,
            revenue REAL, at INTEGER NOT NULL
        )"""
    )
    db.execute("CREATE INDEX journey_conversions_journey ON journey_conversions(journey)")
    db.execute(
        """CREATE TABLE journey_assignments (
            run_id INTEGER NOT NULL, step TEXT NOT NULL, arm TEXT NOT NULL,
            at INTEGER NOT NULL, PRIMARY KEY (run_id, step)
        ) WITHOUT ROWID"""
    )
    db.execute(
        """CREATE TABLE journey_log (
            id INTEGER PRIMARY KEY AUTOINCREMENT, run_id INTEGER NOT NULL,
            at INTEGER NOT NULL, step TEXT, what TEXT NOT NULL, detail TEXT
        )"""
    )
    db.execute("CREATE INDEX journey_log_run ON journey_log(run_id)")
    db.execute(
        """CREATE TABLE journey_schedules (
            journey TEXT PRIMARY KEY, next_at INTEGER NOT NULL,
            after_profile INTEGER NOT NULL DEFAULT 0
        )"""
    )


def _m006_outbox_provider_index(db: _Schema) -> None:
    # Provider callbacks (Twilio status) find their outbox row by the provider's id.
    db.execute("CREATE INDEX outbox_provider ON outbox(channel, provider_id) "
               "WHERE provider_id IS NOT NULL")


def _m007_message_controls(db: _Schema) -> None:
    # Journey controls (messages/controls.py): a send's priority (the daily budget goes
    # to the highest) and what it does in quiet hours or over a cap (JSON), and a log of
    # what the dispatcher decided about a row besides sending it (deferred, skipped).
    db.execute("ALTER TABLE outbox ADD COLUMN priority INTEGER NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE outbox ADD COLUMN controls TEXT")
    db.execute(
        """CREATE TABLE outbox_log (
            id INTEGER PRIMARY KEY AUTOINCREMENT, outbox_id INTEGER NOT NULL,
            at INTEGER NOT NULL, what TEXT NOT NULL, detail TEXT
        )"""
    )
    db.execute("CREATE INDEX outbox_log_row ON outbox_log(outbox_id)")
    db.execute("CREATE INDEX outbox_profile_sent ON outbox(profile_id, sent_at)")
    # The claim takes due rows highest priority first: one index range per priority
    # (outbox.claim), instead of sorting every due row on each claim.
    db.execute("CREATE INDEX outbox_claim ON outbox(state, channel, priority, next_attempt_at)")


def _m008_reports(db: _Schema) -> None:
    # Reports (reports/): marketing spend per channel, campaign or journey, entered by
    # the admin API (kanal.toml's [costs] is read at report time), and the dashboard's
    # sign-in sessions (a hash of the cookie's token, never the token).
    db.execute(
        """CREATE TABLE costs (
            dimension TEXT NOT NULL, key TEXT NOT NULL, amount REAL NOT NULL,
            currency TEXT, updated_at INTEGER NOT NULL,
            PRIMARY KEY (dimension, key)
        ) WITHOUT ROWID"""
    )
    db.execute(
        """CREATE TABLE dashboard_sessions (
            token_hash TEXT PRIMARY KEY, key_id INTEGER NOT NULL, csrf TEXT NOT NULL,
            created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL
        ) WITHOUT ROWID"""
    )


def _m009_daily_aggregates(db: _Schema) -> None:
    # The KPI overview's daily figures, kept by the processor's profiles step so that the
    # overview reads a few rows a day instead of the log (reports/kpis.py). Days are UTC
    # day numbers (timestamp // 86 400 000). Only people's own events count (key_kind
    # other than 'kanal'), and only those on a timeline (profile_events), as before.
    #   active_days   one row per person and day they did something
    #   active_spans  people active on `day` whose previous active day was `prev_day`
    #                 (-2**40: none), so that distinct people over a window are a sum
    #                 (store/profiles.py explains)
    #   track_daily   track events per day and name; revenue is their order value
    db.execute(
        """CREATE TABLE active_days (
            day INTEGER NOT NULL, profile_id INTEGER NOT NULL,
            PRIMARY KEY (day, profile_id)
        ) WITHOUT ROWID"""
    )
    # Merges and `kanal forget` find a person's rows by profile.
    db.execute("CREATE INDEX active_days_profile ON active_days(profile_id)")
    db.execute(
        """CREATE TABLE active_spans (
            day INTEGER NOT NULL, prev_day INTEGER NOT NULL, people INTEGER NOT NULL,
            PRIMARY KEY (day, prev_day)
        ) WITHOUT ROWID"""
    )
    db.execute(
        """CREATE TABLE track_daily (
            day INTEGER NOT NULL, event TEXT NOT NULL, count INTEGER NOT NULL,
            revenue REAL NOT NULL, PRIMARY KEY (day, event)
        ) WITHOUT ROWID"""
    )
    # Backfill from the timelines the processor has already built, so an upgraded
    # database reports the same figures at once. The day is floored as Python floors.
    day = ("CASE WHEN {t} >= 0 THEN {t} / 86400000 "
           "ELSE ({t} + 1) / 86400000 - 1 END")
    db.execute(
        f"INSERT INTO active_days (day, profile_id) "
        f"SELECT DISTINCT {day.format(t='pe.timestamp')}, pe.profile_id "
        "FROM profile_events pe JOIN events e ON e.id = pe.event_id "
        "WHERE e.key_kind != 'kanal'"
    )
    db.execute(
        "INSERT INTO active_spans (day, prev_day, people) "
        "SELECT day, prev_day, count(*) FROM (SELECT day, coalesce(lag(day) OVER "
        f"(PARTITION BY profile_id ORDER BY day), {-(2 ** 40)}) AS prev_day "
        "FROM active_days) GROUP BY day, prev_day"
    )
    db.conn.create_function("kanal_order_value", 1, order_value, deterministic=True)
    db.execute(
        f"INSERT INTO track_daily (day, event, count, revenue) "
        f"SELECT {day.format(t='e.timestamp')} AS d, e.event, count(*), "
        "total(kanal_order_value(json_extract(e.body, '$.properties'))) FROM events e "
        "WHERE e.type = 'track' AND e.key_kind != 'kanal' AND e.event IS NOT NULL "
        "AND e.id IN (SELECT event_id FROM profile_events) GROUP BY d, e.event"
    )


def _m010_products(db: _Schema) -> None:
    # Products (products/): the catalogue (trusted: written by feeds, `kanal products
    # import` and the admin API only), one price per currency, price and stock history,
    # what people did with products (kept by the processor's products step), back-in-stock
    # requests, the recommendation lists the worker builds, and what recommendation links
    # were shown, clicked and bought. Times are epoch ms; money is REAL.
    db.execute(
        """CREATE TABLE products (
            id TEXT PRIMARY KEY,
            sku TEXT,
            name TEXT NOT NULL,
            url TEXT,
            image_url TEXT,
            currency TEXT NOT NULL,
            price REAL,
            sale_price REAL,
            availability TEXT NOT NULL,
            in_stock INTEGER NOT NULL,
            stock INTEGER,
            brand TEXT,
            category TEXT,
            categories TEXT NOT NULL DEFAULT '[]',
            parent_id TEXT,
            attributes TEXT NOT NULL DEFAULT '{}',
            source TEXT NOT NULL,
            hash TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            deleted_at INTEGER
        )"""
    )
    db.execute("CREATE INDEX products_sku ON products(sku)")
    db.execute("CREATE INDEX products_source ON products(source)")
    db.execute(
        """CREATE TABLE product_prices (
            product_id TEXT NOT NULL, currency TEXT NOT NULL, price REAL NOT NULL,
            sale_price REAL, PRIMARY KEY (product_id, currency)
        )"""
    )
    db.execute(
        """CREATE TABLE product_history (
            id INTEGER PRIMARY KEY,
            product_id TEXT NOT NULL,
            at INTEGER NOT NULL,
            what TEXT NOT NULL,
            currency TEXT,
            old_price REAL,
            new_price REAL,
            old_availability TEXT,
            new_availability TEXT,
            source TEXT
        )"""
    )
    db.execute("CREATE INDEX product_history_product ON product_history(product_id, id)")
    db.execute(
        """CREATE TABLE product_activity (
            profile_id INTEGER NOT NULL, kind TEXT NOT NULL, product_id TEXT NOT NULL,
            first_at INTEGER NOT NULL, last_at INTEGER NOT NULL, count INTEGER NOT NULL,
            PRIMARY KEY (profile_id, kind, product_id)
        )"""
    )
    db.execute("CREATE INDEX product_activity_product "
               "ON product_activity(product_id, kind, last_at)")
    db.execute(
        """CREATE TABLE product_orders (
            order_key TEXT NOT NULL, product_id TEXT NOT NULL, profile_id INTEGER NOT NULL,
            at INTEGER NOT NULL, quantity REAL NOT NULL, price REAL, currency TEXT,
            PRIMARY KEY (order_key, product_id)
        )"""
    )
    db.execute("CREATE INDEX product_orders_profile ON product_orders(profile_id, at)")
    db.execute("CREATE INDEX product_orders_at ON product_orders(at)")
    db.execute("CREATE INDEX product_orders_product ON product_orders(product_id, at)")
    db.execute(
        """CREATE TABLE product_alerts (
            profile_id INTEGER NOT NULL, product_id TEXT NOT NULL, created_at INTEGER NOT NULL,
            notified_at INTEGER, PRIMARY KEY (product_id, profile_id)
        )"""
    )
    db.execute("CREATE INDEX product_alerts_profile ON product_alerts(profile_id)")
    db.execute(
        """CREATE TABLE product_recs (
            kind TEXT NOT NULL, product_id TEXT NOT NULL, items TEXT NOT NULL,
            built_at INTEGER NOT NULL, PRIMARY KEY (kind, product_id)
        )"""
    )
    db.execute(
        """CREATE TABLE product_rec_links (
            outbox_id INTEGER NOT NULL, url TEXT NOT NULL, product_id TEXT NOT NULL,
            kind TEXT NOT NULL, message TEXT, journey TEXT, at INTEGER NOT NULL,
            PRIMARY KEY (outbox_id, url)
        )"""
    )
    db.execute("CREATE INDEX product_rec_links_at ON product_rec_links(at)")
    db.execute(
        """CREATE TABLE product_rec_clicks (
            id INTEGER PRIMARY KEY, profile_id INTEGER NOT NULL, product_id TEXT NOT NULL,
            kind TEXT NOT NULL, message TEXT, journey TEXT, outbox_id INTEGER NOT NULL,
            event_id INTEGER NOT NULL UNIQUE, at INTEGER NOT NULL
        )"""
    )
    db.execute("CREATE INDEX product_rec_clicks_person "
               "ON product_rec_clicks(profile_id, product_id, at)")
    db.execute(
        """CREATE TABLE product_rec_conversions (
            order_key TEXT NOT NULL, product_id TEXT NOT NULL, profile_id INTEGER NOT NULL,
            kind TEXT NOT NULL, message TEXT, journey TEXT, outbox_id INTEGER NOT NULL,
            clicked_at INTEGER NOT NULL, at INTEGER NOT NULL, revenue REAL NOT NULL,
            PRIMARY KEY (order_key, product_id)
        )"""
    )
    db.execute("CREATE INDEX product_rec_conversions_at ON product_rec_conversions(at)")
    db.execute(
        """CREATE TABLE product_feeds (
            name TEXT PRIMARY KEY, url TEXT NOT NULL, next_at INTEGER NOT NULL,
            last_attempt_at INTEGER, last_success_at INTEGER, status TEXT, detail TEXT,
            etag TEXT, last_modified TEXT
        )"""
    )


def _m011_deliverability(db: _Schema) -> None:
    # Deliverability (deliverability/): the email suppression list with its reasons;
    # every bounce and complaint reported by a provider webhook or a DSN (one row per
    # report, `key` dedupes a repeated one); the daily send and feedback counts the
    # deliverability report reads (journey '' for sends outside journeys); and counters
    # of messages handed to providers per period (warm-up ramps, recipient-domain
    # throttles). Plain DDL in the subset SQLite and PostgreSQL share.
    db.execute(
        """CREATE TABLE email_suppressions (
            address TEXT PRIMARY KEY,
            reason TEXT NOT NULL,
            detail TEXT,
            source TEXT NOT NULL,
            outbox_id INTEGER,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL
        )"""
    )
    db.execute(
        """CREATE TABLE email_feedback (
            id INTEGER PRIMARY KEY,
            key TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL,
            address TEXT NOT NULL,
            outbox_id INTEGER,
            channel TEXT,
            journey TEXT,
            domain TEXT NOT NULL,
            provider TEXT NOT NULL,
            detail TEXT,
            day INTEGER NOT NULL,
            at INTEGER NOT NULL
        )"""
    )
    db.execute("CREATE INDEX email_feedback_address ON email_feedback(address, kind, at)")
    db.execute("CREATE INDEX email_feedback_outbox ON email_feedback(outbox_id)")
    db.execute(
        """CREATE TABLE email_daily (
            day INTEGER NOT NULL,
            channel TEXT NOT NULL,
            journey TEXT NOT NULL,
            domain TEXT NOT NULL,
            sent INTEGER NOT NULL DEFAULT 0,
            hard INTEGER NOT NULL DEFAULT 0,
            soft INTEGER NOT NULL DEFAULT 0,
            complaints INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (day, channel, journey, domain)
        )"""
    )
    db.execute(
        """CREATE TABLE send_counts (
            scope TEXT NOT NULL,
            period INTEGER NOT NULL,
            count INTEGER NOT NULL,
            PRIMARY KEY (scope, period)
        )"""
    )
    # Webhooks and DSNs find the outbox row by the id it was sent under (the SMTP
    # channel's Message-ID, or a provider's id), whatever the channel.
    db.execute("CREATE INDEX outbox_provider_id ON outbox(provider_id) "
               "WHERE provider_id IS NOT NULL")
    # Email already sent counts in the daily report from the start.
    from .deliverability import backfill_daily

    backfill_daily(db.conn)


def _m012_order_copies(db: _Schema) -> None:
    # Copies of the same order (store/orders.py): which one the reports count. Filled
    # from the log the processor has already applied, and the KPI overview's figures and
    # journey conversions corrected to count each order once, as the profiles did.
    db.execute(
        """CREATE TABLE order_copies (
            event_id INTEGER PRIMARY KEY,
            event TEXT NOT NULL,
            order_id TEXT NOT NULL,
            trusted INTEGER NOT NULL,
            counted INTEGER NOT NULL,
            repeat INTEGER NOT NULL,
            value REAL NOT NULL,
            timestamp INTEGER NOT NULL
        )"""
    )
    db.execute("CREATE INDEX order_copies_order ON order_copies(event, order_id)")
    db.execute("CREATE INDEX order_copies_uncounted ON order_copies(timestamp) "
               "WHERE counted = 0")
    conn = db.conn
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


def _m013_normalised_contacts(db: _Schema) -> None:
    # Email and phone identities normalised one way (contacts.py): emails checked and
    # lower-cased, phones in E.164 (a national number read in its profile's country).
    # What changed is listed in contact_fixes (`kanal profiles contact-fixes`):
    #   normalised  the identity now holds the normalised value
    #   invalid     not a valid address or number: no longer an identity (the trait stays)
    #   conflict    the normalised value is another profile's identity: that profile
    #               keeps it; `kanal profiles rebuild` merges the two by the merge rules
    db.execute(
        """CREATE TABLE contact_fixes (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            value TEXT NOT NULL,
            profile_id INTEGER NOT NULL,
            outcome TEXT NOT NULL,
            normalised TEXT,
            other_profile INTEGER,
            detail TEXT,
            at INTEGER NOT NULL
        )"""
    )
    conn = db.conn
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


def _profile_country(conn: sqlite3.Connection, profile_id: int) -> str | None:
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


def _m014_login_failures(db: _Schema) -> None:
    # Failed dashboard sign-ins (dashboard/auth.py), counted per client address and the
    # prefix of the admin key that was tried, so guesses wait and the owner, signing in
    # from elsewhere or with another key, doesn't; kept in the database so every process
    # sees them and `kanal dashboard unlock` can clear them.
    db.execute(
        """CREATE TABLE login_failures (
            id INTEGER PRIMARY KEY,
            address TEXT NOT NULL,
            prefix TEXT NOT NULL,
            at INTEGER NOT NULL
        )"""
    )
    db.execute("CREATE INDEX login_failures_bucket ON login_failures(address, prefix, at)")


def _m015_onsite(db: _Schema) -> None:
    # On-site messages, sign-up forms and web push (onsite/). `onsite_queue` holds the
    # expiry of an outbox row queued for the `onsite` channel (a journey's send step);
    # `signups` the sign-up form submissions waiting for their double opt-in (the
    # confirmation token, made when the message goes out, is kept as a SHA-256 hash);
    # `onsite_exposures` who saw (or was held out of) which arm of a campaign first, for
    # the experiments report.
    db.execute(
        """CREATE TABLE onsite_queue (
            outbox_id INTEGER PRIMARY KEY,
            profile_id INTEGER NOT NULL,
            expires_at INTEGER NOT NULL
        )"""
    )
    db.execute("CREATE INDEX onsite_queue_expiry ON onsite_queue(expires_at)")
    db.execute(
        """CREATE TABLE signups (
            id INTEGER PRIMARY KEY,
            token_hash TEXT UNIQUE,
            channel TEXT NOT NULL,
            address TEXT NOT NULL,
            topic TEXT,
            campaign TEXT,
            message TEXT,
            consent_text TEXT NOT NULL,
            anonymous_id TEXT,
            source_id INTEGER NOT NULL,
            base_url TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            expires_at INTEGER NOT NULL,
            state TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at INTEGER NOT NULL,
            reason TEXT,
            sent_at INTEGER,
            confirmed_at INTEGER
        )"""
    )
    db.execute("CREATE INDEX signups_due ON signups(state, next_attempt_at)")
    db.execute("CREATE INDEX signups_address ON signups(channel, address, created_at)")
    db.execute(
        """CREATE TABLE onsite_exposures (
            campaign TEXT NOT NULL,
            profile_id INTEGER NOT NULL,
            arm TEXT NOT NULL,
            first_at INTEGER NOT NULL,
            PRIMARY KEY (campaign, profile_id)
        )"""
    )


MIGRATIONS: list[Callable[[_Schema], None]] = [
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
    _m015_onsite,
]


def schema_version(conn: sqlite3.Connection) -> int:
    """The migration level of this database."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection) -> int:
    """Apply every pending migration; return the new version. Safe to run concurrently."""
    with transaction(conn):
        current = schema_version(conn)
        if current > len(MIGRATIONS):
            raise RuntimeError(
                f"database schema version {current} is newer than this Kanal "
                f"({len(MIGRATIONS)}); upgrade Kanal"
            )
        schema = _Schema(conn)
        for number, step in enumerate(MIGRATIONS[current:], start=current + 1):
            step(schema)
            conn.execute(f"PRAGMA user_version={number}")
    return len(MIGRATIONS)
