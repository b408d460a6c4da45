#!/usr/bin/env bash
# Starts or stops a one-node Slurm cluster (munged, slurmctld, slurmd) whose every file is
# under DIR, for the tests: no systemd, no cgroups, nothing under /etc. Needs root and
# Debian's slurm-wlm and munge.
#
#   cluster.sh start DIR    prints the SLURM_CONF to use once the node is idle
#   cluster.sh stop DIR     stops the daemons started there, by their pid files
set -euo pipefail
cmd=${1:?usage: cluster.sh start|stop DIR}
dir=$(realpath -m "${2:?usage: cluster.sh start|stop DIR}")
here=$(dirname "$(realpath "$0")")

stop() {
    for pidfile in "$dir/slurmd.pid" "$dir/slurmctld.pid" "$dir/munge/munged.pid"; do
        [ -s "$pidfile" ] || continue
        pid=$(cat "$pidfile")
        kill "$pid" 2>/dev/null || continue
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
    done
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

case $cmd in
stop)
    stop
    ;;
start)
    mkdir -p "$dir/state" "$dir/spool" "$dir/munge" "$dir/munge-key"
    # munged wants its socket's folders open to all and its key's folder to itself.
    chmod 755 "$dir" "$dir/munge"
    chmod 700 "$dir/munge-key"
    key=$dir/munge-key/munge.key
    if command -v mungekey >/dev/null; then
        mungekey --create --force --keyfile="$key"
    else
        dd if=/dev/urandom of="$key" bs=1024 count=1 status=none
    fi
    chmod 600 "$key"
    munged --key-file="$key" --socket="$dir/munge/munge.sock" \
        --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge-key/munged.log" \
        --seed-file="$dir/munge-key/munged.seed"
    sed -e "s|@DIR@|$dir|g" -e "s|@CPUS@|$(nproc)|g" \
        -e "s|@CTLD_PORT@|$(free_port)|g" -e "s|@SLURMD_PORT@|$(free_port)|g" \
        "$here/slurm.conf.in" >"$dir/slurm.conf"
    export SLURM_CONF=$dir/slurm.conf
    trap 'stop' ERR
    slurmctld -i
    slurmd -N localhost
    for _ in $(seq 300); do
        if [ "$(sinfo -h -n localhost -o %T 2>/dev/null)" = idle ]; then
            echo "$SLURM_CONF"
            exit 0
        fi
        sleep 0.1
    done
    echo "cluster.sh: the node did not become idle in 30 s; see $dir/*.log" >&2
    stop
    exit 1
    ;;
*)
    echo "usage: cluster.sh start|stop DIR" >&2
    exit 2
    ;;
esac
