#!/usr/bin/env bash
# Makes a FreeSWITCH include folder for compiling mod_seatgate, from FreeSWITCH's
# source, without building FreeSWITCH:
#
#   examples/freeswitch/fs-headers.sh FREESWITCH_SOURCE OUT_DIR
#   make freeswitch-module FREESWITCH_INCLUDE=OUT_DIR
#
# A module needs src/include/*.h, libteletone's headers (switch.h includes
# libteletone.h) and switch_am_config.h, which FreeSWITCH's ./configure writes from
# src/include/switch_am_config.h.in. ./configure itself needs spandsp >= 3.1.1 and
# sofia-sip >= 1.13.18, newer than Debian 12 ships, so this script fills in the
# template the way configure.ac does ("Checks for integer size") on an LP64 Linux
# host, with the sizes measured by the C compiler, and refuses any other host.
# A FreeSWITCH that is installed already has all of this: point FREESWITCH_INCLUDE at
# its include folder instead (/usr/include/freeswitch, or PREFIX/include).
set -euo pipefail

src=${1:?usage: fs-headers.sh FREESWITCH_SOURCE OUT_DIR}
out=${2:?usage: fs-headers.sh FREESWITCH_SOURCE OUT_DIR}
cc=${CC:-cc}
template="$src/src/include/switch_am_config.h.in"
[ -f "$template" ] || { echo "fs-headers: $template not found: is $src a FreeSWITCH source tree?" >&2; exit 1; }

# The sizes configure.ac checks (AC_CHECK_SIZEOF), from the compiler that builds the module.
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
cat > "$probe/sizes.c" <<'C'
#include <stdio.h>
#include <sys/types.h>
int main(void) {
    printf("%zu %zu %zu %zu %zu %zu\n", sizeof(short), sizeof(int), sizeof(long),
           sizeof(void *), sizeof(size_t), sizeof(ssize_t));
    return 0;
}
C
"$cc" -o "$probe/sizes" "$probe/sizes.c"
read -r short int long voidp size_t ssize_t < <("$probe/sizes")
if [ "$(uname -s)" != Linux ] || [ "$short $int $long $voidp $size_t $ssize_t" != "2 4 8 8 8 8" ]; then
    echo "fs-headers: this host is not LP64 Linux (sizes short int long void* size_t ssize_t: $short $int $long $voidp $size_t $ssize_t); run FreeSWITCH's ./configure instead" >&2
    exit 1
fi

mkdir -p "$out"
cp "$src"/src/include/*.h "$out"/
cp "$src"/libs/libteletone/src/libteletone*.h "$out"/
# configure.ac's choices for sizeof(long) == 8 on Linux: int64 is long, size_t "ld".
sed -e 's/@short_value@/short/' -e 's/@int_value@/int/' -e 's/@long_value@/long/' \
    -e 's/@size_t_value@/size_t/' -e 's/@ssize_t_value@/ssize_t/' -e 's/@voidp_size@/8/' \
    -e 's|@prefix@|/usr/local/freeswitch|' \
    -e 's/@ssize_t_fmt@/#define SWITCH_SSIZE_T_FMT "ld"/' \
    -e 's/@size_t_fmt@/#define SWITCH_SIZE_T_FMT "ld"/' \
    -e 's/@int64_t_fmt@/#define SWITCH_INT64_T_FMT "ld"/' \
    -e 's/@uint64_t_fmt@/#define SWITCH_UINT64_T_FMT "lu"/' \
    "$template" > "$out/switch_am_config.h"
if grep -q '@[a-z_0-9]*@' "$out/switch_am_config.h"; then
    echo "fs-headers: switch_am_config.h.in has placeholders this script does not know:" >&2
    grep '@[a-z_0-9]*@' "$out/switch_am_config.h" >&2
    exit 1
fi
echo "fs-headers: FreeSWITCH headers from $src (commit $(git -C "$src" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)) in $out"
