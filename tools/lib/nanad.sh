# Starts and stops a nanad for the benchmark scripts (sourced, not run).
#
#   start_nanad NANAD SOCKET DATA_DIR LOG   starts NANAD in the background, sets nanad_pid, and
#                                           returns once SOCKET exists (exits the script if
#                                           nanad dies or is not listening within 10 s)
#   stop_nanad                              SIGTERM, waits, warns on a non-zero exit status

nanad_pid=""

start_nanad() {
    local binary=$1 sock=$2 data=$3 log=$4
    rm -f "$sock"
    "$binary" --socket "$sock" --data-dir "$data" --log-level warning 2>>"$log" &
    nanad_pid=$!
    for _ in $(seq 100); do
        [ -S "$sock" ] && return 0
        kill -0 "$nanad_pid" 2>/dev/null || { echo "nanad exited at start (see $log)" >&2; exit 1; }
        sleep 0.1
    done
    echo "nanad did not create $sock within 10 s" >&2
    exit 1
}

stop_nanad() {
    [ -n "$nanad_pid" ] || return 0
    kill -TERM "$nanad_pid" 2>/dev/null || true
    local status=0
    wait "$nanad_pid" || status=$?
    [ "$status" = 0 ] || echo "warning: nanad exited with status $status after SIGTERM" >&2
    nanad_pid=""
}
