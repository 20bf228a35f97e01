"""The status page benchmark's report: its results as Markdown."""

from __future__ import annotations

from typing import Any

from bench import statuspage_visitors as crowd
from bench.stats import diff
from bench.statuspage_settings import RENDER_TARGET_MS

# -- the report -----------------------------------------------------------------------------------


def _f(value: float | None, unit: str = " ms", digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}{unit}"


def _signed(value: float | None, unit: str = " ms", digits: int = 2) -> str:
    return "-" if value is None else f"{value:+,.{digits}f}{unit}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f} %"


def render_report(results: dict[str, Any]) -> str:
    s = results["settings"]
    lines = [
        f"# Status page: rendering from a busy journal, and a visitor flood — {results['started']}",
        "",
        f"- command: `{results['command']}` (took {results.get('took_s', 0):.0f} s)",
        f"- machine: {results['machine']['nproc']} CPUs, {results['machine']['cpu_model']}, "
        f"Python {results['machine']['python']}, git {results['machine']['git']}",
        f"- load average at start {results['machine']['loadavg_start']}, "
        f"at end {results.get('loadavg_end')}",
        f"- standby measured: `{results['standby']}`, digest at start and end: "
        f"{results['source_digests']}",
        f"- foreign processes with ≥ 1 s CPU: {_foreign(results.get('foreign', []))}",
        "",
    ]
    seeded = results.get("seeded")
    if seeded:
        lines += [
            "## The journal",
            "",
            f"90 days of a busy gateway, made by the project's migration: "
            f"`traffic_hours` {seeded['traffic_hours_rows']:,} rows (6 routes x hours, "
            f"counting {seeded['requests_counted_in_figures']:,} requests), "
            f"{seeded['incidents']} incidents ({seeded['public_incidents']} public, one open "
            f"now) with {seeded['incident_events']} timeline events.",
            "",
        ]
    if "render" in results:
        lines += _render_section(results["render"])
    for number, key in enumerate(("flood", "flood_shared_core", "flood_in_gateway")):
        if key in results:
            lines += _flood_section(results[key], s, "abc"[number])
    if "background" in results:
        lines += _background_section(results["background"], s)
    for note in results.get("notes", []):
        lines.append(f"- note: {note}")
    return "\n".join(lines) + "\n"


def _foreign(found: list[dict[str, Any]]) -> str:
    return ", ".join(f"{p['name']} ({p['cpu_s']} s)" for p in found) or "none"


def _render_section(r: dict[str, Any]) -> list[str]:
    sizes = r["sizes"]
    traffic = sizes.get("table:traffic_hours", 0)
    requests = sizes.get("table:requests", 0)
    lines = [
        "## 1. Building the page (`PageSource.view()` + `html.render`), this process on core 1",
        "",
        f"`requests` rows inserted: {r['requests_rows']:,} in {r['insert_seconds']:.1f} s "
        f"(one `executemany` transaction; then `sync`, {r['sync_seconds']:.1f} s). Database "
        f"{sizes['file'] / 2**20:,.1f} MiB; `traffic_hours` with its key "
        f"{traffic / 2**10:,.0f} KiB; `requests` with its indexes {requests / 2**20:,.1f} MiB.",
        "",
        "| build | requests rows | cold | warm p50 | warm p99 | warm max | target < 100 ms (p99) |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for label, block, rows in (
        ("baseline", r["empty"], 0),
        ("busy journal", r["full"], r["requests_rows"]),
    ):
        warm = block["warm_ms"]["total"]
        met = warm["p99"] is not None and warm["p99"] < RENDER_TARGET_MS
        lines.append(
            f"| {label}: view + HTML | {rows:,} | {_f(block['cold_ms']['total'], ' ms', 1)} | "
            f"{_f(warm['p50'], ' ms', 1)} | {_f(warm['p99'], ' ms', 1)} | "
            f"{_f(warm['max'], ' ms', 1)} | {'met' if met else 'NOT met'} |"
        )
    full, empty = r["full"], r["empty"]
    lines += [
        "",
        "| part (warm p50) | baseline | busy journal | busy - baseline |",
        "|---|---:|---:|---:|",
    ]
    for key, label in (
        ("view", "`PageSource.view()`"),
        ("html", "HTML render (jinja2)"),
        ("json", "summary.json document (for comparison)"),
    ):
        a, b = empty["warm_ms"][key]["p50"], full["warm_ms"][key]["p50"]
        lines.append(
            f"| {label} | {_f(a, ' ms', 1)} | {_f(b, ' ms', 1)} | {_signed(diff(b, a), ' ms', 1)} |"
        )
    for key, label in (
        ("figures_query", "… of the view: `TrafficStore.hours`"),
        ("incidents_query", "… of the view: `IncidentStore.public`"),
    ):
        a, b = empty["view_parts_ms"][key], full["view_parts_ms"][key]
        lines.append(
            f"| {label} | {_f(a, ' ms', 1)} | {_f(b, ' ms', 1)} | {_signed(diff(b, a), ' ms', 1)} |"
        )
    page = full["page"]
    steady = [r[k]["steady_ms"] for k in ("empty", "full")]
    crowd = [r[k]["stampede"] for k in ("empty", "full")]
    lines += [
        f"| view rebuilt from figures already read, + HTML (what a visitor waits for when "
        f"the view has expired), p50 "
        f"| {_f(steady[0]['p50'], ' ms', 1)} | {_f(steady[1]['p50'], ' ms', 1)} "
        f"| {_signed(diff(steady[1]['p50'], steady[0]['p50']), ' ms', 1)} |",
        f"| … p99 | {_f(steady[0]['p99'], ' ms', 1)} "
        f"| {_f(steady[1]['p99'], ' ms', 1)} "
        f"| {_signed(diff(steady[1]['p99'], steady[0]['p99']), ' ms', 1)} |",
        f"| {crowd[1]['callers']} visitors at once after `forget()`: builds made, time "
        f"| {crowd[0]['builds']} builds, {_f(crowd[0]['ms'], ' ms', 0)} "
        f"| {crowd[1]['builds']} builds, {_f(crowd[1]['ms'], ' ms', 0)} | |",
        "",
        f"Cold = a new engine (first connection) and a new jinja environment (templates "
        f"compiled): view {full['cold_ms']['view']:.1f} ms + HTML {full['cold_ms']['html']:.1f} "
        f"ms. Warm = `forget()` before each build. Baseline and busy journal were built in "
        f"turns, build by build. The view reads "
        f"{full['view_parts_ms']['figures_rows']:,} hourly rows; SQLite's plan for it: "
        f"{'; '.join(r['traffic_query_plan'])}.",
        f"The page built: {page['indicator']} ({page['components']}), "
        f"{page['days_with_figures']} day cells with figures holding "
        f"{page['requests_on_bars']:,} requests, {page['incidents_shown']} incidents shown, "
        f"HTML {page['html_bytes'] / 1024:,.0f} KiB, summary.json "
        f"{page['summary_json_bytes'] / 1024:,.1f} KiB.",
        "",
    ]
    return lines


def _flood_section(f: dict[str, Any], s: dict[str, Any], letter: str) -> list[str]:
    outage = f["outage"]
    placement = f.get("placement", "gateway")
    if placement == "gateway":
        where = "the page served by the gateway itself at `/status` (no `listen`)"
    elif placement == "own process":
        where = (
            "the page on `status_page.listen`, served by its own process, which left the "
            "pinned gateway's core 1 for core 0 by itself (with the sims, wrk and the load "
            "generator: what it costs them counts against the API)"
        )
    else:
        where = (
            "the page on `status_page.listen`, served by its own process forced onto the "
            "gateway's core 1 (in the idle scheduling class)"
        )
    lines = [
        f"## 2{letter}. Visitors during an outage, {where}: the API's latency "
        "with and without them",
        "",
        f"Gateway on core 1 (journal on the database above); {s['upstream']} upstreams, wrk "
        f"and this load generator on core 0. Outage declared with `POST /standby/incidents` "
        f'(HTTP {outage["http_status"]}): the page says "{outage["description"]}" '
        f"({outage['components']}). API: {s['api_rate']:g} chat completions/s, open loop, "
        f"latency from the scheduled send; the same requests at the same rate go straight "
        f"to the primary upstream in the same seconds, and the gateway's own p99 is the "
        f"difference (what the flood costs the other core, upstreams and generators, "
        f"cancels out). Visitors: wrk, {s['flood_connections']} "
        f"connections, `/status` and `summary.json` in turn, paced to the rate; "
        f"{s['revalidate'] * 100:.0f} % send If-None-Match with the ETag of a copy "
        f"{crowd.MAX_AGE:g} s old (the pages' max-age).",
        "",
        "| visitors asked | pairs | API p50 quiet / flood | API p99 quiet / flood "
        "| Δ p99 end to end (each pair) | gateway's own p99 (added over direct) quiet / flood "
        "| Δ gateway's own p99 (each pair) | visitors answered | 304s / revalidating "
        "| CPU quiet / flood (gateway + page process) | API failed (quiet / flood) "
        "| target Δ own p99 ≤ 1 ms |",
        "|---:|---:|---|---|---|---|---|---:|---|---|---|---|",
    ]
    for level in f["levels"]:
        each = ", ".join(_signed(v, "", 2) for v in level["p99"]["each"])
        own = level.get("added_p99", {})
        own_each = ", ".join(_signed(v, "", 2) for v in own.get("each", []))
        cpu = level["gateway_cpu_percent"]
        lines.append(
            f"| {level['rate']:,.0f}/s | {len(level['pairs'])} "
            f"| {_f(level['p50']['quiet'])} / {_f(level['p50']['flood'])} "
            f"| {_f(level['p99']['quiet'])} / {_f(level['p99']['flood'])} "
            f"| {_signed(level['p99']['difference'])} ({each}) "
            f"| {_f(own.get('quiet'))} / {_f(own.get('flood'))} "
            f"| {_signed(own.get('difference'))} ({own_each}) | "
            f"{_f(level['visitors_rate'], '/s', 0)} | "
            f"{level['answered_304']} / {level['revalidating']} | "
            f"{_f(cpu['quiet'], ' %', 0)} / {_f(cpu['flood'], ' %', 0)} | "
            f"{level['failed']['quiet']} / {level['failed']['flood']} | "
            f"{'met' if level['met'] else 'NOT met'} |"
        )
    main = f["levels"][0]
    lines += [
        "",
        f"Visitors' own latency at {main['rate']:,.0f}/s asked (wrk, closed loop on "
        f"{s['flood_connections']} connections): p50 {_f(main['visitor_latency_ms']['p50'])}, "
        f"p99 {_f(main['visitor_latency_ms']['p99'])}; wrk errors {main['visitor_errors']}; "
        f"the pages' ETags changed {main['etag_changes_per_s']:.1f} times a second "
        f"(at {f['levels'][-1]['rate']:g}/s: {f['levels'][-1]['etag_changes_per_s']:.1f}). "
        f"After the visitors left, the gateway went on with their requests for "
        f"{_f(main['drain_s'], ' s', 1)} (median; the next side waited for it to be idle).",
        "",
        f"Where the time goes — each page alone, as fast as the {f.get('placement', 'gateway')} "
        f"answers (one visitor unless said, {s['cost_seconds']:g} s), and a chat completion "
        "for comparison:",
        "",
        "| request | answers/s (one core) | CPU per answer (gateway + page process) | 304s "
        "| ETag changes |",
        "|---|---:|---:|---:|---:|",
    ]
    for cost in f["costs"]:
        lines.append(
            f"| {cost['label']} | {cost['rate']:,.0f} | {_f(cost['cpu_us_per_answer'], ' µs', 0)} "
            f"| {_pct(cost['share_304'])} | {cost['etag_changes']} in {cost['duration_s']:.0f} s |"
        )
    lines.append(
        f"| chat completion (quiet sides, journal follower included) | "
        f"{s['api_rate']:g} (asked) | {_f(f['chat_cpu_us'], ' µs', 0)} | | |"
    )
    spy = f.get("profile")
    if spy and "by_activity" in spy:
        lines += [
            "",
            f"py-spy on the gateway during the flood ({spy['samples']:,} samples, "
            "non-blocking, 200 Hz; shares of the samples):",
            "",
            "| activity (first match on the stack) | share |",
            "|---|---:|",
            *[f"| {name} | {_pct(share)} |" for name, share in spy["by_activity"]],
            "",
            "| function on the stack (inclusive) | share |",
            "|---|---:|",
            *[f"| `{name}` | {_pct(share)} |" for name, share in spy["inclusive"][:10]],
            "",
            "| leaf function (self) | share |",
            "|---|---:|",
            *[f"| `{name}` | {_pct(share)} |" for name, share in spy["leaf"][:8]],
        ]
    elif spy:
        lines += ["", f"py-spy failed: {spy.get('error')}"]
    lines += [
        "",
        f"Open incidents at the end: {f['open_incidents_at_end']} (only the declared one "
        "means the detector stayed quiet and the page's state did not change mid-run).",
        "",
    ]
    return lines


def _background_section(b: dict[str, Any], s: dict[str, Any]) -> list[str]:
    cpu = b["gateway_cpu_percent"]
    lines = [
        "## 3. No visitor at all, the page served by the gateway: its subscriptions on (the "
        "default) and off",
        "",
        f"A fresh gateway on the same journal for each side, {s['api_rate']:g} chat "
        f"completions/s for {b['duration_s']:g} s after a 2 s warm-up, "
        f"{len(b['pairs'])} alternating pair(s). With subscriptions on (the plan's "
        "default), their delivery round asks for the page every 2 s: a view build on the "
        "gateway's event loop when the figures were read again (every 30 s); with "
        "`listen` the page's own process does it.",
        "",
        "| API latency | subscriptions on | off | on - off (each pair) |",
        "|---|---:|---:|---|",
    ]
    for q in ("p50", "p90", "p99", "max"):
        row = b[q]
        shown = ""
        if "difference" in row:
            each = ", ".join(_signed(v, "", 2) for v in row["each"])
            shown = f"{_signed(row['difference'])} ({each})"
        lines.append(f"| {q} | {_f(row['on'])} | {_f(row['off'])} | {shown} |")
    lines += [
        f"| gateway CPU | {_f(cpu['subscriptions_on'], ' %', 0)} "
        f"| {_f(cpu['subscriptions_off'], ' %', 0)} | |",
        "",
    ]
    return lines
