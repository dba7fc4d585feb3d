#!/usr/bin/env bash
# GPU smoke test: Pythia-70M at 4 checkpoints x 2 of the paper's dimensions, end to end on CUDA in bfloat16
# (configs/pythia-70m-smoke.yaml), then the extraction throughput from the benchmark TSVs.
#
# Needs: a CUDA GPU, the hub reachable (or the four revisions already in $HF_HOME/hub with HF_HUB_OFFLINE=1), and
# the paper's CSVs (default: <repo>/../shared/datasets). Not run by the tests.
#
#   benchmarks/gpu_smoke.sh                      # work directory: a new /tmp/trusttrace-gpu-smoke.XXXX
#   WORKDIR=/scratch/smoke DATA_DIR=/data/paper CORES=8 benchmarks/gpu_smoke.sh
#
# Environment: WORKDIR, DATA_DIR, SNAKEFILE, CORES (default 4), PYTHON (default <repo>/.venv/bin/python, else python3),
# CONFIG (default configs/pythia-70m-smoke.yaml), REQUIRE_GPU (default 1; 0 only to try the plumbing on a CPU
# with a config that says device: cpu). Extra arguments go to snakemake.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CONFIG=${CONFIG:-$REPO/configs/pythia-70m-smoke.yaml}
SNAKEFILE=${SNAKEFILE:-$REPO/Snakefile}
DATA_DIR=$(cd "${DATA_DIR:-$REPO/../shared/datasets}" && pwd)
WORKDIR=${WORKDIR:-$(mktemp -d /tmp/trusttrace-gpu-smoke.XXXX)}
CORES=${CORES:-4}
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x "$REPO/.venv/bin/python" ]]; then PYTHON=$REPO/.venv/bin/python; else PYTHON=python3; fi
fi
mkdir -p "$WORKDIR"

if [[ "${REQUIRE_GPU:-1}" == 1 ]]; then
    "$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else "gpu_smoke: torch sees no CUDA device")'
    "$PYTHON" -c 'import torch; p = torch.cuda.get_device_properties(0); print(f"GPU: {p.name}, {p.total_memory / 2**30:.0f} GiB, torch {torch.__version__}")'
fi
echo "config: $CONFIG"
echo "data:   $DATA_DIR"
echo "work:   $WORKDIR"

start=$(date +%s)
# One model-loading job on the GPU at a time; the analysis jobs (probe, MI, aggregation) share the CPUs.
# (Extra arguments come first: --config, --resources and --set-resources take every word after them.)
"$PYTHON" -m snakemake "$@" -s "$SNAKEFILE" -d "$WORKDIR" --cores "$CORES" \
    --replace-workflow-config --configfile "$CONFIG" \
    --set-resources extract_activations:gpu=1 steering_effect:gpu=1 --resources gpu=1 \
    --config data_dir="$DATA_DIR"
end=$(date +%s)
echo "workflow: $((end - start)) s wall"

"$PYTHON" - "$WORKDIR" <<'PY'
"""Extraction throughput: statements per second of each extract_activations job (rows / the job's wall seconds,
start-up and model loading included, from its benchmark TSV) and of its forward passes alone (the rate of the
job's last progress-bar line in its log), and over all jobs."""
import csv
import json
import re
import sys
from pathlib import Path

BAR = re.compile(r"extract: 100%.*?(\d+)/\1 \[[0-9:]+<[0-9:?]+, *([0-9.]+)(it/s|s/it)\]")


def forward_rate(log: Path):
    """Statements per second of the job's forward passes: the rate on its progress bar's last line, or None."""
    found = BAR.findall(log.read_text(errors="replace").replace("\r", "\n")) if log.is_file() else []
    if not found:
        return None
    value, unit = float(found[-1][1]), found[-1][2]
    return value if unit == "it/s" else 1.0 / value


workdir = Path(sys.argv[1])
rows, seconds, forward, lines = 0, 0.0, 0.0, []
for tsv in sorted((workdir / "results/benchmarks/extract_activations").glob("*/*/*.tsv")):
    model, checkpoint, dimension = tsv.parent.parent.name, tsv.parent.name, tsv.stem
    with open(tsv) as handle:
        record = list(csv.DictReader(handle, delimiter="\t"))[-1]
    manifest = workdir / f"results/activations/{model}/{checkpoint}/{dimension}/manifest.json"
    n = json.loads(manifest.read_text())["rows"]
    s = float(record["s"])
    f = forward_rate(workdir / f"logs/extract_activations/{model}/{checkpoint}/{dimension}.log")
    rows, seconds = rows + n, seconds + s
    forward += n / f if f else 0.0
    rate = f"{f:>10.1f}" if f else f"{'?':>10}"
    lines.append(f"{model:<12} {checkpoint:<12} {dimension:<12} {n:>6} {s:>8.1f} {n / s:>10.1f} {rate} {record['max_rss']:>9}")
if not lines:
    sys.exit(f"no extraction benchmarks under {workdir}/results/benchmarks/extract_activations")
print(f"{'model':<12} {'checkpoint':<12} {'dimension':<12} {'rows':>6} {'seconds':>8} {'stmts/s':>10} "
      f"{'fwd st/s':>10} {'max_rss':>9}")
print("\n".join(lines))
print(f"extraction: {rows} statements in {seconds:.1f} job-seconds = {rows / seconds:.1f} statements/s "
      f"({len(lines)} jobs, start-up and model loading included)")
if forward:
    print(f"forward passes alone: {rows / forward:.1f} statements/s ({forward:.1f} s; from the progress bars)")
PY
