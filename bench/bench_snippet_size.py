"""Size of kanal.js on the wire, beside the trackers of Plausible and Umami.

    python bench/bench_snippet_size.py [--collector URL]

Ours is the built file as the collector serves it (`/kanal.js` of a running collector
with --collector, else the committed collector/kanal_collector/static/kanal.js), and the
on-site and web push code it loads only when needed (`/kanal-onsite.js`, goal 8 KB),
beside kanal.js as it was before the on-site code (read from git, commit BEFORE_ONSITE).
The other baselines are fetched from the npm registry in the same run (`npm pack` into a
temp dir, nothing of theirs is kept) and gzipped the same way (gzip -9):

  - @plausible-analytics/tracker: its published plausible.js, as is (already minified);
  - plausible-tracker: its published ES module build, bundled and minified by esbuild;
  - umami: the published tracker source (src/tracker/index.js), minified by esbuild
    (the umami package ships the tracker unbuilt; its own build uses terser).

esbuild is the pinned one of js_snippet/ (run `npm ci` there first) so the baselines are
minified like ours. A baseline that cannot be had (no npm, offline) is reported as such.
Never fails on size: it prints figures. The goal for kanal.js is 2.5 KB gzipped, for
kanal-onsite.js 8 KB.
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import subprocess
import tarfile
import tempfile
import urllib.request
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILT = ROOT / "collector" / "kanal_collector" / "static" / "kanal.js"
ONSITE = BUILT.parent / "kanal-onsite.js"
ESBUILD = ROOT / "js_snippet" / "node_modules" / ".bin" / "esbuild"
GOAL = 2560
ONSITE_GOAL = 8192
BEFORE_ONSITE = "310942c"
"""The last commit whose kanal.js had no on-site hooks (the core's baseline)."""

BASELINES: list[tuple[str, str, str, str]] = [
    # (label, npm spec, file in the tarball, how to prepare it)
    ("Plausible (@plausible-analytics/tracker)", "@plausible-analytics/tracker@0.4.6",
     "package/plausible.js", "as-is"),
    ("Plausible (plausible-tracker)", "plausible-tracker@0.3.9",
     "package/build/module/index.js", "bundle"),
    ("Umami (umami, src/tracker)", "umami@2.10.0", "package/src/tracker/index.js", "minify"),
]


def gzipped(data: bytes) -> int:
    """Bytes after gzip -9 (no timestamp, so the figure is stable)."""
    return len(gzip.compress(data, compresslevel=9, mtime=0))


def npm_file(spec: str, member: str, workdir: Path) -> Path:
    """`npm pack` a package into workdir and extract its files; return one of them."""
    npm = shutil.which("npm")
    if not npm:
        raise RuntimeError("npm not found")
    done = subprocess.run(
        [npm, "pack", spec, "--silent", "--pack-destination", str(workdir)],
        capture_output=True, text=True, timeout=300,
    )
    if done.returncode:
        raise RuntimeError(f"npm pack {spec} failed: {done.stderr.strip()[-200:]}")
    tarball = workdir / done.stdout.strip().splitlines()[-1]
    dest = workdir / tarball.stem
    with tarfile.open(tarball) as tar:
        # Only what the bundle needs; filter="data" refuses odd paths.
        wanted = [m for m in tar.getmembers() if m.name.startswith(str(Path(member).parent))]
        tar.extractall(dest, members=wanted, filter="data")
    return dest / member


def prepare(path: Path, how: str) -> bytes:
    """The file as a browser would get it: as published, or minified by our esbuild."""
    if how == "as-is":
        return path.read_bytes()
    if not ESBUILD.exists():
        raise RuntimeError("esbuild missing: run `npm ci` in js_snippet/")
    args = [str(ESBUILD), str(path), "--minify", "--target=es2017", "--legal-comments=none"]
    if how == "bundle":
        args += ["--bundle", "--format=iife"]
    done = subprocess.run(args, capture_output=True, timeout=120)
    if done.returncode:
        raise RuntimeError(done.stderr.decode()[-200:])
    return done.stdout


def ours(collector: str | None, name: str = "kanal.js") -> tuple[str, bytes]:
    if collector:
        url = collector.rstrip("/") + "/" + name
        with urllib.request.urlopen(url, timeout=10) as response:
            return f"{name} (served by {url})", response.read()
    return f"{name} (collector/kanal_collector/static)", (BUILT.parent / name).read_bytes()


def before_onsite() -> bytes:
    """kanal.js as committed before the on-site code (git)."""
    git = shutil.which("git")
    if not git:
        raise RuntimeError("git not found")
    done = subprocess.run([git, "show", f"{BEFORE_ONSITE}:collector/kanal_collector/static/"
                           "kanal.js"], cwd=ROOT, capture_output=True, timeout=60)
    if done.returncode:
        raise RuntimeError(done.stderr.decode().strip()[-200:] or "git show failed")
    return done.stdout


def main(argv: list[str] | None = None, out: Callable[[str], None] = print) -> None:
    """Print the size table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collector", help="base URL of a running collector")
    args = parser.parse_args(argv)

    rows: list[tuple[str, int | None, int | None, str]] = []
    label, data = ours(args.collector)
    rows.append((label, len(data), gzipped(data), "goal <= 2560 B"))
    label, onsite = ours(args.collector, "kanal-onsite.js")
    rows.append((label, len(onsite), gzipped(onsite), "loaded only when needed; goal <= "
                                                       "8192 B"))
    try:
        old = before_onsite()
        rows.append((f"kanal.js before on-site ({BEFORE_ONSITE})", len(old), gzipped(old),
                     "baseline: the core without the on-site hooks"))
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        rows.append((f"kanal.js before on-site ({BEFORE_ONSITE})", None, None,
                     f"unavailable: {e}"))
    with tempfile.TemporaryDirectory(prefix="kanal-bench-") as tmp:
        for name, spec, member, how in BASELINES:
            try:
                data = prepare(npm_file(spec, member, Path(tmp)), how)
            except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                rows.append((name, None, None, f"unavailable: {e}"))
                continue
            note = {"as-is": "as published", "bundle": "bundled + minified",
                    "minify": "minified"}[how]
            rows.append((name, len(data), gzipped(data), f"{spec}, {note}"))

    width = max(len(r[0]) for r in rows)
    out(f"{'script':<{width}}  {'raw B':>7}  {'gzip B':>7}  note")
    for name, raw, gz, note in rows:
        raw_s = f"{raw:>7}" if raw is not None else f"{'-':>7}"
        gz_s = f"{gz:>7}" if gz is not None else f"{'-':>7}"
        out(f"{name:<{width}}  {raw_s}  {gz_s}  {note}")
    size = rows[0][2] or 0
    verdict = "within" if size <= GOAL else "OVER"
    out(f"\nkanal.js: {size} B gzipped, {verdict} the {GOAL} B goal")
    old_size = rows[2][2]
    if old_size:
        out(f"the on-site hooks add {size - old_size} B to kanal.js "
            f"({size / old_size:.2f}x the core before them)")
    size = rows[1][2] or 0
    verdict = "within" if size <= ONSITE_GOAL else "OVER"
    out(f"kanal-onsite.js: {size} B gzipped, {verdict} the {ONSITE_GOAL} B goal; a page "
        f"with on-site messages loads {rows[0][2] or 0} + {size} B")


if __name__ == "__main__":
    main()
