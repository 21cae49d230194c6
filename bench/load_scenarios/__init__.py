"""What the load generator does to a server: one module per scenario, run by ``bench.loadgen``.

Each scenario is ``async (spec, meter) -> result``: ``spec`` is the JSON the orchestrator
(``bench.scenarios``) sent, ``meter`` reads the server's and our own CPU and memory.
"""
