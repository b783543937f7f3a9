#!/usr/bin/env bash
# A throwaway PostgreSQL server for the integration tests.
#
# Usage:
#   scripts/pg.sh start   Make sure a server is running on 127.0.0.1:$PORT and print ONE line
#                         to stdout: postgres://postgres@127.0.0.1:PORT/postgres (trust auth,
#                         no password). Every other message goes to stderr. Exits non-zero,
#                         with the reason (and the server log's tail), if it cannot.
#   scripts/pg.sh stop    Stop the server this script started for $DIR, if it is running.
#                         A server this script did not start is never touched.
#
# Environment:
#   DRIFTWATCH_PG_PORT    TCP port (default 55432; 5432 is left to any system server).
#   DRIFTWATCH_PG_DIR     data directory (default ${TMPDIR:-/tmp}/driftwatch-pg-$PORT).
#
# What `start` does, in order:
#   1. A server already answering `pg_isready -h 127.0.0.1 -p PORT` is reused as it is
#      (after checking that the URL logs in).
#   2. The binaries are taken from /usr/lib/postgresql/<newest>/bin (or from PATH); if there
#      are none, and we are root, `apt-get install postgresql` installs them.
#   3. A valid data directory left by an earlier run is started again; a missing one is
#      created with initdb; a broken one (or one that fails to start) is wiped and
#      initialised once more, one time only.
#   The cluster is for tests only: trust auth, 300 connections, fsync/full_page_writes/synchronous_commit
#   off, listening on 127.0.0.1 (and a Unix socket inside DIR). The server runs as the
#   `postgres` OS user when this script runs as root, else as the calling user. Its log is
#   DIR/server.log. Calls for the same port are serialised with flock, so concurrent starts
#   are safe, and servers on different ports coexist.
#
# Sourcing this file (`. scripts/pg.sh start`) runs it as a child process, so the caller's
# shell options and stdout are left alone: `url="$(. scripts/pg.sh start)"` works too.

if [[ "${BASH_SOURCE[0]}" != "$0" ]]; then
    bash "${BASH_SOURCE[0]}" "$@"
    return
fi

set -euo pipefail

# stdout carries only the URL (fd 3); everything else, ours or any tool's, goes to stderr.
exec 3>&1 1>&2

PORT="${DRIFTWATCH_PG_PORT:-55432}"
DIR="${DRIFTWATCH_PG_DIR:-${TMPDIR:-/tmp}/driftwatch-pg-$PORT}"
URL="postgres://postgres@127.0.0.1:$PORT/postgres"
PG_USER=postgres            # the OS user the server runs as, when we are root
CLUSTER_MARK=driftwatch-pg.cluster   # in DIR: this script created the cluster (may wipe it)
STARTED_MARK=driftwatch-pg.started   # in DIR: this script started the server (may stop it)
BINDIR=""

log() { printf 'pg.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ "$PORT" =~ ^[0-9]+$ ]] && ((PORT > 0 && PORT < 65536)) \
    || die "DRIFTWATCH_PG_PORT must be a TCP port number, got '$PORT'"
[[ -n "$DIR" && "$DIR" != *$'\n'* ]] || die "bad DRIFTWATCH_PG_DIR '$DIR'"
DIR="$(realpath -m -- "$DIR")"
[[ "$DIR" != / ]] || die "DRIFTWATCH_PG_DIR must not be /"
# The server's user may not be able to read the caller's working directory.
cd /

# ---------------------------------------------------------------------------------------
# Helpers

# Runs a command as the server's OS user: `postgres` when we are root, else ourselves.
# fds 3 (the caller's stdout) and 9 (the lock) are closed for it: a postmaster that kept
# them would hang `url="$(scripts/pg.sh start)"` and hold the lock for its whole life.
as_pg() {
    if ((EUID != 0)); then
        "$@" 3>&- 9>&-
    elif command -v runuser >/dev/null; then
        runuser -u "$PG_USER" -- "$@" 3>&- 9>&-
    else
        su "$PG_USER" -s /bin/bash -c "$(printf '%q ' "$@")" 3>&- 9>&-
    fi
}

# Sets BINDIR to a directory holding initdb, pg_ctl and postgres; non-zero when none does.
find_bindir() {
    local d candidates=()
    # Debian layout, newest major version first.
    while IFS= read -r d; do candidates+=("$d"); done \
        < <(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -rV)
    # Then whatever PATH offers (symlinks resolved: /usr/local/bin/initdb and friends).
    if d="$(command -v pg_ctl)"; then candidates+=("$(dirname -- "$(readlink -f -- "$d")")"); fi
    if d="$(command -v postgres)"; then candidates+=("$(dirname -- "$(readlink -f -- "$d")")"); fi
    for d in "${candidates[@]}"; do
        if [[ -x "$d/initdb" && -x "$d/pg_ctl" && -x "$d/postgres" ]]; then
            BINDIR="$d"
            return 0
        fi
    done
    return 1
}

ensure_binaries() {
    find_bindir && return 0
    ((EUID == 0)) || die "PostgreSQL server binaries not found, and installing them needs root: apt-get install postgresql"
    command -v apt-get >/dev/null || die "PostgreSQL server binaries not found, and there is no apt-get to install them"
    log "PostgreSQL server binaries not found: installing the postgresql package"
    DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null 3>&- 9>&- \
        || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql </dev/null 3>&- 9>&- \
        || die "apt-get install postgresql failed"
    find_bindir || die "postgresql installed, but initdb/pg_ctl/postgres are still not found"
}

ensure_pg_user() {
    ((EUID == 0)) || return 0
    id -u "$PG_USER" >/dev/null 2>&1 && return 0
    command -v useradd >/dev/null || die "no '$PG_USER' OS user to run the server as, and no useradd"
    log "creating the '$PG_USER' OS user"
    useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/sh "$PG_USER" \
        || die "could not create the '$PG_USER' OS user"
}

# pg_isready's status for 127.0.0.1:PORT: 0 accepting, 1 rejecting (starting up or shutting
# down), 2 no response. Read from its message rather than its exit status, which a broken
# client wrapper (Debian's pg_wrapper without a server package) can also make 1. No client
# at all counts as no response. Prefers the client next to the server binaries.
probe() {
    local isready="" out
    [[ -n "$BINDIR" ]] || find_bindir || true
    if [[ -n "$BINDIR" && -x "$BINDIR/pg_isready" ]]; then isready="$BINDIR/pg_isready"
    elif command -v pg_isready >/dev/null; then isready="pg_isready"
    else echo 2; return; fi
    out="$("$isready" -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -t 3 2>/dev/null || true)"
    case "$out" in
        *"accepting connections"*) echo 0 ;;
        *"rejecting connections"*) echo 1 ;;
        *) echo 2 ;;
    esac
}

# Waits (up to ~30 s) while a server on PORT is starting up or shutting down.
probe_settled() {
    local rc i
    for ((i = 0; i < 60; i++)); do
        rc="$(probe)"
        [[ "$rc" == 1 ]] || { echo "$rc"; return; }
        sleep 0.5
    done
    echo "$rc"
}

# Checks that the URL logs in, when a psql is at hand (pg_isready does not log in).
check_login() {
    local psql=""
    if [[ -n "$BINDIR" && -x "$BINDIR/psql" ]]; then psql="$BINDIR/psql"
    elif command -v psql >/dev/null; then psql="psql"
    else return 0; fi
    PGCONNECT_TIMEOUT=10 "$psql" "$URL" -w -X -q -t -A -c 'select 1' >/dev/null
}

# The pid in DIR/postmaster.pid, or nothing.
pidfile_pid() {
    local pid=""
    [[ -f "$DIR/postmaster.pid" ]] && pid="$(head -n 1 -- "$DIR/postmaster.pid" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] && echo "$pid"
    return 0
}

# Whether pid $1 is a postmaster serving DIR: prints live, stale (dead, a zombie, or a
# recycled pid) or unknown (alive, but /proc does not say what it is). The postmaster
# chdirs into its data directory, so its cwd identifies it.
pid_status() {
    local pid="$1" cwd
    if ! kill -0 "$pid" 2>/dev/null; then echo stale; return; fi
    if [[ ! -d /proc/self ]]; then echo unknown; return; fi
    # Field 3 of /proc/PID/stat is the state; a killed, unreaped postmaster is a zombie (Z).
    if [[ "$(sed -E 's/^.*\) ([A-Za-z]).*$/\1/' "/proc/$pid/stat" 2>/dev/null || true)" == Z ]]; then
        echo stale; return
    fi
    if cwd="$(readlink -f -- "/proc/$pid/cwd" 2>/dev/null)" && [[ -n "$cwd" ]]; then
        if [[ "$cwd" == "$DIR" ]]; then echo live; else echo stale; fi
        return
    fi
    # cwd unreadable (no ptrace rights): fall back on the command line.
    if tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qxF -- "$DIR"; then echo live; else echo unknown; fi
}

# Prints the pid of the live postmaster that serves DIR, or nothing. A recycled pid in a
# stale postmaster.pid is never taken for our server.
dir_postmaster() {
    local pid
    pid="$(pidfile_pid)"
    [[ -n "$pid" && "$(pid_status "$pid")" == live ]] && echo "$pid"
    return 0
}

# Removes the lock files of a server that is gone (killed, say). The postmaster clears
# them itself only when their pid is no process at all; an unreaped zombie or a recycled
# pid would make it refuse to start.
clear_stale_locks() {
    local pid f
    pid="$(pidfile_pid)"
    [[ -n "$pid" ]] || return 0
    [[ "$(pid_status "$pid")" == stale ]] || return 0
    log "removing the lock files of a server that is gone (pid $pid)"
    rm -f -- "$DIR/postmaster.pid"
    for f in "$DIR"/.s.PGSQL.*.lock; do
        [[ -e "$f" ]] && rm -f -- "$f"
    done
    return 0
}

# Pids of any processes still working in DIR (children of a killed postmaster, say).
dir_processes() {
    local p
    [[ -d /proc/self ]] || return 0
    for p in /proc/[0-9]*; do
        [[ "$(readlink -f -- "$p/cwd" 2>/dev/null || true)" == "$DIR" ]] && echo "${p#/proc/}"
    done
    return 0
}

# A killed postmaster's children hold its shared memory until they notice and exit; a new
# postmaster refuses to start while they do. Give them a few seconds.
wait_for_orphans() {
    local i
    for ((i = 0; i < 20; i++)); do
        [[ -z "$(dir_processes)" ]] && return 0
        sleep 0.25
    done
    log "warning: processes left from an earlier server still run in $DIR: $(dir_processes | tr '\n' ' ')"
}

cluster_is_valid() {
    local want have
    [[ -f "$DIR/PG_VERSION" && -f "$DIR/global/pg_control" && -f "$DIR/postgresql.conf" ]] || return 1
    # "postgres (PostgreSQL) 15.13 (Debian 15.13-0+deb12u1)" -> 15
    want="$("$BINDIR/postgres" -V | awk '{print $3}' | grep -oE '^[0-9]+')"
    have="$(cat -- "$DIR/PG_VERSION")"
    [[ "$have" == "$want" ]] || { log "$DIR holds a PostgreSQL $have cluster, the server is $want"; return 1; }
}

# Deletes DIR, but only if it is ours to delete: a cluster this script made, the remains of
# an initdb (PG_VERSION), or an empty directory. Never with a postmaster still running in it.
wipe_dir() {
    local pid
    [[ -e "$DIR" ]] || return 0
    pid="$(pidfile_pid)"
    if [[ -n "$pid" && "$(pid_status "$pid")" != stale ]]; then
        die "a server (pid $pid) may still be running in $DIR; refusing to wipe it"
    fi
    if [[ -f "$DIR/$CLUSTER_MARK" || -f "$DIR/PG_VERSION" || -z "$(ls -A -- "$DIR")" ]]; then
        log "wiping $DIR"
        rm -rf -- "$DIR"
    else
        die "$DIR exists and is not a test cluster made by this script; refusing to delete it (set DRIFTWATCH_PG_DIR elsewhere)"
    fi
}

make_dir() {
    mkdir -p -- "$DIR"
    if ((EUID == 0)); then chown -R "$PG_USER:" -- "$DIR"; fi
    chmod 700 -- "$DIR"
    as_pg test -w "$DIR" -a -x "$DIR" \
        || die "$DIR is not writable by the '$(as_pg id -un)' user (is a parent directory closed to it? set DRIFTWATCH_PG_DIR)"
}

init_cluster() {
    local out
    wipe_dir
    make_dir
    out="$(mktemp)"
    log "initialising a new cluster in $DIR"
    if ! as_pg "$BINDIR/initdb" -D "$DIR" -U postgres --auth=trust -E UTF8 --locale=C --no-sync \
        >"$out" 2>&1; then
        cat -- "$out" >&2
        rm -f -- "$out"
        return 1
    fi
    rm -f -- "$out"
    as_pg touch "$DIR/$CLUSTER_MARK"
}

# One attempt to get our server up on PORT from DIR. Non-zero on failure.
start_once() {
    local pid opts sockdir
    # Our own server for DIR may be alive but not answering on PORT (hung, or started with
    # another port). Restart it if this script started it; otherwise leave it alone.
    pid="$(dir_postmaster)"
    if [[ -n "$pid" ]]; then
        [[ -f "$DIR/$STARTED_MARK" ]] \
            || die "a server not started by this script (pid $pid) runs in $DIR but does not answer on port $PORT"
        log "restarting our server (pid $pid), which does not answer on port $PORT"
        as_pg "$BINDIR/pg_ctl" -D "$DIR" -m fast -w -t 60 stop || return 1
    fi
    wait_for_orphans

    if [[ -d "$DIR" ]] && cluster_is_valid; then
        log "reusing the cluster in $DIR"
        make_dir
        clear_stale_locks
    else
        init_cluster || return 1
    fi

    # pg_ctl hands -o to /bin/sh; a Unix socket path is limited to ~107 bytes. Where DIR
    # does not fit either, listen on TCP only (the URL uses TCP anyway).
    sockdir="$DIR"
    if [[ ! "$DIR" =~ ^[A-Za-z0-9_./+-]+$ ]] || ((${#DIR} > 90)); then sockdir=""; fi
    opts="-c listen_addresses=127.0.0.1 -p $PORT -c unix_socket_directories='$sockdir'"
    opts+=" -c fsync=off -c full_page_writes=off -c synchronous_commit=off -c max_connections=300"

    # Marked before pg_ctl runs, so a server that outlives a failed `pg_ctl -w` is ours to stop.
    as_pg touch "$DIR/$STARTED_MARK"
    log "starting PostgreSQL ($BINDIR) on 127.0.0.1:$PORT, log in $DIR/server.log"
    as_pg "$BINDIR/pg_ctl" -D "$DIR" -l "$DIR/server.log" -w -t 60 -o "$opts" start || return 1
    pid="$(dir_postmaster)"
    [[ -n "$pid" ]] || return 1
    as_pg sh -c 'echo "$1" > "$2"' sh "$pid" "$DIR/$STARTED_MARK"
    [[ "$(probe_settled)" == 0 ]] || { log "the server started but does not answer on port $PORT"; return 1; }
}

show_log_tail() {
    if [[ -f "$DIR/server.log" ]]; then
        log "last lines of $DIR/server.log:"
        tail -n 30 -- "$DIR/server.log" >&2
    fi
}

lock() {
    command -v flock >/dev/null || return 0
    mkdir -p -- "$(dirname -- "$DIR")"
    exec 9>"$DIR.lock"
    flock -w 180 9 || die "timed out waiting for another pg.sh on $DIR ($DIR.lock)"
}

# ---------------------------------------------------------------------------------------
# Commands

cmd_start() {
    local pid
    lock
    case "$(probe_settled)" in
        0)
            check_login || die "a server answers on 127.0.0.1:$PORT but $URL cannot log in (not ours? set DRIFTWATCH_PG_PORT)"
            log "reusing the server already answering on 127.0.0.1:$PORT"
            echo "$URL" >&3
            return 0
            ;;
        1) die "a server on 127.0.0.1:$PORT keeps rejecting connections (starting up or shutting down)" ;;
    esac

    ensure_binaries
    ensure_pg_user
    if ! start_once; then
        show_log_tail
        log "first start failed; wiping $DIR and trying once more"
        pid="$(dir_postmaster)"
        if [[ -n "$pid" && -f "$DIR/$STARTED_MARK" ]]; then
            as_pg "$BINDIR/pg_ctl" -D "$DIR" -m immediate -w -t 30 stop || true
        fi
        wait_for_orphans
        wipe_dir
        if ! start_once; then
            show_log_tail
            die "could not start PostgreSQL on 127.0.0.1:$PORT (data directory $DIR)"
        fi
    fi
    check_login || { show_log_tail; die "the server is up but $URL cannot log in"; }
    echo "$URL" >&3
}

cmd_stop() {
    local pid
    lock
    if [[ ! -f "$DIR/$STARTED_MARK" ]]; then
        log "no server started by this script in $DIR; nothing to stop"
        return 0
    fi
    pid="$(dir_postmaster)"
    if [[ -z "$pid" ]]; then
        log "the server started in $DIR is no longer running"
    else
        find_bindir || die "cannot find pg_ctl to stop the server (pid $pid)"
        log "stopping the server in $DIR (pid $pid)"
        as_pg "$BINDIR/pg_ctl" -D "$DIR" -m fast -w -t 60 stop \
            || die "pg_ctl stop failed for $DIR (pid $pid)"
    fi
    rm -f -- "$DIR/$STARTED_MARK"
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    *)
        log "usage: $0 start|stop   (env: DRIFTWATCH_PG_PORT, DRIFTWATCH_PG_DIR)"
        exit 2
        ;;
esac
