#!/usr/bin/env bash
# Installs what `make demo`, `make test`, `make bench` and `cargo test` need beyond
# the Rust toolchain, from Debian's packages, only when it is missing. Safe to run again.
#   scripts/setup.sh          what the build, the demo and the tests need
#   scripts/setup.sh bench    that, plus gnuplot for the bench's plot (make bench only)
#   scripts/setup.sh asterisk that, plus what Asterisk's ./configure needs, for
#                             examples/asterisk/prepare-asterisk.sh (not make test)
set -euo pipefail

mode=${1:-}
case "$mode" in
  ""|bench|asterisk) ;;
  *) echo "setup: unknown mode '$mode' (expected nothing, 'bench' or 'asterisk')" >&2; exit 2 ;;
esac

need=()
have() { command -v "$1" >/dev/null 2>&1; }
have cc || have gcc || need+=(gcc libc6-dev)
have make || need+=(make)
have valgrind || need+=(valgrind)
have pkg-config || need+=(pkg-config)
# tests/install.sh (make test-install) reads the SONAME and the exports with readelf and
# nm; gcc pulls binutils in, but a machine with clang alone may lack it.
have readelf && have nm || need+=(binutils)
have python3 || need+=(python3)
# The redis backend's tests start their own redis-server on 127.0.0.1.
have redis-server || need+=(redis-server)
# tests/prometheus_parse.py (make test-cli) parses LICENSE_REPORT_PROMETHEUS with the
# Prometheus project's own Python parser. Debian's package is for Debian's python3
# (/usr/bin/python3), which `make test-cli` runs even when another python3 is first
# on the PATH.
/usr/bin/python3 -c 'import prometheus_client' >/dev/null 2>&1 || need+=(python3-prometheus-client)
# make test-php: the PHP FFI example runs on Debian's php-cli (FFI is in php8.2-common).
have php || need+=(php-cli)
# make test-kamailio: Kamailio with its Python KEMI engine (app_python3) as the
# registrar, and sipp (Debian's sip-tester) to register phones against it.
have kamailio || need+=(kamailio)
compgen -G "/usr/lib/*/kamailio/modules/app_python3.so" >/dev/null || need+=(kamailio-python3-modules)
have sipp || need+=(sip-tester)
# AddressSanitizer's runtime for the C tests.
if have gcc && ! echo 'int main(void){return 0;}' | gcc -x c -fsanitize=address -o /dev/null - >/dev/null 2>&1; then
  need+=("libgcc-$(gcc -dumpversion | cut -d. -f1)-dev")
fi

# bench/plot.sh draws docs/bench-threads.png with gnuplot: the X-less build, whose
# pngcairo terminal is all the plot uses (4 small packages). Only `make bench` asks.
if [ "$mode" = bench ]; then
  have gnuplot || need+=(gnuplot-nox)
fi

# examples/asterisk/prepare-asterisk.sh configures Asterisk's source for its headers
# (make asterisk-module, and the optional compile and load checks of make test-asterisk).
if [ "$mode" = asterisk ]; then
  have g++ || need+=(g++)
  have git || need+=(git)
  for p in libedit-dev libjansson-dev libxml2-dev libsqlite3-dev uuid-dev; do
    dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
  done
fi

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi

echo "setup: installing ${need[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if have sudo; then sudo="sudo"; else
    echo "setup: need root (or sudo) to install: ${need[*]}" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
# Packages that ship a daemon (redis-server, kamailio) would start it at install, on
# their default ports. The tests start their own on 127.0.0.1 and a free port, so
# nothing is started now: a policy-rc.d answering 101 ("not allowed"), for this
# install only (one the admin already has is left alone).
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# scripts/setup.sh (seatgate): no daemon starts during its install\nexit 101\n' |
    $sudo tee "$policy" >/dev/null
  $sudo chmod 755 "$policy"
  trap '$sudo rm -f "$policy"' EXIT
fi
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
