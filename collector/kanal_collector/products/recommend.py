"""Serving recommendations: `kanal recommend`, the admin API and the template function.

Kinds: `bought_together`, `viewed_together` and `similar` (for given products, else
for what the person bought or viewed lately), `popular`, `trending`, `recently_viewed`
and `personal` (a mix from the person's history: bought together with what they
bought, viewed together with and similar to what they viewed, what they viewed).

Every kind is filtered the same way: no product the person bought within
`exclude_bought_within`, nothing out of stock or deleted, nothing without an image
(`require_image`), not the products asked about (the one that triggered a message),
one variant per product group, and optionally a category and a price range (in the
person's currency). When a kind has fewer than `n` products left, popular products fill
the rest; `served` says which kind answered ("popular" when the requested one had
nothing, e.g. for a person with no history).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..store import product_activity as activity
from ..store import products as catalogue
from ..store.connection import Connection
from .kinds import GLOBAL_KINDS, ITEM_KINDS
from .record import effective_price
from .settings import ProductSettings
from .views import price_in, template_product

KINDS = ("personal", "bought_together", "viewed_together", "similar", "popular", "trending",
         "recently_viewed")
MAX_N = 50
_SEEDS = 10
# How much each list weighs in the personal mix.
_MIX = (("bought_together", "bought", 1.0), ("viewed_together", "viewed", 0.7),
        ("similar", "viewed", 0.4))
_RECENT_WEIGHT = 0.5


@dataclass(frozen=True)
class Filters:
    """What every kind is filtered by besides stock, image and recent purchases."""

    category: str | None = None
    min_price: float | None = None
    max_price: float | None = None
    exclude: frozenset[str] = frozenset()


@dataclass
class Recommendations:
    """An answer: the kind asked for, the kind that served, and the products."""

    requested: str
    served: str
    items: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The answer as the admin API gives it."""
        return {"requested": self.requested, "served": self.served, "items": self.items}


def check_kind(kind: str) -> str:
    """`kind` when it is one, else ValueError naming them."""
    if kind not in KINDS:
        raise ValueError(f"kind: one of {', '.join(KINDS)}, not {kind!r}")
    return kind


def _person_seeds(conn: Connection, profile_id: int | None, since: int
                  ) -> tuple[list[str], list[str]]:
    """(bought, viewed or carted) product ids of a person, most recent first."""
    if profile_id is None:
        return [], []
    bought = [pid for pid, _ in activity.bought_since(conn, profile_id, since)][:_SEEDS]
    seen = sorted(activity.person_activity(conn, profile_id, "view", _SEEDS)
                  + activity.person_activity(conn, profile_id, "cart", _SEEDS),
                  key=lambda item: -item[1])
    viewed = list(dict.fromkeys(pid for pid, _ in seen))[:_SEEDS]
    return bought, viewed


def _merged(lists: Mapping[str, Sequence[tuple[str, float]]], seeds: Sequence[str],
            weight: float, scores: dict[str, float]) -> None:
    """Add each seed's list by rank (1/(rank+1)), earlier seeds weighing more."""
    for s, seed in enumerate(seeds):
        for rank, (pid, _) in enumerate(lists.get(seed, [])):
            scores[pid] += weight / (rank + 1) / (1 + 0.25 * s)


def candidates(conn: Connection, kind: str, *, profile_id: int | None,
               seeds: Sequence[str], since: int) -> list[str]:
    """Product ids a kind proposes, best first, before filtering."""
    scores: dict[str, float] = defaultdict(float)
    if kind in GLOBAL_KINDS:
        return [pid for pid, _ in activity.load_recs(conn, kind, [""]).get("", [])]
    if kind == "recently_viewed":
        if profile_id is None:
            return []
        return [pid for pid, _ in activity.person_activity(conn, profile_id, "view", 100)]
    bought, viewed = _person_seeds(conn, profile_id, since) if not seeds else ([], [])
    if kind in ITEM_KINDS:
        if not seeds:
            seeds = {"bought_together": bought, "viewed_together": viewed,
                     "similar": viewed + bought}[kind]
        _merged(activity.load_recs(conn, kind, seeds), seeds, 1.0, scores)
    else:  # personal
        history = {"bought": list(seeds) or bought, "viewed": list(seeds) or viewed}
        for list_kind, source, weight in _MIX:
            _merged(activity.load_recs(conn, list_kind, history[source]), history[source],
                    weight, scores)
        if not seeds:
            for rank, pid in enumerate(viewed):
                scores[pid] += _RECENT_WEIGHT / (rank + 1)
    return sorted(scores, key=lambda pid: (-scores[pid], pid))


def _category_matches(row: Mapping[str, Any], wanted: str) -> bool:
    wanted = wanted.strip().lower()
    for path in row.get("categories") or []:
        path = str(path).lower()
        if path == wanted or path.startswith(wanted + " >"):
            return True
    return False


def _keep(row: Mapping[str, Any] | None, settings: ProductSettings, filters: Filters,
          currency: str | None) -> bool:
    if row is None or row.get("deleted_at") is not None or not row["in_stock"]:
        return False
    if settings.require_image and not row.get("image_url"):
        return False
    if filters.category and not _category_matches(row, filters.category):
        return False
    if filters.min_price is not None or filters.max_price is not None:
        _, price, sale = price_in(row, currency)
        now = effective_price(price, sale)
        if now is None or (filters.min_price is not None and now < filters.min_price) or \
                (filters.max_price is not None and now > filters.max_price):
            return False
    return True


def recommend(conn: Connection, settings: ProductSettings, *, now_ms: int,
              profile_id: int | None = None, kind: str = "personal", n: int = 4,
              products: Iterable[str] = (), filters: Filters | None = None,
              currency: str | None = None) -> Recommendations:
    """Up to `n` products of `kind` for a person (or none), filled from popular ones."""
    check_kind(kind)
    if not 1 <= n <= MAX_N:
        raise ValueError(f"n: between 1 and {MAX_N}, not {n}")
    filters = filters or Filters()
    seeds = list(dict.fromkeys(str(p) for p in products if p))
    excluded = set(seeds) | set(filters.exclude)
    if profile_id is not None:
        excluded |= {pid for pid, _ in activity.bought_since(
            conn, profile_id, now_ms - settings.exclude_bought_ms)}
    since = now_ms - settings.history_ms
    answer = Recommendations(kind, kind)
    groups: set[str] = set()
    for source in (kind, "popular") if kind != "popular" else (kind,):
        wanted = [pid for pid in candidates(conn, source, profile_id=profile_id, seeds=seeds,
                                            since=since) if pid not in excluded]
        for start in range(0, len(wanted), 100):
            if len(answer.items) >= n:
                break
            chunk = wanted[start:start + 100]
            rows = catalogue.load_products(conn, chunk)
            for pid in chunk:
                row = rows.get(pid)
                if row is None or not _keep(row, settings, filters, currency):
                    continue
                group = row.get("parent_id") or pid
                if group in groups:
                    continue
                groups.add(group)
                excluded.add(pid)
                answer.items.append(template_product(row, currency=currency, kind=source))
                if len(answer.items) >= n:
                    break
        if len(answer.items) >= n:
            break
    if answer.items and all(item["kind"] != kind for item in answer.items):
        answer.served = answer.items[0]["kind"]
    return answer
