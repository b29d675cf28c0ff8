"""The committed kanal.js is built from js_snippet/ as it is now, and stays small.

The build writes a banner with a SHA-256 of its inputs (see js_snippet/build.mjs), so
staleness is caught without node. When esbuild is at hand (js_snippet/node_modules, or
npm to install the locked toolchain into a temp copy), the build is rerun and compared
byte for byte.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SNIPPET = ROOT / "js_snippet"
BUILT = ROOT / "collector" / "kanal_collector" / "static" / "kanal.js"
LOADER = SNIPPET / "loader.min.js"
# Keep in step with INPUTS in js_snippet/build.mjs.
INPUTS = ["build.mjs", "package-lock.json", "package.json", "src/kanal.js", "src/loader.js",
          "src/onsite.js", "src/sw.js"]
STATIC = BUILT.parent
BUDGET = 2560  # bytes, gzipped: 2.5 KB
ONSITE_BUDGET = 8192  # the on-site and push code, loaded only when needed
REBUILD_HINT = "run `cd js_snippet && npm ci && npm run build`"


def inputs_digest() -> str:
    h = hashlib.sha256()
    for name in INPUTS:
        h.update(name.encode() + b"\0")
        h.update((SNIPPET / name).read_bytes())
        h.update(b"\0")
    return h.hexdigest()


@pytest.mark.parametrize("name", ["kanal.js", "kanal-onsite.js", "kanal-sw.js"])
def test_built_file_is_fresh(name: str) -> None:
    built = STATIC / name
    banner = built.read_text().splitlines()[0]
    m = re.search(r"sha256:([0-9a-f]{64})", banner)
    assert m, f"no build banner in {built}: {REBUILD_HINT}"
    assert m.group(1) == inputs_digest(), f"{built} is stale: {REBUILD_HINT}"


def test_version_matches_package_json() -> None:
    version = json.loads((SNIPPET / "package.json").read_text())["version"]
    assert BUILT.read_text().startswith(f"/*! kanal.js {version} ")
    assert f'"{version}"' in BUILT.read_text()


def test_size_budget() -> None:
    size = len(gzip.compress(BUILT.read_bytes(), compresslevel=9, mtime=0))
    assert size <= BUDGET, f"kanal.js is {size} B gzipped, budget {BUDGET} B"
    onsite = STATIC / "kanal-onsite.js"
    size = len(gzip.compress(onsite.read_bytes(), compresslevel=9, mtime=0))
    assert size <= ONSITE_BUDGET, f"kanal-onsite.js is {size} B gzipped, budget {ONSITE_BUDGET} B"


def test_no_eval_in_built_scripts() -> None:
    """Pages with a strict Content-Security-Policy (no 'unsafe-eval') can run them."""
    for name in ("kanal.js", "kanal-onsite.js", "kanal-sw.js"):
        text = (STATIC / name).read_text()
        assert not re.search(r"\beval\(|new Function\(|setTimeout\(\s*['\"]", text), name


def test_pinned_toolchain() -> None:
    dev = json.loads((SNIPPET / "package.json").read_text())["devDependencies"]
    assert all(re.fullmatch(r"\d+\.\d+\.\d+", v) for v in dev.values()), dev
    lock = json.loads((SNIPPET / "package-lock.json").read_text())
    assert lock["packages"][""]["devDependencies"] == dev
    assert "node_modules" in (SNIPPET / ".gitignore").read_text()


def _esbuild_dir(tmp_path: Path) -> Path:
    """A js_snippet/ with node_modules: the real one, or a temp copy after `npm ci`."""
    if (SNIPPET / "node_modules" / "esbuild").is_dir():
        return SNIPPET
    npm = shutil.which("npm")
    if not npm or not shutil.which("node"):
        pytest.skip("neither js_snippet/node_modules nor npm: the banner check covers it")
    copy = tmp_path / "js_snippet"
    copy.mkdir()
    for name in INPUTS:
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(SNIPPET / name, copy / name)
    done = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
        cwd=copy, capture_output=True, text=True, timeout=300,
    )
    if done.returncode:
        pytest.skip(f"npm ci failed (offline?): {done.stderr[-500:]}")
    return copy


def test_rebuild_is_byte_identical(tmp_path: Path) -> None:
    source = _esbuild_dir(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    node = shutil.which("node")
    assert node, "node is needed to rebuild"
    subprocess.run([node, "build.mjs", "--out-dir", str(out)], cwd=source, check=True,
                   capture_output=True, timeout=120)
    for name in ("kanal.js", "kanal-onsite.js", "kanal-sw.js"):
        assert (out / name).read_bytes() == (STATIC / name).read_bytes(), \
            f"{name} is stale: {REBUILD_HINT}"
    assert (out / "loader.min.js").read_bytes() == LOADER.read_bytes(), f"stale: {REBUILD_HINT}"


def test_loader_is_small_and_async() -> None:
    loader = LOADER.read_text()
    assert ".async=1" in loader and '"/kanal.js"' in loader
    assert len(loader) < 300
