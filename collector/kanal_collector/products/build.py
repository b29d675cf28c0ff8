"""Building the recommendation lists: a worker, on a schedule and after new data.

    bought_together   per product: products bought by the same people, ranked by lift
                      P(a and b) / (P(a) P(b)) among pairs with at least `min_support`
                      people who bought both ("customers who bought this also bought")
    viewed_together   the same over product views
    similar           same category (2 points) and brand (1 point), then popularity
    popular           distinct buyers in `popular_window`
    trending          buyers (3), cart adds (2) and viewers (1) in `trending_window`

Counts come from sparse matrices (people × products, scipy): the co-occurrence matrix
is XᵀX. The lists (top 20 each) are written in one transaction, replacing the old ones.
The person-specific kinds (recently viewed, personal mix) are put together at request
time from these lists (recommend.py).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice

import numpy as np
from scipy import sparse

from ..clock import Clock
from ..memory import trim
from ..store import product_activity as activity
from ..store import products as catalogue
from ..store.connection import Connection
from ..store.db import Database, transaction
from .settings import ProductSettings

log = logging.getLogger("kanal.products")

TOP_K = 20
GLOBAL_K = 200
_CHECK_EVERY_MS = 5_000  # how often the worker looks for new orders and views

Lists = dict[str, list[tuple[str, float]]]


_CHUNK = 10_000
"""Rows read at a time while gathering them into columns."""


@dataclass
class _Rows:
    """(person, product, at, kind) rows as numpy columns, 21 bytes a row.

    Gathered a chunk at a time from a streamed read: the activity of a 10M-event shop
    is millions of rows, and as Python tuples (about 300 bytes a row with their
    objects) they held hundreds of MB at the peak of every build, memory that
    `kanal serve` kept afterwards (#18). Product numbers follow the ids' sort order
    (`ids`), so ties can be broken by number.
    """

    people: np.ndarray  # profile ids, int64
    items: np.ndarray  # product numbers, int32, indexes of `ids`
    at: np.ndarray  # timestamps, int64
    kinds: np.ndarray  # int8, indexes of `kind_names`
    ids: list[str]
    kind_names: list[str]

    @classmethod
    def gather(cls, *streams: Iterable[tuple[int, str, int, str]]) -> _Rows:
        """The rows of every stream, as columns."""
        columns: list[list[np.ndarray]] = [[], [], [], []]
        numbers: dict[str, int] = {}  # product id → number in the order first seen
        kinds: dict[str, int] = {}
        for stream in streams:
            rows = iter(stream)
            while chunk := list(islice(rows, _CHUNK)):
                n = len(chunk)
                columns[0].append(np.fromiter((r[0] for r in chunk), np.int64, n))
                columns[1].append(np.fromiter(
                    (numbers.setdefault(r[1], len(numbers)) for r in chunk), np.int32, n))
                columns[2].append(np.fromiter((r[2] for r in chunk), np.int64, n))
                columns[3].append(np.fromiter(
                    (kinds.setdefault(r[3], len(kinds)) for r in chunk), np.int8, n))
        dtypes = (np.int64, np.int32, np.int64, np.int8)
        # One column at a time, its chunks let go as it is joined: the peak is the rows
        # once and a column, not the rows twice.
        people, items, at, kind = (_joined(columns, i, t) for i, t in enumerate(dtypes))
        ids = sorted(numbers)
        rank = np.empty(len(ids), dtype=np.int32)
        for i, item in enumerate(ids):
            rank[numbers[item]] = i
        return cls(people, rank[items] if len(ids) else items, at, kind, ids, list(kinds))

    @classmethod
    def of_pairs(cls, pairs: Sequence[tuple[int, str]]) -> _Rows:
        """(person, product) pairs as columns (at 0, one kind)."""
        return cls.gather((p, i, 0, "") for p, i in pairs)

    def pick(self, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(people, items) of the rows `mask` picks (no copy when it picks them all)."""
        if mask.all():
            return self.people, self.items
        return self.people[mask], self.items[mask]

    def mask(self, kind: str, since: int | None = None) -> np.ndarray:
        """The rows of `kind` (at or after `since`)."""
        if kind not in self.kind_names:
            return np.zeros(len(self.people), dtype=bool)
        out = self.kinds == self.kind_names.index(kind)
        if since is not None:
            out &= self.at >= since
        return out


def _joined(columns: list[list[np.ndarray]], i: int, dtype: type) -> np.ndarray:
    """Column i's chunks as one array (the chunks are dropped)."""
    chunks, columns[i] = columns[i], []
    return np.concatenate(chunks) if chunks else np.empty(0, dtype)


def _person_rows(people: np.ndarray) -> tuple[np.ndarray, int]:
    """Matrix rows for people ids, and how many rows: the ids less the smallest when
    they are dense enough (profile ids are), else the ids numbered 0…n-1 (a sort, and
    two more copies of the column)."""
    low, high = int(people.min()), int(people.max())
    span = high - low + 1
    if span <= 4 * len(people) + 1_000_000 and -2**31 <= low and high < 2**31:
        rows = people.astype(np.int32)
        rows -= low
        return rows, span
    _, numbered = np.unique(people, return_inverse=True)
    return numbered.astype(np.int32), int(numbered.max()) + 1


def _cooccurrence(people: np.ndarray, items: np.ndarray, ids: Sequence[str], *,
                  min_support: int, top_k: int) -> Lists:
    """`cooccurrence` of pairs given as columns (product numbers index `ids`)."""
    if not len(people):
        return {}
    rows, height = _person_rows(people)
    # Counts in int32 (a pair's count is at most the people): half float64's memory.
    x = sparse.csr_matrix((np.ones(len(rows), dtype=np.int32), (rows, items)),
                          shape=(height, len(ids)))
    del rows
    x.sum_duplicates()
    x.data[:] = 1  # a person either has the product or not
    n = float(np.count_nonzero(np.diff(x.indptr)))  # people with any row
    counts = np.asarray(x.sum(axis=0)).ravel().astype(np.float64)
    c = (x.T @ x).tocsr()
    c.setdiag(0)
    c.eliminate_zeros()
    row_of = np.repeat(np.arange(c.shape[0]), np.diff(c.indptr))
    keep = c.data >= min_support
    lift = c.data * n / (counts[row_of] * counts[c.indices])
    out: Lists = {}
    for a in range(c.shape[0]):
        start, end = c.indptr[a], c.indptr[a + 1]
        mask = keep[start:end]
        if not mask.any():
            continue
        others = c.indices[start:end][mask]
        scores = lift[start:end][mask]
        # lexsort sorts by the last key first: lift desc, then support desc, then id
        order = np.lexsort((others, -c.data[start:end][mask], -scores))[:top_k]
        out[ids[a]] = [(ids[others[i]], round(float(scores[i]), 6)) for i in order]
    return out


def cooccurrence(pairs: Sequence[tuple[int, str]], *, min_support: int,
                 top_k: int = TOP_K) -> Lists:
    """{product: [(other, lift), …]} from (person, product) pairs: the best `top_k` others
    by lift among those at least `min_support` people had both; ties by count, then id."""
    rows = _Rows.of_pairs(pairs)
    return _cooccurrence(rows.people, rows.items, rows.ids, min_support=min_support,
                         top_k=top_k)


def similar(meta: Sequence[tuple[str, str | None, str | None]], popularity: Mapping[str, int],
            top_k: int = TOP_K) -> Lists:
    """{product: [(other, score), …]}: same category 2 points, same brand 1, ties by
    popularity then id."""
    def rank(pid: str) -> tuple[int, str]:
        return (-popularity.get(pid, 0), pid)

    order = {pid: i for i, pid in enumerate(sorted((m[0] for m in meta), key=rank))}
    category = {pid: (c or "").lower() for pid, c, _ in meta}
    brand = {pid: (b or "").lower() for pid, _, b in meta}
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for pid, _, _ in meta:
        if category[pid]:
            groups[("c", category[pid])].append(pid)
        if brand[pid]:
            groups[("b", brand[pid])].append(pid)
    for group in groups.values():
        group.sort(key=order.__getitem__)
    out: Lists = {}
    for pid, _, _ in meta:
        cat, brd = category[pid], brand[pid]
        candidates = set(groups.get(("c", cat), [])[:top_k + 1]) if cat else set()
        if brd:
            candidates.update(groups.get(("b", brd), [])[:top_k + 1])
        candidates.discard(pid)
        if not candidates:
            continue
        scored = sorted(((2 * (bool(cat) and category[o] == cat)
                          + (bool(brd) and brand[o] == brd), o) for o in candidates),
                        key=lambda t: (-t[0], order[t[1]]))[:top_k]
        out[pid] = [(o, float(score)) for score, o in scored]
    return out


def ranked(counts: Mapping[str, float], top_k: int = GLOBAL_K) -> list[tuple[str, float]]:
    """The `top_k` products by count (ties by id)."""
    return sorted(((p, float(n)) for p, n in counts.items() if n > 0),
                  key=lambda item: (-item[1], item[0]))[:top_k]


def _people_per_product(rows: _Rows, mask: np.ndarray) -> dict[str, int]:
    """{product: distinct people} among the rows `mask` picks."""
    if not mask.any():
        return {}
    pairs = np.unique(rows.people[mask] * len(rows.ids) + rows.items[mask])
    counts = np.bincount(pairs % len(rows.ids), minlength=len(rows.ids))
    return {rows.ids[i]: int(counts[i]) for i in np.flatnonzero(counts)}


@dataclass(frozen=True)
class BuildReport:
    """What one build made and how long it took."""

    lists: dict[str, int]
    seconds: float


def build(conn: Connection, settings: ProductSettings, now_ms: int) -> BuildReport:
    """Compute every list from the stored orders and activity, and replace the old ones."""
    started = time.perf_counter()
    since = now_ms - settings.history_ms
    rows = _Rows.gather(activity.stream_orders(conn, since),
                        activity.stream_activity(conn, since))
    orders, views = rows.mask("order"), rows.mask("view")
    bought = _cooccurrence(*rows.pick(orders), rows.ids,
                           min_support=settings.min_support, top_k=TOP_K)
    viewed = _cooccurrence(*rows.pick(views), rows.ids,
                           min_support=settings.min_support, top_k=TOP_K)
    buyers = _people_per_product(rows, rows.mask("order", now_ms - settings.popular_ms))
    recent = now_ms - settings.trending_ms
    trend: dict[str, float] = defaultdict(float)
    for weight, kind in ((3, "order"), (2, "cart"), (1, "view")):
        for pid, n in _people_per_product(rows, rows.mask(kind, recent)).items():
            trend[pid] += weight * n
    del rows, orders, views
    alike = similar(catalogue.catalogue_meta(conn), buyers)
    lists: dict[str, Mapping[str, Sequence[tuple[str, float]]]] = {
        "bought_together": bought, "viewed_together": viewed, "similar": alike,
        "popular": {"": ranked(buyers)}, "trending": {"": ranked(trend)},
    }
    with transaction(conn):
        for kind, per_product in lists.items():
            activity.save_recs(conn, kind, per_product, now_ms)
    return BuildReport({k: len(v) for k, v in lists.items()}, time.perf_counter() - started)


class RecommendationsWorker:
    """Rebuilds the lists every `rebuild_every`, and `rebuild_after` new orders or views."""

    name = "recommendations"

    def __init__(self, db: Database, clock: Clock, settings: ProductSettings) -> None:
        self.db = db
        self.clock = clock
        self.settings = settings
        self._conn: Connection | None = None
        self._built_at: int | None = None
        self._fingerprint: tuple[int, int, int] | None = None
        self._changed_at: int | None = None
        self._checked = 0

    def run_once(self) -> int:
        """Build when due; 1 when a build ran, else 0."""
        if self._conn is None:
            self._conn = self.db.connect()
            self._built_at = activity.recs_built_at(self._conn)
        now_ms = int(self.clock.now() * 1000)
        if now_ms - self._checked >= _CHECK_EVERY_MS or self._fingerprint is None:
            self._checked = now_ms
            fingerprint = activity.orders_version(self._conn)
            # New rows since the last check; at start, rows newer than the stored lists
            # (orders or views that came while no worker ran).
            newer = self._fingerprint is None and self._built_at is not None and \
                max(fingerprint[1], fingerprint[2]) > self._built_at
            if (self._fingerprint is not None and fingerprint != self._fingerprint) or newer:
                self._changed_at = self._changed_at or now_ms
            self._fingerprint = fingerprint
        due = self._built_at is None or now_ms - self._built_at >= self.settings.rebuild_every_ms
        if self._changed_at is not None and \
                now_ms - self._changed_at >= self.settings.rebuild_after_ms:
            due = True
        if not due:
            return 0
        report = build(self._conn, self.settings, now_ms)
        trim()  # a build's columns are the biggest thing the server allocates (memory.py)
        self._built_at, self._changed_at = now_ms, None
        log.info("recommendations built in %.2f s: %s", report.seconds,
                 ", ".join(f"{k} {n}" for k, n in report.lists.items()))
        return 1

    def close(self) -> None:
        """Close the worker's connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
