"""Test data for the predictive models: the CDNOW sample of the BG/NBD and Gamma-Gamma
papers, and profiles with orders built without the processor.

The CDNOW sample (2,357 customers who first bought at CDNOW in the first quarter of
1997, their purchases to June 1998; Fader & Hardie's data set) ships inside the
`lifetimes` 0.11.3 wheel (MIT licence) as `lifetimes/datasets/CDNOW_sample.txt`. The
tests fetch that wheel from PyPI with `pip download --no-deps` once, check its SHA-256,
and keep it in ~/.cache/kanal-tests (or $KANAL_TEST_CACHE); `lifetimes` itself is never
installed or imported. Each line: customer id, sample index, date YYYYMMDD, CDs, dollars.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tempfile
import zipfile
from datetime import date
from pathlib import Path

WHEEL = "Lifetimes-0.11.3-py3-none-any.whl"
WHEEL_SHA256 = "261e3dc89977c2b60767ca6728aaa29d429de0c814635070a749c36555895da8"
MEMBER = "lifetimes/datasets/CDNOW_sample.txt"
EPOCH = date(1970, 1, 1)
CALIBRATION_END = (date(1997, 9, 30) - EPOCH).days
"""The last day of the papers' 39-week calibration period (epoch days)."""


def _cache_dir() -> Path:
    return Path(os.environ.get("KANAL_TEST_CACHE") or Path.home() / ".cache" / "kanal-tests")


def cdnow_wheel() -> Path:
    """The lifetimes 0.11.3 wheel, downloaded once and checked."""
    target = _cache_dir() / WHEEL
    if target.exists() and hashlib.sha256(target.read_bytes()).hexdigest() == WHEEL_SHA256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
             "--disable-pip-version-check", "-q", "-d", tmp, "lifetimes==0.11.3"],
            capture_output=True, text=True, timeout=300)
        got = Path(tmp) / WHEEL
        if done.returncode != 0 or not got.exists():
            raise RuntimeError(f"could not download {WHEEL}: {done.stderr.strip()}")
        digest = hashlib.sha256(got.read_bytes()).hexdigest()
        if digest != WHEEL_SHA256:
            raise RuntimeError(f"{WHEEL} has SHA-256 {digest}, expected {WHEEL_SHA256}")
        os.replace(got, target)  # atomic: parallel test workers never see half a file
    return target


def cdnow_transactions() -> list[tuple[int, int, float]]:
    """(customer index, epoch day, dollars) of every line of the CDNOW sample."""
    with zipfile.ZipFile(cdnow_wheel()) as wheel:
        text = io.TextIOWrapper(wheel.open(MEMBER), encoding="ascii").read()
    rows = []
    for line in text.splitlines():
        if not line.strip():
            continue
        _, index, day, _, dollars = line.split()
        when = date(int(day[:4]), int(day[4:6]), int(day[6:]))
        rows.append((int(index), (when - EPOCH).days, float(dollars)))
    return rows


# -- shops made of simulated customers ---------------------------------------------------

DAY = 86_400_000


def simulate_orders(customers: int, *, start_ms: int, end_ms: int, seed: int = 1,
                    r: float = 0.6, alpha: float = 40.0, a: float = 0.9, b: float = 4.0,
                    p: float = 3.0, q: float = 5.0, gamma: float = 40.0,
                    ) -> list[tuple[str, int, float]]:
    """(userId, order time ms, value) of customers who first buy at a uniform time in
    [start_ms, end_ms) and then buy as BG/NBD (days) and spend as Gamma-Gamma say."""
    import numpy as np

    rng = np.random.default_rng(seed)
    first = rng.uniform(start_ms, end_ms, customers)
    span = (end_ms - first) / DAY
    lam = rng.gamma(r, 1 / alpha, customers)
    drop = rng.beta(a, b, customers)
    nu = rng.gamma(q, 1 / gamma, customers)
    out: list[tuple[str, int, float]] = []
    for i in range(customers):
        user = f"c{i}"
        out.append((user, int(first[i]), round(float(rng.gamma(p, 1 / nu[i])), 2)))
        t = 0.0
        while True:
            t += rng.exponential(1 / lam[i])
            if t > span[i]:
                break
            out.append((user, int(first[i] + t * DAY), round(float(rng.gamma(p, 1 / nu[i])), 2)))
            if rng.random() < drop[i]:
                break
    return out


def write_profiles(db: object, orders: list[tuple[str, int, float]]) -> dict[str, int]:
    """Profiles holding these orders, written straight into the store (as the processor
    would fold them: an order key per order); {userId: profile id}."""
    from kanal_collector.store import identities as identity_store
    from kanal_collector.store import profiles as store
    from kanal_collector.store.db import transaction

    by_user: dict[str, list[tuple[int, float]]] = {}
    for user, ts, value in orders:
        by_user.setdefault(user, []).append((ts, value))
    ids: dict[str, int] = {}
    conn = db.conn()  # type: ignore[attr-defined]
    with transaction(conn):
        for user, items in by_user.items():
            state = {"first": min(t for t, _ in items), "last": max(t for t, _ in items),
                     "orders": {f"o:{user}-{n}": [v, t] for n, (t, v) in enumerate(items)}}
            pid = store.create_profile(conn, state["first"], state)
            identity_store.add_identities(conn, [("user_id", user, pid, None)])
            ids[user] = pid
    return ids
