"""The Python and shell examples of the README and docs/ run as written, against a real
collector.

Every ```python and ```sh block of the README and of the pages of docs/ (in the order of
docs/index.md's table of contents) is run, in order, in a fresh directory
whose kanal.toml points at that collector's database — unless the line before it says
`<!-- readme-test: skip: WHY -->`. The only changes made to a block are its
placeholders: the keys (`sk_…`, `pk_AbCdEfG`) and the collector's address
(`http://127.0.0.1:8000`, `https://kanal.example.com`) become the real ones; the
environment holds KANAL_SECRET_KEY and KANAL_ADMIN_KEY as the README says to set them.
A Python fragment that names values of the reader's own code (`SECRET_KEY`, `user_id`,
`user.id`) gets them defined first. After the blocks have run, what they sent is checked
in the collector's log.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from docs_util import README, ROOT, pages
from kanal_testing import Collector, db_at, start_collector

_BLOCK = re.compile(r"(?:<!-- readme-test: skip: (?P<skip>[^>]*) -->\n)?"
                    r"```(?P<lang>python|sh)\n(?P<code>.*?)```", re.S)
# Names a fragment takes from the reader's own code.
PRELUDE = textwrap.dedent("""\
    import os
    from types import SimpleNamespace
    SECRET_KEY = KANAL_SECRET_KEY = os.environ["KANAL_SECRET_KEY"]
    user_id = "u123"
    user = SimpleNamespace(id="u123")
    """)


@dataclass
class Block:
    """One fenced example of the README or a page of docs/."""

    path: Path
    lang: str
    code: str
    line: int
    skip: str | None


def readme_blocks() -> list[Block]:
    """Every python and sh block of the README, then of each page of docs/."""
    blocks = []
    for path in pages():
        text = path.read_text(encoding="utf-8")
        blocks += [Block(path, m.group("lang"), m.group("code"),
                         text[:m.start("lang")].count("\n") + 1, m.group("skip"))
                   for m in _BLOCK.finditer(text)]
    return blocks


def test_every_example_is_run_or_says_why_not() -> None:
    blocks = readme_blocks()
    # 19 blocks, 13 of them run, when the reference moved from the README to docs/
    assert len(blocks) >= 19
    for block in blocks:
        assert block.skip is None or len(block.skip.strip()) > 10, (block.path, block.line)
    assert sum(b.skip is None for b in blocks) >= 13
    # the README's own: the two commands (each says why it isn't run) and the first event
    readme = [b for b in blocks if b.path == README]
    assert [b.skip is None for b in readme] == [False, False, True]


def _substitute(code: str, collector: Collector, spare_prefix: str) -> str:
    for placeholder, value in (
            ("sk_…", collector.secret_key),
            ("pk_AbCdEfG", spare_prefix),
            ("http://127.0.0.1:8000", collector.url),
            ("http://localhost:8000", collector.url),
            ("https://kanal.example.com", collector.url),
            (".venv/bin/kanal", "kanal")):
        code = code.replace(placeholder, value)
    return code


def _run(block: Block, code: str, workdir: Path, env: dict[str, str]) -> str:
    if block.lang == "sh":
        command = ["bash", "-euo", "pipefail", "-c", code]
    else:
        fragment = re.search(r"\b(SECRET_KEY|user_id|user\.id)\b", code) and \
            "import kanal" not in code
        script = (PRELUDE + code + "\nprint(user_hash)\n") if fragment else code
        command = [sys.executable, "-c", script]
    # A block of a dozen `kanal` commands starts a dozen interpreters: on a 2-core machine
    # shared by several suites that took over two minutes; the limit only catches a hang.
    result = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, (
        f"{block.path.relative_to(ROOT)} line {block.line} ({block.lang}) failed with status "
        f"{result.returncode}:\n{code}\n--- stdout\n{result.stdout}\n--- stderr\n"
        f"{result.stderr}")
    return result.stdout


@pytest.mark.slow
def test_the_readme_examples_run_against_a_real_collector(tmp_path: Path) -> None:
    if shutil.which("curl") is None:
        pytest.fail("curl is needed (tests/run.sh installs it)")
    workdir = tmp_path / "shop"
    workdir.mkdir()
    (workdir / "kanal.toml").write_text(
        f'db = "{db_at(workdir / "kanal.db")}"\njourneys_dir = "{ROOT / "examples" / "journeys"}"\n'
        f'[messages]\nmessages_dir = "{ROOT / "examples" / "messages"}"\n',
        encoding="utf-8")
    collector = start_collector(workdir / "kanal.db", cwd=workdir,
                                args=["--config", str(workdir / "kanal.toml")])
    try:
        bindir = str(Path(sys.executable).parent)
        env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}",
               "KANAL_SECRET_KEY": collector.secret_key,
               "KANAL_ADMIN_KEY": collector.admin_key, "PYTHONUNBUFFERED": "1"}
        env.pop("KANAL_CONFIG", None)
        spare = subprocess.run(["kanal", "keys", "create", "--kind", "public", "--name",
                                "spare"], cwd=workdir, env=env, capture_output=True,
                               text=True, check=True).stdout.strip().splitlines()[-1]
        outputs: dict[tuple[Path, int], str] = {}
        for block in readme_blocks():
            if block.skip is None:
                outputs[block.path, block.line] = _run(block, _substitute(block.code, collector,
                                                              spare[:10]), workdir, env)
        _check_what_arrived(collector, outputs)
    finally:
        collector.stop()


def _check_what_arrived(collector: Collector, outputs: dict[tuple[Path, int], str]) -> None:
    text = "\n".join(outputs.values())
    # the curl example, then `kanal events list`
    assert "Order Completed\tu1" in text
    # the userHash fragments: the hash a backend computes verifies a browser identify
    hashes = {line for out in outputs.values() for line in out.splitlines()
              if re.fullmatch(r"[0-9a-f]{64}", line)}
    assert len(hashes) == 1
    r = requests.post(f"{collector.url}/v1/identify", timeout=10, json={
        "writeKey": collector.public_key, "userId": "u123",
        "context": {"userHash": hashes.pop()}})
    assert r.status_code == 200, r.text
    # the SDK, the explicit client and segment-analytics-python, each as a new process
    names = {"Signed Up", "Order Completed", "Invoice Paid"}
    deadline = time.monotonic() + 30
    while True:
        events = collector.events()
        seen = {(e["body"].get("userId"), e["event"]) for e in events}
        if {("user-42", n) for n in names} <= seen and ("u1", "Order Completed") in seen \
                or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert {("user-42", n) for n in names} <= seen
    orders = [e for e in events if e["event"] == "Order Completed"]
    assert {e["body"]["properties"].get("order_id") for e in orders} >= {"o-1001", "o1"}
    verified = [e for e in events if e["type"] == "identify" and e["user_id"] == "u123"]
    assert verified and verified[-1]["verified"] == 1
    # the admin API examples answered JSON, and set the cost
    assert any('"spring_sale"' in out for out in outputs.values())
    report = next(out for out in outputs.values() if '"models":' in out)
    doc, _ = json.JSONDecoder().raw_decode(report[report.index('{"since"'):])
    assert "last_touch" in doc["models"] and doc["conversions"] >= 2
