"""The status page benchmark's visitors: wrk flooding the page and its API, paced, and
what they got back."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import journal_rig
from bench.saturate import parse_wrk, wrk_path

if TYPE_CHECKING:
    from bench.statuspage_flood import Bed

# -- the visitors --------------------------------------------------------------------------------

PAGE = "/status"
SUMMARY = "/status/api/v2/summary.json"
MAX_AGE = 10.0  # seconds a visitor's browser keeps the page before asking again

FLOOD_LUA = """\
-- written by bench/statuspage_rig.py: visitors of the status page at a fixed rate
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } sb_timespec;
int clock_gettime(int clk, sb_timespec *tp);
]]
local ts = ffi.new("sb_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts)  -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local paths = __PATHS__  -- asked for in turn
local rate = __RATE__  -- requests per second (one wrk thread); 0: as fast as answered
local revalidate = __REVALIDATE__  -- share of requests sending If-None-Match
local age = __AGE__  -- seconds old the copy is that a revalidating visitor holds
local start, slot, sent = nil, 0, 0
-- each page's ETags as they changed, {at (CLOCK_MONOTONIC ms), tag}: those the bench saw
-- before this flood began, then the flood's own
local seen = __SEEN__
counts = {}  -- read by done() through thread:get

local function kind_of(path)
  if string.find(path, "/api/", 1, true) then return "json" end
  return "html"
end

local function bump(key)
  counts[key] = (counts[key] or 0) + 1
end

-- the ETag of a copy fetched `age` seconds ago (nil: no copy that old yet)
local function held(kind)
  local list = seen[kind]
  local limit = now_ms() - age * 1000
  for i = #list, 1, -1 do
    if list[i][1] <= limit then return list[i][2] end
  end
  return nil
end

function init(args)
  math.randomseed(20261203)
end

-- the next slot of the schedule: each connection takes one when it is free
function delay()
  if rate <= 0 then return 0 end
  local now = now_ms()
  if start == nil then start = now end
  local at = start + slot * 1000 / rate
  slot = slot + 1
  if at <= now then return 0 end
  return math.floor(at - now)
end

function request()
  sent = sent + 1
  local path = paths[(sent % #paths) + 1]
  local kind = kind_of(path)
  local headers = {
    ["Accept"] = "text/html,application/json;q=0.9,*/*;q=0.8",
    ["Accept-Language"] = "en-GB,en;q=0.9",
    ["Accept-Encoding"] = "gzip, deflate, br",  -- as every browser
    ["User-Agent"] = "statuspage-bench visitor",
  }
  if math.random() < revalidate then
    local tag = held(kind)
    if tag ~= nil then
      headers["If-None-Match"] = tag
      bump("inm_" .. kind)
    end
  end
  bump("sent_" .. kind)
  return wrk.format("GET", path, headers)
end

function response(status, headers, body)
  local kind, tag = "html", nil
  for name, value in pairs(headers) do
    local lower = string.lower(name)
    if lower == "access-control-allow-origin" then kind = "json" end
    if lower == "etag" then tag = value end
  end
  if tag ~= nil then
    local list = seen[kind]
    if #list == 0 or list[#list][2] ~= tag then
      table.insert(list, {now_ms(), tag})
      bump("etags_" .. kind)
    end
  end
  bump(status .. "_" .. kind)
end

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    for key, value in pairs(thread:get("counts")) do
      total[key] = (total[key] or 0) + value
    end
  end
  local parts = {}
  for key, value in pairs(total) do
    table.insert(parts, key .. "=" .. value)
  end
  io.write("FLOOD " .. table.concat(parts, " ") .. "\\n")
end
"""


@dataclass(frozen=True, slots=True)
class Visitors:
    """Who floods the page: which pages in turn, how fast, how many revalidate and with
    a copy how old (``age`` 0: the newest ETag, the cheapest case for the server; a
    visitor who would revalidate before the flood has seen a copy that old asks without
    If-None-Match)."""

    paths: tuple[str, ...] = (PAGE, SUMMARY)
    rate: float = 2000.0  # requests/s; 0: closed loop, as fast as answered
    revalidate: float = 0.5
    age: float = MAX_AGE

    def script(self, path: Path, seen: Mapping[str, Sequence[tuple[float, str]]]) -> Path:
        """Write the wrk script of these visitors to ``path``; ``seen``: ``html`` and
        ``json`` → the (``time.monotonic()``, ETag) of copies fetched before."""
        memory = ", ".join(
            f"{kind} = {{"
            + ", ".join(f"{{{at * 1000:.3f}, '{tag}'}}" for at, tag in seen.get(kind, ()))
            + "}"
            for kind in ("html", "json")
        )
        values = {
            "__SEEN__": "{" + memory + "}",
            "__PATHS__": "{" + ", ".join(f'"{p}"' for p in self.paths) + "}",
            "__RATE__": repr(float(self.rate)),
            "__REVALIDATE__": repr(float(self.revalidate)),
            "__AGE__": repr(float(self.age)),
        }
        text = FLOOD_LUA
        for key, value in values.items():
            text = text.replace(key, value)
        path.write_text(text)
        return path


def parse_flood(text: str) -> dict[str, int]:
    """The counts of the script's ``FLOOD key=value …`` line (``200_html``, ``304_json``,
    ``sent_html``, ``inm_json``, ``etags_html``, …)."""
    found = re.search(r"^FLOOD (.*)$", text, re.MULTILINE)
    if found is None:
        return {}
    counts: dict[str, int] = {}
    for part in found.group(1).split():
        key, _, value = part.partition("=")
        counts[key] = int(value)
    return counts


async def wait_process(proc: asyncio.subprocess.Process, within: float) -> tuple[bytes, bytes]:
    """Wait for ``proc``'s output, killing it (by its PID) when it overruns ``within``
    seconds or the wait is cancelled."""
    try:
        async with asyncio.timeout(within):
            return await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def start_wrk(
    bed: Bed, visitors: Visitors, seconds: float, connections: int, name: str
) -> asyncio.subprocess.Process:
    """wrk with the visitors' script, pinned to core 0, for ``seconds`` (whole)."""
    wrk = wrk_path()
    if wrk is None:
        raise RuntimeError("wrk is needed for the flood")
    script = visitors.script(bed.workdir / f"{name}.lua", bed.seen)
    argv = [
        "taskset",
        "-c",
        journal_rig.LOAD_CPUS,
        wrk,
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "--timeout",
        "5s",
        "-s",
        str(script),
        f"{bed.page_base}{PAGE}",
    ]
    return await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )


async def finish_wrk(proc: asyncio.subprocess.Process, seconds: float) -> dict[str, Any]:
    """wrk's summary and the visitors' counts: rate, 304s, errors, latency."""
    out, err = await wait_process(proc, seconds + 30.0)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {(err or out).decode()}")
    text = out.decode()
    summary = parse_wrk(text)
    counts = parse_flood(text)
    answered_304 = sum(v for k, v in counts.items() if k.startswith("304_"))
    revalidating = sum(v for k, v in counts.items() if k.startswith("inm_"))
    return {
        "requests": summary["requests"],
        "duration_s": summary["duration_s"],
        "rate": summary["requests"] / summary["duration_s"],
        "errors": summary["non_2xx"] + summary["socket_errors"],
        "latency_ms": summary["latency_ms"],
        "counts": counts,
        "revalidating": revalidating,
        "answered_304": answered_304,
        "etag_changes": sum(v for k, v in counts.items() if k.startswith("etags_")),
        "share_304": answered_304 / summary["requests"] if summary["requests"] else None,
        "share_304_of_revalidating": answered_304 / revalidating if revalidating else None,
    }
