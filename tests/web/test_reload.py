"""The reload decision: what is refused, what is swapped in, what waits for a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from standby.plan.load import load_plan
from standby.web.app import StandbyApp
from standby.web.clients import hash_key
from standby.web.reload import PlanReloader

BASE = """
providers:
  sim: {base_url: "http://127.0.0.1:9/v1"}
routes:
  chat: {targets: [sim/m]}
"""
KEYS = f"""
server:
  client_keys: {{alice: "{hash_key("sk-a")}"}}
  admin_token: admin
"""


async def reloaded(tmp_path: Path, first: str, second: str, host: str) -> tuple[bool, StandbyApp]:
    path = tmp_path / "plan.yaml"
    path.write_text(first)
    app = StandbyApp(load_plan(path, {}), data_dir=None)
    path.write_text(second)
    ok = await PlanReloader(app, path, host=host, env={}).reload()
    await app.aclose()
    return ok, app


@pytest.mark.parametrize(
    ("host", "second", "swapped"),
    [
        ("127.0.0.1", BASE.replace("chat:", "other:"), True),
        ("0.0.0.0", BASE + KEYS, True),
        ("0.0.0.0", BASE, False),  # would leave a public gateway open
        ("127.0.0.1", BASE + "timeouts: {total: 0s}\n", False),  # an invalid plan
    ],
)
async def test_reload(tmp_path: Path, host: str, second: str, swapped: bool) -> None:
    ok, app = await reloaded(tmp_path, BASE + KEYS, second, host)
    assert ok is swapped
    routes = list(app.plan.routes)
    assert routes == (["other"] if swapped and "other:" in second else ["chat"])


async def test_settings_bound_at_start_are_kept_and_said(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ok, app = await reloaded(
        tmp_path, BASE, BASE + "server: {max_header: 8KiB, on_disconnect: finish}\n", "127.0.0.1"
    )
    assert ok and app.plan.server.on_disconnect == "finish"  # applied
    assert app.started_server.max_header == 64 * 1024  # uvicorn still runs with this
    assert "kept the running server.max_header (restart to change it)" in caplog.text
