"""The results table (metric | direct | standby | added / ratio), as markdown and rich."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

Row = tuple[str, str, str, str]
HEADER: Row = ("metric", "direct", "standby", "added / ratio")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} ms"


def _added(value: float | None) -> str:
    return "-" if value is None else f"{value:+.2f} ms"


def _mib(kib: float | None) -> str:
    return "-" if kib is None else f"{kib / 1024:.1f} MiB"


def _quantile_rows(
    label: str, block: dict[str, Any], pairs: list[dict[str, Any]] | None = None, key: str = ""
) -> list[Row]:
    """p50/p99 rows; with ``pairs``, the added column shows the per-pair range too."""
    out: list[Row] = []
    for q, v in block.items():
        added = _added(v["added"])
        if pairs and len(pairs) > 1:
            each = [
                p["standby"][key][q] - p["direct"][key][q]
                for p in pairs
                if p["standby"][key][q] is not None and p["direct"][key][q] is not None
            ]
            if each:
                added += f" (pairs {min(each):+.2f} .. {max(each):+.2f})"
        out.append((f"{label} {q}", _ms(v["direct"]), _ms(v["standby"]), added))
    return out


def rows(results: dict[str, Any]) -> list[Row]:
    """One row per reported number, in phase order."""
    out: list[Row] = []
    phases = results["phases"]
    for rate, block in phases.get("latency", {}).items():
        out += _quantile_rows(
            f"latency @ {rate} req/s", block["latency_ms"], block["pairs"], "latency_ok_ms"
        )
        fails = block["failures"]
        out.append(
            (f"failed requests @ {rate} req/s", str(fails["direct"]), str(fails["standby"]), "")
        )
    if "saturation" in phases:
        sat = phases["saturation"]
        rps = sat["ok_rps"]
        out.append(
            (
                f"saturation ({sat['connections']} conns, {sat['engine']}) req/s",
                f"{rps['direct']:,.0f}",
                f"{rps['standby']:,.0f}",
                f"x{rps['ratio']:.3f}",
            )
        )
        out.append(
            (
                "gateway CPU at saturation (core 1)",
                "-",
                f"{sat['gateway_cpu_pct']:.0f} %",
                f"{sat['gateway_cpu_us_per_request']:.0f} µs CPU / request",
            )
        )
        up = sat["upstream_cpu_pct"]
        out.append(
            (
                "upstreams' CPU at saturation (core 0)",
                f"{up['direct']:.0f} %",
                f"{up['standby']:.0f} %",
                "",
            )
        )
        errors = sat["errors"]
        out.append(
            (
                "saturation non-2xx + socket errors",
                str(errors["direct"]),
                str(errors["standby"]),
                "",
            )
        )
    if "stream" in phases:
        st = phases["stream"]
        out += _quantile_rows("stream TTFT", st["ttft_ms"], st["pairs"], "ttft_ms")
        whole = st["stream_ms"]["p50"]
        out.append(
            (
                "stream complete p50",
                _ms(whole["direct"]),
                _ms(whole["standby"]),
                _added(whole["added"]),
            )
        )
        fails = st["failures"]
        out.append(("failed / incorrect streams", str(fails["direct"]), str(fails["standby"]), ""))
    if "memory" in phases:
        mem = phases["memory"]
        out.append(
            (
                "gateway RSS idle (after warm-up)",
                "-",
                _mib(mem["rss_idle_kib"]),
                f"fresh: {_mib(mem['rss_fresh_kib'])}",
            )
        )
        per = mem["kib_per_stream"]
        added = mem["rss_added_kib"]
        out.append(
            (
                f"gateway RSS, {mem['streams']:,} streams open",
                "-",
                _mib(mem["rss_open_kib"]),
                "-" if added is None else f"+{_mib(added)} ({per:.1f} KiB / stream)",
            )
        )
        rss = mem["standby"]["rss"]
        out.append(
            (
                "gateway RSS peak (VmHWM) / after streams end",
                "-",
                _mib(rss["vm_hwm_kib"]),
                f"after: {_mib(rss['rss_after_kib'])}",
            )
        )
        n = mem["streams"]
        out.append(
            (
                f"streams completed correctly (of {n:,})",
                f"{mem['direct']['completed_ok']:,}",
                f"{mem['standby']['completed_ok']:,}",
                f"all open at once: {rss['max_open_seen']:,}",
            )
        )
        cpu = mem["standby"]
        out.append(
            (
                f"gateway CPU while forwarding the {n:,} streams",
                "-",
                f"{cpu['gateway_cpu_pct']:.0f} %",
                f"{cpu['gateway_cpu_us_per_event']:.0f} µs CPU / SSE event",
            )
        )
        out.append(
            (
                "slow stream duration p50",
                _ms(mem["direct"]["stream_ms"]["p50"]),
                _ms(mem["standby"]["stream_ms"]["p50"]),
                "",
            )
        )
    return out


def markdown_table(table: list[Row]) -> str:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(HEADER) + " |", "|---|---:|---:|---|"]
    lines += ["| " + " | ".join(row) + " |" for row in table]
    return "\n".join(lines)


def print_table(table: list[Row], title: str) -> None:
    """Print with rich when available, else as markdown."""
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(title)
        print(markdown_table(table))
        return
    view = Table(title=title)
    for i, name in enumerate(HEADER):
        view.add_column(name, justify="right" if i in (1, 2) else "left")
    for row in table:
        view.add_row(*row)
    Console(width=max(120, Console().width)).print(view)


def setup_lines(results: dict[str, Any]) -> list[str]:
    """The run's conditions as markdown bullet points."""
    m, s = results["machine"], results["settings"]
    foreign = ", ".join(f"{p['name']} ({p['cpu_s']} s)" for p in results["foreign_cpu"])
    return [
        f"- command: `{results['command']}`",
        f"- started {results['started']}, took {results['elapsed_s']:.0f} s; "
        f"git {m['git']}; digest of `standby/` per test bed: {results['source_digests']}",
        f"- machine: {m['nproc']} CPUs, {m['cpu_model']}, Linux {m['kernel']}, "
        f"Python {m['python']}, {m['wrk'] or 'no wrk'}, node {m['node'] or '-'}",
        f"- load average at start {m['loadavg_start']}, at end {results['loadavg_end']}",
        f"- pinning: gateway `taskset -c {s['gateway_cpus']}`; upstreams, load generator "
        f"and wrk `taskset -c {s['load_cpus']}`",
        f"- upstream: **{results['upstream']}** (two instances, primary → backup; "
        "all traffic is served by primary)",
        f"- foreign processes with ≥ 1 s CPU during the run: {foreign or 'none'}",
    ] + (
        [f"- files the gateways wrote (journal?): {results['gateway_files']}"]
        if results.get("gateway_files")
        else []
    )


def write(results: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """Write ``out``.json (everything) and ``out``.md (setup + table)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out.with_suffix(".json"), out.with_suffix(".md")
    json_path.write_text(json.dumps(results, indent=1, default=str) + "\n")
    text = [
        "# Standby benchmark: direct vs through Standby",
        "",
        *setup_lines(results),
        "",
        markdown_table(rows(results)),
        "",
        "Added = median over direct/standby pairs of (standby - direct); ratio = "
        "standby / direct.  Latency is open loop, from each request's scheduled send time.",
        "",
    ]
    if results.get("notes"):
        text += ["Notes:", "", *(f"- {note}" for note in results["notes"]), ""]
    md_path.write_text("\n".join(text))
    return json_path, md_path
