#!/usr/bin/env bash
# Start a single-node Slurm cluster on this machine, for the `slurm`-marked tests.
#
# CI runs as root on a fresh Debian machine: this script installs slurm-wlm and munge from apt,
# writes a minimal slurm.conf for this host (its real CPU count and memory, from `slurmd -C`),
# and starts munged, slurmctld and slurmd without systemd. It is idempotent (a cluster that
# already answers is left alone), bounded in time (SLURM_UP_TIMEOUT seconds, default 300, over
# all steps), and always exits 0: when the cluster cannot start it prints why, and the slurm
# tests then skip with a reason.
#
# Usage: .ci/slurm-up.sh            (then `sinfo` shows one idle node in partition `ci`)
set -u

deadline=$((SECONDS + ${SLURM_UP_TIMEOUT:-300}))
log() { echo "slurm-up: $*"; }
give_up() { log "no cluster: $*"; exit 0; }
# Sets $left to the seconds that remain, or gives up when none do.
budget() {
    left=$((deadline - SECONDS))
    [ "$left" -gt 0 ] || give_up "out of time (SLURM_UP_TIMEOUT=${SLURM_UP_TIMEOUT:-300} s)"
}

node_ready() {
    timeout 10 sinfo --noheader --responding --states=idle,mixed,allocated -o %n 2>/dev/null \
        | grep -q .
}

if command -v sinfo >/dev/null 2>&1 && node_ready; then
    log "a cluster already answers:"; sinfo; exit 0
fi
[ "$(id -u)" = 0 ] || give_up "installing and starting Slurm needs root (running as $(id -un))"

# -- install ----------------------------------------------------------------------------------
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
        || ! command -v munged >/dev/null || ! command -v sinfo >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    command -v apt-get >/dev/null || give_up "apt-get not found: install slurm-wlm and munge by hand"
    log "installing slurm-wlm and munge"
    budget
    timeout "$left" apt-get update -qq >/dev/null || give_up "apt-get update failed"
    budget
    timeout "$left" apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null \
        || give_up "apt-get install slurm-wlm munge failed"
fi

# -- munge ------------------------------------------------------------------------------------
mkdir -p /etc/munge /var/lib/munge /var/log/munge /run/munge
if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom bs=1024 count=1 of=/etc/munge/munge.key status=none
fi
chown -R munge:munge /etc/munge /var/lib/munge /var/log/munge /run/munge 2>/dev/null
chmod 0400 /etc/munge/munge.key
chmod 0700 /etc/munge /var/lib/munge /var/log/munge
chmod 0755 /run/munge
if ! timeout 5 munge -n </dev/null 2>/dev/null | timeout 5 unmunge >/dev/null 2>&1; then
    runuser -u munge -- munged --force || give_up "munged did not start (see /var/log/munge)"
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        timeout 5 munge -n </dev/null 2>/dev/null | timeout 5 unmunge >/dev/null 2>&1 && break
        sleep 0.5
    done
fi
timeout 5 munge -n </dev/null 2>/dev/null | timeout 5 unmunge >/dev/null 2>&1 \
    || give_up "munge does not answer"

# -- slurm.conf for this host -----------------------------------------------------------------
host=$(hostname -s)
# `slurmd -C` prints this node's real hardware: NodeName=... CPUs=... RealMemory=...
node_line=$(timeout 20 slurmd -C 2>/dev/null | head -n 1)
case "$node_line" in
    NodeName=*) ;;
    *) give_up "slurmd -C did not describe this node" ;;
esac
conf_dir=/etc/slurm
mkdir -p "$conf_dir" /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
cat >"$conf_dir/slurm.conf.new" <<EOF
# Written by thermocheck's .ci/slurm-up.sh: a single-node cluster for CI.
ClusterName=thermocheck-ci
# Addresses are pinned to the loopback: the host name need not resolve.
SlurmctldHost=$host(127.0.0.1)
AuthType=auth/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
# No cgroups (containers rarely delegate them): track processes by parent id.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
JobRequeue=1
MinJobAge=600
SlurmdTimeout=60
KillWait=5
$node_line NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=ci Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
if ! cmp -s "$conf_dir/slurm.conf.new" "$conf_dir/slurm.conf"; then
    mv "$conf_dir/slurm.conf.new" "$conf_dir/slurm.conf"
    changed=1
else
    rm -f "$conf_dir/slurm.conf.new"
    changed=0
fi

# -- daemons ----------------------------------------------------------------------------------
running() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
if [ "$changed" = 1 ]; then
    for pidfile in /run/slurmd.pid /run/slurmctld.pid; do
        running "$pidfile" && kill "$(cat "$pidfile")" && sleep 1
    done
fi
running /run/slurmctld.pid || slurmctld || give_up "slurmctld did not start: $(tail -n 5 /var/log/slurm/slurmctld.log 2>/dev/null)"
running /run/slurmd.pid || slurmd || give_up "slurmd did not start: $(tail -n 5 /var/log/slurm/slurmd.log 2>/dev/null)"

until node_ready; do
    [ "$SECONDS" -lt "$deadline" ] \
        || give_up "the node did not become idle in time: $(sinfo 2>&1 | tail -n 2)"
    # A node left DOWN/DRAIN by an earlier run comes back with RESUME.
    scontrol update NodeName="$host" State=RESUME >/dev/null 2>&1
    sleep 1
done
log "cluster up after ${SECONDS}s:"
sinfo
