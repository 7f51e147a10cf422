#!/usr/bin/env bash
# Loads res_seatgate.so into a real, private Asterisk and drives it through the
# dialplan, the CLI and a reload. Run by `make test-asterisk` when ASTERISK_ROOT is
# set (an Asterisk installed with `make install DESTDIR=...`, see README.md).
#
#   examples/asterisk/test-in-asterisk.sh ASTERISK_ROOT MODULE.so
#
# Everything lives in a fresh temporary folder (config, modules, control socket,
# logs, AstDB) removed at exit; Asterisk opens no network port (no channel driver,
# no manager, no HTTP is loaded) and is stopped at exit.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=${1:?usage: test-in-asterisk.sh ASTERISK_ROOT MODULE.so}
module=${2:?usage: test-in-asterisk.sh ASTERISK_ROOT MODULE.so}
asterisk_bin=$root/usr/sbin/asterisk
modules_dir=$root/usr/lib/asterisk/modules
[ -x "$asterisk_bin" ] || { echo "test-in-asterisk: no $asterisk_bin" >&2; exit 1; }
[ -f "$module" ] || { echo "test-in-asterisk: no module $module" >&2; exit 1; }
for m in pbx_config app_verbose func_db func_logic func_strings res_clioriginate; do
  [ -f "$modules_dir/$m.so" ] || { echo "test-in-asterisk: $modules_dir/$m.so is missing (build Asterisk with it)" >&2; exit 1; }
done

# Short path: the control socket's path must fit in sun_path.
dir=$(mktemp -d /tmp/sgast.XXXXXX)
export LD_LIBRARY_PATH=$root/usr/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
ast() { "$asterisk_bin" -C "$dir/etc/asterisk.conf" -rx "$1" 2>&1; }
cleanup() {
  if [ -S "$dir/run/asterisk.ctl" ]; then ast "core stop now" >/dev/null 2>&1 || true; fi
  if [ -n "${ast_pid:-}" ]; then
    for _ in $(seq 50); do kill -0 "$ast_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$ast_pid" 2>/dev/null || true
  fi
  if [ -n "${SEATGATE_KEEP_LOG:-}" ]; then cp "$dir/log/messages.log" "$SEATGATE_KEEP_LOG" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT

mkdir -p "$dir"/{etc,modules,var,run,log,spool}
for f in "$modules_dir"/*.so; do ln -s "$f" "$dir/modules/"; done
cp "$module" "$dir/modules/res_seatgate.so"

cat > "$dir/etc/asterisk.conf" <<EOF
[directories]
astetcdir => $dir/etc
astmoddir => $dir/modules
astvarlibdir => $dir/var
astdbdir => $dir/var
astkeydir => $dir/var
astdatadir => $root/var/lib/asterisk
astagidir => $dir/var
astspooldir => $dir/spool
astrundir => $dir/run
astlogdir => $dir/log
[options]
verbose = 4
EOF
cat > "$dir/etc/modules.conf" <<'EOF'
[modules]
autoload = no
load => pbx_config.so
load => app_verbose.so
load => func_db.so
load => func_logic.so
load => func_strings.so
load => res_clioriginate.so
load => res_seatgate.so
EOF
cat > "$dir/etc/logger.conf" <<'EOF'
[logfiles]
messages.log => notice,warning,error,verbose(4)
EOF
cat > "$dir/etc/seatgate.conf" <<'EOF'
[general]
config = seats.toml
EOF
write_toml() {
  cat > "$dir/etc/seats.toml" <<EOF
[licenses.user]
limit = 10
[licenses.callcenter]
limit = $1
[licenses.chat]
limit = 0
[profiles.operator]
consumes = ["user", "callcenter"]
[profiles.chat_team]
consumes = ["chat"]
EOF
}
write_toml 1

# Each extension writes what the dialplan saw into AstDB (family sgtest), which the
# test reads back with `database get`; WAIT holds the channel (and its seat) open.
# The sample dialplan of README.md, to check that it loads as written.
cp "$here/extensions.conf" "$dir/etc/seatgate-extensions.conf"
cat > "$dir/etc/extensions.conf" <<'EOF'
#include seatgate-extensions.conf

[seatgate-test]
; a seat bound to the channel: released when the channel goes away
exten => hold,1,Answer()
 same => n,Set(SEAT=${SEATGATE_ACQUIRE(alice,operator,e(2001))})
 same => n,Set(DB(sgtest/hold)=${SEATGATE_STATUS}|${SEAT}|${SEATGATE_SEAT})
 same => n,Wait(${DB(sgtest/hold_for)})
 same => n,Hangup()

; the callcenter type is full while alice holds it
exten => refused,1,Answer()
 same => n,Set(SEAT=${SEATGATE_ACQUIRE(bob,operator)})
 same => n,Set(DB(sgtest/refused)=${SEATGATE_STATUS}|${SEATGATE_REFUSED_TYPE}|${SEATGATE_DENIAL}|${SEAT}|${SEATGATE_REASON})
 same => n,Hangup()

; a kept seat (k) outlives the channel; its id goes to AstDB, as a queue login would
exten => keep,1,Answer()
 same => n,Set(SEAT=${SEATGATE_ACQUIRE(carol,operator,ke(2003))})
 same => n,Set(DB(sgtest/keep)=${SEATGATE_STATUS})
 same => n,Set(DB(sgtest/carol_seat)=${SEAT})
 same => n,Hangup()

; logout: release the kept seat, then release it again, then a malformed id
exten => logout,1,Answer()
 same => n,Set(R1=${SEATGATE_RELEASE(${DB(sgtest/carol_seat)})})
 same => n,Set(R2=${SEATGATE_RELEASE(${DB(sgtest/carol_seat)})})
 same => n,Set(R3=${SEATGATE_RELEASE(sg1_0000_00000000002A)})
 same => n,Set(DB(sgtest/logout)=${R1}|${R2}|${R3}|${SEATGATE_REASON})
 same => n,Hangup()

; chat has no seats; an unknown profile; a missing user; a bad option; a list
; joined with & and a quoted one
exten => errors,1,Answer()
 same => n,Set(S1=${SEATGATE_ACQUIRE(dave,chat_team)}${SEATGATE_STATUS}/${SEATGATE_DENIAL}/${SEATGATE_REFUSED_TYPE})
 same => n,Set(S2=${SEATGATE_ACQUIRE(dave,operatorr)}${SEATGATE_STATUS})
 same => n,Set(S3=${SEATGATE_ACQUIRE(,operator)}${SEATGATE_STATUS})
 same => n,Set(S4=${SEATGATE_ACQUIRE(dave,user,x)}${SEATGATE_STATUS})
 same => n,Set(S5=${SEATGATE_ACQUIRE(dave,user&chat_team)}${SEATGATE_STATUS}/${SEATGATE_REFUSED_TYPE})
 same => n,Set(S6=${SEATGATE_ACQUIRE(dave,"user,chat_team")}${SEATGATE_STATUS}/${SEATGATE_REFUSED_TYPE})
 same => n,Set(DB(sgtest/errors)=${S1}|${S2}|${S3}|${S4}|${S5}|${S6})
 same => n,Hangup()

; after a reload with callcenter = 2, two operators fit; the dialplan releases one
; bound seat itself, and the hangup must not release it twice
exten => two,1,Answer()
 same => n,Set(A=${SEATGATE_ACQUIRE(erin,operator)})
 same => n,Set(B=${SEATGATE_ACQUIRE(frank,operator)})
 same => n,Set(RA=${SEATGATE_RELEASE(${A})})
 same => n,Set(DB(sgtest/two)=${LEN(${A})}|${LEN(${B})}|${RA})
 same => n,Wait(${DB(sgtest/hold_for)})
 same => n,Hangup()
EOF

"$asterisk_bin" -f -C "$dir/etc/asterisk.conf" > "$dir/log/console.out" 2>&1 &
ast_pid=$!
for _ in $(seq 100); do
  [ -S "$dir/run/asterisk.ctl" ] && ast "core waitfullybooted" >/dev/null 2>&1 && break
  sleep 0.2
done
[ -S "$dir/run/asterisk.ctl" ] || { echo "test-in-asterisk: Asterisk did not start:"; cat "$dir/log/console.out"; exit 1; }

passed=0 failed=0
check() { # check NAME GOT WANT
  if [ "$2" = "$3" ]; then passed=$((passed + 1)); else
    failed=$((failed + 1)); echo "FAILED: $1: got '$2', want '$3'"; fi
}
check_has() { # check_has NAME TEXT NEEDLE
  if printf '%s' "$2" | grep -qF -- "$3"; then passed=$((passed + 1)); else
    failed=$((failed + 1)); echo "FAILED: $1: no '$3' in:"; printf '%s\n' "$2" | sed 's/^/    /'; fi
}
check_lacks() { # check_lacks NAME TEXT NEEDLE
  if printf '%s' "$2" | grep -qF -- "$3"; then failed=$((failed + 1)); echo "FAILED: $1: '$3' in:"
    printf '%s\n' "$2" | sed 's/^/    /'; else passed=$((passed + 1)); fi
}
dbget() { ast "database get sgtest $1" | sed -n 's/^Value: //p'; }
# Waits until AstDB has key $1 (the extension ran), up to 10 s.
wait_db() {
  for _ in $(seq 100); do [ -n "$(dbget "$1")" ] && return 0; sleep 0.1; done
  echo "FAILED: extension for '$1' never finished"; failed=$((failed + 1)); return 1
}
# The originating side waits longer than any extension runs: the extension's Hangup()
# ends the pair (a shorter Wait here would hang up the extension early).
originate() { ast "channel originate Local/$1@seatgate-test application Wait 30" >/dev/null; }
# The number after "callcenter" in the report's Licenses table, e.g. 1/1.
callcenter_use() { ast "seatgate show seats" | awk '$1 == "callcenter" { print $2; exit }'; }
wait_use() { # wait_use WANT: until callcenter shows WANT, up to 10 s
  for _ in $(seq 100); do [ "$(callcenter_use)" = "$1" ] && return 0; sleep 0.1; done
  return 1
}

check "module loaded" "$(ast 'module show like res_seatgate' | grep -c 'Running')" "1"
check_has "functions registered" "$(ast 'core show functions like SEATGATE')" "SEATGATE_ACQUIRE"
check_has "functions registered" "$(ast 'core show functions like SEATGATE')" "SEATGATE_RELEASE"

# 1. A seat bound to a channel, and a refusal while it is held.
ast "database put sgtest hold_for 4" >/dev/null
originate hold
wait_db hold
IFS='|' read -r status seat seat_var <<<"$(dbget hold)"
check "hold: status" "$status" "OK"
check "hold: seat id form" "$(printf '%s' "$seat" | grep -cE '^sg1_[0-9a-f]{4}_[0-9a-f]{12}$')" "1"
check "hold: SEATGATE_SEAT" "$seat_var" "$seat"
report=$(ast "seatgate show seats")
check_has "report while held" "$report" "alice"
check_has "report while held" "$report" "2001"
check "callcenter while held" "$(callcenter_use)" "1/1"
originate refused
wait_db refused
IFS='|' read -r status type denial seat reason <<<"$(dbget refused)"
check "refused: status" "$status" "REFUSED"
check "refused: type" "$type" "callcenter"
check "refused: denial" "$denial" "FULL"
check "refused: no seat" "$seat" ""
check_has "refused: reason" "$reason" "callcenter"
# The hold channel hangs up after 4 s: its seat goes with it.
if wait_use "0/1"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAILED: seat not released at hangup: $(callcenter_use)"; fi
check_lacks "report after hangup" "$(ast 'seatgate show seats')" "alice"

# 2. A kept seat outlives its channel; release, double release, malformed id.
originate keep
wait_db carol_seat
check "keep: status" "$(dbget keep)" "OK"
sleep 1.5 # the channel is gone by now
check "kept seat after hangup" "$(callcenter_use)" "1/1"
check_has "kept seat in report" "$(ast 'seatgate show seats')" "carol"
originate logout
wait_db logout
IFS='|' read -r r1 r2 r3 reason <<<"$(dbget logout)"
check "logout: release" "$r1" "OK"
check "logout: second release" "$r2" "UNKNOWN_SEAT"
check "logout: malformed id" "$r3" "INVALID"
check_has "logout: malformed reason" "$reason" "malformed seat id 'sg1_0000_00000000002A'"
check "after logout" "$(callcenter_use)" "0/1"

# 3. Error statuses and profile lists.
originate errors
wait_db errors
IFS='|' read -r s1 s2 s3 s4 s5 s6 <<<"$(dbget errors)"
check "no seats" "$s1" "REFUSED/NO_SEATS/chat"
check "unknown profile" "$s2" "UNKNOWN_PROFILE"
check "missing user" "$s3" "INVALID"
check "bad option" "$s4" "INVALID"
check "& list" "$s5" "REFUSED/chat"
check "quoted list" "$s6" "REFUSED/chat"

# 4. Admin release from the CLI.
originate keep
ast "database del sgtest keep" >/dev/null
for _ in $(seq 50); do [ "$(callcenter_use)" = "1/1" ] && break; sleep 0.1; done
check_has "cli release user" "$(ast 'seatgate release user carol')" "Released 1 seat handle(s) of carol"
check "after admin release" "$(callcenter_use)" "0/1"
check_has "cli release malformed" "$(ast 'seatgate release seat nonsense')" "INVALID"
check_has "cli release user unknown" "$(ast 'seatgate release user nobody')" "UNKNOWN_USER"

# 5. Reload: a new limit; a broken file keeps the running config.
write_toml 2
check_has "reload" "$(ast 'module reload res_seatgate')" "reload"
check "limit after reload" "$(callcenter_use)" "0/2"
ast "database put sgtest hold_for 3" >/dev/null
originate two
wait_db two
check "two operators, explicit release" "$(dbget two)" "21|21|OK"
check "one bound seat left" "$(callcenter_use)" "1/2"
if wait_use "0/2"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAILED: two: $(callcenter_use)"; fi

# 5b. The event mask (seatgate.conf events =): every login is logged by default;
# with "alerts" a login is not, an admin release still is; a value that names no
# event is refused at reload and changes nothing.
check_has "logins logged with events = all" "$(cat "$dir/log/messages.log")" "holds 'callcenter' through seat"
printf '[general]\nconfig = seats.toml\nevents = alerts\n' > "$dir/etc/seatgate.conf"
ast "module reload res_seatgate" >/dev/null
sleep 0.3
lines_before=$(wc -l < "$dir/log/messages.log")
ast "database del sgtest carol_seat" >/dev/null
originate keep
wait_db carol_seat
wait_use "1/2" || true
check_has "alerts: admin release" "$(ast 'seatgate release user carol')" "Released 1 seat handle(s) of carol"
for _ in $(seq 50); do tail -n +"$((lines_before + 1))" "$dir/log/messages.log" | grep -q "(admin)" && break; sleep 0.1; done
new_lines=$(tail -n +"$((lines_before + 1))" "$dir/log/messages.log")
check_has "alerts: the admin release is logged" "$new_lines" "user 'carol' released seat"
check_lacks "alerts: the login is not logged" "$new_lines" "holds 'callcenter'"
printf '[general]\nconfig = seats.toml\nevents = alerts, logins\n' > "$dir/etc/seatgate.conf"
ast "module reload res_seatgate" >/dev/null
for _ in $(seq 50); do grep -q "'logins' names no event" "$dir/log/messages.log" && break; sleep 0.1; done
check_has "bad events refused" "$(cat "$dir/log/messages.log")" "events: event mask 'alerts, logins': 'logins' names no event"
check "bad events: limits kept" "$(callcenter_use)" "0/2"
printf '[general]\nconfig = seats.toml\n' > "$dir/etc/seatgate.conf"
ast "module reload res_seatgate" >/dev/null
printf '[licenses.user]\nlimt = 3\n' > "$dir/etc/seats.toml"
ast "module reload res_seatgate" >/dev/null
check "broken reload keeps limits" "$(callcenter_use)" "0/2"
check_has "broken reload logged" "$(cat "$dir/log/messages.log")" "reload of $dir/etc/seats.toml failed"

# 6. The samples: the dialplan loaded as written, and the sample TOML runs.
sample=$(ast "dialplan show seatgate-agents")
check_has "sample dialplan *45" "$sample" "AgentLogin(\${CALLERID(num)})"
check_has "sample dialplan *46" "$sample" "SEATGATE_ACQUIRE(\${CALLERID(num)},operator,ke(\${CALLERID(num)}))"
check_has "sample dialplan *47" "$sample" "SEATGATE_RELEASE(\${DB_DELETE(seatgate/\${CALLERID(num)})})"
cp "$here/seatgate.toml" "$dir/etc/seats.toml"
ast "module reload res_seatgate" >/dev/null
check "sample seatgate.toml" "$(callcenter_use)" "0/20"

check_has "AMI action registered" "$(ast 'manager show command SeatgateShowSeats')" "SeatgateShowSeats"

# 7. Unload: refused while a channel holds a bound seat (its hangup will call into the
# module), done once it is gone; then load again.
ast "database del sgtest hold" >/dev/null
ast "database put sgtest hold_for 3" >/dev/null
originate hold
wait_db hold
ast "module unload res_seatgate.so" >/dev/null
check "unload refused while a seat is bound" "$(ast 'module show like res_seatgate' | grep -c 'Running')" "1"
wait_use "0/20" || true
sleep 0.5
check_has "unload" "$(ast 'module unload res_seatgate.so')" "Unloaded res_seatgate.so"
check "unloaded" "$(ast 'module show like res_seatgate' | grep -c 'Running')" "0"
write_toml 1
ast "module load res_seatgate.so" >/dev/null
check "loaded again" "$(callcenter_use)" "0/1"

echo "test-in-asterisk ($("$asterisk_bin" -V)): $passed passed, $failed failed"
[ "$failed" -eq 0 ]
