#!/usr/bin/env bash
# bench/startup.sh — start to first successful /health, for one binary or several side by side.
#
#   bench/startup.sh [BIN ...]          (default: dist/edgeproxy)
#   ROUNDS=40 bench/startup.sh /tmp/base/edgeproxy dist/edgeproxy
#
# Each round starts every binary once, in a rotating order, and measures exec to the end of the first
# `200` answer on GET /health, polled as load.sh does (bash /dev/tcp and $EPOCHREALTIME, no fork per
# poll). Binaries are compared within one run only: on the shared 2-core VM the same binary moves by
# 20 ms between minutes (every phase of the start slows alike), more than most changes. Before each
# round the script waits until the box is idle (up to QUIET_WAIT seconds), so other jobs' builds and
# load runs fall between rounds rather than inside them. Per binary it prints the median, the
# quartiles and the range in ms, and the median CPU ms the process had used by then (all threads).
#
# Env options:
#   ROUNDS=20          starts per binary
#   QUIET_WAIT=60      seconds to wait for an idle box before a round (then it runs anyway, counted)
#   EXTRA_ENV="K=V ..." extra environment for every start (e.g. IO_THREADS=1)
#   POLL_MS=1          pause between polls that find no answer yet (read -t on a FIFO: no fork, no
#                      CPU). 0 polls flat out, which keeps one of the box's two cores busy with the
#                      poller itself while the gateway starts; the default costs at most 1 ms of
#                      reading error and leaves the second core to the process under test.
# Only loopback (127.0.0.1) is used; every start and wait is bounded; the process is killed after.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-20}
QUIET_WAIT=${QUIET_WAIT:-60}
POLL_MS=${POLL_MS:-1}
read -r -a EXTRA <<< "${EXTRA_ENV:-}"
BINS=("$@")
(( ${#BINS[@]} )) || BINS=(dist/edgeproxy)
for bin in "${BINS[@]}"; do
  [[ -x $bin ]] || { echo "not an executable: $bin (build with ./build.sh)" >&2; exit 1; }
done

TMP=$(mktemp -d)
PID=""
cleanup() { [[ -n $PID ]] && kill -KILL "$PID" 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT
mkfifo "$TMP/pause"; exec 4<>"$TMP/pause"   # read -t on it waits without a fork: the poll's pause
POLL_PAUSE=$(awk -v m="$POLL_MS" 'BEGIN{printf "%.3f", m/1000}')
# One model whose backend is never up: health checks fail quietly, /health does not depend on them.
echo '{"services":{"bench":{"models":{"m":{"backends":[{"id":"u","name":"u","url":"http://127.0.0.1:18080"}]}}}}}' > "$TMP/backends.json"

# Box-wide idle share over 0.3 s >= 90%, waited for at most QUIET_WAIT seconds.
idle_sample() { local v; read -r -a v < /proc/stat; TOTAL=0; for x in "${v[@]:1:8}"; do TOTAL=$((TOTAL + x)); done; IDLE=$((v[4] + v[5])); }
BUSY_ROUNDS=0
wait_quiet() {
  local deadline=$((SECONDS + QUIET_WAIT)) t1 i1
  while (( SECONDS < deadline )); do
    idle_sample; t1=$TOTAL; i1=$IDLE; sleep 0.3; idle_sample
    (( (IDLE - i1) * 100 >= 90 * (TOTAL - t1) )) && return 0
  done
  BUSY_ROUNDS=$((BUSY_ROUNDS + 1))
}

# One start: sets WALL_MS (exec -> end of the first 200) and CPU_MS (the process's threads' run time
# then, from /proc/PID/task/*/schedstat).
start_once() {
  local bin=$1 port=$2 t0 t1 deadline line cpu=0 run _
  t0=$EPOCHREALTIME
  env "${EXTRA[@]}" HOST=127.0.0.1 PORT="$port" BACKENDS_CONFIG_PATH="$TMP/backends.json" BACKEND_API_KEY='' \
    LOG_LEVEL=WARNING HEALTH_CHECK_INTERVAL=30 "$bin" >"$TMP/out.log" 2>&1 &
  PID=$!
  deadline=$((SECONDS + 10))
  while :; do
    if (( SECONDS > deadline )) || ! kill -0 "$PID" 2>/dev/null; then
      echo "$bin did not answer 200 on /health within 10 s (or exited); log tail:" >&2
      tail -n 20 "$TMP/out.log" >&2
      exit 1
    fi
    if { exec 3<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null; then
      printf 'GET /health HTTP/1.0\r\n\r\n' >&3
      line=""; read -r -t 5 line <&3 || true
      exec 3<&-
      [[ $line == *" 200 "* ]] && break
    fi
    (( POLL_MS > 0 )) && { read -r -t "$POLL_PAUSE" -u 4 _ || true; }
  done
  t1=$EPOCHREALTIME
  for f in /proc/"$PID"/task/*/schedstat; do read -r run _ < "$f" && cpu=$((cpu + run)); done
  kill -TERM "$PID" 2>/dev/null; wait "$PID" 2>/dev/null || true; PID=""
  WALL_MS=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", (b-a)*1000}')
  CPU_MS=$(awk -v c="$cpu" 'BEGIN{printf "%.1f", c/1e6}')
}

declare -A WALL CPU
n=${#BINS[@]}
for r in $(seq 1 "$ROUNDS"); do
  wait_quiet
  for k in $(seq 0 $((n - 1))); do
    j=$(( (k + r) % n ))
    start_once "${BINS[$j]}" $((19400 + (r * n + k) % 500))
    WALL[$j]+="$WALL_MS "; CPU[$j]+="$CPU_MS "
  done
done

# median, and median p25-p75 (min-max), of a space-separated list of numbers
median() { tr ' ' '\n' <<< "$1" | grep . | sort -n | awk '{a[NR]=$1} END{printf "%.1f", (NR%2?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2)}'; }
summary() { tr ' ' '\n' <<< "$1" | grep . | sort -n | awk '{a[NR]=$1} END{printf "%6.1f  %5.1f-%5.1f  (%5.1f-%5.1f)", (NR%2?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2), a[int((NR-1)/4)+1], a[int(3*(NR-1)/4)+1], a[1], a[NR]}'; }
echo "start to first 200 on /health, ms; $ROUNDS rounds, $BUSY_ROUNDS started on a busy box"
echo "median  p25-p75      (min-max)       cpu_ms  binary"
for j in $(seq 0 $((n - 1))); do
  echo "$(summary "${WALL[$j]}")  $(median "${CPU[$j]}")  ${BINS[$j]}"
done
