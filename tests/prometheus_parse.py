#!/usr/bin/env python3
"""LICENSE_REPORT_PROMETHEUS through the Prometheus project's own parser.

A host (this script, through ctypes on libseatgate.so) takes and is refused seats in
an shm table; then the Prometheus text of license_report (in the host) and of
`seatgate report --format prometheus` (the CLI, from outside) are both parsed with
prometheus_client.parser.text_string_to_metric_families and every value is checked
against the state the script made. Label values with a quote, a backslash and a line
feed must come back exactly. Finally the CLI must have changed nothing in the table.

Run by `make test-cli`: SEATGATE_LIB (libseatgate.so) and SEATGATE_CLI (the seatgate
command) name what `make lib` built. Needs python3-prometheus-client (scripts/setup.sh).
"""

import ctypes
import os
import shutil
import subprocess
import sys
import tempfile
import time

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    sys.exit("prometheus_parse: python3 has no prometheus_client; run `bash scripts/setup.sh` "
             "(installs python3-prometheus-client)")

LIB = os.environ.get("SEATGATE_LIB", "target/release/libseatgate.so")
CLI = os.environ.get("SEATGATE_CLI", "target/release/seatgate")
LICENSE_REPORT_PROMETHEUS = 2
LICENSE_OK = 0

# A licensee and a description that need every escape of the text format.
LICENSEE = 'ACME "Call" Center\\Ops\nnight shift'
DESCRIPTION = 'Operator "A" \\ queue\nsecond line'

checks = 0


def check(condition, what):
    global checks
    checks += 1
    if not condition:
        raise AssertionError(what)


def toml_string(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def config_text(table, state_dir):
    return f"""state_dir = {toml_string(state_dir)}

[licensee]
name = {toml_string(LICENSEE)}
support_until = "2031-05-31"
valid_until = "2032-12-31"

[backend]
kind = "shm"
path = {toml_string(table)}
capacity = 64

[licenses.user]
limit = 10

[licenses.callcenter]
limit = 3
description = {toml_string(DESCRIPTION)}
valid_until = "2030-01-31"

[licenses.chat]
limit = 1
count = "session"

[profiles.operator]
consumes = ["user", "callcenter"]

[profiles.support]
consumes = ["user", "callcenter"]
reserve = {{ callcenter = 1 }}

[profiles.chat_team]
consumes = ["chat"]

[emergency]
seats = 2
types = ["user"]
duration = "30d"

[tenants.acme]
licenses = {{ callcenter = 2 }}
"""


class Seatgate:
    def __init__(self, path):
        lib = ctypes.CDLL(path)
        lib.license_init.argtypes = [ctypes.c_char_p]
        lib.license_try_acquire.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_uint64)]
        lib.license_release.argtypes = [ctypes.c_uint64]
        lib.license_report.argtypes = [ctypes.c_uint32, ctypes.c_char_p, ctypes.c_size_t,
                                       ctypes.POINTER(ctypes.c_size_t)]
        lib.license_usage.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_uint32),
                                      ctypes.POINTER(ctypes.c_uint32)]
        lib.license_last_error.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)]
        lib.license_strerror.restype = ctypes.c_char_p
        self.lib = lib

    def error(self):
        buf = ctypes.create_string_buffer(512)
        self.lib.license_last_error(buf, len(buf), None)
        return buf.value.decode()

    def ok(self, rc, what):
        if rc != LICENSE_OK:
            raise AssertionError(f"{what}: {self.lib.license_strerror(rc).decode()}: {self.error()}")

    def acquire(self, user, profiles):
        seat = ctypes.c_uint64()
        rc = self.lib.license_try_acquire(user.encode(), profiles.encode(), ctypes.byref(seat))
        return rc, seat.value

    def usage(self, name):
        used, limit = ctypes.c_uint32(), ctypes.c_uint32()
        self.ok(self.lib.license_usage(name.encode(), ctypes.byref(used), ctypes.byref(limit)), f"usage {name}")
        return used.value, limit.value

    def prometheus(self):
        needed = ctypes.c_size_t()
        self.ok(self.lib.license_report(LICENSE_REPORT_PROMETHEUS, None, 0, ctypes.byref(needed)), "size query")
        buf = ctypes.create_string_buffer(needed.value + 4096)
        self.ok(self.lib.license_report(LICENSE_REPORT_PROMETHEUS, buf, len(buf), ctypes.byref(needed)),
                "license_report(LICENSE_REPORT_PROMETHEUS)")
        return buf.value.decode()


def parse(text, source):
    """Every sample as {(name, frozenset(labels)): value}, and the families' types."""
    samples, types, names = {}, {}, []
    for family in text_string_to_metric_families(text):
        names.append(family.name)
        types[family.name] = family.type
        for s in family.samples:
            key = (s.name, frozenset(s.labels.items()))
            check(key not in samples, f"{source}: sample {key} twice")
            samples[key] = s.value
    check(len(names) == len(set(names)), f"{source}: a family appears twice: {names}")
    for name, kind in types.items():
        check(name.startswith("seatgate_"), f"{source}: metric {name} is not seatgate_*")
        check(kind in ("gauge", "counter"), f"{source}: {name} is a {kind}")
    for (name, _), _ in samples.items():
        family = name[: -len("_total")] if name.endswith("_total") else name
        if types.get(family) == "counter":
            check(name.endswith("_total"), f"{source}: counter sample {name} lacks _total")
    # Every family has its HELP and TYPE lines in the text itself.
    for line in text.splitlines():
        if line.startswith("#"):
            check(line.startswith("# HELP seatgate_") or line.startswith("# TYPE seatgate_"), f"{source}: {line}")
    help_count = sum(1 for line in text.splitlines() if line.startswith("# HELP "))
    type_count = sum(1 for line in text.splitlines() if line.startswith("# TYPE "))
    check(help_count == type_count == len(names), f"{source}: {help_count} HELP, {type_count} TYPE, {len(names)} families")
    return samples, types


def value(samples, name, source, **labels):
    key = (name, frozenset(labels.items()))
    if key not in samples:
        near = sorted(str(dict(l)) for (n, l) in samples if n == name)
        raise AssertionError(f"{source}: no sample {name}{labels}; {name} has {near}")
    return samples[key]


def end_of_day(date):
    """The instant after the UTC day YYYY-MM-DD."""
    import calendar
    y, m, d = (int(x) for x in date.split("-"))
    return calendar.timegm((y, m, d, 0, 0, 0)) + 86400


def expect_state(samples, types, source):
    def v(name, **labels):
        return value(samples, name, source, **labels)

    default = dict(tenant="")
    # What the script did: alice and bob (operator), carol (support: the reserved
    # seat), dave refused on callcenter; erin chat; frank refused on chat.
    for name, used, limit, peak, acquired, denied in [
        ("user", 3, 10, 3, 3, 0),
        ("callcenter", 3, 3, 3, 3, 1),
        ("chat", 1, 1, 1, 1, 1),
    ]:
        t = dict(default, type=name)
        check(v("seatgate_license_seats_used", **t) == used, f"{source}: {name} used")
        check(v("seatgate_license_seats_limit", **t) == limit, f"{source}: {name} limit")
        check(v("seatgate_license_seats_peak", **t) == peak, f"{source}: {name} peak")
        check(v("seatgate_license_acquired_total", **t) == acquired, f"{source}: {name} acquired")
        check(v("seatgate_license_denied_total", **t) == denied, f"{source}: {name} denied")
        check(v("seatgate_license_expired", **t) == 0, f"{source}: {name} expired")
    check(types["seatgate_license_acquired"] == "counter", f"{source}: acquired is a counter")
    check(types["seatgate_license_seats_used"] == "gauge", f"{source}: used is a gauge")
    cc = dict(default, type="callcenter")
    check(v("seatgate_license_status", **cc, status="full") == 1, f"{source}: callcenter full")
    check(v("seatgate_license_status", **cc, status="ok") == 0, f"{source}: callcenter not ok")
    check(v("seatgate_license_status", tenant="", type="user", status="ok") == 1, f"{source}: user ok")
    check(v("seatgate_license_valid_until_timestamp_seconds", **cc) == end_of_day("2030-01-31"),
          f"{source}: callcenter valid_until")
    check(v("seatgate_license_info", **cc, count="user", description=DESCRIPTION) == 1,
          f"{source}: the description comes back unescaped")
    check(v("seatgate_license_info", tenant="", type="chat", count="session", description="") == 1,
          f"{source}: chat info")
    check(v("seatgate_license_pool_seats", **cc, profile="support", kind="reserved") == 1, f"{source}: reserve")
    check(v("seatgate_license_pool_seats_used", **cc, profile="support", kind="reserved") == 1,
          f"{source}: reserve in use")
    check(v("seatgate_holders", **default) == 4, f"{source}: holders")
    check(v("seatgate_seat_handles", **default) == 4, f"{source}: handles")
    check(v("seatgate_backend_degraded", **default) == 0, f"{source}: degraded")
    info = [dict(l) for (n, l) in samples if n == "seatgate_info"]
    check(len(info) == 1 and info[0]["licensee"] == LICENSEE and info[0]["backend"] == "shm",
          f"{source}: seatgate_info {info}")
    check(v("seatgate_valid_until_timestamp_seconds") == end_of_day("2032-12-31"), f"{source}: valid_until")
    check(v("seatgate_support_until_timestamp_seconds") == end_of_day("2031-05-31"), f"{source}: support")
    check(v("seatgate_emergency_state", state="never used") == 1, f"{source}: emergency never used")
    check(v("seatgate_emergency_state", state="open") == 0, f"{source}: emergency not open")
    check(v("seatgate_emergency_can_activate") == 1, f"{source}: emergency can activate")
    check(v("seatgate_emergency_seats") == 2, f"{source}: emergency seats")
    check(v("seatgate_tenants") == 1, f"{source}: tenants")
    # The tenant acme: gina logged in, henry was refused (acme's own limit is 2, one
    # of them reserved for the support profile).
    acme = dict(tenant="acme", type="callcenter")
    check(v("seatgate_license_seats_used", **acme) == 1, f"{source}: acme used")
    check(v("seatgate_license_seats_limit", **acme) == 2, f"{source}: acme limit")
    check(v("seatgate_license_denied_total", **acme) == 1, f"{source}: acme denied")
    check(v("seatgate_holders", tenant="acme") == 1, f"{source}: acme holders")


def main():
    for path in (LIB, CLI):
        if not os.path.exists(path):
            sys.exit(f"prometheus_parse: {path} does not exist: run `make lib` first")
    work = tempfile.mkdtemp(prefix="seatgate-prom-")
    shm_dir = "/dev/shm" if os.path.isdir("/dev/shm") else work
    table = os.path.join(shm_dir, f"seatgate-prom-{os.getpid()}")
    try:
        os.mkdir(os.path.join(work, "state"))
        config = os.path.join(work, "seats.toml")
        with open(config, "w") as f:
            f.write(config_text(table, os.path.join(work, "state")))

        sg = Seatgate(LIB)
        sg.ok(sg.lib.license_init(config.encode()), "license_init")
        seats = {}
        for user, profiles in [("alice", "operator"), ("bob", "operator"), ("carol", "support"),
                               ("erin", "chat_team")]:
            rc, seat = sg.acquire(user, profiles)
            sg.ok(rc, f"acquire {user}")
            seats[user] = seat
        rc, _ = sg.acquire("dave", "operator")
        check(rc != LICENSE_OK and "callcenter" in sg.error(), f"dave refused on callcenter: {sg.error()}")
        rc, _ = sg.acquire("frank", "chat_team")
        check(rc != LICENSE_OK and "chat" in sg.error(), f"frank refused on chat: {sg.error()}")
        # A tenant's pool: acme's callcenter limit is 2, one reserved for support.
        sg.lib.license_try_acquire_ex.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint64), ctypes.c_void_p]

        class Request(ctypes.Structure):
            _fields_ = [("size", ctypes.c_size_t), ("user", ctypes.c_char_p), ("profiles", ctypes.c_char_p),
                        ("extension", ctypes.c_char_p), ("session", ctypes.c_char_p), ("tenant", ctypes.c_char_p)]

        def acquire_in(tenant, user):
            req = Request(ctypes.sizeof(Request), user.encode(), b"operator", None, None, tenant.encode())
            seat = ctypes.c_uint64()
            return sg.lib.license_try_acquire_ex(ctypes.byref(req), ctypes.byref(seat), None)

        sg.ok(acquire_in("acme", "gina"), "acquire gina in acme")
        check(acquire_in("acme", "henry") != LICENSE_OK, "henry refused in acme")

        host_text = sg.prometheus()
        samples, types = parse(host_text, "license_report")
        expect_state(samples, types, "license_report")
        print(f"license_report(LICENSE_REPORT_PROMETHEUS): {len(samples)} samples parsed and checked")

        before = {t: sg.usage(t) for t in ("user", "callcenter", "chat")}
        out = subprocess.run([CLI, "report", "--format", "prometheus", config], capture_output=True, text=True)
        check(out.returncode == 0, f"seatgate report exited {out.returncode}: {out.stderr}")
        cli_samples, cli_types = parse(out.stdout, "seatgate report")
        expect_state(cli_samples, cli_types, "seatgate report")
        # The same series and values from outside as inside (the audit log, which the
        # host has and the CLI does not write, aside: this config has none).
        check(set(cli_samples) == set(samples),
              f"series differ: only host {set(samples) - set(cli_samples)}, only CLI {set(cli_samples) - set(samples)}")
        for key, v in samples.items():
            check(cli_samples[key] == v, f"{key}: host {v}, CLI {cli_samples[key]}")
        print(f"seatgate report --format prometheus: {len(cli_samples)} samples, the same as the host's")

        # The CLI changed nothing, and the host's handles still work.
        after = {t: sg.usage(t) for t in ("user", "callcenter", "chat")}
        check(before == after, f"usage moved under the CLI: {before} -> {after}")
        sg.ok(sg.lib.license_release(seats["alice"]), "release alice after the CLI")
        check(sg.usage("callcenter") == (2, 3), f"callcenter after alice left: {sg.usage('callcenter')}")
        samples, _ = parse(sg.prometheus(), "license_report after a release")
        check(value(samples, "seatgate_license_seats_used", "after", tenant="", type="callcenter") == 2,
              "used after a release")
        check(value(samples, "seatgate_license_acquired_total", "after", tenant="", type="callcenter") == 3,
              "acquired_total does not go down")

        # `seatgate emergency activate` opens the window in the state file; the host
        # follows within a second, and both expositions show it.
        out = subprocess.run([CLI, "emergency", "activate", config], capture_output=True, text=True)
        check(out.returncode == 0, f"seatgate emergency activate exited {out.returncode}: {out.stderr}")
        deadline = time.time() + 5
        while True:
            samples, _ = parse(sg.prometheus(), "license_report, emergency open")
            if value(samples, "seatgate_emergency_state", "host", state="open") == 1 or time.time() > deadline:
                break
            time.sleep(0.1)
        out = subprocess.run([CLI, "report", "--format", "prometheus", config], capture_output=True, text=True)
        check(out.returncode == 0, f"seatgate report, emergency open: {out.stderr}")
        cli_samples, _ = parse(out.stdout, "seatgate report, emergency open")
        for source, got in (("license_report", samples), ("seatgate report", cli_samples)):
            def v(name, **labels):
                return value(got, name, source, **labels)
            check(v("seatgate_emergency_state", state="open") == 1, f"{source}: emergency open")
            check(v("seatgate_emergency_state", state="never used") == 0, f"{source}: emergency used")
            check(v("seatgate_emergency_can_activate") == 0, f"{source}: cannot activate twice")
            check(v("seatgate_license_seats_limit", tenant="", type="user") == 12, f"{source}: user limit 10 + 2")
            check(v("seatgate_license_emergency_seats", tenant="", type="user") == 2, f"{source}: 2 emergency seats")
            ends = v("seatgate_emergency_ends_timestamp_seconds")
            opened = v("seatgate_emergency_opened_timestamp_seconds")
            check(ends - opened == 30 * 86400, f"{source}: a 30-day window ({opened} to {ends})")
            check(abs(opened - time.time()) < 60, f"{source}: opened now ({opened})")
        print("seatgate emergency activate: both expositions show the open window")

        # The other formats parse as what they are, through the same CLI path.
        out = subprocess.run([CLI, "report", "--format", "json", config], capture_output=True, text=True)
        check(out.returncode == 0, f"json report: {out.stderr}")
        import json
        report = json.loads(out.stdout)
        check(report["licensee"]["name"] == LICENSEE, "JSON licensee")
        sg.ok(sg.lib.license_shutdown(), "license_shutdown")
        print(f"prometheus_parse: {checks} checks passed")
    finally:
        for path in [table, table + "@acme", table + "@@tenants"]:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
