#!/usr/bin/env bash
# Runs every EdgeProxy test:
#   1. publishes the Native AOT binary (./build.sh -> dist/edgeproxy),
#   2. runs the xunit suites (unit + functional) against that binary and real backend processes,
#   3. runs the Node end-to-end tests (OpenAI SDK through the gateway, dashboard in headless Chromium),
#   4. checks deploy/edgeproxy.service with systemd-analyze verify,
#   5. with ARM64_CROSS_BUILD=1 (CI sets it), cross-builds the linux-arm64 binary and checks it.
# Installs what it needs when missing (Debian: chromium; npm packages from tests/e2e/package-lock.json).
# Prints a final "N passed, N failed" line and exits non-zero when any test failed.
set -uo pipefail
cd "$(dirname "$0")"
ROOT=$PWD
LOG_DIR="$ROOT/artifacts/test-logs"
mkdir -p "$LOG_DIR"
rm -f "$LOG_DIR"/xunit*.log "$LOG_DIR"/xunit*.log.retry "$LOG_DIR"/e2e.log

need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "== installing ${need_apt[*]} (apt)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null || { echo "apt-get install failed"; exit 1; }
  else
    echo "missing: ${need_apt[*]} — install them (sudo apt-get install ${need_apt[*]}) and rerun"; exit 1
  fi
fi
command -v node >/dev/null 2>&1 || { echo "node (>= 20) is required for the end-to-end tests"; exit 1; }

echo "== build: Native AOT binary"
./build.sh || { echo "0 passed, 1 failed"; exit 1; }
echo "== build: solution"
dotnet build EdgeProxy.sln -c Release -nologo -v q || { echo "0 passed, 1 failed"; exit 1; }

export EDGEPROXY_BIN="$ROOT/dist/edgeproxy"

# A test that failed is run once more, alone; it counts as failed only when it fails again, and the
# summary names every test that needed the second run (FLAKY), so an intermittent failure is seen,
# not hidden. Its log is <log>.retry. Arguments: the first run's log, then environment assignments.
flaky=()
retry_failed() {
  local log=$1 names filter; shift
  names=$(grep -E '^ +Failed EdgeProxy\.' "$log" | sed -E 's/^ +Failed (EdgeProxy\.[^( ]+).*/\1/' | sort -u)
  [ -n "$names" ] || return 1
  filter=$(sed 's/^/FullyQualifiedName=/' <<<"$names" | paste -sd'|')
  echo "== xunit: running the failed test(s) once more: $(tr '\n' ' ' <<<"$names")"
  env "$@" dotnet test EdgeProxy.sln -c Release --no-build -nologo --logger "console;verbosity=normal" \
    --filter "$filter" 2>&1 | tee "$log.retry"
  [ "${PIPESTATUS[0]}" -eq 0 ] || return 1
  flaky+=($names)
}

echo "== xunit (gateway under test: $EDGEPROXY_BIN)"
dotnet test EdgeProxy.sln -c Release --no-build -nologo --logger "console;verbosity=normal" \
  --results-directory "$LOG_DIR" --logger "trx;LogFileName=xunit.trx" 2>&1 | tee "$LOG_DIR/xunit.log"
xunit_rc=${PIPESTATUS[0]}
if [ "$xunit_rc" -ne 0 ] && retry_failed "$LOG_DIR/xunit.log"; then xunit_rc=0; fi

# The gateway runs its own epoll transport by default (TRANSPORT=epoll); the classes that exercise
# the transport (fast path, streaming, disconnects, framing, stale upstream connections) run once
# more on Kestrel's socket transport, which TRANSPORT=sockets keeps available.
# The behaviour classes (trait Matrix=rerun) once more on each other path and transport, so every
# behaviour runs with the fast path on and off, on the epoll and the socket transport. (Tests with
# the trait Matrix=variants run all four themselves in the run above.)
for combo in "epoll off" "sockets on" "sockets off"; do
  set -- $combo
  echo "== xunit again: TRANSPORT=$1 HTTP1_FAST_PATH=$2 (Matrix=rerun)"
  EDGEPROXY_TEST_TRANSPORT=$1 EDGEPROXY_TEST_FAST_PATH=$2 dotnet test EdgeProxy.sln -c Release --no-build -nologo --logger "console;verbosity=normal" \
    --filter "Matrix=rerun" --results-directory "$LOG_DIR" --logger "trx;LogFileName=xunit-$1-$2.trx" 2>&1 | tee "$LOG_DIR/xunit-$1-$2.log"
  if [ "${PIPESTATUS[0]}" -ne 0 ] && ! retry_failed "$LOG_DIR/xunit-$1-$2.log" EDGEPROXY_TEST_TRANSPORT=$1 EDGEPROXY_TEST_FAST_PATH=$2; then
    xunit_rc=1
  fi
done

echo "== e2e (node --test)"
(
  cd tests/e2e || exit 1
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error || exit 1
  node --test --test-reporter=spec ./*.test.mjs
) 2>&1 | tee "$LOG_DIR/e2e.log"
e2e_rc=${PIPESTATUS[0]}

# The service unit. verify also checks that ExecStart exists, so it checks a copy pointing at the
# binary just built; it exits 0 on unknown keys and unparsable values, so any message fails too.
echo "== systemd unit (systemd-analyze verify deploy/edgeproxy.service)"
unit_dir=$(mktemp -d)
sed "s#/usr/local/bin/edgeproxy#$ROOT/dist/edgeproxy#" deploy/edgeproxy.service >"$unit_dir/edgeproxy.service"
unit_out=$(systemd-analyze verify "$unit_dir/edgeproxy.service" 2>&1)
unit_rc=$?
rm -rf "$unit_dir"
if [ "$unit_rc" -ne 0 ] || [ -n "$unit_out" ]; then
  echo "$unit_out"
  echo "systemd unit: FAILED"
  unit_rc=1
else
  echo "systemd unit: OK"
fi


# linux-arm64 (edge boxes): .NET does not run under qemu-user on the CI box, so the bar there is a
# cross-build with no warnings that yields a 64-bit AArch64 ELF, plus the epoll_event layout tests
# above (both layouts are checked on any box). Opt-in, as it adds a second AOT compile (~4 min on
# two cores). Debian 12's versioned LLVM tools, so that installing them leaves the x64 build on the
# compiler it picks by default (clang when `clang` is on PATH, else gcc); .ci/run installs
# clang-14 lld-14 llvm-14 libc6-dev-arm64-cross libgcc-12-dev-arm64-cross.
arm64_build() {
  local log="$LOG_DIR/build-arm64.log" header
  if ! RID=linux-arm64 OUT=dist-arm64 ./build.sh -p:CppCompilerAndLinker=clang-14 -p:LinkerFlavor=lld -p:ObjCopyName=llvm-objcopy-14 >"$log" 2>&1; then
    tail -n 20 "$log"; echo "arm64: the cross-build failed (log: $log)"; return 1
  fi
  # build.sh turns compiler and trimming warnings into errors; this also catches the native linker's.
  if grep -i 'warning' "$log"; then
    echo "arm64: the cross-build printed warnings (log: $log)"; return 1
  fi
  header=$(readelf -h dist-arm64/edgeproxy) || return 1
  if ! grep -Eq 'Class: +ELF64' <<<"$header" || ! grep -Eq 'Machine: +AArch64' <<<"$header"; then
    echo "$header"; echo "arm64: dist-arm64/edgeproxy is not a 64-bit AArch64 ELF"; return 1
  fi
  echo "arm64: passed: ELF64 AArch64, $(tail -n 1 "$log")"
}
a_pass=0 a_fail=0
if [ "${ARM64_CROSS_BUILD:-0}" = 1 ]; then
  echo "== build: linux-arm64 (cross, Native AOT)"
  if arm64_build; then a_pass=1; else a_fail=1; fi
fi

# One summary line over every runner and check.
# A run whose failures all passed on their second run counts those tests as passed.
x_pass=0 x_fail=0
for log in "$LOG_DIR"/xunit.log "$LOG_DIR"/xunit-*-*.log; do
  [ -f "$log" ] || continue
  p=$(grep -Eo 'Passed: +[0-9]+' "$log" | awk '{s+=$2} END {print s+0}')
  f=$(grep -Eo 'Failed: +[0-9]+' "$log" | awk '{s+=$2} END {print s+0}')
  if [ -f "$log.retry" ]; then
    rp=$(grep -Eo 'Passed: +[0-9]+' "$log.retry" | awk '{s+=$2} END {print s+0}')
    rf=$(grep -Eo 'Failed: +[0-9]+' "$log.retry" | awk '{s+=$2} END {print s+0}')
    [ "$rf" -eq 0 ] && { p=$((p + f)); f=0; }
  fi
  x_pass=$((x_pass + p)) x_fail=$((x_fail + f))
done
[ ${#flaky[@]} -gt 0 ] && echo "FLAKY (failed once, passed when run again): ${flaky[*]}"
n_pass=$(grep -Eo '^ℹ pass [0-9]+' "$LOG_DIR/e2e.log" | awk '{s+=$3} END {print s+0}')
n_fail=$(grep -Eo '^ℹ fail [0-9]+' "$LOG_DIR/e2e.log" | awk '{s+=$3} END {print s+0}')
[ "$xunit_rc" -ne 0 ] && [ "$x_fail" -eq 0 ] && x_fail=1
[ "$e2e_rc" -ne 0 ] && [ "$n_fail" -eq 0 ] && n_fail=1
u_pass=$((1 - unit_rc)) u_fail=$unit_rc
echo "xunit: $x_pass passed, $x_fail failed; e2e: $n_pass passed, $n_fail failed; systemd unit: $u_pass passed, $u_fail failed; arm64 build: $a_pass passed, $a_fail failed"
echo "$((x_pass + n_pass + u_pass + a_pass)) passed, $((x_fail + n_fail + u_fail + a_fail)) failed"
[ "$xunit_rc" -eq 0 ] && [ "$e2e_rc" -eq 0 ] && [ "$unit_rc" -eq 0 ] && [ "$a_fail" -eq 0 ]
