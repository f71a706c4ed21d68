"""Sweeps: steps x seeds through submitit, on this machine or a Slurm cluster.

Modules: `plan` (validate and plan the runs), `estimate` (device-hours), `profile` (Slurm
profiles), `job` (the preemption-safe job of one run), `local`, `slurm` (the executors),
`launch` (carry out a plan, cancel), `report` (what the commands print), `cli`.
"""
