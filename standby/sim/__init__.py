"""A simulated OpenAI-compatible provider with every fault of the catalogue (F01-F24).

Used by the end-to-end tests, the demo and the benchmarks::

    async with SimProvider("primary") as sim:
        sim.set_fault(Fault("cut_stream", after=5, times=1))
        ...  # point a client at sim.base_url
"""

from standby.sim.answers import WORDS, canned_text
from standby.sim.faults import KINDS, Fault
from standby.sim.serve import run_sim
from standby.sim.server import SimProvider, SimRequest

__all__ = ["KINDS", "WORDS", "Fault", "SimProvider", "SimRequest", "canned_text", "run_sim"]
