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
