#!/usr/bin/env bash
# The worked example of docs/designs.md ("A declared half fraction on smoke"), as it is run:
# declare a 2^(4-1) of four micro-design steps at the endpoint, sweep it (smoke preset, 3 seeds,
# the local executor: 8 points x 3 seeds = 24 smoke runs; the dry run estimates ~5 min of
# training on 2 cores), then analyse it with `roadmap effects`.
# Usage: docs/measurements/declared_example.sh [ROOT] [FIGURES]
set -euo pipefail
cd "$(dirname "$0")/../.."
ROADMAP=${ROADMAP:-.venv/bin/roadmap}
ROOT=${1:-runs/declared}
FIGURES=${2:-docs/figures}
FACTORS=relu_to_gelu,fewer_activations,bn_to_ln,separate_downsampling

"$ROADMAP" design show factorial --factors "$FACTORS" --fraction 2
"$ROADMAP" sweep --design factorial --factors "$FACTORS" --fraction 2 --declare micro-half \
    --seeds 0,1,2 --preset smoke --executor local --root "$ROOT"
"$ROADMAP" effects --root "$ROOT" --out "$ROOT/effects"
cp "$ROOT/effects/effects_resnet50.png" "$FIGURES/effects_declared_smoke.png"
cp "$ROOT/effects/effects_resnet50.md" "$ROOT/effects_declared_smoke.md"  # the table docs/designs.md quotes
