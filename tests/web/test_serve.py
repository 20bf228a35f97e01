"""Starting the gateway and the sim: a busy port is one clear error, logs can be JSON lines."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from standby.errors import StartupError
from standby.plan.model import Plan
from standby.sim import run_sim
from standby.web.app import StandbyApp
from standby.web.limits import LimitedHttpToolsProtocol
from standby.web.serve import listen, run_server, uvicorn_config

PLAN = {
    "providers": {"sim": {"kind": "openai-compatible", "base_url": "http://127.0.0.1:9/v1"}},
    "routes": {"gpt-4o-mini": {"targets": ["sim/gpt-4o-mini"]}},
    "journal": {"enabled": False},
}


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def test_run_server_on_a_busy_port_raises_one_line_before_saying_it_listens(
    busy_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(StartupError) as caught:
        run_server(Plan.model_validate(PLAN), host="127.0.0.1", port=busy_port)
    assert str(caught.value).startswith(f"port {busy_port} on 127.0.0.1 is already in use; ")
    assert "\n" not in str(caught.value)
    out, err = capsys.readouterr()
    assert "listening" not in out + err


def test_the_sim_on_a_busy_port_raises_one_line_before_printing_its_url(
    busy_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(StartupError) as caught:
        run_sim("127.0.0.1", busy_port, "sim", 5, 0.0)
    assert str(caught.value).startswith(f"port {busy_port} on 127.0.0.1 is already in use; ")
    out, err = capsys.readouterr()
    assert "http://" not in out + err


def test_an_address_of_another_machine_is_named() -> None:
    with pytest.raises(StartupError, match=r"^192\.0\.2\.1 is not an address of this machine"):
        listen("192.0.2.1", 0)


def test_listen_hands_over_a_listening_socket() -> None:
    sock = listen("127.0.0.1", 0)
    try:
        with socket.create_connection(sock.getsockname(), timeout=5):
            pass  # accepted by the backlog: it listens already, no race with uvicorn
    finally:
        sock.close()


GATEWAY = (
    "import sys; from standby.plan.model import Plan; from standby.web.serve import run_server;"
    " run_server(Plan.model_validate_json(sys.argv[1]), host='127.0.0.1', port=0,"
    " log_level='info', log_format='json')"
)


def test_json_logs_are_one_object_a_line_uvicorns_and_the_access_log_included(
    tmp_path: Path,
) -> None:
    log = tmp_path / "gateway.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-c", GATEWAY, orjson.dumps(PLAN).decode()],
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        port = _listening_port(log, proc)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=5) as resp:
            assert resp.status == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) in (0, -signal.SIGTERM)  # uvicorn re-raises it after shutdown
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)

    entries = [orjson.loads(line) for line in log.read_text().splitlines()]
    assert all({"ts", "level", "logger", "message"} <= entry.keys() for entry in entries)
    loggers = {entry["logger"] for entry in entries}
    assert {"standby", "standby.access", "uvicorn.error"} <= loggers
    assert entries[-1]["message"].startswith("Finished server process")
    [access] = [entry for entry in entries if entry["logger"] == "standby.access"]
    assert access["method"] == "GET"
    assert access["path"] == "/v1/models"
    assert access["status"] == 200
    assert access["client"] == "-"
    assert isinstance(access["latency_ms"], float)


def _listening_port(log: Path, proc: subprocess.Popen[bytes]) -> int:
    """The port the gateway says it listens on (polled for at most 30 s)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            if "Standby listening on" in line:
                url: str = orjson.loads(line)["message"].rsplit(" ", 1)[1]
                return int(url.rsplit(":", 1)[1].split("/")[0])
        assert proc.poll() is None, log.read_text()
        time.sleep(0.02)
    raise AssertionError(f"the gateway did not start:\n{log.read_text()}")


def test_connections_write_the_journal_before_their_own_bytes(tmp_path: Path) -> None:
    """The served protocol calls the journal's flush first (tests/journal/test_gather.py
    shows what that guarantees); with no journal there is nothing to call."""
    app = StandbyApp(Plan.model_validate({**PLAN, "journal": {}}), data_dir=tmp_path)
    assert app.journal_service is not None
    protocol = uvicorn_config(app, host="127.0.0.1", port=0, log_level="warning").http
    assert isinstance(protocol, type) and issubclass(protocol, LimitedHttpToolsProtocol)
    assert protocol.before_write == app.journal_service.journal.flush
    assert app.journal_service.journal.gather
    app.journal_service.wal.close()

    bare = StandbyApp(Plan.model_validate(PLAN), data_dir=None)
    protocol = uvicorn_config(bare, host="127.0.0.1", port=0, log_level="warning").http
    assert isinstance(protocol, type) and issubclass(protocol, LimitedHttpToolsProtocol)
    assert protocol.before_write is None
