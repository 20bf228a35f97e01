"""``standby demo --once`` end to end: a real subprocess, its real output and exit code.

The scripted outage takes about 35 s (the phase durations are ``demo_script.PHASES``);
the subprocess gets 90 s.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from standby.demo_script import PHASES


def _standby() -> list[str]:
    script = Path(sys.executable).parent / "standby"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from standby.cli import main; main()"]


@pytest.mark.timeout(120)
def test_demo_once_fails_over_and_exits_zero(tmp_path: Path) -> None:
    env = {**os.environ, "COLUMNS": "120", "NO_COLOR": "1", "TMPDIR": str(tmp_path)}
    started = time.monotonic()
    done = subprocess.run([*_standby(), "demo", "--once", "--port", "0"], capture_output=True,
                          text=True, timeout=90, env=env, check=False)  # fmt: skip
    seconds = time.monotonic() - started
    out = done.stdout
    assert done.returncode == 0, f"exit {done.returncode}\n{out}\n{done.stderr}"
    for number, phase in enumerate(PHASES, 1):
        assert f"Phase {number}/{len(PHASES)} · {phase.title}" in out
    assert re.search(r"answered by +backup", out)  # the 503 phase failed over
    assert "continued mid-stream" in out  # the cut phase spliced answers
    assert "from backup: complete, in one stream with one id" in out
    assert "Summary" in out
    assert "100% answered, 0 broken streams" in out
    assert re.search(r"Incident inc_\w+: primary/gpt-4o-mini is failing", out)  # noticed
    assert re.search(r"opened +│? *inc_\w+ +│? *investigating", out)  # and told
    assert "resolved sent to demo-hook" in out  # and told it is over
    assert "primary's own status page (read every 10 s) last said:" in out  # read, too
    # both providers down: clean errors, and the customers' page changes state, and back
    assert re.search(r"customers' status page +All Systems Operational → Major System Outage", out)
    assert re.search(r"customers' status page +Major System Outage → All Systems Operational", out)
    assert re.search(r"down \(6\. Both providers fail\): \d+ clean errors, 0 broken", out)
    assert "Standby is running" not in out  # --once leaves nothing serving
    assert "Traceback" not in done.stderr
    assert seconds < 60, f"the scripted part took {seconds:.0f} s"
    assert not list(tmp_path.glob("standby-demo-*"))  # the demo's journal is gone with it
    # and each incident's post-outage report is left behind, as Markdown and HTML
    reports = sorted(p.name for p in (tmp_path / "standby-reports").iterdir())
    assert reports and {name.rsplit(".", 1)[1] for name in reports} == {"md", "html"}
    assert re.search(r"Post-outage report of inc_\w+:\n +\S+\.md\n +\S+\.html", out)


def test_plan_and_phases_are_consistent() -> None:
    from standby.demo_script import demo_plan
    from standby.plan.model import Plan

    plan = Plan.model_validate(demo_plan("http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1"))
    assert plan.breaker.failures == 3 and plan.timeouts.first_token == 2.0
    assert [ref.target for tier in plan.routes["gpt-4o-mini"].tier_list() for ref in tier] == [
        "primary/gpt-4o-mini",
        "backup/gpt-4o-mini",
    ]
    assert sum(phase.seconds for phase in PHASES) <= 25  # the rest is recovery waits


async def test_the_demo_gateway_journals_for_the_readme_tour(tmp_path: Path) -> None:
    # The README tour, against the demo's gateway: a stored completion read back, and a
    # Responses API conversation continued with previous_response_id.
    import openai

    from standby.demo import _gateway
    from standby.demo_script import ROUTE, demo_plan
    from standby.plan.model import Plan
    from standby.sim import SimProvider

    async with SimProvider("primary") as primary, SimProvider("backup") as backup:
        plan = Plan.model_validate(demo_plan(primary.base_url, backup.base_url))
        async with _gateway(plan, 0, tmp_path) as port:
            client = openai.AsyncOpenAI(
                base_url=f"http://127.0.0.1:{port}/v1", api_key="demo", max_retries=0
            )
            async with client:
                reply = await client.chat.completions.create(
                    model=ROUTE, store=True, messages=[{"role": "user", "content": "Hello"}]
                )
                stored = await client.chat.completions.retrieve(reply.id)
                assert stored.choices[0].message.content == primary.expected_text()
                first = await client.responses.create(model=ROUTE, input="Hello")
                again = await client.responses.create(
                    model=ROUTE, input="And again?", previous_response_id=first.id
                )
                assert again.output_text == primary.expected_text()
        assert (tmp_path / "standby.db").is_file()
    # the continued conversation reached the provider with its first turn
    said = [m["content"] for m in primary.requests[-1].body["messages"]]
    assert said[0] == "Hello" and said[-1] == "And again?"
