"""Standby's own benchmark: direct-to-upstream versus through the gateway, in one run.

Entry point: ``python -m bench.run`` (see ``bench/README.md``).  Modules, one concept each:

* ``processes`` — start/stop pinned processes in their own process groups, ``/proc`` reads
* ``stack``     — a test bed: two mock upstreams and a pinned gateway with a plan
* ``client``    — one non-streaming or streaming request, timed and checked
* ``load``      — open-loop fixed-rate load (coordinated-omission safe)
* ``saturate``  — closed-loop saturation (wrk with a Lua body script, else aiohttp)
* ``memory``    — gateway RSS while 1,000 slow streams are open
* ``stats``     — percentiles and summaries
* ``machine``   — machine facts, load average, CPU used by foreign processes
* ``phases``    — each measured phase, direct and through Standby, alternated
* ``report``    — the results table (terminal and markdown) and JSON
* ``settings``  — phase sizes for a full and a ``--quick`` run

``journal_bench`` is a separate benchmark of the journal (``python -m bench.journal_bench``).
"""
