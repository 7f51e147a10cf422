#!/usr/bin/env bash
# Prepares what `make asterisk-module` and the load test of `make test-asterisk` need,
# outside this repository: Asterisk's headers from its public source, configured, and
# optionally a small Asterisk installed into a private folder.
#
#   examples/asterisk/prepare-asterisk.sh SRC [--install ROOT]
#
# SRC: an Asterisk source tree (a release tarball, or a checkout of a release tag).
#   When SRC does not exist, the tag $ASTERISK_TAG (default 22.10.1, an LTS release)
#   is cloned from https://github.com/asterisk/asterisk into it.
# --install ROOT: also build Asterisk with only the modules the load test uses
#   (without optimisation, to build quickly) and install it with DESTDIR=ROOT.
#
# Then: make test-asterisk ASTERISK_INCLUDE=SRC/include [ASTERISK_ROOT=ROOT]
set -euo pipefail

src=${1:?usage: prepare-asterisk.sh SRC [--install ROOT]}
root=
if [ "${2:-}" = --install ]; then root=$(realpath -m "${3:?--install needs a folder}"); fi
tag=${ASTERISK_TAG:-22.10.1}
here=$(cd "$(dirname "$0")/../.." && pwd)

# Asterisk's configure needs libedit, jansson, libxml2, sqlite3 and uuid headers.
bash "$here/scripts/setup.sh" asterisk

if [ ! -d "$src" ]; then
  git clone --quiet --depth 1 --branch "$tag" https://github.com/asterisk/asterisk "$src"
fi
cd "$src"
if [ ! -f include/asterisk/autoconfig.h ]; then
  # Bundled pjproject and jansson would be downloaded; neither is needed here.
  ./configure --with-jansson-bundled=no --without-pjproject-bundled --without-pjproject >configure.out 2>&1 ||
    { tail -20 configure.out; exit 1; }
fi
make --quiet menuselect.makeopts >/dev/null
if [ -n "$root" ]; then
  for c in $(menuselect/menuselect --category-list); do
    case $c in
      MENUSELECT_CFLAGS|MENUSELECT_CHANNELSTORAGE) ;;
      *) menuselect/menuselect --disable-category "$c" menuselect.makeopts ;;
    esac
  done
  for m in pbx_config app_verbose func_db func_logic func_strings res_clioriginate DONT_OPTIMIZE; do
    menuselect/menuselect --enable "$m" menuselect.makeopts
  done
  menuselect/menuselect --disable BUILD_NATIVE --disable COMPILE_DOUBLE menuselect.makeopts
fi
# buildopts.h carries AST_BUILDOPT_SUM, which a module must share with the Asterisk
# that loads it: made after the menuselect choices (make remakes it when they change).
make --quiet include/asterisk/buildopts.h >/dev/null
echo "prepare-asterisk: headers of Asterisk $(cat .version 2>/dev/null || echo "$tag") ready: ASTERISK_INCLUDE=$PWD/include"
if [ -n "$root" ]; then
  make -j"$(nproc)" NOISY_BUILD= >build.out 2>&1 || { tail -30 build.out; exit 1; }
  make install DESTDIR="$root" >install.out 2>&1 || { tail -30 install.out; exit 1; }
  echo "prepare-asterisk: Asterisk installed: ASTERISK_ROOT=$root"
fi
