#!/usr/bin/env bash
# Install a local SLURM for tests/test_slurm.py: Debian/Ubuntu's slurm-wlm (slurmctld, slurmd, client tools)
# and munge. Idempotent: returns at once when every binary the test needs is there. No accounting database
# (slurmdbd/mariadb) is needed: the test cluster runs without accounting and the jobs are watched with squeue.
#
#   .ci/install_slurm.sh            (as root, or a user with passwordless sudo)
#
# The test itself must run as root (it starts slurmd and writes /etc/slurm/slurm.conf for its duration).
set -euo pipefail

BINARIES=(munged slurmctld slurmd sbatch squeue srun scontrol sinfo scancel)

missing() {
    local binary
    for binary in "${BINARIES[@]}"; do
        if ! PATH="$PATH:/usr/sbin:/sbin" command -v "$binary" >/dev/null 2>&1; then
            echo "$binary"
        fi
    done
}

if [ -z "$(missing)" ]; then
    echo "install_slurm: slurm-wlm and munge already installed ($(PATH="$PATH:/usr/sbin" slurmd -V))"
    exit 0
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    SUDO=(sudo)
fi

export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends slurm-wlm slurm-client munge >/dev/null

# On a systemd host the packages enable their own slurmctld/slurmd services: keep them off, so that they never
# pick up the temporary /etc/slurm/slurm.conf the test writes (munge.service may stay: the test runs its own
# munged on a private socket and key).
if [ -d /run/systemd/system ]; then
    "${SUDO[@]}" systemctl disable --now slurmctld.service slurmd.service >/dev/null 2>&1 || true
fi

still_missing="$(missing)"
if [ -n "$still_missing" ]; then
    echo "install_slurm: still missing after apt-get install: $still_missing" >&2
    exit 1
fi
echo "install_slurm: installed $(PATH="$PATH:/usr/sbin" slurmd -V)"
