"""`make gpu-check`: the `gpu` test suite and the GPU benchmark in one command, into one folder.

Where torch sees CUDA it runs `pytest -m gpu` (text log and JUnit XML) and then `roadmap bench
--device cuda --amp bf16 --channels-last --steps endpoints` (CSV and the printed table), within
one time limit (default 8 minutes), and writes both with the device, driver and versions into
`docs/benchmarks/gpu-check-<date>/`, a folder meant to be committed. It ends with how many GPU
tests ran and how many skipped. Without CUDA it runs the suite anyway (every test reports
skipped, with the reason), writes nothing and exits 77 (automake's "skipped": nothing was
checked); with `--require-all` any skipped GPU test (NCCL needs two GPUs) exits 77 too. The
suite includes the GPU path's own checks (docs/cluster-path.md): the trainer's CUDA settings are
the benchmark's, CUDA RNG states of more GPUs than visible restore, local slots name the GPUs the
sweep was given, and (two GPUs) NCCL ranks load the checkpoint rank 0 chose.

    python -m experiments.bench.gpu_check [--out DIR] [--limit-s 480] [--require-all]
"""

from __future__ import annotations

import argparse
import datetime
import shlex
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import torch

from experiments.runs import records

REPO = Path(__file__).resolve().parents[2]
BENCH = ["--device", "cuda", "--amp", "bf16", "--channels-last", "--steps", "endpoints",
         "--batch", "128"]  # fmt: skip
BENCH_RESERVE_S = 150  # of the limit, kept for the benchmark after the tests
EXIT_SKIPPED = 77  # automake's "skipped": the check could not run here


def _run(command: list[str], log: Path | None, limit_s: float) -> int:
    """Run `command`, its output to the terminal and to `log`; its exit status (124: limit)."""
    print(f"$ {shlex.join(command)}", flush=True)
    lines: list[str] = []
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip

    def copy() -> None:
        for line in proc.stdout or ():
            print(line, end="", flush=True)
            lines.append(line)

    reader = threading.Thread(target=copy, daemon=True)
    reader.start()
    try:
        code = proc.wait(timeout=limit_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        lines.append(f"gpu-check: stopped at the time limit ({limit_s:.0f} s)\n")
        code = 124
    reader.join(timeout=10)
    if log is not None:
        log.write_text("".join(lines))
    return code


def _counts(junit: Path) -> tuple[int, int]:
    """(ran, skipped) GPU tests, from pytest's JUnit XML ((0, 0) if it wrote none)."""
    try:
        suite = ET.parse(junit).getroot()
    except (OSError, ET.ParseError):
        return 0, 0
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    if suite is None:
        return 0, 0
    tests, skipped = int(suite.get("tests", 0)), int(suite.get("skipped", 0))
    return tests - skipped, skipped


def _tests(junit: Path, log: Path | None, limit_s: float) -> tuple[int, int, int]:
    """Run the `gpu` suite; (exit status, tests that ran, tests skipped), the counts printed."""
    command = [sys.executable, "-m", "pytest", "-m", "gpu", "-ra", "-p", "no:cacheprovider",
               "--junitxml", str(junit)]  # fmt: skip
    code = _run(command, log, limit_s)
    ran, skipped = _counts(junit)
    print(f"gpu-check: {ran} GPU test(s) ran, {skipped} skipped", flush=True)
    return code, ran, skipped


def _environment() -> str:
    """The device, driver and package versions, as text."""
    smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                          "--format=csv,noheader"], capture_output=True, text=True,
                         check=False).stdout.strip()  # fmt: skip
    packages = records.provenance()
    return "\n".join([
        f"time: {records.now()}",
        f"gpus: {smi or torch.cuda.get_device_name()}",
        f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN "
        f"{torch.backends.cudnn.version()}, bf16 {torch.cuda.is_bf16_supported()}",
        f"packages: {packages['packages']}",
        f"git: {packages['git']}",
    ]) + "\n"  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Run the GPU check; 0 when both parts passed, 77 when the GPU tests could not run."""
    parser = argparse.ArgumentParser(prog="gpu-check", description=__doc__.split("\n")[0])
    today = datetime.date.today().isoformat()
    default = REPO / "docs" / "benchmarks" / f"gpu-check-{today}"
    parser.add_argument("--out", type=Path, default=default, help="results folder")
    parser.add_argument("--limit-s", type=float, default=480.0)
    parser.add_argument(
        "--require-all", action="store_true", help="exit 77 when any GPU test skips (NCCL: 2 GPUs)"
    )
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        with tempfile.TemporaryDirectory() as scratch:
            code, _, _ = _tests(Path(scratch) / "gpu-tests.xml", None, args.limit_s)
        print(f"gpu-check: no CUDA device here: nothing checked (exit {EXIT_SKIPPED}), the gpu "
              "tests skipped (above), no benchmark, nothing written", flush=True)  # fmt: skip
        return code or EXIT_SKIPPED
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    (out / "environment.txt").write_text(_environment())
    start = time.monotonic()
    limit = args.limit_s - BENCH_RESERVE_S
    code, ran, skipped = _tests(out / "gpu-tests.xml", out / "gpu-tests.log", limit)
    left = args.limit_s - (time.monotonic() - start)
    bench = [sys.executable, "-m", "roadmap.cli", "bench", *BENCH,
             "--out", str(out / "gpu-bench-endpoints.csv")]  # fmt: skip
    bench_code = _run(bench, out / "gpu-bench-endpoints.log", max(left, 60.0))
    took = time.monotonic() - start
    print(f"gpu-check: tests exit {code} ({ran} ran, {skipped} skipped), bench exit "
          f"{bench_code}, {took:.0f} s; results in {out} (commit them to docs/benchmarks/)",
          flush=True)  # fmt: skip
    if code or bench_code:
        return code or bench_code
    return EXIT_SKIPPED if not ran or (skipped and args.require_all) else 0


if __name__ == "__main__":
    sys.exit(main())
