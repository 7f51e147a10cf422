#!/usr/bin/env bash
# Runs a command with a private redis-server on a free port of 127.0.0.1, and stops
# the server afterwards whatever happens. The port is in SEATGATE_TEST_REDIS_PORT and
# SEATGATE_BENCH_REDIS_PORT. redis-server comes from scripts/setup.sh.
#   scripts/with-redis.sh build/c-tests/test_multiprocess
set -euo pipefail

if ! command -v redis-server >/dev/null 2>&1; then
  echo "with-redis: redis-server is not installed; run scripts/setup.sh (make deps)" >&2
  exit 1
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
dir=$(mktemp -d "${TMPDIR:-/tmp}/seatgate-redis-XXXXXX")
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" \
  --daemonize no --loglevel warning >"$dir/redis.log" 2>&1 &
pid=$!
cleanup() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT INT TERM

# Wait until it answers (at most 10 s).
for _ in $(seq 1 200); do
  if python3 - "$port" <<'PY' 2>/dev/null; then break; fi
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=0.2)
s.sendall(b"PING\r\n")
assert s.recv(16).startswith(b"+PONG")
PY
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "with-redis: redis-server exited:" >&2
    cat "$dir/redis.log" >&2
    exit 1
  fi
  sleep 0.05
done

export SEATGATE_TEST_REDIS_PORT="$port" SEATGATE_BENCH_REDIS_PORT="$port"
"$@"
