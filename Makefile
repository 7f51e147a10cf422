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
#   make asterisk-module ASTERISK_INCLUDE=...  build examples/asterisk/res_seatgate.so

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

.PHONY: all deps deps-bench lib header demo test test-rust test-c bench bench-quick clean \
	test-asterisk asterisk-module asterisk-checks

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

test: deps test-rust test-c bench-quick test-asterisk
	@echo "make test: all tests passed"

test-rust:
	$(CARGO) test --quiet

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

# ---- examples/asterisk: res_seatgate, the Asterisk module ----
# ASTERISK_INCLUDE: the include/ folder of a configured Asterisk source tree (with
#   asterisk/autoconfig.h and asterisk/buildopts.h made; examples/asterisk/prepare-asterisk.sh
#   makes one), or /usr/include where an asterisk-dev package is installed.
# ASTERISK_ROOT: an Asterisk installed with `make install DESTDIR=ASTERISK_ROOT`
#   (prepare-asterisk.sh --install), to load the module into and drive it.
ASTERISK_INCLUDE ?= $(if $(wildcard /usr/include/asterisk/buildopts.h),/usr/include)
ASTERISK_ROOT ?=
AST_EX := examples/asterisk
# Asterisk 22's own developer-mode warnings (its Makefile with --enable-dev-mode), and
# -Wextra; -Wno-old-style-declaration because Asterisk's strings.h writes
# `static int force_inline`.
AST_CFLAGS := -g -O2 -fPIC -pthread -D_REENTRANT -D_GNU_SOURCE -Wall -Wextra -Werror \
  -Wno-old-style-declaration -Wstrict-prototypes -Wmissing-prototypes -Wmissing-declarations \
  -Wdeclaration-after-statement -Wtrampolines -Wundef -Wmissing-format-attribute -Wformat=2 \
  -Wshadow -Wunused -DAST_MODULE=\"res_seatgate\" -DAST_MODULE_SELF_SYM=__internal_res_seatgate_self
AST_MODULE_SRC := $(AST_EX)/res_seatgate.c $(AST_EX)/seatgate_dialplan.c
AST_TEST_SRC := $(AST_EX)/test_seatgate_dialplan.c $(AST_EX)/seatgate_dialplan.c

$(BUILD)/asterisk $(BUILD)/asterisk/asan:
	mkdir -p $@

$(BUILD)/asterisk/test_seatgate_dialplan: $(AST_TEST_SRC) $(AST_EX)/seatgate_dialplan.h $(C_SRC) include/seatgate.h lib | $(BUILD)/asterisk
	$(CC) $(STRICT) -I$(AST_EX) -O1 -o $@ $(AST_TEST_SRC) $(LINK)

$(BUILD)/asterisk/asan/test_seatgate_dialplan: $(AST_TEST_SRC) $(AST_EX)/seatgate_dialplan.h $(C_SRC) include/seatgate.h lib | $(BUILD)/asterisk/asan
	$(CC) $(STRICT) -I$(AST_EX) -O1 $(ASAN) -o $@ $(AST_TEST_SRC) $(LINK)

# The module, compiled against real Asterisk headers; it finds libseatgate through
# its rpath (install both and point -Wl,-rpath at the installed library instead).
asterisk-module: lib | $(BUILD)/asterisk
	@if [ -z "$(ASTERISK_INCLUDE)" ] || [ ! -f "$(ASTERISK_INCLUDE)/asterisk.h" ] || \
	    [ ! -f "$(ASTERISK_INCLUDE)/asterisk/autoconfig.h" ] || [ ! -f "$(ASTERISK_INCLUDE)/asterisk/buildopts.h" ]; then \
	  echo "asterisk-module: ASTERISK_INCLUDE='$(ASTERISK_INCLUDE)' is not a configured Asterisk include/ folder" >&2; \
	  echo "  (it needs asterisk.h, asterisk/autoconfig.h and asterisk/buildopts.h: see examples/asterisk/README.md)" >&2; \
	  exit 1; fi
	$(CC) $(AST_CFLAGS) -I$(ASTERISK_INCLUDE) -Iinclude -I$(AST_EX) -shared \
	  -o $(BUILD)/asterisk/res_seatgate.so $(AST_MODULE_SRC) $(LINK)
	@echo "asterisk-module: built $(BUILD)/asterisk/res_seatgate.so against $(ASTERISK_INCLUDE)$$(v=$$(cat $(ASTERISK_INCLUDE)/../.version 2>/dev/null) && echo " (Asterisk $$v)")"

# The module's own logic without Asterisk (plain and ASan), then the compile check
# and the load test when Asterisk's headers and an installed Asterisk are given.
test-asterisk: $(BUILD)/asterisk/test_seatgate_dialplan $(BUILD)/asterisk/asan/test_seatgate_dialplan
	@echo "== test_seatgate_dialplan (plain)"; $(BUILD)/asterisk/test_seatgate_dialplan
	@echo "== test_seatgate_dialplan (AddressSanitizer)"; \
	  ASAN_OPTIONS=detect_leaks=1 $(BUILD)/asterisk/asan/test_seatgate_dialplan
	@$(MAKE) --no-print-directory asterisk-checks

asterisk-checks:
	@if [ -n "$(ASTERISK_INCLUDE)" ]; then \
	  $(MAKE) --no-print-directory asterisk-module || exit 1; \
	else \
	  echo "######################################################################"; \
	  echo "## test-asterisk: the res_seatgate COMPILE CHECK DID NOT RUN."; \
	  echo "##   Why: ASTERISK_INCLUDE is not set, and /usr/include has no Asterisk"; \
	  echo "##   headers (Asterisk is not in Debian's packages). To run it:"; \
	  echo "##   examples/asterisk/prepare-asterisk.sh DIR, then"; \
	  echo "##   make test-asterisk ASTERISK_INCLUDE=DIR/include"; \
	  echo "######################################################################"; \
	fi
	@if [ -n "$(ASTERISK_ROOT)" ] && [ -n "$(ASTERISK_INCLUDE)" ]; then \
	  echo "== res_seatgate loaded into $(ASTERISK_ROOT)"; \
	  $(AST_EX)/test-in-asterisk.sh $(ASTERISK_ROOT) $(BUILD)/asterisk/res_seatgate.so || exit 1; \
	else \
	  echo "######################################################################"; \
	  echo "## test-asterisk: the res_seatgate LOAD TEST (a real Asterisk running the"; \
	  echo "##   module from its dialplan and CLI) DID NOT RUN."; \
	  echo "##   Why: ASTERISK_ROOT$(if $(ASTERISK_INCLUDE),, and ASTERISK_INCLUDE) not set. To run it:"; \
	  echo "##   examples/asterisk/prepare-asterisk.sh DIR --install ROOT, then make"; \
	  echo "##   test-asterisk ASTERISK_INCLUDE=DIR/include ASTERISK_ROOT=ROOT"; \
	  echo "######################################################################"; \
	fi

clean:
	$(CARGO) clean
	rm -rf $(BUILD)
