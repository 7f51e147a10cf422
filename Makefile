# seatgate: build, demo, tests and benchmark.
#   make demo    simulated call-center login storm against examples/seats.toml
#   make test    every test: Rust, header drift, C tests plain + valgrind + ASan
#   make bench   acquire+release pairs through the C ABI per backend (memory, shm, redis) in
#                seven scenarios, against a global lock (mod_hash), an rwlock list (Asterisk
#                GROUP) and a bare atomic: table on stdout, CSV in build/bench/results.csv,
#                plot in docs/bench-threads.png (installs gnuplot-nox through setup.sh bench)
#   make bench-quick  the same scenarios and checks in a few seconds with tiny sizes (a
#                smoke test that keeps the bench building and running; no figures)
#   make bench-pinned  one thread's login+logout pairs pinned to a core, in each event
#                mode and in a tenant's pool (bench/pinned.c): the pinned loop
#                BENCHMARKS.md compares builds by
#   make bench-count   the instructions a pair of that loop under callgrind (bench/count.sh;
#                LIB=DIR counts another build's library)
#   make bench-device-pack  the bench and the library in build/device, for a lent
#                many-core machine with no Rust toolchain (bench/device.sh runs them there;
#                `make test-bench-device`, part of `make test`, runs it here in QUICK mode)
#   make test-cli  the seatgate command's check/report exit codes (tests/cli_admin.rs) and
#                LICENSE_REPORT_PROMETHEUS parsed by prometheus_client, in a host and from
#                `seatgate report` (tests/prometheus_parse.py)
#   make header  regenerate include/seatgate.h after changing src/ffi.rs
#   make install PREFIX=/usr/local   libseatgate.so (SONAME and links), libseatgate.a,
#                seatgate.h and seatgate.pc; honours DESTDIR, LIBDIR, INCLUDEDIR and
#                PKGCONFIGDIR (cargo-c's defaults); `make uninstall` with the same values
#   make test-install  install into a temporary prefix and build a C program from it
#   make test-php          the PHP FFI example (examples/php) and its header-drift check
#   make test-freeswitch   mod_seatgate's logic; the module itself where FreeSWITCH's headers are
#   make freeswitch-module FREESWITCH_INCLUDE=DIR   build/freeswitch/mod_seatgate.so
#   make test-python    the Python ctypes wrapper (examples/python)
#   make test-kamailio  Kamailio as a registrar, driven by sipp (examples/kamailio)
#   make asterisk-module ASTERISK_INCLUDE=...  build examples/asterisk/res_seatgate.so

CARGO   ?= cargo
CC      ?= cc
RELEASE := target/release
RELEASE_DIR := $(abspath $(RELEASE))
BUILD   := build
STRICT  := -std=c11 -Wall -Wextra -Wpedantic -Werror -g -pthread -Iinclude
LINK    := -L$(RELEASE_DIR) -Wl,-rpath,$(RELEASE_DIR) -lseatgate -pthread
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

.PHONY: all deps deps-bench lib header demo test-demo test test-rust test-c test-install test-cli bench \
         bench-quick bench-device-pack test-bench-device bench-pinned bench-count test-bench-pinned clean install uninstall test-php test-freeswitch \
         freeswitch-module test-python test-kamailio test-asterisk asterisk-module asterisk-checks

all: lib

deps:
	@bash scripts/setup.sh

# What only `make bench` needs on top (gnuplot for the plot).
deps-bench:
	@bash scripts/setup.sh bench

# The library's SONAME (libseatgate.so.0.1, see build.rs) is what programs linked with
# it look for at run time, so the build tree gets that name too, as a link: the C tests'
# and examples' rpath to target/release then finds it.
lib:
	$(CARGO) build --release --quiet
	@soname=$$($(call read_soname,$(RELEASE)/libseatgate.so)); \
	  test -n "$$soname" || { echo "lib: $(RELEASE)/libseatgate.so has no SONAME" >&2; exit 1; }; \
	  ln -sfn libseatgate.so $(RELEASE)/$$soname

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

# The demo checks its own story (a CHECK FAILED line and exit 1 on any surprise): make
# test runs it too, quietly unless it fails, so the main job cannot rot.
test-demo: deps $(BUILD)/pbx_login
	@SEATGATE_CLI=$(RELEASE)/seatgate $(BUILD)/pbx_login examples/seats.toml > $(BUILD)/demo.log 2>&1 || { \
	  cat $(BUILD)/demo.log; echo "test-demo: FAILED: make demo's checks failed (above)" >&2; exit 1; }
	@tail -n 1 $(BUILD)/demo.log
	@echo "test-demo: make demo ran and every one of its checks passed"

test: deps test-rust test-c test-demo test-install test-cli test-php test-python test-kamailio test-freeswitch \
      test-asterisk bench-quick test-bench-device test-bench-pinned
	@echo "make test: all tests passed"

test-rust:
	$(CARGO) test --quiet

# Debian's python3, for which setup.sh installs python3-prometheus-client (another python3
# may come first on the PATH).
PROM_PYTHON ?= /usr/bin/python3

# The admin CLI: check/report exit codes and reads of live shm and redis tables (the Rust
# test starts its own redis-server), then the Prometheus format through the Prometheus
# project's own parser, from libseatgate.so in a host and from `seatgate report`.
test-cli: deps lib
	$(CARGO) test --quiet --test cli_admin
	SEATGATE_LIB=$(RELEASE_DIR)/libseatgate.so SEATGATE_CLI=$(abspath $(RELEASE))/seatgate \
	  $(PROM_PYTHON) tests/prometheus_parse.py
# The Python ctypes wrapper (examples/python): struct layouts against the C compiler,
# every wrapped call, two processes on one shm table, and the CRM login example.
test-python: deps lib
	python3 examples/python/test_seatgate.py

# Kamailio (KEMI app_python3 through the wrapper) as a registrar on 127.0.0.1, driven by
# sipp: seats per REGISTER across forked workers (shm backend); see examples/kamailio.
# First the script's handling of a renewal that races its contact's expiry, with a
# stand-in KSR that makes the interleaving happen every time.
test-kamailio: deps lib
	python3 examples/kamailio/test_registrar_race.py
	python3 examples/kamailio/test_kamailio.py

# test_policy signs a license with the seatgate command that `make lib` builds.
test-c: $(addprefix $(BUILD)/c-tests/,$(C_TESTS)) $(addprefix $(BUILD)/c-tests/asan/,$(C_TESTS))
	@set -e; export SEATGATE_CLI=$(abspath $(RELEASE))/seatgate; for t in $(C_TESTS); do \
	  echo "== $$t (plain)"; $(WITH_REDIS) $(BUILD)/c-tests/$$t; \
	  echo "== $$t (AddressSanitizer)"; ASAN_OPTIONS=detect_leaks=1 $(WITH_REDIS) $(BUILD)/c-tests/asan/$$t; \
	  echo "== $$t (valgrind)"; SEATGATE_TEST_QUICK=1 $(WITH_REDIS) $(VALGRIND) $(BUILD)/c-tests/$$t; \
	done
	@echo "C tests: $(words $(C_TESTS)) programs passed plain, under ASan and under valgrind"

# ---- install (cargo-c's layout) ----
# PREFIX, BINDIR (the seatgate command), LIBDIR, INCLUDEDIR, PKGCONFIGDIR and DESTDIR
# as cargo-c and autotools read them: the .pc file names the paths without DESTDIR,
# the files land under it.
PREFIX       ?= /usr/local
BINDIR       ?= $(PREFIX)/bin
LIBDIR       ?= $(PREFIX)/lib
INCLUDEDIR   ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
DESTDIR      ?=
VERSION      := $(shell sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n 1)
# The SONAME that build.rs gave the library (readelf is in binutils, beside cc).
read_soname = readelf -d $(1) | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p'
# What a program linking libseatgate.a needs besides it (the .pc's Libs.private): the
# list that `cargo rustc --release --lib --crate-type staticlib -- --print
# native-static-libs` printed (Rust 1.95, Debian 12). tests/install.sh checks that it
# still holds everything Rust's std and the crates' build scripts ask for.
LIBS_PRIVATE := -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
# In the .pc file, paths under PREFIX are written as ${prefix}/..., as cargo-c does.
pc_path = $(patsubst $(PREFIX)/%,$${prefix}/%,$(1))

# `sudo make install` after `make lib` need not find cargo: without it, install copies
# what `make lib` built (and says so if nothing was built).
install: $(if $(shell command -v $(CARGO) 2>/dev/null),lib)
	@for f in $(RELEASE)/libseatgate.so $(RELEASE)/libseatgate.a $(RELEASE)/seatgate include/seatgate.h; do \
	  test -f $$f || { echo "install: $$f is missing: run 'make lib' first" >&2; exit 1; }; done
	@test -n "$(VERSION)" || { echo "install: no version in Cargo.toml" >&2; exit 1; }
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PKGCONFIGDIR)
	install -m 755 $(RELEASE)/seatgate $(DESTDIR)$(BINDIR)/seatgate
	install -m 755 $(RELEASE)/libseatgate.so $(DESTDIR)$(LIBDIR)/libseatgate.so.$(VERSION)
	@soname=$$($(call read_soname,$(RELEASE)/libseatgate.so)); \
	  test -n "$$soname" || { echo "install: $(RELEASE)/libseatgate.so has no SONAME" >&2; exit 1; }; \
	  if [ "$$soname" != libseatgate.so.$(VERSION) ]; then \
	    echo "ln -sfn libseatgate.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$$soname"; \
	    ln -sfn libseatgate.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$$soname; fi
	ln -sfn libseatgate.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libseatgate.so
	install -m 644 $(RELEASE)/libseatgate.a $(DESTDIR)$(LIBDIR)/libseatgate.a
	install -m 644 include/seatgate.h $(DESTDIR)$(INCLUDEDIR)/seatgate.h
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(call pc_path,$(LIBDIR))|' \
	    -e 's|@INCLUDEDIR@|$(call pc_path,$(INCLUDEDIR))|' -e 's|@VERSION@|$(VERSION)|' \
	    -e 's|@LIBS_PRIVATE@|$(LIBS_PRIVATE)|' packaging/seatgate.pc.in > $(DESTDIR)$(PKGCONFIGDIR)/seatgate.pc
	chmod 644 $(DESTDIR)$(PKGCONFIGDIR)/seatgate.pc

# Removes this version's files and only the links that point at this version's library,
# so another version's libseatgate.so.X (still needed by programs built with it) stays.
uninstall:
	@test -n "$(VERSION)" || { echo "uninstall: no version in Cargo.toml" >&2; exit 1; }
	@if [ -d $(DESTDIR)$(LIBDIR) ]; then \
	  find $(DESTDIR)$(LIBDIR) -maxdepth 1 -type l -name 'libseatgate.so*' -lname libseatgate.so.$(VERSION) \
	    -print -delete; fi
	rm -f $(DESTDIR)$(BINDIR)/seatgate $(DESTDIR)$(LIBDIR)/libseatgate.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libseatgate.a \
	  $(DESTDIR)$(INCLUDEDIR)/seatgate.h $(DESTDIR)$(PKGCONFIGDIR)/seatgate.pc

# Installs into temporary prefixes and builds tests/install/consumer.c from them with
# pkg-config only, shared and static (see tests/install.sh).
test-install: deps lib
	tests/install.sh
# The PHP FFI example (examples/php): its declarations checked against the header,
# then the CRM login story and the Seatgate class. php-cli comes from setup.sh.
PHP ?= php
test-php: deps lib
	@$(PHP) -r 'exit(extension_loaded("FFI") ? 0 : 1);' || { \
	  echo "test-php: FAILED: $(PHP) has no FFI extension loaded (Debian's php-cli has it, in php8.2-common)" >&2; exit 1; }
	$(PHP) examples/php/tests/abi_check.php $(RELEASE_DIR)/libseatgate.so $(BUILD)/php
	$(PHP) examples/php/tests/test_crm_login.php $(RELEASE_DIR)/libseatgate.so

# The FreeSWITCH module (examples/freeswitch). FreeSWITCH is not in Debian: the
# module is compiled only where FREESWITCH_INCLUDE holds its headers (an installed
# FreeSWITCH's, found by itself, or examples/freeswitch/fs-headers.sh's from its
# source). FreeSWITCH's headers come in with -isystem: its inline helpers are not
# -Wconversion clean; our code is. test-freeswitch always tests the module's logic
# (seatgate_fs.c) against the library, plain and under ASan.
FS_DIR := examples/freeswitch
FREESWITCH_INCLUDE ?= $(firstword $(wildcard /usr/include/freeswitch /usr/local/freeswitch/include/freeswitch))
FS_STRICT := -std=c11 -Wall -Wextra -Wpedantic -Werror -Wshadow -Wstrict-prototypes \
             -Wmissing-prototypes -Wconversion -g -fPIC -Iinclude -I$(FS_DIR)
FS_HAVE_HEADERS = $(and $(FREESWITCH_INCLUDE),$(wildcard $(FREESWITCH_INCLUDE)/switch.h),$(wildcard $(FREESWITCH_INCLUDE)/switch_am_config.h))

$(BUILD)/freeswitch:
	mkdir -p $@

$(BUILD)/freeswitch/mod_seatgate.so: $(FS_DIR)/mod_seatgate.c $(FS_DIR)/seatgate_fs.c $(FS_DIR)/seatgate_fs.h include/seatgate.h lib | $(BUILD)/freeswitch
	$(CC) $(FS_STRICT) -isystem $(FREESWITCH_INCLUDE) -shared -o $@ $(FS_DIR)/mod_seatgate.c $(FS_DIR)/seatgate_fs.c $(LINK)

freeswitch-module:
	@if [ -z "$(FS_HAVE_HEADERS)" ]; then \
	  echo "freeswitch-module: FREESWITCH_INCLUDE='$(FREESWITCH_INCLUDE)' has no switch.h and switch_am_config.h;" \
	       "see examples/freeswitch/README.md (fs-headers.sh makes them from FreeSWITCH's source)" >&2; exit 1; fi
	@$(MAKE) --no-print-directory $(BUILD)/freeswitch/mod_seatgate.so
	@echo "freeswitch-module: $(BUILD)/freeswitch/mod_seatgate.so built against $(FREESWITCH_INCLUDE)"

$(BUILD)/freeswitch/test_seatgate_fs: $(FS_DIR)/test_seatgate_fs.c $(FS_DIR)/seatgate_fs.c $(FS_DIR)/seatgate_fs.h c-tests/common.h include/seatgate.h lib | $(BUILD)/freeswitch
	$(CC) $(STRICT) -Wconversion -I$(FS_DIR) -O1 -o $@ $(FS_DIR)/test_seatgate_fs.c $(FS_DIR)/seatgate_fs.c $(LINK)

$(BUILD)/freeswitch/test_seatgate_fs.asan: $(FS_DIR)/test_seatgate_fs.c $(FS_DIR)/seatgate_fs.c $(FS_DIR)/seatgate_fs.h c-tests/common.h include/seatgate.h lib | $(BUILD)/freeswitch
	$(CC) $(STRICT) -Wconversion -I$(FS_DIR) -O1 $(ASAN) -o $@ $(FS_DIR)/test_seatgate_fs.c $(FS_DIR)/seatgate_fs.c $(LINK)

test-freeswitch: $(BUILD)/freeswitch/test_seatgate_fs $(BUILD)/freeswitch/test_seatgate_fs.asan
	@echo "== test_seatgate_fs (plain)"; $(BUILD)/freeswitch/test_seatgate_fs
	@echo "== test_seatgate_fs (AddressSanitizer)"; ASAN_OPTIONS=detect_leaks=1 $(BUILD)/freeswitch/test_seatgate_fs.asan
	@if [ -n "$(FS_HAVE_HEADERS)" ]; then \
	  $(MAKE) --no-print-directory freeswitch-module; \
	else \
	  echo "#####################################################################################"; \
	  echo "## test-freeswitch: mod_seatgate.c was NOT compiled: no FreeSWITCH headers here."; \
	  echo "##   FREESWITCH_INCLUDE='$(FREESWITCH_INCLUDE)' has no switch.h + switch_am_config.h, and"; \
	  echo "##   FreeSWITCH is not in Debian's packages. Only the module's logic (seatgate_fs.c)"; \
	  echo "##   was tested. To run the compile check: examples/freeswitch/README.md"; \
	  echo "#####################################################################################"; \
	fi

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

$(BUILD)/bench/pinned: bench/pinned.c include/seatgate.h lib | $(BUILD)/bench
	$(CC) $(STRICT) -O2 -o $@ $< $(LINK)

# One thread on the machine's last core (nothing else should run there).
bench-pinned: $(BUILD)/bench/pinned
	taskset -c $$(( $$(nproc) - 1 )) $(BUILD)/bench/pinned bench/pinned.toml

bench-count: deps $(BUILD)/bench/pinned
	bash bench/count.sh $(BUILD)/bench/pinned

# Both, with tiny sizes: the loop runs in every mode and gives every seat back, and the
# count finds a plausible number of instructions for each mode.
test-bench-pinned: deps $(BUILD)/bench/pinned
	$(BUILD)/bench/pinned bench/pinned.toml 20000 1 >/dev/null
	@SHORT=2000 LONG=6000 bash bench/count.sh $(BUILD)/bench/pinned > $(BUILD)/bench/count-quick.txt
	@for m in quiet listener alerts thresh tenant; do \
	  n=$$(sed -n "s/^$$m: \([0-9]*\) instructions a pair$$/\1/p" $(BUILD)/bench/count-quick.txt); \
	  test -n "$$n" && test "$$n" -gt 100 && test "$$n" -lt 100000 || \
	    { cat $(BUILD)/bench/count-quick.txt; echo "test-bench-pinned: no plausible count for $$m" >&2; exit 1; }; done
	@echo "test-bench-pinned: the pinned loop ran in every mode; counted $$(tr '\n' ' ' < $(BUILD)/bench/count-quick.txt)"

# The bench and the library (debug info stripped, under its soname) for a lent machine
# that has no Rust toolchain: carry build/device there and run `bash bench/device.sh`.
DEVICE_DIR := $(BUILD)/device

bench-device-pack: $(BUILD)/bench/bench
	rm -rf $(DEVICE_DIR)
	mkdir -p $(DEVICE_DIR)
	cp $(BUILD)/bench/bench $(DEVICE_DIR)/bench
	soname=$$(readelf -d $(RELEASE)/libseatgate.so | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p'); \
	  test -n "$$soname" && objcopy --strip-debug $(RELEASE)/libseatgate.so $(DEVICE_DIR)/$$soname
	@du -sh $(DEVICE_DIR) | sed 's/^/bench-device-pack: /'

# bench/device.sh as a lent machine runs it, from the packed build/device, in QUICK mode:
# it must load the packed library and write rows for its scenarios and no others.
test-bench-device: deps bench-device-pack
	rm -rf $(DEVICE_DIR)/out-quick
	SEATGATE_BENCH_QUICK=1 OUT=$(DEVICE_DIR)/out-quick bash bench/device.sh >/dev/null
	@grep -q '^library: $(DEVICE_DIR)/libseatgate.so' $(DEVICE_DIR)/out-quick/machine.txt || \
	  { echo "test-bench-device: the device run did not load $(DEVICE_DIR)'s library" >&2; exit 1; }
	@for s in 1-one-type 2-bundle 3-reacquire 4-distinct-users 6-report-running; do \
	  grep -q "^$$s,seatgate-memory," $(DEVICE_DIR)/out-quick/results.csv || \
	    { echo "test-bench-device: no $$s rows in the device run's CSV" >&2; exit 1; }; done
	@if grep -qE '^(5-holders|7-memory),' $(DEVICE_DIR)/out-quick/results.csv; then \
	  echo "test-bench-device: scenario 5 or 7 ran, which the device run leaves out" >&2; exit 1; fi
	@echo "test-bench-device: bench/device.sh ran the packed bench on the packed library"

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
