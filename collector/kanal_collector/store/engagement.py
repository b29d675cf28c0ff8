"""What happened to each sent message: delivered, opened, clicked (the journey funnels).

`outbox_engagement` holds one row per outbox row and stage it reached, written by the
processor's engagement step (reports/engagement.py) from Kanal's own events about outbox
rows (their `properties.outbox_id`); events flagged as a bot (link scanners, mail-privacy
proxies) don't count. A funnel joins it to the sends of its runs instead of reading the
log.
"""

from __future__ import annotations

from collections.abc import Iterable

from .connection import Connection

DELIVERED_EVENTS = ("Email Delivered", "SMS Delivered", "Push Notification Sent",
                    "Webhook Delivered", "Message Delivered", "On-site Message Delivered")
"""The events that say a message reached the person's provider or device (see
messages/delivery.py; "SMS Sent" only says the SMS provider took it)."""
OPENED_EVENTS = ("Email Opened", "On-site Message Shown")
CLICKED_EVENTS = ("Email Link Clicked", "On-site Message Clicked", "Push Notification Clicked")
STAGES = (("delivered", DELIVERED_EVENTS), ("opened", OPENED_EVENTS),
          ("clicked", CLICKED_EVENTS))
STAGE_OF = {name: stage for stage, names in STAGES for name in names}
"""Event name → the stage it says a message reached."""


def record(conn: Connection, rows: Iterable[tuple[int, str]]) -> None:
    """Note (outbox id, stage) pairs; a pair noted before is left as it is."""
    conn.executemany("INSERT INTO outbox_engagement (outbox_id, stage) VALUES (?, ?) "
                     "ON CONFLICT DO NOTHING", sorted(set(rows)))
