# seatgate: build, demo, tests and benchmark.
#   make demo    simulated call-center login storm against examples/seats.toml
#   make test    every test: Rust, header drift, C tests plain + valgrind + ASan
#   make bench   ns per acquire+release through the C ABI per backend (memory, shm, redis),
#                against a global-lock baseline and a bare atomic
#   make header  regenerate include/seatgate.h after changing src/ffi.rs

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

.PHONY: all deps lib header demo test test-rust test-c bench clean

all: lib

deps:
	@bash scripts/setup.sh

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

test: deps test-rust test-c
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

bench: deps $(BUILD)/bench/bench
	$(WITH_REDIS) $(BUILD)/bench/bench
	$(CARGO) run --release --quiet --example tenant_cost

clean:
	$(CARGO) clean
	rm -rf $(BUILD)
