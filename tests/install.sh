#!/usr/bin/env bash
# test-install: `make install` into temporary prefixes, then use the result the way a
# C integrator would, with nothing from the source tree but what was installed.
#
#  1. layout: libseatgate.so.X.Y.Z (a file) with the SONAME link and libseatgate.so
#     pointing at it, libseatgate.a, include/seatgate.h (the committed header),
#     lib/pkgconfig/seatgate.pc, bin/seatgate (the admin command, which runs from
#     there: version, check); `readelf -d` shows the SONAME cargo-c's rule gives for
#     Cargo.toml's version;
#  2. exports: `nm -D --defined-only` lists only license_* symbols, exactly the
#     functions the installed header declares;
#  3. pkg-config: version, paths, and Libs.private holding every native library that
#     Rust's std and the crates' build scripts ask a static link for;
#  4. tests/install/consumer.c built with only `pkg-config --cflags --libs seatgate`,
#     run against the installed .so (which it must need by its SONAME), then built with
#     `pkg-config --static` against libseatgate.a (no libseatgate.so needed) and run:
#     version macros and license_version() against Cargo.toml, init, acquire, refusal,
#     usage, report, release, shutdown;
#  5. DESTDIR with a distribution LIBDIR: files land under DESTDIR, the .pc names the
#     final paths, a consumer builds against the staged tree (PKG_CONFIG_SYSROOT_DIR);
#  6. uninstall removes every installed file, and leaves another version's files alone;
#  7. the build tree: target/release has the SONAME link, so a program linked with
#     -Ltarget/release and an rpath there (the C tests, the examples) still runs.
#
# Run from the repository root after `make lib` (the Makefile target test-install does both).
set -euo pipefail
cd "$(dirname "$0")/.."

CC=${CC:-cc}
MAKE_CMD=(make --no-print-directory -s)
RELEASE=target/release
STRICT=(-std=c11 -Wall -Wextra -Wpedantic -Werror -O1)

passed=0
failed=0
pass() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "test-install: FAILED: $*" >&2; }
# check DESCRIPTION COMMAND...: one assertion; the command's output shows on failure.
check() {
  local what=$1 out
  shift
  if out=$("$@" 2>&1); then pass; else fail "$what"; [ -z "$out" ] || echo "$out" | sed 's/^/    /' >&2; fi
}
# A step the rest depends on: stop at once when it fails.
must() {
  local what=$1
  shift
  if ! "$@"; then echo "test-install: FAILED (cannot go on): $what" >&2; exit 1; fi
}
same() { [ "$1" = "$2" ] || { echo "got '$1', want '$2'"; return 1; }; }
has() { grep -q -- "$1" <<<"$2" || { echo "'$1' is not in: $2"; return 1; }; }
lacks() { ! grep -q -- "$1" <<<"$2" || { echo "'$1' is in: $2"; return 1; }; }

for tool in "$CC" pkg-config readelf nm ldd rustc; do
  command -v "$tool" >/dev/null 2>&1 || { echo "test-install: $tool is not installed (scripts/setup.sh)" >&2; exit 1; }
done
[ -f $RELEASE/libseatgate.so ] && [ -f $RELEASE/libseatgate.a ] \
  || { echo "test-install: no library in $RELEASE: run 'make lib' first" >&2; exit 1; }

# The version, from Cargo.toml's [package] table (not hard-coded here).
version=$(awk '/^\[/ { in_package = ($0 == "[package]") }
               in_package && /^version *=/ { gsub(/^version *= *"|".*$/, ""); print; exit }' Cargo.toml)
[[ $version =~ ^([0-9]+)\.([0-9]+)\.([0-9]+)$ ]] \
  || { echo "test-install: cannot read a MAJOR.MINOR.PATCH version from Cargo.toml (got '$version')" >&2; exit 1; }
major=${BASH_REMATCH[1]} minor=${BASH_REMATCH[2]} patch=${BASH_REMATCH[3]}
# cargo-c's SONAME rule (LibraryCApiConfig::sover): 0.0.z -> 0.0.z, 0.y.z -> 0.y, x.y.z -> x.
if [ "$major" = 0 ] && [ "$minor" = 0 ]; then sover=0.0.$patch
elif [ "$major" = 0 ]; then sover=0.$minor
else sover=$major; fi
soname=libseatgate.so.$sover
real=libseatgate.so.$version

tmp=$(mktemp -d "${TMPDIR:-/tmp}/seatgate-install-XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
prefix=$tmp/prefix
libdir=$prefix/lib
cat >"$tmp/seats.toml" <<'EOF'
# test-install: one callcenter seat, so a second operator is refused.
[licenses.user]
limit = 5

[licenses.callcenter]
limit = 1

[profiles.operator]
consumes = ["user", "callcenter"]
EOF

soname_of() { readelf -d "$1" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p'; }
needed_of() { readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'; }

# ---- 1. layout ----
echo "== make install PREFIX=$prefix"
must "make install" "${MAKE_CMD[@]}" install PREFIX="$prefix"
check "$real is a regular file" test -f "$libdir/$real" -a ! -L "$libdir/$real"
check "$soname is a link to $real" same "$(readlink "$libdir/$soname" || true)" "$real"
check "libseatgate.so is a link to $real" same "$(readlink "$libdir/libseatgate.so" || true)" "$real"
check "libseatgate.a is installed" test -f "$libdir/libseatgate.a" -a ! -L "$libdir/libseatgate.a"
check "include/seatgate.h is the committed header" cmp include/seatgate.h "$prefix/include/seatgate.h"
check "seatgate.pc is in LIBDIR/pkgconfig" test -f "$libdir/pkgconfig/seatgate.pc"
check "SONAME of the installed library" same "$(soname_of "$libdir/$real")" "$soname"
check "the shared library and the command are executable, the rest not" \
  same "$(stat -c %a "$libdir/$real" "$prefix/bin/seatgate" "$libdir/libseatgate.a" "$prefix/include/seatgate.h" "$libdir/pkgconfig/seatgate.pc" | tr '\n' ' ')" \
  "755 755 644 644 644 "
check "bin/seatgate says the version of Cargo.toml" has "$version" "$("$prefix/bin/seatgate" version 2>&1)"
printf '[licenses.callcenter]\nlimit = 3\n' >"$tmp/clean.toml"
check "bin/seatgate check passes a clean config (exit 0)" "$prefix/bin/seatgate" check "$tmp/clean.toml"

# ---- 2. exports ----
exported=$(nm -D --defined-only "$libdir/$real" | awk '{ print $NF }' | sort)
# Every function prototype of the header: a line "<type> [*]license_name(" (typedefs and
# comments do not start that way).
declared=$(sed -n 's/^[a-z][a-z0-9_ ]*[ *]\(license_[a-z0-9_]*\)(.*/\1/p' "$prefix/include/seatgate.h" | sort)
not_api=$(grep -v '^license_' <<<"$exported" || true)
check "only license_* symbols are exported (others: $(echo $not_api))" test -z "$not_api"
check "at least 20 functions are declared in the header (parser sanity)" test "$(wc -l <<<"$declared")" -ge 20
check "exported symbols = functions declared in seatgate.h" \
  diff <(echo "$declared") <(echo "$exported") --label declared-in-header --label exported-by-nm-D -u
echo "exports: $(wc -l <<<"$exported") symbols, all license_*, each declared in seatgate.h"

# ---- 3. pkg-config ----
# PKG_CONFIG_LIBDIR replaces the default search path: only this prefix's seatgate.pc counts.
export PKG_CONFIG_LIBDIR=$libdir/pkgconfig
unset PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR
check "pkg-config --modversion" same "$(pkg-config --modversion seatgate)" "$version"
check "pkg-config prefix" same "$(pkg-config --variable=prefix seatgate)" "$prefix"
# (echo joins the words: pkg-config ends its output with a space)
check "pkg-config --cflags" same "$(echo $(pkg-config --cflags seatgate))" "-I$prefix/include"
check "pkg-config --libs" same "$(echo $(pkg-config --libs seatgate))" "-L$libdir -lseatgate"
static_libs=$(pkg-config --static --libs seatgate)
# What Rust's std needs in a static link, as rustc prints it for an empty staticlib, and
# what the crates' build scripts asked for: each must be in Libs.private.
std_libs=$(cd "$tmp" && echo 'pub fn nothing() {}' >empty.rs \
  && rustc --edition 2021 --crate-type staticlib --print native-static-libs -o empty.a empty.rs 2>&1 \
  | sed -n 's/.*native-static-libs: //p')
check "rustc printed std's native-static-libs" test -n "$std_libs"
script_libs=$(cat $RELEASE/build/*/output 2>/dev/null | sed -n 's/^cargo::\{0,1\}rustc-link-lib=\(.*=\)\{0,1\}\([^=]*\)$/-l\2/p' | sort -u)
for lib in $std_libs $script_libs; do
  check "Libs.private has $lib" has "\(^\| \)$lib\( \|$\)" "$static_libs"
done

# ---- 4. a consumer from pkg-config: shared, then static ----
echo "== consumer, shared: $CC consumer.c \$(pkg-config --cflags --libs seatgate)"
# shellcheck disable=SC2046 # pkg-config output is meant to split into words
must "build the shared consumer" \
  "$CC" "${STRICT[@]}" tests/install/consumer.c $(pkg-config --cflags --libs seatgate) -o "$tmp/consumer-shared"
check "the shared consumer needs $soname" has "^$soname\$" "$(needed_of "$tmp/consumer-shared")"
check "ldd resolves $soname in the prefix" \
  has "$soname => $libdir/$soname " "$(LD_LIBRARY_PATH=$libdir ldd "$tmp/consumer-shared")"
if out=$(LD_LIBRARY_PATH=$libdir "$tmp/consumer-shared" "$version" "$tmp/seats.toml" 2>&1); then pass; else fail "shared consumer run"; fi
echo "$out" | sed 's/^/    /'

echo "== consumer, static: $CC consumer.c \$(pkg-config --cflags --static --libs seatgate), -lseatgate as -l:libseatgate.a"
# With both libraries in LIBDIR the linker would take the .so for -lseatgate;
# -l:libseatgate.a names the archive, and everything else is pkg-config's.
static_args=()
for arg in $(pkg-config --cflags --static --libs seatgate); do
  if [ "$arg" = -lseatgate ]; then static_args+=(-l:libseatgate.a); else static_args+=("$arg"); fi
done
must "build the static consumer" "$CC" "${STRICT[@]}" tests/install/consumer.c "${static_args[@]}" -o "$tmp/consumer-static"
check "the static consumer does not need libseatgate.so" lacks libseatgate "$(needed_of "$tmp/consumer-static")"
check "the static consumer holds license_init itself" has ' T license_init$' "$(nm "$tmp/consumer-static")"
if out=$(env -u LD_LIBRARY_PATH "$tmp/consumer-static" "$version" "$tmp/seats.toml" 2>&1); then pass; else fail "static consumer run"; fi
echo "$out" | sed 's/^/    /'

# ---- 5. DESTDIR and a distribution's LIBDIR ----
stage=$tmp/stage
final=$tmp/opt/seatgate   # the prefix the package will have on the target system
multiarch=$final/lib/x86_64-linux-gnu
echo "== make install DESTDIR=$stage PREFIX=$final LIBDIR=$multiarch"
must "make install with DESTDIR" "${MAKE_CMD[@]}" install DESTDIR="$stage" PREFIX="$final" LIBDIR="$multiarch"
check "nothing lands outside DESTDIR" test ! -e "$final"
check "library staged in DESTDIR/LIBDIR" test -f "$stage$multiarch/$real" -a -L "$stage$multiarch/$soname"
check "header staged in DESTDIR/PREFIX/include" test -f "$stage$final/include/seatgate.h"
check "command staged in DESTDIR/PREFIX/bin" test -x "$stage$final/bin/seatgate"
pc=$stage$multiarch/pkgconfig/seatgate.pc
check "seatgate.pc staged in LIBDIR/pkgconfig" test -f "$pc"
check ".pc prefix is the final prefix" grep -qx "prefix=$final" "$pc"
check ".pc libdir is \${prefix}/lib/x86_64-linux-gnu" grep -qx 'libdir=${prefix}/lib/x86_64-linux-gnu' "$pc"
check ".pc never names DESTDIR" lacks "$stage" "$(cat "$pc")"
# shellcheck disable=SC2046
check "a consumer builds against the staged tree (PKG_CONFIG_SYSROOT_DIR)" \
  env PKG_CONFIG_LIBDIR="$stage$multiarch/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$stage" \
  bash -c "'$CC' ${STRICT[*]} tests/install/consumer.c \$(pkg-config --cflags --libs seatgate) -o '$tmp/consumer-staged' \
           && LD_LIBRARY_PATH='$stage$multiarch' '$tmp/consumer-staged' '$version' '$tmp/seats.toml'"
must "make uninstall with DESTDIR" "${MAKE_CMD[@]}" uninstall DESTDIR="$stage" PREFIX="$final" LIBDIR="$multiarch" >/dev/null
check "uninstall with DESTDIR leaves no file or link" same "$(find "$stage" ! -type d)" ""

# ---- 6. uninstall keeps another version ----
# An older version still installed beside this one (as a distribution would keep it
# for the programs built with it): uninstall must not take its file or its link.
touch "$libdir/libseatgate.so.0.0.9"
ln -s libseatgate.so.0.0.9 "$libdir/libseatgate.so.0.0"
must "make uninstall" "${MAKE_CMD[@]}" uninstall PREFIX="$prefix" >/dev/null
check "uninstall removed every file it installed" \
  same "$(cd "$prefix" && find . ! -type d | sort | tr '\n' ' ')" "./lib/libseatgate.so.0.0 ./lib/libseatgate.so.0.0.9 "
check "uninstall left the other version's link intact" same "$(readlink "$libdir/libseatgate.so.0.0")" libseatgate.so.0.0.9

# ---- 7. the build tree ----
check "$RELEASE/$soname links to libseatgate.so (make lib)" same "$(readlink $RELEASE/"$soname" || true)" libseatgate.so
must "build against the build tree" "$CC" "${STRICT[@]}" -Iinclude tests/install/consumer.c \
  -L$RELEASE -Wl,-rpath,"$PWD/$RELEASE" -lseatgate -o "$tmp/consumer-buildtree"
check "the build-tree rpath finds $soname" \
  has "$soname => $PWD/$RELEASE/$soname " "$(env -u LD_LIBRARY_PATH ldd "$tmp/consumer-buildtree")"
check "the build-tree consumer runs through its rpath" \
  env -u LD_LIBRARY_PATH "$tmp/consumer-buildtree" "$version" "$tmp/seats.toml"

echo "test-install: $passed passed, $failed failed (version $version, SONAME $soname)"
[ "$failed" -eq 0 ]
