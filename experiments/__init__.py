"""The harness around the builder: the run record, the recipe, and three subsystems.

- `records` (the files of a run directory), `files` (crash-safe writes, readers that name what
  is wrong), `recipe` (the training recipe and its presets; `timm_names`: its strings checked
  with timm's parsers), `runstate` (where each run stands, one definition), `scheduler` (what
  sacct and local processes say of a job), `runlock` (one trainer per run), `submitit_private`
  (submitit's non-public parts, reached from there alone);
- `train/` (one run), `sweep/` (steps x seeds through submitit), `bench/` (throughput).
"""
