#!/usr/bin/env bash
# shellcheck disable=SC2317  # functions are invoked indirectly (trap, "start_$t")
# bench/load.sh — one-shot, time-bounded proxy throughput benchmark on loopback.
#
# Starts, each with its own config rendered into a temp dir (templates: bench/nginx/*.in,
# bench/haproxy/*.in):
#   upstream  nginx answering GET /v1/ping with a ~200-byte JSON body
#   nginx     nginx as reverse proxy  (/bench/m/ -> upstream /)
#   haproxy   HAProxy as reverse proxy (/bench/m/ -> upstream /)
#   kestrel   bench/KestrelFloor       (/bench/m/ -> upstream /): the floor -- a bare Native AOT
#             Kestrel + HttpClient proxy with no gateway features, same runtime settings
#   edgeproxy dist/edgeproxy           (/bench/m/ -> upstream /)
#   sockets   dist/edgeproxy with TRANSPORT=sockets (optional target: Kestrel's socket transport
#             instead of the gateway's epoll loops, for the side-by-side figure)
#   general   dist/edgeproxy with HTTP1_FAST_PATH=off (optional target: the general path only,
#             i.e. what the HTTP/1.1 fast path saves, in the same run)
#   epoll     bench/EpollFloor (optional target): a one-thread Native AOT relay on raw epoll and libc
#             recv/send -- no .NET socket engine, Kestrel, pipes or async; what C# costs per request
#             when it owns its I/O (no gateway features)
#   nginx-tls, edge-tls   (optional targets) nginx with `listen ... ssl` and dist/edgeproxy with
#             TLS_CERT_FILE/TLS_KEY_FILE, on the same certificate (a P-256 one made with openssl for
#             the run), keep-alive connections over TLS: what TLS termination costs per request
#   nginx-hs, edge-hs     (optional targets) the same two servers (own instances), every request on
#             a new TLS connection (wrk -H 'Connection: close'): req/s is the full-handshake rate
# then, per target, warms up and runs `wrk --latency` against GET /bench/m/v1/ping
# (GET /v1/ping for the direct baseline), and reports req/s, p50, p99, the proxy's
# CPU time per request (utime+stime of all its processes from /proc/PID/stat; its user part too) and
# its RSS (VmHWM peak / VmRSS after, summed over its processes).
#
# Env options:
#   DURATION=10        measured seconds per target (wrk -d)
#   WARMUP=3           warm-up seconds per target
#   CONNECTIONS=64     wrk -c
#   THREADS=1          wrk -t
#   ROUNDS=3           measured runs per target, round-robin over targets; the table shows medians
#   QUIET_MAX=15       a round is "quiet" when other processes used <= this % of one core during
#                      it; medians are taken over quiet rounds only (all rounds, flagged, if none)
#   ONLY=direct,nginx,haproxy,kestrel,edgeproxy   subset / order of targets (add ",general" for the
#                      general-path row, ",sockets" for the socket transport, ",epoll" for the epoll floor,
#                      ",nginx-tls,edge-tls,nginx-hs,edge-hs" for TLS; e.g. ONLY=nginx-tls,edge-tls,nginx-hs,edge-hs)
#   IO_THREADS=1       socket event loops of edgeproxy, general and the Kestrel floor (0: the runtime's
#                      default, one per core). 1 matches the peers: nginx runs worker_processes 1 and
#                      HAProxy nbthread 1, i.e. one event loop each.
#   EDGEPROXY_BIN=<repo>/dist/edgeproxy
#   KESTREL_FLOOR_BIN=<repo>/bench/KestrelFloor/out/kestrel-floor   (published on first use)
#   EPOLL_FLOOR_BIN=<repo>/bench/EpollFloor/out/epoll-floor         (published on first use)
#   RESULTS_DIR=<repo>/bench/results
# Only loopback (127.0.0.1) is ever targeted; every load run is bounded by wrk -d.
set -euo pipefail
if (( BASH_VERSINFO[0] < 5 )); then echo "error: bash >= 5 required (EPOCHREALTIME)" >&2; exit 2; fi

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
. "$SCRIPT_DIR/lib.sh"
REPO=$(cd -- "$SCRIPT_DIR/.." && pwd)

DURATION=${DURATION:-10}
WARMUP=${WARMUP:-3}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-1}
ROUNDS=${ROUNDS:-3}
QUIET_MAX=${QUIET_MAX:-15}
ONLY=${ONLY:-direct,nginx,haproxy,kestrel,edgeproxy}
IO_THREADS=${IO_THREADS:-1}
EDGEPROXY_BIN=${EDGEPROXY_BIN:-$REPO/dist/edgeproxy}
KESTREL_FLOOR_BIN=${KESTREL_FLOOR_BIN:-$REPO/bench/KestrelFloor/out/kestrel-floor}
EPOLL_FLOOR_BIN=${EPOLL_FLOOR_BIN:-$REPO/bench/EpollFloor/out/epoll-floor}
RESULTS_DIR=${RESULTS_DIR:-$REPO/bench/results}

for v in DURATION WARMUP CONNECTIONS THREADS ROUNDS QUIET_MAX IO_THREADS; do
  if ! [[ ${!v} =~ ^[0-9]+$ ]] || { [[ ${!v} -eq 0 ]] && [[ $v != QUIET_MAX && $v != IO_THREADS ]]; }; then
    echo "error: $v must be a positive integer (got '${!v}')" >&2; exit 2
  fi
done
if [[ $# -gt 0 ]]; then
  case $1 in
    -h|--help) sed -n '3,40p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "error: unknown argument '$1' (configuration is via env, see --help)" >&2; exit 2 ;;
  esac
fi

need() { command -v "$1" >/dev/null 2>&1 || { echo "error: '$1' not found. On Debian: apt-get install -y nginx haproxy wrk curl" >&2; exit 2; }; }
need wrk; need curl; need awk
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)

CLK_TCK=$(getconf CLK_TCK)
TS=$(date +%Y%m%d-%H%M%S)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/edgeproxy-bench.XXXXXX")
chmod 755 "$TMP"   # nginx workers run as 'nobody' when started by root
mkdir -p "$TMP/up" "$TMP/nginx" "$TMP/haproxy" "$TMP/kestrel" "$TMP/edgeproxy" "$TMP/general" "$TMP/epoll" "$TMP/sockets" \
  "$TMP/nginx-tls" "$TMP/edge-tls" "$TMP/nginx-hs" "$TMP/edge-hs" "$TMP/tls"

STARTED_PIDS=()
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [[ -n ${WRK_PID:-} ]] && kill -TERM "$WRK_PID" 2>/dev/null
  stop_pids "${STARTED_PIDS[@]}"
  rm -rf "$TMP"
  exit "$rc"
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT
trap 'exit 143' TERM


now_us() { local t=${EPOCHREALTIME/./}; NOW_US=${t/,/}; }  # sets NOW_US (microseconds), no fork
health_200() {  # port -> 0 if GET /health answers 200 (raw HTTP/1.0 over bash /dev/tcp)
  local line=""
  { exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
  printf 'GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3 2>/dev/null || { exec 3>&-; return 1; }
  IFS= read -r -t 2 line <&3 || true
  exec 3>&- 3<&-
  [[ $line == "HTTP/1."[01]" 200"* ]]
}

mapfile -t PORTS < <(free_ports 12)
UP_PORT=${PORTS[0]} NGINX_PORT=${PORTS[1]} HAPROXY_PORT=${PORTS[2]} EDGE_PORT=${PORTS[3]} KESTREL_PORT=${PORTS[4]} GENERAL_PORT=${PORTS[5]} EPOLL_PORT=${PORTS[6]} SOCKETS_PORT=${PORTS[7]}
declare -A TLS_PORTS=([nginx-tls]=${PORTS[8]} [edge-tls]=${PORTS[9]} [nginx-hs]=${PORTS[10]} [edge-hs]=${PORTS[11]})

# ---------------------------------------------------------------- /proc helpers
children_of() {  # direct children of a pid, by scanning /proc/*/stat for its ppid
  local f st
  for f in /proc/[0-9]*/stat; do
    st=$(cat "$f" 2>/dev/null) || continue
    st=${st##*) }
    [[ ${st#* } == "$1 "* ]] && { f=${f#/proc/}; echo "${f%/stat}"; }
  done
  return 0
}
proc_tree() {  # pid plus its direct children (nginx master + workers)
  local p=$1
  echo "$p"
  for c in $(children_of "$p"); do echo "$c"; done
}
cpu_ticks() {  # "total user": utime+stime and utime alone (ticks), summed over given pids, one read each
  local total=0 user=0 pid rest
  for pid in "$@"; do
    [[ -r /proc/$pid/stat ]] || continue
    rest=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
    rest=${rest##*) }            # drop "pid (comm) " safely (comm may hold spaces)
    # after comm: field 3 is index 0, so utime(14) -> 11, stime(15) -> 12
    read -r -a f <<<"$rest"
    total=$(( total + f[11] + f[12] )); user=$(( user + f[11] ))
  done
  echo "$total $user"
}
mem_kb() {  # $1 = VmRSS|VmHWM, rest = pids; sum in kB
  local key=$1; shift
  local total=0 pid v
  for pid in "$@"; do
    v=$(awk -v k="$key:" '$1==k {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    total=$(( total + ${v:-0} ))
  done
  echo "$total"
}

wait_http_200() {  # url timeout_s pid
  local url=$1 timeout=$2 pid=$3 deadline
  deadline=$(( $(date +%s) + timeout ))
  while (( $(date +%s) < deadline )); do
    kill -0 "$pid" 2>/dev/null || return 1
    [[ $(curl -sk -o /dev/null -w '%{http_code}' --max-time 1 "$url" || true) == 200 ]] && return 0
    sleep 0.05
  done
  return 1
}

# ---------------------------------------------------------------- configs
# nginx/haproxy configs are templates shared with the crank docker images (bench/nginx,
# bench/haproxy); render them into the temp dir.
render() {  # template out prefix listen upstream error_log
  local tpl=$1 out=$2
  [[ -r $tpl ]] || { echo "error: missing template $tpl" >&2; exit 2; }
  sed -e "s|@PREFIX@|$3|g" -e "s|@LISTEN@|$4|g" -e "s|@UPSTREAM@|$5|g" -e "s|@ERROR_LOG@|$6|g" "$tpl" >"$out"
}
render "$SCRIPT_DIR/nginx/upstream.conf.in" "$TMP/up/nginx.conf" \
  "$TMP/up" "127.0.0.1:$UP_PORT" "" "$TMP/up/error.log"
render "$SCRIPT_DIR/nginx/proxy.conf.in" "$TMP/nginx/nginx.conf" \
  "$TMP/nginx" "127.0.0.1:$NGINX_PORT" "127.0.0.1:$UP_PORT" "$TMP/nginx/error.log"
render "$SCRIPT_DIR/haproxy/haproxy.cfg.in" "$TMP/haproxy/haproxy.cfg" \
  "$TMP/haproxy" "127.0.0.1:$HAPROXY_PORT" "127.0.0.1:$UP_PORT" ""

cat >"$TMP/edgeproxy/backends.json" <<EOF
{"services":{"bench":{"models":{"m":{"backends":[{"id":"up","name":"nginx upstream","url":"http://127.0.0.1:$UP_PORT","weight":1}]}}}}}
EOF

# ---------------------------------------------------------------- starters
# Each starter sets TARGET_PID (root process) and TARGET_URL.
UP_PID=""
start_upstream() {
  "$NGINX" -p "$TMP/up" -e "$TMP/up/error.log" -c "$TMP/up/nginx.conf" >"$TMP/up/stdout.log" 2>&1 &
  UP_PID=$!; STARTED_PIDS+=("$UP_PID")
  if ! wait_http_200 "http://127.0.0.1:$UP_PORT/v1/ping" 10 "$UP_PID"; then
    log "upstream nginx failed to start:"; tail -n 20 "$TMP/up/error.log" "$TMP/up/stdout.log" >&2 || true
    exit 1
  fi
}

start_direct() { TARGET_PID=""; TARGET_URL="http://127.0.0.1:$UP_PORT/v1/ping"; }

start_nginx() {
  "$NGINX" -p "$TMP/nginx" -e "$TMP/nginx/error.log" -c "$TMP/nginx/nginx.conf" >"$TMP/nginx/stdout.log" 2>&1 &
  TARGET_PID=$!; STARTED_PIDS+=("$TARGET_PID")
  TARGET_URL="http://127.0.0.1:$NGINX_PORT/bench/m/v1/ping"
  wait_http_200 "$TARGET_URL" 10 "$TARGET_PID" || { tail -n 20 "$TMP/nginx/error.log" "$TMP/nginx/stdout.log" >&2 || true; return 1; }
}

start_haproxy() {
  # -db: stay in foreground, single process (no master-worker)
  "$HAPROXY" -db -f "$TMP/haproxy/haproxy.cfg" >"$TMP/haproxy/stdout.log" 2>&1 &
  TARGET_PID=$!; STARTED_PIDS+=("$TARGET_PID")
  TARGET_URL="http://127.0.0.1:$HAPROXY_PORT/bench/m/v1/ping"
  wait_http_200 "$TARGET_URL" 10 "$TARGET_PID" || { tail -n 20 "$TMP/haproxy/stdout.log" >&2 || true; return 1; }
}

# Start-to-first-200 on /health. Polled with bash's /dev/tcp and $EPOCHREALTIME (no fork per poll;
# a curl per poll costs ~20 ms here), pausing 1 ms after each poll that finds no answer (read -t on a
# FIFO: no fork, no CPU) so the poller does not hold one of the box's two cores while the process it
# times starts (flat out it added ~12 ms to EdgeProxy's start; bench/startup.sh does the same). The
# figure is process start to the end of the first 200 answer; the resolution reported is the gap
# between the starts of the last failed poll and the successful one. Sets
# STARTUP_MS/STARTUP_RES_MS/STARTUP_POLLS[name].
declare -A STARTUP_MS STARTUP_RES_MS STARTUP_POLLS
time_to_health() {  # name port pid t0_us log
  local name=$1 port=$2 pid=$3 t0=$4 logf=$5 tprev tnow tstart polls=0 deadline pause_fd
  deadline=$(( t0 + 20000000 ))
  tprev=$t0
  [[ -p $TMP/poll-pause ]] || mkfifo "$TMP/poll-pause"
  exec {pause_fd}<>"$TMP/poll-pause"
  while :; do
    now_us; tnow=$NOW_US
    if (( tnow > deadline )) || ! kill -0 "$pid" 2>/dev/null; then
      log "$name did not answer 200 on /health within 20 s (or exited); log tail:"
      tail -n 30 "$logf" >&2 || true
      return 1
    fi
    polls=$((polls + 1))
    if health_200 "$port"; then
      tstart=$tnow
      now_us; tnow=$NOW_US
      STARTUP_MS[$name]=$(awk -v a="$t0" -v b="$tnow" 'BEGIN{printf "%.1f", (b-a)/1e3}')
      STARTUP_RES_MS[$name]=$(awk -v a="$tprev" -v b="$tstart" 'BEGIN{printf "%.2f", (b-a)/1e3}')
      STARTUP_POLLS[$name]=$polls
      exec {pause_fd}<&-
      return 0
    fi
    tprev=$tnow
    read -r -t 0.001 -u "$pause_fd" _ || true
  done
}

EDGE_BIN_MB=""
start_edgeproxy() {
  if [[ ! -x $EDGEPROXY_BIN ]]; then
    log "EdgeProxy binary not found at $EDGEPROXY_BIN"
    log "  build it with:  ./build.sh   (from the repo root; produces dist/edgeproxy)"
    log "  or point EDGEPROXY_BIN at an existing build. Skipping the edgeproxy row."
    return 1
  fi
  EDGE_BIN_MB=$(awk -v b="$(stat -L -c %s "$EDGEPROXY_BIN")" 'BEGIN{printf "%.1f", b/1048576}')
  TARGET_URL="http://127.0.0.1:$EDGE_PORT/bench/m/v1/ping"
  local t0
  now_us; t0=$NOW_US
  PORT=$EDGE_PORT BACKENDS_CONFIG_PATH="$TMP/edgeproxy/backends.json" BACKEND_API_KEY='' \
    LOG_LEVEL=WARNING HEALTH_CHECK_INTERVAL=30 IO_THREADS=$IO_THREADS \
    "$EDGEPROXY_BIN" >"$TMP/edgeproxy/stdout.log" 2>&1 &
  TARGET_PID=$!; STARTED_PIDS+=("$TARGET_PID")
  time_to_health edgeproxy "$EDGE_PORT" "$TARGET_PID" "$t0" "$TMP/edgeproxy/stdout.log" || return 1
  # confirm with curl, then check the route
  [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$EDGE_PORT/health" || true) == 200 ]] || {
    log "edgeproxy /health answered 200 to the raw poll but not to curl"; return 1; }
  # route check
  [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$TARGET_URL" || true) == 200 ]] || {
    log "edgeproxy is up but GET /bench/m/v1/ping is not 200; log tail:"
    tail -n 30 "$TMP/edgeproxy/stdout.log" >&2 || true
    return 1
  }
}

start_variant() {  # name port VAR=value: the same binary with one setting changed, on its own port
  local name=$1 port=$2 setting=$3
  [[ -x $EDGEPROXY_BIN ]] || { log "EdgeProxy binary not found at $EDGEPROXY_BIN; skipping the $name row."; return 1; }
  TARGET_URL="http://127.0.0.1:$port/bench/m/v1/ping"
  local t0
  now_us; t0=$NOW_US
  env PORT="$port" BACKENDS_CONFIG_PATH="$TMP/edgeproxy/backends.json" BACKEND_API_KEY='' \
    LOG_LEVEL=WARNING HEALTH_CHECK_INTERVAL=30 IO_THREADS="$IO_THREADS" "$setting" \
    "$EDGEPROXY_BIN" >"$TMP/$name/stdout.log" 2>&1 &
  TARGET_PID=$!; STARTED_PIDS+=("$TARGET_PID")
  time_to_health "$name" "$port" "$TARGET_PID" "$t0" "$TMP/$name/stdout.log" || return 1
  [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$TARGET_URL" || true) == 200 ]] || {
    log "$name ($setting) is up but GET /bench/m/v1/ping is not 200"; return 1; }
}

# The same binary on Kestrel's socket transport instead of its epoll loops.
start_sockets() { start_variant sockets "$SOCKETS_PORT" TRANSPORT=sockets; }

# The same binary, general path only.
start_general() { start_variant general "$GENERAL_PORT" HTTP1_FAST_PATH=off; }

# TLS: one certificate for every TLS target (P-256, self-signed for 127.0.0.1; wrk does not verify).
ensure_tls_cert() {
  [[ -r $TMP/tls/cert.pem ]] && return 0
  command -v openssl >/dev/null 2>&1 || { log "openssl not found; skipping the TLS rows"; return 1; }
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1 -keyout "$TMP/tls/key.pem" -out "$TMP/tls/cert.pem" >"$TMP/tls/openssl.log" 2>&1 \
    || { log "openssl failed:"; cat "$TMP/tls/openssl.log" >&2; return 1; }
  chmod 644 "$TMP/tls/key.pem"   # nginx workers run as 'nobody' when started by root
}

start_nginx_tls() {  # name: nginx's proxy config with `listen ... ssl` on the run's certificate
  local name=$1 port=${TLS_PORTS[$1]}
  ensure_tls_cert || return 1
  render "$SCRIPT_DIR/nginx/proxy.conf.in" "$TMP/$name/nginx.conf" "$TMP/$name" "127.0.0.1:$port" "127.0.0.1:$UP_PORT" "$TMP/$name/error.log"
  sed -i "s|listen 127.0.0.1:$port;|listen 127.0.0.1:$port ssl; ssl_certificate $TMP/tls/cert.pem; ssl_certificate_key $TMP/tls/key.pem; ssl_protocols TLSv1.2 TLSv1.3;|" "$TMP/$name/nginx.conf"
  "$NGINX" -p "$TMP/$name" -e "$TMP/$name/error.log" -c "$TMP/$name/nginx.conf" >"$TMP/$name/stdout.log" 2>&1 &
  TARGET_PID=$!; STARTED_PIDS+=("$TARGET_PID")
  TARGET_URL="https://127.0.0.1:$port/bench/m/v1/ping"
  wait_http_200 "$TARGET_URL" 10 "$TARGET_PID" || { tail -n 20 "$TMP/$name/error.log" "$TMP/$name/stdout.log" >&2 || true; return 1; }
}

start_edge_tls() {  # name: dist/edgeproxy terminating TLS on PORT with the run's certificate
  local name=$1 port=${TLS_PORTS[$1]}
  ensure_tls_cert || return 1
  [[ -x $EDGEPROXY_BIN ]] || { log "EdgeProxy binary not found at $EDGEPROXY_BIN; skipping the $name row."; return 1; }
  PORT=$port BACKENDS_CONFIG_PATH="$TMP/edgeproxy/backends.json" BACKEND_API_KEY='' \
    LOG_LEVEL=WARNING HEALTH_CHECK_INTERVAL=30 IO_THREADS=$IO_THREADS \
    TLS_CERT_FILE="$TMP/tls/cert.pem" TLS_KEY_FILE="$TMP/tls/key.pem" \
    "$EDGEPROXY_BIN" >"$TMP/$name/stdout.log" 2>&1 &
  TARGET_PID=$!; STARTED_PIDS+=("$TARGET_PID")
  TARGET_URL="https://127.0.0.1:$port/bench/m/v1/ping"
  wait_http_200 "$TARGET_URL" 20 "$TARGET_PID" || { log "$name did not answer 200 on $TARGET_URL"; tail -n 20 "$TMP/$name/stdout.log" >&2 || true; return 1; }
}

# Keep-alive TLS, and a new TLS connection per request (the handshake rate).
start_nginx-tls() { start_nginx_tls nginx-tls; }
start_edge-tls() { start_edge_tls edge-tls; }
start_nginx-hs() { start_nginx_tls nginx-hs; WRK_HEADER[nginx-hs]="Connection: close"; }
start_edge-hs() { start_edge_tls edge-hs; WRK_HEADER[edge-hs]="Connection: close"; }
declare -A WRK_HEADER

ensure_floor() {  # name bin project-dir target label: publish bench/<project-dir> on first use
  local name=$1 bin=$2 dir=$3 target=$4 label=$5
  [[ -x $bin ]] && return 0
  if [[ $bin == "$SCRIPT_DIR/$dir/out/$name" ]] && command -v dotnet >/dev/null 2>&1; then
    log "publishing the $label (bench/$dir, Native AOT, once)"
    dotnet publish "$SCRIPT_DIR/$dir/$dir.csproj" -c Release -r linux-x64 -nologo \
      -o "$SCRIPT_DIR/$dir/out" >"$TMP/$target/publish.log" 2>&1 \
      || { log "publishing bench/$dir failed:"; tail -n 20 "$TMP/$target/publish.log" >&2; return 1; }
  else
    log "$label binary not found at $bin (and no dotnet to publish it); skipping the $target row."
    return 1
  fi
}

start_kestrel() {
  ensure_floor kestrel-floor "$KESTREL_FLOOR_BIN" KestrelFloor kestrel "Kestrel floor" || return 1
  TARGET_URL="http://127.0.0.1:$KESTREL_PORT/bench/m/v1/ping"
  local t0
  now_us; t0=$NOW_US
  local threads=()
  (( IO_THREADS > 0 )) && threads=("DOTNET_SYSTEM_NET_SOCKETS_THREAD_COUNT=$IO_THREADS")
  env "${threads[@]}" PORT=$KESTREL_PORT UPSTREAM="http://127.0.0.1:$UP_PORT" "$KESTREL_FLOOR_BIN" >"$TMP/kestrel/stdout.log" 2>&1 &
  TARGET_PID=$!; STARTED_PIDS+=("$TARGET_PID")
  time_to_health kestrel "$KESTREL_PORT" "$TARGET_PID" "$t0" "$TMP/kestrel/stdout.log" || return 1
  [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$TARGET_URL" || true) == 200 ]] || {
    log "kestrel floor is up but GET /bench/m/v1/ping is not 200"; return 1; }
}

start_epoll() {
  ensure_floor epoll-floor "$EPOLL_FLOOR_BIN" EpollFloor epoll "epoll floor" || return 1
  TARGET_URL="http://127.0.0.1:$EPOLL_PORT/bench/m/v1/ping"
  PORT=$EPOLL_PORT UPSTREAM="127.0.0.1:$UP_PORT" "$EPOLL_FLOOR_BIN" >"$TMP/epoll/stdout.log" 2>&1 &
  TARGET_PID=$!; STARTED_PIDS+=("$TARGET_PID")
  local _
  for _ in $(seq 1 100); do   # no /health: it serves the one route only
    [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$TARGET_URL" || true) == 200 ]] && return 0
    kill -0 "$TARGET_PID" 2>/dev/null || break
    sleep 0.1
  done
  log "epoll floor did not answer 200 on $TARGET_URL; log tail:"; tail -n 20 "$TMP/epoll/stdout.log" >&2 || true
  return 1
}

stop_target() {
  local pid=$1 _
  [[ -n $pid ]] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# ---------------------------------------------------------------- wrk
# wrk runs in the background and we `wait` for it, so a TERM/INT trap fires at once instead of
# after wrk's -d; cleanup() kills it. --timeout stays at wrk's default (2 s).
WRK_PID=""
run_wrk() {  # outfile wrk-args...
  local out=$1; shift
  wrk "$@" >"$out" 2>&1 &
  WRK_PID=$!
  wait "$WRK_PID" || true
  WRK_PID=""
}

# ---------------------------------------------------------------- wrk parsing
to_ms() {  # "1.23ms" / "850.00us" / "1.02s" -> ms
  awk -v x="$1" 'BEGIN{
    if (x ~ /us$/) { sub(/us$/,"",x); printf "%.2f", x/1000 }
    else if (x ~ /ms$/) { sub(/ms$/,"",x); printf "%.2f", x }
    else if (x ~ /m$/) { sub(/m$/,"",x); printf "%.2f", x*60000 }
    else if (x ~ /s$/) { sub(/s$/,"",x); printf "%.2f", x*1000 }
    else printf "nan" }'
}

# ---------------------------------------------------------------- run
IFS=, read -r -a TARGETS <<<"$ONLY"
for t in "${TARGETS[@]}"; do
  case $t in direct|nginx|haproxy|kestrel|edgeproxy|sockets|general|epoll|nginx-tls|edge-tls|nginx-hs|edge-hs) ;; *) echo "error: unknown target '$t' in ONLY" >&2; exit 2 ;; esac
done

declare -A RPS P50 P99 CPU USR UPCPU OTHER RSS_PEAK RSS_AFTER NOTE   # final (median) figures
declare -A R_RPS R_P50 R_P99 R_CPU R_USR R_UPCPU R_OTHER R_NOTE          # per round, key "target,round"
declare -A TPID TURL
FAILED=0
COMMIT=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
NGINX_VER=$("$NGINX" -v 2>&1 | sed 's/^nginx version: //')
HAPROXY_VER=$("$HAPROXY" -v 2>/dev/null | awk 'NR==1 {print $3}' || true)  # no head: SIGPIPE + pipefail

sys_ticks() {  # "busy steal" jiffies from /proc/stat (busy = user+nice+system+irq+softirq)
  local _c user nice system _idle _iowait irq softirq steal _rest
  read -r _c user nice system _idle _iowait irq softirq steal _rest </proc/stat
  echo "$(( user + nice + system + irq + softirq )) $steal"
}
self_child_ticks() {  # cutime+cstime of this shell: CPU of children it has reaped (i.e. wrk)
  local rest f
  rest=$(cat "/proc/$$/stat"); rest=${rest##*) }
  read -r -a f <<<"$rest"
  echo $(( f[13] + f[14] ))
}
median() {  # numbers... -> median (mean of the middle two for an even count)
  printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END{ if (NR==0) exit; if (NR%2) printf "%s", v[(NR+1)/2]; else printf "%s", (v[NR/2]+v[NR/2+1])/2 }'
}

measure() {  # target round
  local t=$1 r=$2 url=${TURL[$1]} pids=() c0=0 c1=0 cu0=0 cu1=0 u0 u1 w0 w1 s0 s1 sb0 sb1 t0 t1 out reqs rps p50 p99 e notes=() extra=()
  [[ -n ${TPID[$t]} ]] && read -r -a pids <<<"${TPID[$t]}"
  [[ -n ${WRK_HEADER[$t]:-} ]] && extra=(-H "${WRK_HEADER[$t]}")
  log "== $t (round $r/$ROUNDS): warm-up ${WARMUP}s, then ${DURATION}s measured  ($url)"
  run_wrk "$TMP/$t.$r.warmup.txt" -t"$THREADS" -c"$CONNECTIONS" -d"${WARMUP}s" "${extra[@]}" "$url"

  [[ ${#pids[@]} -gt 0 ]] && read -r c0 cu0 < <(cpu_ticks "${pids[@]}")
  read -r u0 _ < <(cpu_ticks "${UP_PIDS[@]}"); w0=$(self_child_ticks); s0=$(sys_ticks); now_us; t0=$NOW_US
  run_wrk "$TMP/$t.$r.wrk.txt" -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "${extra[@]}" "$url"
  now_us; t1=$NOW_US; s1=$(sys_ticks); w1=$(self_child_ticks); read -r u1 _ < <(cpu_ticks "${UP_PIDS[@]}")
  [[ ${#pids[@]} -gt 0 ]] && read -r c1 cu1 < <(cpu_ticks "${pids[@]}")

  out=$(cat "$TMP/$t.$r.wrk.txt")
  reqs=$(awk '/requests in/ {print $1; exit}' <<<"$out")
  rps=$(awk '/^Requests\/sec:/ {print $2; exit}' <<<"$out")
  p50=$(awk '/Latency Distribution/ {d=1} d && $1=="50%" {print $2; exit}' <<<"$out")
  p99=$(awk '/Latency Distribution/ {d=1} d && $1=="99%" {print $2; exit}' <<<"$out")
  if [[ -z $reqs || -z $rps || -z $p50 || -z $p99 || $reqs == 0 ]]; then
    log "could not parse wrk output for $t:"; cat "$TMP/$t.$r.wrk.txt" >&2
    R_NOTE[$t,$r]="wrk failed"; FAILED=1
    return 0
  fi
  R_RPS[$t,$r]=$(awk -v x="$rps" 'BEGIN{printf "%.0f", x}')
  R_P50[$t,$r]=$(to_ms "$p50")
  R_P99[$t,$r]=$(to_ms "$p99")
  R_UPCPU[$t,$r]=$(awk -v d=$((u1 - u0)) -v hz="$CLK_TCK" -v n="$reqs" 'BEGIN{printf "%.1f", d/hz*1e6/n}')
  [[ ${#pids[@]} -gt 0 ]] && R_CPU[$t,$r]=$(awk -v d=$((c1 - c0)) -v hz="$CLK_TCK" -v n="$reqs" 'BEGIN{printf "%.1f", d/hz*1e6/n}')
  [[ ${#pids[@]} -gt 0 ]] && R_USR[$t,$r]=$(awk -v d=$((cu1 - cu0)) -v hz="$CLK_TCK" -v n="$reqs" 'BEGIN{printf "%.1f", d/hz*1e6/n}')
  # CPU used on the box during the run by anything other than proxy, upstream and wrk, in % of
  # one core (includes softirq time not charged to a task). A high value means the run is noisy.
  read -r sb0 _ <<<"$s0"; read -r sb1 _ <<<"$s1"
  R_OTHER[$t,$r]=$(awk -v b=$((sb1 - sb0)) -v p=$((c1 - c0)) -v u=$((u1 - u0)) -v w=$((w1 - w0)) \
    -v hz="$CLK_TCK" -v us=$((t1 - t0)) 'BEGIN{o=(b-p-u-w)/hz/(us/1e6)*100; if (o<0) o=0; printf "%.0f", o}')
  e=$(grep -E '^\s*Socket errors:' "$TMP/$t.$r.wrk.txt" | sed 's/^ *//' || true); [[ -n $e ]] && notes+=("$e")
  e=$(grep -E '^\s*Non-2xx' "$TMP/$t.$r.wrk.txt" | sed 's/^ *//' || true); [[ -n $e ]] && notes+=("$e")
  R_NOTE[$t,$r]="${notes[*]:-}"
  log "== $t (round $r): ${R_RPS[$t,$r]} req/s  p50 ${R_P50[$t,$r]} ms  p99 ${R_P99[$t,$r]} ms  cpu ${R_CPU[$t,$r]:--} us/req (user ${R_USR[$t,$r]:--})  other ${R_OTHER[$t,$r]}%  ${R_NOTE[$t,$r]}"
}

log "tmp=$TMP ports: upstream=$UP_PORT nginx=$NGINX_PORT haproxy=$HAPROXY_PORT kestrel=$KESTREL_PORT edgeproxy=$EDGE_PORT general=$GENERAL_PORT epoll=$EPOLL_PORT sockets=$SOCKETS_PORT"
start_upstream
UP_PIDS=()
mapfile -t UP_PIDS < <(proc_tree "$UP_PID")

# Start every target first (idle ones cost nothing), then measure them round-robin so that a
# burst of background load hits one round, not one target; the table shows per-target medians.
RUNNING=()
for t in "${TARGETS[@]}"; do
  TARGET_PID="" TARGET_URL=""
  log "== $t: starting"
  if ! "start_$t"; then
    NOTE[$t]="not run"; FAILED=1
    stop_target "$TARGET_PID"
    continue
  fi
  TURL[$t]=$TARGET_URL
  TPID[$t]=""
  [[ -n $TARGET_PID ]] && TPID[$t]=$(proc_tree "$TARGET_PID" | tr '\n' ' ')
  RUNNING+=("$t")
done

for ((r = 1; r <= ROUNDS; r++)); do
  for t in "${RUNNING[@]}"; do measure "$t" "$r"; done
done

NOISY=()
for t in "${RUNNING[@]}"; do
  # Aggregate over the quiet rounds (other% <= QUIET_MAX); if there is none, over all rounds
  # and flag the target as noisy.
  quiet=0 ok=0
  for ((r = 1; r <= ROUNDS; r++)); do
    [[ -n ${R_RPS[$t,$r]:-} ]] || continue
    ok=$((ok + 1))
    (( ${R_OTHER[$t,$r]} <= QUIET_MAX )) && quiet=$((quiet + 1))
  done
  vals=() p50s=() p99s=() cpus=() usrs=() ups=() others=() all=() tnotes=""
  for ((r = 1; r <= ROUNDS; r++)); do
    [[ -n ${R_RPS[$t,$r]:-} ]] || { tnotes+="round $r: ${R_NOTE[$t,$r]:-failed}; "; continue; }
    all+=("${R_RPS[$t,$r]}@${R_OTHER[$t,$r]}%")
    [[ -n ${R_NOTE[$t,$r]:-} ]] && tnotes+="round $r: ${R_NOTE[$t,$r]}; "
    (( quiet > 0 && ${R_OTHER[$t,$r]} > QUIET_MAX )) && continue
    vals+=("${R_RPS[$t,$r]}"); p50s+=("${R_P50[$t,$r]}"); p99s+=("${R_P99[$t,$r]}")
    ups+=("${R_UPCPU[$t,$r]}"); others+=("${R_OTHER[$t,$r]}")
    [[ -n ${R_CPU[$t,$r]:-} ]] && cpus+=("${R_CPU[$t,$r]}")
    [[ -n ${R_USR[$t,$r]:-} ]] && usrs+=("${R_USR[$t,$r]}")
  done
  if [[ ${#vals[@]} -gt 0 ]]; then
    RPS[$t]=$(median "${vals[@]}" | awk '{printf "%.0f", $1}')
    P50[$t]=$(median "${p50s[@]}" | awk '{printf "%.2f", $1}')
    P99[$t]=$(median "${p99s[@]}" | awk '{printf "%.2f", $1}')
    UPCPU[$t]=$(median "${ups[@]}" | awk '{printf "%.1f", $1}')
    OTHER[$t]=$(median "${others[@]}" | awk '{printf "%.0f", $1}')
    [[ ${#cpus[@]} -gt 0 ]] && CPU[$t]=$(median "${cpus[@]}" | awk '{printf "%.1f", $1}')
    [[ ${#usrs[@]} -gt 0 ]] && USR[$t]=$(median "${usrs[@]}" | awk '{printf "%.1f", $1}')
    if (( quiet == 0 )); then
      NOISY+=("$t"); tnotes="NOISY (no round with other% <= $QUIET_MAX); $tnotes"
    fi
    tnotes="$quiet/$ok quiet; req/s@other% by round: ${all[*]}; $tnotes"
  fi
  if [[ -n ${TPID[$t]} ]]; then
    read -r -a pids <<<"${TPID[$t]}"
    RSS_PEAK[$t]=$(awk -v k="$(mem_kb VmHWM "${pids[@]}")" 'BEGIN{printf "%.1f", k/1024}')
    RSS_AFTER[$t]=$(awk -v k="$(mem_kb VmRSS "${pids[@]}")" 'BEGIN{printf "%.1f", k/1024}')
    stop_target "${pids[0]}"
  fi
  NOTE[$t]=${tnotes%; }
done

# ---------------------------------------------------------------- report
ratio() {  # a b -> a/b or n/a
  if [[ -n ${1:-} && -n ${2:-} ]]; then awk -v a="$1" -v b="$2" 'BEGIN{ if (b>0) printf "%.2f", a/b; else print "n/a"}'; else echo "n/a"; fi
}
sub() {  # a b -> a-b (empty when either is)
  if [[ -n ${1:-} && -n ${2:-} ]]; then awk -v a="$1" -v b="$2" 'BEGIN{printf "%.1f", a-b}'; fi
}
noisy_pair() {  # peer [ours] -> warning suffix when ours (edgeproxy) or the peer had no quiet round
  local n=() x ours=${2:-edgeproxy}
  [[ -n ${RPS[$ours]:-} && -n ${RPS[$1]:-} ]] || return 0
  for x in "$ours" "$1"; do [[ " ${NOISY[*]:-} " == *" $x "* ]] && n+=("$x"); done
  [[ ${#n[@]} -gt 0 ]] && printf '   [UNRELIABLE: no quiet round for %s; req/s and p99 ratios are biased under load]' "${n[*]}"
  return 0
}
report() {
  echo "EdgeProxy load benchmark  $(date -u +%Y-%m-%dT%H:%M:%SZ)  bench script at commit $COMMIT"
  echo "host: $(nproc) cpus, $(uname -r); nginx $NGINX_VER; haproxy $HAPROXY_VER; $(wrk -v 2>&1 | awk 'NR==1 {print "wrk", $2}' || true)"
  echo "load: wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s --latency (after ${WARMUP}s warm-up) x $ROUNDS rounds round-robin, medians of quiet rounds (other% <= $QUIET_MAX); GET /bench/m/v1/ping (direct: GET /v1/ping), loopback"
  echo "edgeproxy, general and kestrel run IO_THREADS=$IO_THREADS socket event loop(s) (0 = one per core); nginx runs worker_processes 1, HAProxy nbthread 1"
  echo "cpu_us/req = proxy utime+stime (all its processes, /proc/PID/stat, CLK_TCK=$CLK_TCK) / requests, usr_us = its utime part; up_us/req = the same for the upstream nginx"
  echo "rss = sum of VmHWM (peak) / VmRSS (at end) over the proxy's processes; other% = box CPU not used by proxy/upstream/wrk during the run (% of one core; noise indicator)"
  echo
  printf '%-10s %8s %8s %8s %11s %7s %13s %10s %7s  %s\n' target req/s p50_ms p99_ms cpu_us/req usr_us rss_MB_pk/end up_us/req other% notes
  local t rss
  for t in "${TARGETS[@]}"; do
    if [[ -z ${RPS[$t]:-} ]]; then
      printf '%-10s %8s %8s %8s %11s %7s %13s %10s %7s  %s\n' "$t" - - - - - - - - "${NOTE[$t]:-not run}"
      continue
    fi
    rss="-"; [[ -n ${RSS_PEAK[$t]:-} ]] && rss="${RSS_PEAK[$t]}/${RSS_AFTER[$t]}"
    printf '%-10s %8s %8s %8s %11s %7s %13s %10s %7s  %s\n' "$t" "${RPS[$t]}" "${P50[$t]}" "${P99[$t]}" \
      "${CPU[$t]:--}" "${USR[$t]:--}" "$rss" "${UPCPU[$t]}" "${OTHER[$t]}" "${NOTE[$t]:-}"
  done
  if [[ ${#NOISY[@]} -gt 0 ]]; then
    echo
    echo "WARNING: no quiet round for: ${NOISY[*]} -- other processes were busy on this box; rerun when it is idle (or raise ROUNDS)."
  fi
  echo
  echo "edgeproxy vs nginx:   throughput $(ratio "${RPS[edgeproxy]:-}" "${RPS[nginx]:-}") (goal >= 1.0)   cpu/req $(ratio "${CPU[edgeproxy]:-}" "${CPU[nginx]:-}") (goal <= 1.0)   p99 $(ratio "${P99[edgeproxy]:-}" "${P99[nginx]:-}")   user/req $(ratio "${USR[edgeproxy]:-}" "${USR[nginx]:-}")  kernel/req $(ratio "$(sub "${CPU[edgeproxy]:-}" "${USR[edgeproxy]:-}")" "$(sub "${CPU[nginx]:-}" "${USR[nginx]:-}")")$(noisy_pair nginx)"
  echo "edgeproxy vs haproxy: throughput $(ratio "${RPS[edgeproxy]:-}" "${RPS[haproxy]:-}")   cpu/req $(ratio "${CPU[edgeproxy]:-}" "${CPU[haproxy]:-}")   p99 $(ratio "${P99[edgeproxy]:-}" "${P99[haproxy]:-}")$(noisy_pair haproxy)"
  if [[ -n ${RPS[kestrel]:-} ]]; then
    echo "kestrel floor vs nginx: throughput $(ratio "${RPS[kestrel]:-}" "${RPS[nginx]:-}")   cpu/req $(ratio "${CPU[kestrel]:-}" "${CPU[nginx]:-}")   p99 $(ratio "${P99[kestrel]:-}" "${P99[nginx]:-}")$(noisy_pair kestrel)"
  fi
  if [[ -n ${RPS[epoll]:-} ]]; then
    echo "epoll floor vs nginx: throughput $(ratio "${RPS[epoll]:-}" "${RPS[nginx]:-}")   cpu/req $(ratio "${CPU[epoll]:-}" "${CPU[nginx]:-}")   p99 $(ratio "${P99[epoll]:-}" "${P99[nginx]:-}")   user/req $(ratio "${USR[epoll]:-}" "${USR[nginx]:-}")   (C# owning its I/O, no features)"
  fi
  if [[ -n ${RPS[sockets]:-} && -n ${RPS[edgeproxy]:-} ]]; then
    echo "edgeproxy vs sockets transport (TRANSPORT=sockets): throughput $(ratio "${RPS[edgeproxy]:-}" "${RPS[sockets]:-}")   cpu/req $(ratio "${CPU[edgeproxy]:-}" "${CPU[sockets]:-}")   p99 $(ratio "${P99[edgeproxy]:-}" "${P99[sockets]:-}")   (what the epoll transport saves)"
  fi
  if [[ -n ${RPS[general]:-} && -n ${RPS[edgeproxy]:-} ]]; then
    echo "edgeproxy vs general path (HTTP1_FAST_PATH=off): throughput $(ratio "${RPS[edgeproxy]:-}" "${RPS[general]:-}")   cpu/req $(ratio "${CPU[edgeproxy]:-}" "${CPU[general]:-}")   p99 $(ratio "${P99[edgeproxy]:-}" "${P99[general]:-}")   (what the fast path saves)"
  fi
  if [[ -n ${RPS[kestrel]:-} && -n ${RPS[edgeproxy]:-} ]]; then
    echo "edgeproxy vs kestrel floor: throughput $(ratio "${RPS[edgeproxy]:-}" "${RPS[kestrel]:-}")   cpu/req $(ratio "${CPU[edgeproxy]:-}" "${CPU[kestrel]:-}")   p99 $(ratio "${P99[edgeproxy]:-}" "${P99[kestrel]:-}")   (what the gateway's features cost over a bare Kestrel+HttpClient proxy)"
  fi
  if [[ -n ${RPS[edge-tls]:-} && -n ${RPS[nginx-tls]:-} ]]; then
    echo "edgeproxy vs nginx over TLS (keep-alive): throughput $(ratio "${RPS[edge-tls]:-}" "${RPS[nginx-tls]:-}") (goal >= 0.8)   cpu/req $(ratio "${CPU[edge-tls]:-}" "${CPU[nginx-tls]:-}") (goal <= 1.25)   p99 $(ratio "${P99[edge-tls]:-}" "${P99[nginx-tls]:-}")$(noisy_pair nginx-tls edge-tls)"
  fi
  if [[ -n ${RPS[edge-hs]:-} && -n ${RPS[nginx-hs]:-} ]]; then
    echo "edgeproxy vs nginx, new TLS connection per request (handshakes/s): $(ratio "${RPS[edge-hs]:-}" "${RPS[nginx-hs]:-}")   cpu/handshake+request $(ratio "${CPU[edge-hs]:-}" "${CPU[nginx-hs]:-}")   p99 $(ratio "${P99[edge-hs]:-}" "${P99[nginx-hs]:-}")$(noisy_pair nginx-hs edge-hs)"
  fi
  if [[ -n ${STARTUP_MS[kestrel]:-} ]]; then
    echo "kestrel floor start -> first 200 on /health: ${STARTUP_MS[kestrel]} ms (poll resolution ~${STARTUP_RES_MS[kestrel]} ms)"
  fi
  if [[ -n ${STARTUP_MS[edgeproxy]:-} ]]; then
    echo "edgeproxy start -> first 200 on /health: ${STARTUP_MS[edgeproxy]} ms (poll resolution ~${STARTUP_RES_MS[edgeproxy]} ms, ${STARTUP_POLLS[edgeproxy]} polls via bash /dev/tcp); binary ${EDGE_BIN_MB} MB ($EDGEPROXY_BIN)"
    local bc
    bc=$(git -C "$(dirname "$EDGEPROXY_BIN")" rev-parse --short HEAD 2>/dev/null || true)
    [[ -n $bc ]] && echo "edgeproxy binary: $(date -u -r "$EDGEPROXY_BIN" +%Y-%m-%dT%H:%M:%SZ), in a work tree at commit $bc"
  elif [[ " ${TARGETS[*]} " == *" edgeproxy "* ]]; then
    echo "edgeproxy: not measured (binary: $EDGEPROXY_BIN)"
  fi
}

mkdir -p "$RESULTS_DIR"
OUT="$RESULTS_DIR/load-$TS.txt"
report | tee "$OUT"
echo "(written to $OUT)"
exit "$FAILED"
