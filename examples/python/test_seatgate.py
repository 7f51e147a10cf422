#!/usr/bin/env python3
"""Tests of the Python wrapper (make test-python).

- The ctypes structs match the C compiler's layout of include/seatgate.h: sizes,
  offsets and field sizes (struct_layout.c), and the field names in header order.
- Every wrapped call behaves as the header says, through the wrapper: seats, refusals
  with their reasons, errors with their codes and sentences, leases, reports.
- Two processes on one `shm` table share the count, and a handle taken in one can be
  released in the other (what the Kamailio example relies on).
- Events reach a Python callback as the mask chooses, from the caller's thread and
  the reaper's, with the fields of struct license_event; a callback that raises
  changes nothing for the login; the wrapper's numbers are the header's.
- crm_login.py runs and prints the story it promises.

Run: python3 examples/python/test_seatgate.py   (needs target/release/libseatgate.so
and a C compiler; `make test-python` builds the library first).
"""

import os
import re
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest
import ctypes
import io
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
HEADER = os.path.join(ROOT, "include", "seatgate.h")
sys.dont_write_bytecode = True  # keep the source tree free of __pycache__
sys.path.insert(0, HERE)
import seatgate  # noqa: E402


def write_config(folder, text, name="seats.toml"):
    path = os.path.join(folder, name)
    with open(path, "w") as f:
        f.write(textwrap.dedent(text))
    return path


BASIC = """
[licenses.user]
limit = 3
[licenses.callcenter]
limit = 2
[licenses.chat]
limit = 0
[licenses.recording]
limit = 5
requires = ["callcenter"]
[licenses.api]
limit = 2
count = "session"
lease = "400ms"
[profiles.agent]
consumes = ["user", "callcenter"]
[profiles.chat_team]
consumes = ["chat"]
[profiles.connector]
consumes = ["api"]
[reaper]
interval = "50ms"
"""


class StructLayout(unittest.TestCase):
    """The ctypes structs are the C structs, byte for byte."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        exe = os.path.join(cls.tmp.name, "struct_layout")
        cc = os.environ.get("CC", "cc")
        subprocess.run([cc, "-std=c11", "-Wall", "-Wextra", "-Werror", "-I", os.path.join(ROOT, "include"),
                        os.path.join(HERE, "struct_layout.c"), "-o", exe], check=True)
        out = subprocess.run([exe], check=True, capture_output=True, text=True).stdout
        cls.sizes, cls.fields, cls.version = {}, {}, None
        for line in out.splitlines():
            words = line.split()
            if words[0] == "SEATGATE_VERSION":
                cls.version = words[1]
            elif words[1] == "size":
                cls.sizes[words[0]] = int(words[2])
            else:
                struct, field = words[0].split(".")
                cls.fields[(struct, field)] = (int(words[1]), int(words[2]))

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_sizes_and_offsets_match_the_c_compiler(self):
        for name, cls in seatgate.STRUCTS.items():
            with self.subTest(struct=name):
                self.assertEqual(ctypes.sizeof(cls), self.sizes[name], f"sizeof(struct {name})")
                for field, _ in cls._fields_:
                    descr = getattr(cls, field)
                    self.assertEqual((descr.offset, descr.size), self.fields[(name, field)],
                                     f"offsetof/sizeof of {name}.{field}")
        self.assertEqual(ctypes.sizeof(ctypes.c_uint64), self.sizes["license_seat"])

    def test_field_names_follow_the_header(self):
        header = open(HEADER).read()
        for name, cls in seatgate.STRUCTS.items():
            with self.subTest(struct=name):
                body = re.search(r"typedef struct %s \{(.*?)\} %s;" % (name, name), header, re.S)
                self.assertIsNotNone(body, f"struct {name} not found in the header")
                code = re.sub(r"/\*.*?\*/", "", body.group(1), flags=re.S)
                names = []
                for decl in code.split(";"):
                    decl = decl.strip()
                    if decl:  # "uint32_t used, limit" never happens here, but be exact
                        names.extend(re.findall(r"(\w+)\s*(?:\[\d+\])?\s*$", part)[0]
                                     for part in decl.split(","))
                self.assertEqual([f for f, _ in cls._fields_], names)
        self.assertEqual(set(seatgate.STRUCTS),
                         {"license_request", "license_denial", "license_type_stats", "license_event"})

    def test_version_matches_the_header(self):
        self.assertEqual(seatgate.version(), self.version)
        self.assertRegex(seatgate.version(), r"^\d+\.\d+\.\d+")


class Events(unittest.TestCase):
    """license_set_event_callback and the mask, through the wrapper."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.config = write_config(self.tmp.name, BASIC)
        self.heard = []
        self.lock = threading.Lock()
        seatgate.init(self.config)

    def tearDown(self):
        seatgate.on_event(None)
        seatgate.set_event_mask("all")
        seatgate.shutdown()
        self.tmp.cleanup()

    def listen(self, mask):
        def keep(event):
            with self.lock:
                self.heard.append((event, threading.get_ident()))
        seatgate.set_event_mask(mask)
        seatgate.on_event(keep)

    def take(self):
        with self.lock:
            heard, self.heard = self.heard, []
        return [e for e, _ in heard]

    def test_every_login_and_logout_with_the_mask_all(self):
        self.listen("all")
        seat = seatgate.try_acquire("alice", "agent")
        got = self.take()
        self.assertEqual([(e.kind, e.license_type, e.user, e.used, e.limit, e.reason) for e in got],
                         [("acquired", "user", "alice", 1, 3, None),
                          ("acquired", "callcenter", "alice", 1, 2, None)])
        self.assertTrue(all(e.seat == int(seat) and e.tenant is None and e.requires is None for e in got))
        self.assertTrue(all(abs(e.time_unix_ms / 1000 - time.time()) < 60 for e in got), got)
        self.assertIn("alice", got[0].detail)
        seat.release()
        self.assertEqual([(e.kind, e.license_type, e.reason, e.reason_code, e.used) for e in self.take()],
                         [("released", "user", "normal", seatgate.RELEASE_NORMAL, 0),
                          ("released", "callcenter", "normal", seatgate.RELEASE_NORMAL, 0)])

    def test_alerts_hear_refusals_and_admin_releases_not_logins(self):
        self.listen("alerts")
        a = seatgate.try_acquire("a", "agent")
        b = seatgate.try_acquire("b", "agent")
        self.assertEqual(self.take(), [], "a login is no alert")
        with self.assertRaises(seatgate.LicenseDenied):
            seatgate.try_acquire("c", "agent")
        (denied,) = self.take()
        self.assertEqual((denied.kind, denied.license_type, denied.user, denied.reason, denied.used, denied.limit),
                         ("denied", "callcenter", "c", "full", 2, 2))
        a.release(admin=True)
        self.assertEqual({(e.kind, e.user, e.reason) for e in self.take()}, {("released", "a", "admin")})
        b.release()
        self.assertEqual(self.take(), [], "the host's own logout is no alert")

    def test_an_expired_lease_is_heard_from_the_reaper_thread(self):
        self.listen("forced_releases")
        seatgate.try_acquire("connector", "connector")
        deadline = time.time() + 5
        while time.time() < deadline and not self.heard:
            time.sleep(0.05)
        with self.lock:
            heard = list(self.heard)
        self.assertEqual([(e.kind, e.license_type, e.user, e.reason) for e, _ in heard],
                         [("released", "api", "connector", "expired")])
        self.assertNotEqual(heard[0][1], threading.get_ident(), "the reaper's thread, not this one")

    def test_a_callback_that_raises_changes_nothing_for_the_login(self):
        def fail(event):
            raise RuntimeError(f"listener bug on {event.kind}")
        seatgate.set_event_mask("all")
        seatgate.on_event(fail)
        err, sys.stderr = sys.stderr, io.StringIO()
        try:
            seat = seatgate.try_acquire("alice", "agent")
            seat.release()
            printed = sys.stderr.getvalue()
        finally:
            sys.stderr = err
        self.assertEqual(seatgate.usage("callcenter"), (0, 2))
        self.assertIn("RuntimeError: listener bug on acquired", printed)
        self.assertIn("RuntimeError: listener bug on released", printed)

    def test_masks_read_from_text_and_bad_input(self):
        self.assertEqual(seatgate.event_mask("all"), seatgate.EVENTS["ALL"])
        self.assertEqual(seatgate.event_mask("alerts, threshold"),
                         seatgate.EVENTS["ALERTS"] | seatgate.EVENTS["THRESHOLD_UP"] | seatgate.EVENTS["THRESHOLD_DOWN"])
        with self.assertRaises(seatgate.SeatgateError) as caught:
            seatgate.set_event_mask("alerts, nonsense")
        self.assertEqual(caught.exception.code, seatgate.ERR_INVALID_ARGUMENT)
        self.assertIn("nonsense", caught.exception.detail)
        with self.assertRaises(seatgate.SeatgateError) as caught:
            seatgate.set_event_mask(1 << 20)
        self.assertEqual(caught.exception.code, seatgate.ERR_INVALID_ARGUMENT)
        with self.assertRaises(TypeError):
            seatgate.on_event(42)

    def test_the_numbers_are_the_headers(self):
        header = open(HEADER).read()
        defines = dict(re.findall(r"#define LICENSE_EVENTS_(\w+) (\d+)", header))
        self.assertEqual({k: int(v) for k, v in defines.items()}, seatgate.EVENTS)

        def enum(name, prefix):
            body = re.search(r"enum %s\b[^{]*\{(.*?)\};" % name, header, re.S).group(1)
            return {int(v): k.lower() for k, v in re.findall(r"%s(\w+) = (\d+)" % prefix, body)}
        self.assertEqual(enum("license_event_kind", "LICENSE_EVENT_"), seatgate.EVENT_KINDS)
        self.assertEqual(enum("license_release_reason", "LICENSE_RELEASE_"), seatgate.RELEASE_REASONS)
        self.assertEqual(enum("license_denial_reason", "LICENSE_DENIAL_"), seatgate.DENIAL_REASONS)


class Api(unittest.TestCase):
    """The wrapper's calls, against a fresh table per test."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.config = write_config(self.tmp.name, BASIC)
        seatgate.init(self.config)

    def tearDown(self):
        seatgate.shutdown()
        self.tmp.cleanup()

    def test_acquire_release_and_usage(self):
        seat = seatgate.try_acquire("alice", "agent", extension="2001", session="s-1")
        self.assertIsInstance(seat, seatgate.Seat)
        self.assertNotEqual(int(seat), 0)
        self.assertEqual(seatgate.usage("user"), (1, 3))
        self.assertEqual(seatgate.usage("callcenter"), (1, 2))
        seat.release()
        self.assertEqual(seatgate.usage("callcenter"), (0, 2))

    def test_refusal_names_the_type_and_leaves_nothing_taken(self):
        a = seatgate.try_acquire("a", "agent")
        b = seatgate.try_acquire("b", "agent")
        with self.assertRaises(seatgate.LicenseDenied) as caught:
            seatgate.try_acquire("c", "agent")
        refusal = caught.exception
        self.assertEqual(refusal.code, seatgate.ERR_LIMIT_REACHED)
        self.assertEqual((refusal.license_type, refusal.used, refusal.limit), ("callcenter", 2, 2))
        self.assertEqual(refusal.reason_name, "full")
        self.assertEqual(str(refusal), "license type 'callcenter' is full (2/2)")
        self.assertEqual(seatgate.last_error(), str(refusal))
        self.assertEqual(refusal.name, seatgate.strerror(seatgate.ERR_LIMIT_REACHED))
        self.assertEqual(seatgate.usage("user"), (2, 3), "all or nothing: no user seat for c")
        a.release()
        b.release()

    def test_limit_zero_is_no_seats(self):
        with self.assertRaises(seatgate.LicenseDenied) as caught:
            seatgate.try_acquire("a", "agent,chat_team")
        self.assertEqual((caught.exception.license_type, caught.exception.reason_name), ("chat", "no_seats"))
        self.assertEqual(seatgate.usage("callcenter"), (0, 2))

    def test_requirement_missing(self):
        with self.assertRaises(seatgate.LicenseDenied) as caught:
            seatgate.try_acquire("a", "recording")
        refusal = caught.exception
        self.assertEqual(refusal.code, seatgate.ERR_REQUIREMENT_MISSING)
        self.assertEqual((refusal.license_type, refusal.requires, refusal.reason_name),
                         ("recording", "callcenter", "requirement_missing"))

    def test_errors_carry_code_name_and_sentence(self):
        with self.assertRaises(seatgate.SeatgateError) as caught:
            seatgate.try_acquire("a", "no_such_profile")
        self.assertNotIsInstance(caught.exception, seatgate.LicenseDenied)
        self.assertEqual(caught.exception.code, seatgate.ERR_UNKNOWN_PROFILE)
        self.assertIn("no_such_profile", caught.exception.detail)
        with self.assertRaises(seatgate.SeatgateError) as caught:
            seatgate.try_acquire("bad\nname", "agent")
        self.assertEqual(caught.exception.code, seatgate.ERR_INVALID_ARGUMENT)
        with self.assertRaises(seatgate.SeatgateError) as caught:
            seatgate.usage("nothing")
        self.assertEqual(caught.exception.code, seatgate.ERR_UNKNOWN_LICENSE_TYPE)
        with self.assertRaises(seatgate.SeatgateError) as caught:
            seatgate.init(self.config)
        self.assertEqual(caught.exception.code, seatgate.ERR_ALREADY_INITIALIZED)

    def test_double_release_is_unknown_seat(self):
        seat = seatgate.try_acquire("a", "agent")
        seat.release()
        with self.assertRaises(seatgate.SeatgateError) as caught:
            seat.release()
        self.assertEqual(caught.exception.code, seatgate.ERR_UNKNOWN_SEAT)
        with self.assertRaises(seatgate.SeatgateError) as caught:
            seatgate.touch(seat)
        self.assertEqual(caught.exception.code, seatgate.ERR_UNKNOWN_SEAT)

    def test_seat_as_context_manager_and_from_integer(self):
        with seatgate.try_acquire("a", "agent") as seat:
            self.assertEqual(seatgate.usage("callcenter"), (1, 2))
            again = seatgate.Seat(int(seat))
            self.assertEqual(again, seat)
        self.assertEqual(seatgate.usage("callcenter"), (0, 2))

    def test_touch_renews_the_lease_and_an_expired_seat_is_gone(self):
        seat = seatgate.try_acquire("connector", "connector")
        for _ in range(4):  # 4 x 200 ms = twice the lease, renewed every 200 ms
            time.sleep(0.2)
            seat.touch()
        self.assertEqual(seatgate.usage("api"), (1, 2))
        time.sleep(0.8)  # twice the lease without a touch; the reaper runs every 50 ms
        self.assertEqual(seatgate.usage("api"), (0, 2))
        with self.assertRaises(seatgate.SeatgateError) as caught:
            seat.touch()
        self.assertEqual(caught.exception.code, seatgate.ERR_UNKNOWN_SEAT)

    def test_per_user_calls(self):
        seatgate.try_acquire("a", "agent")
        seatgate.try_acquire("a", "agent")  # a second device: same user seat
        self.assertEqual(seatgate.usage("user"), (1, 3))
        self.assertEqual(seatgate.touch_user("a"), 2)
        self.assertEqual(seatgate.release_user("a"), 2)
        self.assertEqual(seatgate.usage("user"), (0, 3))
        with self.assertRaises(seatgate.SeatgateError) as caught:
            seatgate.touch_user("a")
        self.assertEqual(caught.exception.code, seatgate.ERR_UNKNOWN_USER)

    def test_reports_in_each_format(self):
        seats = [seatgate.try_acquire(u, "agent", extension=e) for u, e in (("ana", "2001"), ("bob", "2002"))]
        text = seatgate.report()
        self.assertIn("used/limit", text)
        self.assertRegex(text, r"callcenter\s+2/2")
        self.assertIn("2001", text)
        data = seatgate.report("json")
        by_type = {lic["name"]: lic for lic in data["licenses"]}
        self.assertEqual((by_type["callcenter"]["used"], by_type["callcenter"]["limit"]), (2, 2))
        self.assertEqual(sorted(h["user"] for h in data["holders"]), ["ana", "bob"])
        page = seatgate.report("json", first_row=1, max_rows=1)
        self.assertEqual(len(page["holders"]), 1)
        self.assertIn("showing 1 to 1 of 2", seatgate.report("text", first_row=0, max_rows=1))
        metrics = seatgate.report("prometheus")
        self.assertIn("# TYPE seatgate_license_seats_used gauge", metrics)
        self.assertRegex(metrics, r'seatgate_license_seats_used\{[^}]*type="callcenter"[^}]*\} 2\n')
        with self.assertRaises(ValueError):
            seatgate.report("xml")
        self.assertEqual(seatgate.license_types(), ["user", "callcenter", "chat", "recording", "api"])
        for seat in seats:
            seat.release()


class Lifecycle(unittest.TestCase):
    def test_not_initialized_and_bad_config(self):
        with self.assertRaises(seatgate.SeatgateError) as caught:
            seatgate.try_acquire("a", "agent")
        self.assertEqual(caught.exception.code, seatgate.ERR_NOT_INITIALIZED)
        with tempfile.TemporaryDirectory() as tmp:
            bad = write_config(tmp, "[licenses.user]\nlimt = 3\n")
            with self.assertRaises(seatgate.SeatgateError) as caught:
                seatgate.init(bad)
            self.assertEqual(caught.exception.code, seatgate.ERR_CONFIG)
            self.assertRegex(caught.exception.detail, r"seats\.toml:2:1: unknown field `limt`")
            with self.assertRaises(seatgate.SeatgateError) as caught:
                seatgate.init(os.path.join(tmp, "missing.toml"))
            self.assertEqual(caught.exception.code, seatgate.ERR_CONFIG)

    def test_shm_table_is_shared_between_processes(self):
        with tempfile.TemporaryDirectory() as tmp:
            config = write_config(tmp, f"""
                [licenses.extension]
                limit = 2
                [backend]
                kind = "shm"
                path = "{tmp}/table"
                capacity = 64
                """)
            seatgate.init(config)
            try:
                mine = seatgate.try_acquire("2001", "extension")
                # Another process (as another Kamailio worker is) maps the same table.
                child = subprocess.Popen(
                    [sys.executable, "-c", textwrap.dedent(f"""
                        import sys; sys.path.insert(0, {HERE!r})
                        import seatgate
                        seatgate.init({config!r})
                        print(int(seatgate.try_acquire("2002", "extension")))
                        try:
                            seatgate.try_acquire("2003", "extension")
                        except seatgate.LicenseDenied as e:
                            print(e)
                        sys.stdout.flush()
                        sys.stdin.readline()            # the parent released our handle
                        print("child sees %d/%d" % seatgate.usage("extension"))
                        seatgate.shutdown()
                        """)],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                try:
                    handle = int(child.stdout.readline())
                    self.assertEqual(child.stdout.readline().strip(), "license type 'extension' is full (2/2)")
                    self.assertEqual(seatgate.usage("extension"), (2, 2))
                    # The child is alive: its handle is released by this process, as
                    # the worker handling an unREGISTER releases another worker's seat.
                    seatgate.Seat(handle).release()
                    self.assertEqual(seatgate.usage("extension"), (1, 2))
                    child.stdin.write("go\n")
                    child.stdin.flush()
                    self.assertEqual(child.stdout.readline().strip(), "child sees 1/2")
                    self.assertEqual(child.wait(timeout=30), 0)
                finally:
                    if child.poll() is None:
                        child.kill()
                        child.wait()
                    child.stdin.close()
                    child.stdout.close()
                mine.release()
                self.assertEqual(seatgate.usage("extension"), (0, 2))
            finally:
                seatgate.shutdown()


class CrmExample(unittest.TestCase):
    def test_crm_login_story(self):
        run = subprocess.run([sys.executable, os.path.join(HERE, "crm_login.py")],
                             capture_output=True, text=True, timeout=60)
        out = run.stdout
        self.assertEqual(run.returncode, 0, run.stderr + out)
        expected = [
            "login ana    as agent            ok",
            "login davi   as agent            REFUSED: license type 'callcenter' is full (3/3)",
            "       refusal: type=callcenter used/limit=3/3 reason=full",
            "  usage: user 3/10, callcenter 3/3",
            "login erin   as admin            ok",
            "login fabio  as admin            REFUSED: license type 'crm' is full (1/1)",
            "login ana    as agent,chat_team  ok",
            "login bruno  as agent,chat_team  REFUSED: license type 'chat' is full (1/1)",
            "  usage: user 4/10, callcenter 3/3, chat 1/1",
            "logout bruno",
            "login davi   as agent            ok",
            "  usage: user 4/10, callcenter 3/3, chat 1/1",
            "connector touched twice: still held, api 1/1",
            "second release of erin's seat: ",
            "online now: ana, carla, davi",
            "Online licenses",
        ]
        position = 0
        for line in expected:
            found = out.find(line, position)
            self.assertGreaterEqual(found, 0, f"missing, or out of order: {line!r}\n--- output:\n{out}")
            position = found + len(line)
        self.assertRegex(out, r"connector lease ran out: .*; api 0/1")
        self.assertRegex(out, r"callcenter\s+3/3")


if __name__ == "__main__":
    unittest.main(verbosity=2)
