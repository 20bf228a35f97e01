"""Whether a plan can survive the outages it is for (``standby plan check --readiness``).

From the plan alone (pure): a route that losing any one provider, or any one vendor
(several accounts of one company fail together), would leave with nothing; an escalation
that notifies no channel.  From the journal, when there is one: backups that answered
no request in the last ``days`` days — a fallback never exercised may not work on the
day (a revoked key, a renamed model, a quota never raised).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from standby.incidents.manager import route_targets
from standby.journal.windows import answered_by_target
from standby.plan.model import Plan
from standby.reports.advice import vendor
from standby.reports.build import primaries

DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class Finding:
    where: str  # the plan's key it is about, e.g. "routes.gpt-4o-mini"
    message: str


def plan_findings(plan: Plan) -> list[Finding]:
    found = []
    for name, keys in sorted(route_targets(plan).items()):
        where = f"routes.{name}"
        providers = sorted({key.partition("/")[0] for key in keys})
        if len(providers) < 2:
            lost = providers[0] if providers else "its provider"
            found.append(
                Finding(where, f"losing {lost} leaves it nothing: add a target at another provider")
            )
            continue
        vendors = sorted({vendor(plan, p) for p in providers})
        if len(vendors) < 2:
            found.append(
                Finding(
                    where,
                    f"all its providers ({', '.join(providers)}) are at {vendors[0]}: an outage "
                    "there leaves it nothing; add a target at another vendor",
                )
            )
    steps = plan.notify.escalation
    if not any(step.notify for step in steps):
        found.append(
            Finding("notify.escalation", "no step notifies a channel: an outage would tell no one")
        )
    for step in steps:
        for channel in step.notify:
            config = plan.notify.channels.get(channel)
            if config is not None and not config.url:
                found.append(
                    Finding(f"notify.channels.{channel}", "has no URL: nothing can be delivered")
                )
    return found


async def exercise_findings(
    engine: AsyncEngine, plan: Plan, *, days: float, now: float | None = None
) -> list[Finding]:
    """Backups that answered nothing in the last ``days`` days, from the journal."""
    since = (time.time() if now is None else now) - days * DAY
    answered = await answered_by_target(engine, since)
    firsts = primaries(plan)
    found = []
    for name, keys in sorted(route_targets(plan).items()):
        for key in keys:
            if key not in firsts.get(name, frozenset()) and not answered.get(key):
                found.append(
                    Finding(
                        f"routes.{name}",
                        f"backup {key} answered no request in the last {days:g} days: "
                        "rehearse it (`standby drill --target` its primary)",
                    )
                )
    return found
