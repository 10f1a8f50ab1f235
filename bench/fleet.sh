#!/usr/bin/env bash
# shellcheck disable=SC2317  # functions are invoked indirectly (trap, "start_$kind")
# bench/fleet.sh — fleet benchmark (issue 16, part 6): where a gateway sends LLM requests.
#
# Starts BACKENDS simulated vLLM-like inference backends (bench/Fleet, `fleet backend`: SLOTS slots,
# FIFO queue, prefill cost per uncached prompt token with an LRU prefix cache, decode slowed by batch
# occupancy, OpenAI SSE, vLLM-style /metrics) on free loopback ports, then for each load mode in MODES
# and each policy in POLICIES starts one proxy in front of them, runs the closed-loop multi-turn chat
# load (`fleet load`: SESSIONS sessions, DURATION s) through it, stops it, and prints one markdown
# table per mode. Backends' caches and counters are reset before each policy.
#
# Policies (same fleet, same load):
#   edge-default    EdgeProxy, backends.json with no balancing fields (the shipped default)
#   edge-lor        EdgeProxy, "balance": "least_outstanding" (affinity stays the default)
#   edge-lor-none   EdgeProxy, "affinity": "none", "balance": "least_outstanding" (pure least outstanding)
#   edge-ip         EdgeProxy, "affinity": "client_ip" (default balance_factor)
#   edge-prefix     EdgeProxy, "affinity": "prefix"
#   edge-custom     EdgeProxy with the model fields in EDGE_CUSTOM_FIELDS (e.g. '"balance_factor":1.1,')
#                   and, for every EdgeProxy policy, the backend fields in EDGE_BACKEND_FIELDS
#                   (e.g. '"max_concurrency":8,' to queue in the gateway instead of in the engines)
#                   (an EdgeProxy policy whose config `edgeproxy --check-config` rejects is reported n/a)
#   nginx-rr        nginx round robin          nginx-lc     nginx least_conn
#   nginx-hash      nginx hash $remote_addr consistent
#   haproxy-lc      HAProxy balance leastconn
#   haproxy-source  HAProxy balance source, hash-type consistent, hash-balance-factor 125
#
# Load modes: many = each session from its own source address (127.0.1.N); one = all from 127.0.0.1
# (one app server in front of the gateway).
#
# Env options:
#   QUICK=1            CI smoke: DURATION=10, SESSIONS=16
#   DURATION=30        seconds each policy's sessions issue turns (in-flight turns then finish)
#   SESSIONS=32        chat sessions (closed loop, think time between turns)
#   BACKENDS=4         simulated backends       SLOTS=8   concurrent sequences per backend
#   MODES=many,one     load modes, in order
#   POLICIES=edge-default,edge-lor,edge-lor-none,edge-ip,edge-prefix,nginx-rr,nginx-lc,nginx-hash,haproxy-lc,haproxy-source
#   KILL=0             1: SIGKILL the last backend KILL_AT s into every policy's run (restarted after it);
#                      the table then shows what clients saw (5xx, connect errors, streams cut mid-answer)
#   KILL_AT=DURATION/2
#   TURNS=0            1: also write every turn (session, turn, backend, TTFT, prompt and cached tokens)
#                      to RESULTS_DIR/fleet-<timestamp>-turns-<mode>-<policy>.csv, to look into a tail
#   SEED=1             workload seed (the same prompts, lengths and think times for every policy)
#   BACKEND_ARGS=""    extra `fleet backend` knobs, e.g. "--cache-blocks 4096 --decode-ms 8"
#   LOAD_ARGS=""       extra `fleet load` knobs, e.g. "--think-max 3 --max-turns 12"
#   IO_THREADS=1       EdgeProxy event loops (nginx runs worker_processes 1, HAProxy nbthread 1)
#   EDGEPROXY_BIN=<repo>/dist/edgeproxy
#   RESULTS_DIR=<repo>/bench/results   (fleet-<timestamp>.md and .jsonl)
# Only 127.0.0.0/8 is used; every run is bounded (DURATION + the load's 60 s grace for turns in flight).
set -euo pipefail
if (( BASH_VERSINFO[0] < 5 )); then echo "error: bash >= 5 required" >&2; exit 2; fi

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
. "$SCRIPT_DIR/lib.sh"
REPO=$(cd -- "$SCRIPT_DIR/.." && pwd)

if [[ ${QUICK:-0} == 1 ]]; then
  DURATION=${DURATION:-10}; SESSIONS=${SESSIONS:-16}
fi
DURATION=${DURATION:-30}
SESSIONS=${SESSIONS:-32}
BACKENDS=${BACKENDS:-4}
SLOTS=${SLOTS:-8}
MODES=${MODES:-many,one}
POLICIES=${POLICIES:-edge-default,edge-lor,edge-lor-none,edge-ip,edge-prefix,nginx-rr,nginx-lc,nginx-hash,haproxy-lc,haproxy-source}
KILL=${KILL:-0}
TURNS=${TURNS:-0}
KILL_AT=${KILL_AT:-$(( DURATION / 2 ))}
SEED=${SEED:-1}
BACKEND_ARGS=${BACKEND_ARGS:-}
LOAD_ARGS=${LOAD_ARGS:-}
IO_THREADS=${IO_THREADS:-1}
EDGEPROXY_BIN=${EDGEPROXY_BIN:-$REPO/dist/edgeproxy}
RESULTS_DIR=${RESULTS_DIR:-$REPO/bench/results}
FLEET_OUT=$SCRIPT_DIR/Fleet/bin/fleet
FLEET=$FLEET_OUT/fleet

for v in DURATION SESSIONS BACKENDS SLOTS KILL_AT SEED IO_THREADS; do
  [[ ${!v} =~ ^[0-9]+$ ]] || { echo "error: $v must be a non-negative integer (got '${!v}')" >&2; exit 2; }
done
(( BACKENDS >= 2 && SESSIONS >= 1 && DURATION >= 1 )) || { echo "error: need BACKENDS >= 2, SESSIONS >= 1, DURATION >= 1" >&2; exit 2; }
if [[ $# -gt 0 ]]; then
  case $1 in
    -h|--help) sed -n '3,45p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "error: unknown argument '$1' (configuration is via env, see --help)" >&2; exit 2 ;;
  esac
fi
command -v curl >/dev/null || { echo "error: curl not found" >&2; exit 2; }
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)

# The simulation sleeps; keep the .NET processes from spinning between their many short waits.
export DOTNET_ThreadPool_UnfairSemaphoreSpinLimit=0 DOTNET_TieredPGO=0 DOTNET_gcServer=0 DOTNET_CLI_TELEMETRY_OPTOUT=1


# ---------------------------------------------------------------- build bench/Fleet when stale
if [[ ! -x $FLEET ]] || [[ -n $(find "$SCRIPT_DIR/Fleet" -maxdepth 1 \( -name '*.cs' -o -name '*.csproj' \) -newer "$FLEET" -print -quit) ]]; then
  log "building bench/Fleet -> $FLEET_OUT"
  dotnet build "$SCRIPT_DIR/Fleet/Fleet.csproj" -c Release -o "$FLEET_OUT" -nologo -v quiet >&2
fi

TS=$(date +%Y%m%d-%H%M%S)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/edgeproxy-fleet.XXXXXX")
chmod 755 "$TMP"   # nginx workers run as 'nobody' when started by root
STARTED_PIDS=()
PROXY_PID=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_pids "$PROXY_PID" "${BACKEND_PIDS[@]:-}" "${STARTED_PIDS[@]:-}"
  rm -rf "$TMP"
  exit "$rc"
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT
trap 'exit 143' TERM

mapfile -t PORTS < <(free_ports $(( BACKENDS + 1 )))
PROXY_PORT=${PORTS[$BACKENDS]}

wait_200() {  # url timeout_s pid
  local url=$1 deadline=$(( $(date +%s) + $2 )) pid=$3
  while (( $(date +%s) < deadline )); do
    kill -0 "$pid" 2>/dev/null || return 1
    [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url" || true) == 200 ]] && return 0
    sleep 0.1
  done
  return 1
}

# ---------------------------------------------------------------- the fleet
BACKEND_PIDS=() BACKEND_IDS=() BACKEND_PORTS=()
start_backend() {  # index
  local i=$1 id="b$(( $1 + 1 ))" port=${PORTS[$1]}
  # shellcheck disable=SC2086  # BACKEND_ARGS is a list of knobs
  "$FLEET" backend --port "$port" --id "$id" --slots "$SLOTS" $BACKEND_ARGS >"$TMP/$id.log" 2>&1 &
  BACKEND_PIDS[i]=$!; BACKEND_IDS[i]=$id; BACKEND_PORTS[i]=$port
  wait_200 "http://127.0.0.1:$port/health" 20 "${BACKEND_PIDS[i]}" || { log "backend $id did not start:"; tail -n 20 "$TMP/$id.log" >&2; exit 1; }
}
for ((i = 0; i < BACKENDS; i++)); do start_backend "$i"; done
BACKEND_LIST=""
for ((i = 0; i < BACKENDS; i++)); do BACKEND_LIST+="${BACKEND_LIST:+,}${BACKEND_IDS[i]}=http://127.0.0.1:${BACKEND_PORTS[i]}"; done
log "fleet: $BACKENDS backends x $SLOTS slots on ports ${BACKEND_PORTS[*]}; proxy port $PROXY_PORT; tmp $TMP"

# ---------------------------------------------------------------- proxies
EDGE_FIELDS() {  # policy -> model fields for backends.json
  case $1 in
    edge-default) echo '' ;;
    edge-lor) echo '"balance":"least_outstanding",' ;;
    edge-lor-none) echo '"affinity":"none","balance":"least_outstanding",' ;;
    edge-ip) echo '"affinity":"client_ip",' ;;
    edge-prefix) echo '"affinity":"prefix",' ;;
    edge-custom) echo "${EDGE_CUSTOM_FIELDS:?edge-custom needs EDGE_CUSTOM_FIELDS, e.g. '\"balance_factor\":1.1,'}" ;;
  esac
}
NA_REASON=""
start_edge() {  # policy
  local dir="$TMP/$1" b="" i
  mkdir -p "$dir"
  [[ -x $EDGEPROXY_BIN ]] || { NA_REASON="no binary at $EDGEPROXY_BIN (./build.sh)"; return 1; }
  for ((i = 0; i < BACKENDS; i++)); do
    b+="${b:+,}{${EDGE_BACKEND_FIELDS:-}\"id\":\"${BACKEND_IDS[i]}\",\"name\":\"${BACKEND_IDS[i]}\",\"url\":\"http://127.0.0.1:${BACKEND_PORTS[i]}\"}"
  done
  printf '{"services":{"fleet":{"models":{"m":{%s"backends":[%s]}}}}}\n' "$(EDGE_FIELDS "$1")" "$b" >"$dir/backends.json"
  if ! (cd "$dir" && BACKENDS_CONFIG_PATH="$dir/backends.json" BACKEND_API_KEY='' "$EDGEPROXY_BIN" --check-config >"$dir/check.log" 2>&1); then
    NA_REASON="config rejected: $(grep -m1 -E '^\s+- ' "$dir/check.log" | sed 's/^ *- //; s/|/\\|/g' || head -n1 "$dir/check.log")"
    return 1
  fi
  (cd "$dir" && PORT=$PROXY_PORT HOST=127.0.0.1 BACKENDS_CONFIG_PATH="$dir/backends.json" BACKEND_API_KEY='' \
    LOG_LEVEL=WARNING HEALTH_CHECK_INTERVAL=2 IO_THREADS=$IO_THREADS exec "$EDGEPROXY_BIN") >"$dir/stdout.log" 2>&1 &
  PROXY_PID=$!; PROXY_LOG="$dir/stdout.log"
}

nginx_conf() {  # policy dir
  local method="" servers="" i
  case $1 in
    nginx-rr) method="" ;;
    nginx-lc) method="least_conn;" ;;
    nginx-hash) method='hash $remote_addr consistent;' ;;
  esac
  for ((i = 0; i < BACKENDS; i++)); do servers+="    server 127.0.0.1:${BACKEND_PORTS[i]} max_fails=1 fail_timeout=10s;"$'\n'; done
  cat <<EOF
daemon off;
master_process on;
worker_processes 1;
pid $2/nginx.pid;
error_log $2/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_timeout 65;
  keepalive_requests 1000000;
  client_body_temp_path $2/client_body;
  proxy_temp_path $2/proxy;
  fastcgi_temp_path $2/fastcgi;
  uwsgi_temp_path $2/uwsgi;
  scgi_temp_path $2/scgi;
  upstream fleet {
    $method
$servers    keepalive 64;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:$PROXY_PORT;
    client_max_body_size 64m;
    location /fleet/m/ {
      proxy_pass http://fleet/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_connect_timeout 2s;
      proxy_read_timeout 120s;
      proxy_next_upstream error timeout;
    }
    location / { return 404; }
  }
}
EOF
}
start_nginx() {
  local dir="$TMP/$1"
  mkdir -p "$dir"; chmod 755 "$dir"
  [[ -x $NGINX ]] || { NA_REASON="nginx not installed (apt-get install -y nginx)"; return 1; }
  nginx_conf "$1" "$dir" >"$dir/nginx.conf"
  "$NGINX" -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" >"$dir/stdout.log" 2>&1 &
  PROXY_PID=$!; PROXY_LOG="$dir/error.log"
}

haproxy_cfg() {  # policy dir
  local balance servers="" i
  case $1 in
    haproxy-lc) balance="balance leastconn" ;;
    haproxy-source) balance=$'balance source\n  hash-type consistent\n  hash-balance-factor 125' ;;
  esac
  for ((i = 0; i < BACKENDS; i++)); do servers+="  server ${BACKEND_IDS[i]} 127.0.0.1:${BACKEND_PORTS[i]} check inter 1s fall 2 rise 2"$'\n'; done
  cat <<EOF
global
  nbthread 1
  maxconn 4096
  pidfile $2/haproxy.pid
defaults
  mode http
  option http-keep-alive
  option http-no-delay          # forward each SSE event at once (no merging of small writes)
  http-reuse always
  timeout connect 2s
  timeout client 120s
  timeout server 120s
  timeout http-keep-alive 65s
  retries 3
  option redispatch 1
  retry-on conn-failure empty-response
frontend fe
  bind 127.0.0.1:$PROXY_PORT
  http-request return status 404 content-type text/plain string "not found" if !{ path_beg /fleet/m/ }
  default_backend be
backend be
  $balance
  option httpchk GET /health
  http-request replace-path ^/fleet/m(/.*) \1
$servers
EOF
}
start_haproxy() {
  local dir="$TMP/$1"
  mkdir -p "$dir"
  [[ -x $HAPROXY ]] || { NA_REASON="haproxy not installed (apt-get install -y haproxy)"; return 1; }
  haproxy_cfg "$1" "$dir" >"$dir/haproxy.cfg"
  "$HAPROXY" -db -f "$dir/haproxy.cfg" >"$dir/stdout.log" 2>&1 &
  PROXY_PID=$!; PROXY_LOG="$dir/stdout.log"
}

stop_proxy() {
  [[ -n $PROXY_PID ]] || return 0
  kill -TERM "$PROXY_PID" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$PROXY_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$PROXY_PID" 2>/dev/null || true
  wait "$PROXY_PID" 2>/dev/null || true
  PROXY_PID=""
}

# ---------------------------------------------------------------- runs
COMMIT=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
mkdir -p "$RESULTS_DIR"
OUT_MD="$RESULTS_DIR/fleet-$TS.md" OUT_JSON="$RESULTS_DIR/fleet-$TS.jsonl"
IFS=, read -r -a MODE_LIST <<<"$MODES"
IFS=, read -r -a POLICY_LIST <<<"$POLICIES"
for p in "${POLICY_LIST[@]}"; do
  case $p in edge-default|edge-lor|edge-lor-none|edge-ip|edge-prefix|edge-custom|nginx-rr|nginx-lc|nginx-hash|haproxy-lc|haproxy-source) ;;
    *) echo "error: unknown policy '$p'" >&2; exit 2 ;; esac
done
for m in "${MODE_LIST[@]}"; do [[ $m == many || $m == one ]] || { echo "error: unknown mode '$m' (many, one)" >&2; exit 2; }; done
VICTIM=$(( BACKENDS - 1 ))
FAILED=0

run_policy() {  # mode policy rows_file
  local mode=$1 p=$2 rows=$3 kind=${2%%-*} label kill_args=()
  NA_REASON="" PROXY_PID="" PROXY_LOG=""
  label=$p
  log "== $mode / $p: starting"
  if ! "start_$kind" "$p"; then
    log "== $mode / $p: n/a ($NA_REASON)"
    printf '| %s | n/a | | | | | | | | | %s |\n' "$label" "$NA_REASON" >>"$rows"
    stop_proxy; return 0
  fi
  if ! wait_200 "http://127.0.0.1:$PROXY_PORT/fleet/m/v1/models" 20 "$PROXY_PID"; then
    log "== $mode / $p: proxy did not route GET /fleet/m/v1/models; log tail:"; tail -n 20 "$PROXY_LOG" >&2 || true
    printf '| %s | n/a | | | | | | | | | proxy did not start |\n' "$label" >>"$rows"
    stop_proxy; FAILED=1; return 0
  fi
  if [[ $KILL == 1 ]]; then kill_args=(--kill-pid "${BACKEND_PIDS[VICTIM]}" --kill-at "$KILL_AT"); fi
  local turns_args=()
  if [[ $TURNS == 1 ]]; then turns_args=(--turns "$RESULTS_DIR/fleet-$TS-turns-$mode-$p.csv"); fi
  # shellcheck disable=SC2086  # LOAD_ARGS is a list of knobs
  if ! "$FLEET" load --url "http://127.0.0.1:$PROXY_PORT/fleet/m/v1/chat/completions" --backends "$BACKEND_LIST" \
      --sessions "$SESSIONS" --ips "$mode" --duration "$DURATION" --seed "$SEED" --label "$label" \
      --row "$rows" --json "$OUT_JSON.tmp" "${turns_args[@]}" "${kill_args[@]}" $LOAD_ARGS >"$TMP/load.out" 2>"$TMP/load.err"; then
    log "== $mode / $p: load generator failed:"; cat "$TMP/load.err" >&2
    printf '| %s | n/a | | | | | | | | | load generator failed |\n' "$label" >>"$rows"; FAILED=1
  else
    log "   $(cat "$TMP/load.out")"
    if [[ -s $TMP/load.err ]]; then sed 's/^/   /' "$TMP/load.err" >&2; fi
    sed "s/^{/{\"mode\":\"$mode\",\"policy\":\"$p\",/" "$OUT_JSON.tmp" >>"$OUT_JSON"; rm -f "$OUT_JSON.tmp"
  fi
  if [[ $kind == edge ]]; then  # the caps EdgeProxy learnt from the engines' metrics (none: it never saw them queue)
    curl -s "http://127.0.0.1:$PROXY_PORT/api/health/status" >"$TMP/$p/status-$mode.json" 2>/dev/null || true
    log "   learnt caps: $(grep -o '"id":"[^"]*"\|"learned_concurrency":[0-9]*' "$TMP/$p/status-$mode.json" | tr '\n' ' ')"
  fi
  stop_proxy
  if [[ $KILL == 1 ]] && ! kill -0 "${BACKEND_PIDS[VICTIM]}" 2>/dev/null; then
    wait "${BACKEND_PIDS[VICTIM]}" 2>/dev/null || true
    start_backend "$VICTIM"
  fi
}

header() {  # mode
  local kill_note=""
  [[ $KILL != 1 ]] || kill_note=", backend ${BACKEND_IDS[VICTIM]} SIGKILLed ${KILL_AT} s into each run"
  echo "### Fleet benchmark, load from $( [[ $1 == many ]] && echo "$SESSIONS client IPs (127.0.1.N)" || echo "one client IP (127.0.0.1)")$kill_note"
  echo
  echo "$BACKENDS backends x $SLOTS slots; $SESSIONS closed-loop chat sessions for ${DURATION} s per policy; $(date -u +%Y-%m-%dT%H:%M:%SZ); bench at $COMMIT; $(nproc) cpus (shared with the proxy, backends and load generator)."
  echo "TTFT = request sent to first SSE data event; e2e = to [DONE]; tokens/s = completion tokens of successful turns / wall time; cache hit = prompt tokens served from the backends' prefix caches; share = % of successful turns per backend (${BACKEND_IDS[*]}); peak queue = largest FIFO wait queue seen on one backend; errors: HTTP status, conn = no response, cut = stream ended without [DONE]."
  echo
  echo "| policy | turns | TTFT p50 ms | p90 ms | p99 ms | e2e p99 ms | tokens/s | cache hit % | per-backend share % | peak queue | errors |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
}

targets() {  # mode -> issue 16's targets: edge-default against nginx-lc in this run
  [[ -s $OUT_JSON ]] || return 0
  python3 - "$OUT_JSON" "$1" <<'PY' || true
import json, sys
runs = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["mode"] == sys.argv[2]:
        runs[r["policy"]] = r
e, n = runs.get("edge-default"), runs.get("nginx-lc")
if e and n and n["ttft_p50_ms"] > 0 and n["ttft_p99_ms"] > 0 and n["tokens_per_s"] > 0:
    p50 = e["ttft_p50_ms"] / n["ttft_p50_ms"]; p99 = e["ttft_p99_ms"] / n["ttft_p99_ms"]; tps = e["tokens_per_s"] / n["tokens_per_s"]
    ok = lambda c: "met" if c else "NOT met"
    print(f"edge-default ÷ nginx-lc: TTFT p50 {p50:.2f}× (target ≤ 0.7: {ok(p50 <= 0.7)}), "
          f"p99 {p99:.2f}× (target ≤ 0.65: {ok(p99 <= 0.65)}), tokens/s {tps:.2f}× (target ≥ 1.0: {ok(tps >= 1.0)}); "
          f"5xx: edge-default {e['status_5xx']}, nginx-lc {n['status_5xx']}")
    print()
PY
}

{
  echo "# EdgeProxy fleet benchmark $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo
  echo "host: $(nproc) cpus, $(uname -r); nginx $("$NGINX" -v 2>&1 | sed 's/^nginx version: //' || true); haproxy $("$HAPROXY" -v 2>/dev/null | awk 'NR==1 {print $3}' || true); edgeproxy $EDGEPROXY_BIN ($( [[ -x $EDGEPROXY_BIN ]] && date -u -r "$EDGEPROXY_BIN" +%Y-%m-%dT%H:%M:%SZ || echo missing))"
  echo "knobs: BACKENDS=$BACKENDS SLOTS=$SLOTS SESSIONS=$SESSIONS DURATION=$DURATION SEED=$SEED KILL=$KILL BACKEND_ARGS='$BACKEND_ARGS' LOAD_ARGS='$LOAD_ARGS' IO_THREADS=$IO_THREADS EDGE_BACKEND_FIELDS='${EDGE_BACKEND_FIELDS:-}'"
  echo
} >"$OUT_MD"

for mode in "${MODE_LIST[@]}"; do
  ROWS="$TMP/rows-$mode.md"; : >"$ROWS"
  for p in "${POLICY_LIST[@]}"; do run_policy "$mode" "$p" "$ROWS"; done
  { header "$mode"; cat "$ROWS"; echo; targets "$mode"; } >>"$OUT_MD"
done

cat "$OUT_MD"
echo "(written to $OUT_MD and $OUT_JSON)"
exit "$FAILED"
