# seatgate: build, demo, tests and benchmark.
#   make demo    simulated call-center login storm against examples/seats.toml
#   make test    every test: Rust, header drift, C tests plain + valgrind + ASan
#   make bench   acquire+release pairs through the C ABI per backend (memory, shm, redis) in
#                seven scenarios, against a global lock (mod_hash), an rwlock list (Asterisk
#                GROUP) and a bare atomic: table on stdout, CSV in build/bench/results.csv,
#                plot in docs/bench-threads.png (installs gnuplot-nox through setup.sh bench)
#   make bench-quick  the same scenarios and checks in a few seconds with tiny sizes (a
#                smoke test that keeps the bench building and running; no figures)
#   make header  regenerate include/seatgate.h after changing src/ffi.rs
#   make test-python    the Python ctypes wrapper (examples/python)
#   make test-kamailio  Kamailio as a registrar, driven by sipp (examples/kamailio)

CARGO   ?= cargo
CC      ?= cc
RELEASE := target/release
LIBDIR  := $(abspath $(RELEASE))
BUILD   := build
STRICT  := -std=c11 -Wall -Wextra -Wpedantic -Werror -g -pthread -Iinclude
LINK    := -L$(LIBDIR) -Wl,-rpath,$(LIBDIR) -lseatgate -pthread
VALGRIND := valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite
# The Rust library itself is not instrumented; ASan checks every byte the C side
# owns, including what the library writes into C buffers (memcpy is intercepted).
ASAN    := -fsanitize=address,undefined -fno-omit-frame-pointer

C_TESTS := test_basic test_bad_input test_stress test_lifecycle test_multiprocess test_policy
C_SRC   := $(wildcard c-tests/*.h)
# Tests and the bench that need a server get a private redis-server on a free port.
WITH_REDIS := scripts/with-redis.sh

# Frozen: the build leaves include/seatgate.h alone, and the drift test compares it
# with a freshly generated copy. Unfrozen (`make header`): the build rewrites it.
export SEATGATE_FROZEN_HEADER := 1

.PHONY: all deps deps-bench lib header demo test test-rust test-c test-python test-kamailio bench bench-quick clean

all: lib

deps:
	@bash scripts/setup.sh

# What only `make bench` needs on top (gnuplot for the plot).
deps-bench:
	@bash scripts/setup.sh bench

lib:
	$(CARGO) build --release --quiet

header:
	SEATGATE_FROZEN_HEADER= $(CARGO) build --release --quiet
	@git diff --stat -- include/seatgate.h 2>/dev/null || true

$(BUILD)/%: examples/%.c include/seatgate.h lib | $(BUILD)
	$(CC) $(STRICT) -O2 -o $@ $< $(LINK)

$(BUILD)/c-tests/%: c-tests/%.c $(C_SRC) include/seatgate.h lib | $(BUILD)/c-tests
	$(CC) $(STRICT) -O1 -o $@ $< $(LINK)

$(BUILD)/c-tests/asan/%: c-tests/%.c $(C_SRC) include/seatgate.h lib | $(BUILD)/c-tests/asan
	$(CC) $(STRICT) -O1 $(ASAN) -o $@ $< $(LINK)

$(BUILD) $(BUILD)/c-tests $(BUILD)/c-tests/asan $(BUILD)/bench:
	mkdir -p $@

# The demo runs the seatgate command (built by `lib`) to sign a vendor license.
demo: deps $(BUILD)/pbx_login
	SEATGATE_CLI=$(RELEASE)/seatgate $(BUILD)/pbx_login examples/seats.toml

test: deps test-rust test-c test-python test-kamailio bench-quick
	@echo "make test: all tests passed"

test-rust:
	$(CARGO) test --quiet

# The Python ctypes wrapper (examples/python): struct layouts against the C compiler,
# every wrapped call, two processes on one shm table, and the CRM login example.
test-python: deps lib
	python3 examples/python/test_seatgate.py

# Kamailio (KEMI app_python3 through the wrapper) as a registrar on 127.0.0.1, driven by
# sipp: seats per REGISTER across forked workers (shm backend); see examples/kamailio.
test-kamailio: deps lib
	python3 examples/kamailio/test_kamailio.py

# test_policy signs a license with the seatgate command that `make lib` builds.
test-c: $(addprefix $(BUILD)/c-tests/,$(C_TESTS)) $(addprefix $(BUILD)/c-tests/asan/,$(C_TESTS))
	@set -e; export SEATGATE_CLI=$(abspath $(RELEASE))/seatgate; for t in $(C_TESTS); do \
	  echo "== $$t (plain)"; $(WITH_REDIS) $(BUILD)/c-tests/$$t; \
	  echo "== $$t (AddressSanitizer)"; ASAN_OPTIONS=detect_leaks=1 $(WITH_REDIS) $(BUILD)/c-tests/asan/$$t; \
	  echo "== $$t (valgrind)"; SEATGATE_TEST_QUICK=1 $(WITH_REDIS) $(VALGRIND) $(BUILD)/c-tests/$$t; \
	done
	@echo "C tests: $(words $(C_TESTS)) programs passed plain, under ASan and under valgrind"

$(BUILD)/bench/bench: bench/bench.c include/seatgate.h lib | $(BUILD)/bench
	$(CC) -std=c11 -Wall -Wextra -Wpedantic -Werror -O2 -g -pthread -Iinclude -o $@ $< $(LINK)

BENCH_CSV ?= $(BUILD)/bench/results.csv
BENCH_PLOT ?= docs/bench-threads.png

bench: deps-bench $(BUILD)/bench/bench
	SEATGATE_BENCH_CSV=$(BENCH_CSV) $(WITH_REDIS) $(BUILD)/bench/bench
	bench/plot.sh $(BENCH_CSV) $(BENCH_PLOT)
	$(CARGO) run --release --quiet --example tenant_cost

# Needs only what `make test` needs; the plot script runs too when gnuplot is there.
bench-quick: deps $(BUILD)/bench/bench
	SEATGATE_BENCH_QUICK=1 SEATGATE_BENCH_CSV=$(BUILD)/bench/results-quick.csv \
	  $(WITH_REDIS) $(BUILD)/bench/bench
	@if command -v gnuplot >/dev/null 2>&1; then \
	  bench/plot.sh $(BUILD)/bench/results-quick.csv $(BUILD)/bench/bench-threads-quick.png; \
	else echo "bench-quick: no gnuplot, plot skipped (scripts/setup.sh bench installs it)"; fi

clean:
	$(CARGO) clean
	rm -rf $(BUILD)
