#!/usr/bin/env bash
# bench/instructions.sh — user-space instructions per proxied request, counted by valgrind's callgrind:
# EdgeProxy and nginx (as the peer proxy) on the same requests to the same nginx upstream.
#
#   bench/instructions.sh [BIN ...]        (default: dist/edgeproxy; several binaries side by side)
#   PATH_UNDER_TEST=/v1/completion bench/instructions.sh
#
# Why: on the shared 2-core VM, wall-clock CPU per request moves by 10-30% between minutes, far more
# than most changes to the request path. An instruction count does not: each proxy runs under
# callgrind (which serialises and counts every user-space instruction, whatever else the box does),
# serves N1 and then, in a fresh run, N2 sequential keep-alive requests; the difference of the two
# totals over N2-N1 is the cost of one request, start-up and shutdown cancelled out. Repeat runs
# agree to ~0.1%. It counts user space only (the kernel's share is the syscalls; see load.sh's
# kernel/req and the syscall counts in bench/README.md) and instructions are not time (nginx's C runs
# at a different IPC than .NET's code), so it ranks changes to EdgeProxy; load.sh still decides
# against nginx.
#
# Env: N1=500 N2=3500 requests; PATH_UNDER_TEST=/v1/completion (the upstream's chat-completion body
# with token usage, as LLM backends answer; /v1/ping is load.sh's body without usage).
# Needs valgrind, nginx and python3 (Debian: apt-get install -y valgrind nginx python3). Loopback
# only; every run is bounded (N requests, then SIGTERM).
set -euo pipefail
cd "$(dirname "$0")/.."
N1=${N1:-500}
N2=${N2:-3500}
PATH_UNDER_TEST=${PATH_UNDER_TEST:-/v1/completion}
BINS=("$@")
(( ${#BINS[@]} )) || BINS=(dist/edgeproxy)
for tool in valgrind nginx python3; do
  command -v "$tool" >/dev/null 2>&1 || { echo "error: '$tool' not found (Debian: apt-get install -y valgrind nginx python3)" >&2; exit 2; }
done
for bin in "${BINS[@]}"; do
  [[ -x $bin ]] || { echo "not an executable: $bin (build with ./build.sh)" >&2; exit 1; }
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/edgeproxy-instr.XXXXXX")
chmod 755 "$TMP"
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT

read -r UP PX GW < <(python3 -c 'import socket
s=[socket.socket() for _ in range(3)]
[x.bind(("127.0.0.1",0)) for x in s]
print(*[x.getsockname()[1] for x in s])')

render() {  # template out prefix listen upstream
  sed -e "s|@PREFIX@|$3|g" -e "s|@LISTEN@|$4|g" -e "s|@UPSTREAM@|$5|g" -e "s|@ERROR_LOG@|$3/error.log|g" "$1" >"$2"
}
mkdir -p "$TMP/up" "$TMP/px"
render bench/nginx/upstream.conf.in "$TMP/up/nginx.conf" "$TMP/up" "127.0.0.1:$UP" ""
nginx -p "$TMP/up" -c "$TMP/up/nginx.conf" & PIDS+=($!)
# The peer proxy as one process (no master), so callgrind sees the worker that proxies.
render bench/nginx/proxy.conf.in "$TMP/px/nginx.conf" "$TMP/px" "127.0.0.1:$PX" "127.0.0.1:$UP"
sed -i 's/^master_process on;/master_process off;/' "$TMP/px/nginx.conf"
echo "{\"services\":{\"bench\":{\"models\":{\"m\":{\"backends\":[{\"id\":\"up\",\"name\":\"up\",\"url\":\"http://127.0.0.1:$UP\"}]}}}}}" >"$TMP/backends.json"

cat >"$TMP/client.py" <<'PY'
import http.client, sys
port, n, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
for _ in range(n):
    c.request("GET", path)
    r = c.getresponse()
    r.read()
    if r.status != 200:
        sys.exit(f"status {r.status}")
PY
wait_up() {  # port -> waits for a 200 (callgrind starts slowly)
  for _ in $(seq 1 300); do
    python3 -c "import http.client,sys; c=http.client.HTTPConnection('127.0.0.1',$1,timeout=2); c.request('GET','$2'); sys.exit(c.getresponse().status!=200)" 2>/dev/null && return 0
    sleep 0.2
  done
  echo "nothing answered on 127.0.0.1:$1 within 60 s" >&2; return 1
}

# One run under callgrind serving N requests; prints its total instruction count.
# ENVS: environment for the process under test (valgrind passes it on).
run() {  # name n command...
  local name=$1 n=$2 out="$TMP/cg.$1.$2" pid; shift 2
  env "${ENVS[@]}" valgrind --tool=callgrind --vgdb=no --callgrind-out-file="$out" "$@" >"$TMP/$name.$n.log" 2>&1 &
  pid=$!; PIDS+=("$pid")
  wait_up "$PORT" "$PREFIX$PATH_UNDER_TEST"
  python3 "$TMP/client.py" "$PORT" "$n" "$PREFIX$PATH_UNDER_TEST"
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  awk '/^(summary|totals):/ {print $2; exit}' "$out"
}
per_request() {  # name command...
  local a b
  a=$(run "$1" "$N1" "${@:2}"); b=$(run "$1" "$N2" "${@:2}")
  echo $(( (b - a) / (N2 - N1) ))
}

wait_up "$UP" /v1/ping
PREFIX=/bench/m; PORT=$PX; ENVS=()
NGINX_IR=$(per_request nginx nginx -p "$TMP/px" -c "$TMP/px/nginx.conf")
echo "user-space instructions per request (callgrind; GET $PREFIX$PATH_UNDER_TEST, runs of $N1 and $N2 keep-alive requests)"
printf '%-40s %10s %8s\n' proxy "Ir/req" "vs nginx"
printf '%-40s %10d %8s\n' "nginx $(nginx -v 2>&1 | sed 's|.*/||')" "$NGINX_IR" "1.00"
for bin in "${BINS[@]}"; do
  PORT=$GW
  ENVS=(IO_THREADS=1 HOST=127.0.0.1 PORT="$GW" BACKENDS_CONFIG_PATH="$TMP/backends.json" BACKEND_API_KEY='' LOG_LEVEL=WARNING HEALTH_CHECK_INTERVAL=300)
  ir=$(per_request edgeproxy "$bin")
  printf '%-40s %10d %8s\n' "$bin" "$ir" "$(awk -v a="$ir" -v b="$NGINX_IR" 'BEGIN{printf "%.2f", a/b}')"
done
