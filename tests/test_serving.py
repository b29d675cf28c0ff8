"""Running it: /kanal.js revalidates (304) and is served compressed; a port in use is one
line; a second `kanal serve` on one database says it only ingests, and who runs the
workers, and says so again when it takes over."""

from __future__ import annotations

import gzip
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kanal_testing import POSTGRES, App, db_at, start_collector

from kanal_collector import site
from kanal_collector.workers import describe_owner


def test_if_none_match_gets_a_304(kanal_app: App) -> None:
    first = kanal_app.client.get("/kanal.js")
    assert first.status_code == 200
    etag = first.headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"')
    for sent in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        again = kanal_app.client.get("/kanal.js", headers={"If-None-Match": sent})
        assert again.status_code == 304, sent
        assert again.get_data() == b""
        assert again.headers["ETag"] == etag
    other = kanal_app.client.get("/kanal.js", headers={"If-None-Match": '"stale"'})
    assert other.status_code == 200 and other.get_data() == first.get_data()


def test_served_gzipped_when_accepted_and_compressed_once(kanal_app: App) -> None:
    plain = kanal_app.client.get("/kanal.js", headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers
    assert plain.headers["Vary"] == "Accept-Encoding"
    zipped = kanal_app.client.get("/kanal.js", headers={"Accept-Encoding": "gzip, br"})
    assert zipped.headers["Content-Encoding"] == "gzip"
    body = zipped.get_data()
    assert gzip.decompress(body) == plain.get_data()
    assert len(body) < len(plain.get_data()) * 0.6
    assert zipped.headers["ETag"] != plain.headers["ETag"]  # another representation
    refused = kanal_app.client.get("/kanal.js", headers={"Accept-Encoding": "gzip;q=0"})
    assert "Content-Encoding" not in refused.headers
    revalidated = kanal_app.client.get("/kanal.js", headers={
        "Accept-Encoding": "gzip", "If-None-Match": zipped.headers["ETag"]})
    assert revalidated.status_code == 304
    # compressed once: the same bytes object every time
    assert site._static("kanal.js") is site._static("kanal.js")
    hits = site._static.cache_info().hits
    kanal_app.client.get("/kanal.js", headers={"Accept-Encoding": "gzip"})
    assert site._static.cache_info().hits == hits + 1


def test_owners_in_words() -> None:
    assert describe_owner("shop-1:4242:ab12cd34") == "process 4242 on host shop-1"
    assert describe_owner("rebuild:shop-1:99") == \
        "`kanal profiles rebuild` (process 99 on host shop-1)"
    assert describe_owner("odd") == "lease owner 'odd'"


def test_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        result = subprocess.run(
            [sys.executable, "-m", "kanal_collector", "serve", "--host", "127.0.0.1",
             "--port", str(port), "--db", db_at(tmp_path / "k.db")],
            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    finally:
        taken.close()
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"Error: port {port} on 127.0.0.1 is already in use (another `kanal serve`, or "
        "another program); stop it, or choose another port with --port or [server] port "
        "in kanal.toml\n")


def test_an_address_not_of_this_machine_is_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "kanal_collector", "serve", "--host", "192.0.2.1",
         "--port", "0", "--db", db_at(tmp_path / "k.db")],
        capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == ("Error: can't listen on 192.0.2.1:0: 192.0.2.1 is not an "
                             "address of this machine; check --host or [server] host\n")


def _wait_for(collector: object, text: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        output = "".join(collector.output)  # type: ignore[attr-defined]
        if text in output:
            return output
        time.sleep(0.1)
    raise AssertionError(f"{text!r} never printed:\n" + "".join(collector.output))  # type: ignore[attr-defined]


@pytest.mark.slow
def test_a_second_serve_says_it_only_ingests_and_when_it_takes_over(tmp_path: Path) -> None:
    db = tmp_path / "kanal.db"
    config = tmp_path / "kanal.toml"
    config.write_text("[workers]\nlease_seconds = 2\npoll_interval = 0.2\n")
    first = start_collector(db, args=["--config", str(config)])
    second = None
    try:
        assert "Ingesting only" not in "".join(first.output)
        second = start_collector(db, args=["--config", str(config)], keys=first.keys)
        pid = first.process.pid
        output = "".join(second.output)
        holder = f"process {pid} on host {socket.gethostname()}"
        said = (f"Sharing the work: this process runs dispatcher, journey-timers; {holder} "
                "holds the lease of the other workers on this database." if POSTGRES else
                f"Ingesting only: {holder} holds the workers' lease on this database.")
        assert said in output
        assert output.index(said) < output.index("listening on")
        first.stop()
        _wait_for(second, f"Took over the workers' lease from process {pid} on host "
                          f"{socket.gethostname()}: this process now runs the workers")
    finally:
        first.stop()
        if second is not None:
            second.stop()
