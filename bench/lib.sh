# bench/lib.sh — helpers the benchmark scripts share (sourced by load.sh and fleet.sh, not run).

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }

# stop_pids PID...: SIGTERM, up to 5 s for them to exit, then SIGKILL; reaps them. Empty PIDs are skipped.
stop_pids() {
  local pid _ alive
  for pid in "$@"; do [[ -n $pid ]] && kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 1 50); do
    alive=0
    for pid in "$@"; do [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && alive=1; done
    [[ $alive -eq 0 ]] && break
    sleep 0.1
  done
  for pid in "$@"; do [[ -n $pid ]] && kill -KILL "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}

# free_ports N: N distinct free loopback TCP ports, one per line (python3 binds port 0; without it,
# random ports that refuse a connection).
free_ports() {
  local n=$1
  if command -v python3 >/dev/null 2>&1; then
    python3 - "$n" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print("\n".join(str(s.getsockname()[1]) for s in socks))
for s in socks: s.close()
PY
  else
    local got=() p
    while [[ ${#got[@]} -lt $n ]]; do
      p=$(( 20000 + RANDOM % 40000 ))
      [[ " ${got[*]} " == *" $p "* ]] && continue
      if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then got+=("$p"); fi
    done
    printf '%s\n' "${got[@]}"
  fi
}
