"""Helpers for the audiences tests: a real log with people in a segment, kanal.toml
audiences, and a recorder of what a platform (mocked with `responses`) received."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import responses
from profiles_util import T0, Log

from kanal_collector.audiences.destination import Destination
from kanal_collector.audiences.plugins import build_destination, check_audiences
from kanal_collector.audiences.settings import AudienceSettings
from kanal_collector.audiences.sync import AudienceSync, Outcome
from kanal_collector.config import Config, load_config
from kanal_collector.store import audiences as store
from kanal_collector.store import segments as segment_store
from kanal_collector.store.db import transaction

META_URL = "https://graph.facebook.com/v25.0/2385000/users"
SEGMENTS = {"vips": {"all": [{"trait": "vip", "eq": True}]}}


def meta_toml(name: str = "vip_ads", **extra: Any) -> str:
    """An `[audiences.NAME]` table for Meta following the `vips` segment."""
    lines = [f"[audiences.{name}]", 'destination = "meta"', 'segment = "vips"',
             'audience_id = "2385000"', 'access_token = "EAAtoken"']
    lines += [f"{k} = {json.dumps(v)}" for k, v in extra.items()]
    return "\n".join(lines) + "\n"


class Shop:
    """A database with the `vips` segment, people, and audiences from a kanal.toml."""

    def __init__(self, tmp: Path, toml: str = "") -> None:
        self.tmp = tmp
        self.log = Log(tmp / "kanal.db")
        with transaction(self.log.conn):
            segment_store.put_segment_definitions(self.log.conn, SEGMENTS, T0)
        self.configure(toml or meta_toml())

    @property
    def conn(self) -> Any:
        return self.log.conn

    @property
    def db(self) -> str:
        """The database's `--db` (a SQLite path, or a PostgreSQL URL)."""
        return self.log.db.target

    @property
    def clock(self) -> Any:
        return self.log.clock

    def configure(self, toml: str) -> Config:
        path = self.tmp / "kanal.toml"
        path.write_text(textwrap.dedent(toml), encoding="utf-8")
        self.config = load_config(path)
        self.settings = check_audiences(self.config)
        return self.config

    def now(self) -> int:
        return int(self.clock.now() * 1000)

    def person(self, user_id: str, *, vip: bool = True, consent: bool | None = True,
               **traits: Any) -> int:
        """A trusted identify: in the segment (`vip`), advertising consent as given."""
        if consent is not None:
            traits["consent"] = {"advertising": consent}
        return self.log.person(user_id, self.now(), vip=vip, **traits)

    def identify(self, user_id: str, **traits: Any) -> None:
        """A later trusted identify (a second later), processed."""
        self.clock.advance(1)
        self.log.add("identify", user_id=user_id, trusted=True, traits=traits,
                     ts=self.now(), received=self.now())
        self.log.process()

    def audience(self, name: str = "vip_ads") -> AudienceSettings:
        return self.settings[name]

    def destination(self, name: str = "vip_ads") -> Destination:
        return build_destination(self.audience(name))

    def sync(self, name: str = "vip_ads", *, max_batches: int | None = None,
             destination: Destination | None = None) -> Outcome:
        sync = AudienceSync(self.conn, self.audience(name),
                            destination or self.destination(name), self.clock)
        return sync.step("test", max_batches)

    def rows(self, name: str = "vip_ads") -> dict[str, str]:
        """{row_key: state} of the audience."""
        return {k: s for k, _, s in store.member_rows(self.conn, name)}

    def states(self, name: str = "vip_ads") -> list[str]:
        return sorted(self.rows(name).values())

    def close(self) -> None:
        self.log.close()


class MetaRecorder:
    """What a mocked Meta endpoint received: (method, payload, form) per request."""

    def __init__(self, mock: responses.RequestsMock, url: str = META_URL) -> None:
        self.calls: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        self.answers: list[tuple[int, dict[str, Any], dict[str, str]]] = []
        for method in (responses.POST, responses.DELETE):
            mock.add_callback(method, url, callback=self._answer)

    def _answer(self, request: Any) -> tuple[int, dict[str, str], str]:
        form = {k: v[0] for k, v in parse_qs(request.body).items()}
        payload = json.loads(form["payload"])
        self.calls.append((request.method, payload, form))
        if self.answers:
            status, body, headers = self.answers.pop(0)
            return status, headers, json.dumps(body)
        return 200, {}, json.dumps({"audience_id": "2385000", "session_id": "1",
                                    "num_received": len(payload["data"]),
                                    "num_invalid_entries": 0,
                                    "invalid_entry_samples": {}})

    def answer(self, status: int, body: dict[str, Any],
               headers: dict[str, str] | None = None) -> None:
        """Answer the next request with this instead of a success."""
        self.answers.append((status, body, headers or {}))

    def rows(self, method: str | None = None) -> list[list[str]]:
        return [row for m, p, _ in self.calls if method in (None, m) for row in p["data"]]
