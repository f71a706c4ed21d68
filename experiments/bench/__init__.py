"""The benchmark: training and inference throughput of roadmap steps against their references.

Modules: `models` (what to measure and how: steps, references, settings), `measure` (timing,
memory), `profiler` (torch's private profiler, for CPU memory), `data` (the input pipeline),
`results` (CSV, table, reading a CSV back), `bench_command` (`roadmap bench`).
"""
