#!/usr/bin/env python3
"""End-to-end test of the Kamailio registrar example (make test-kamailio).

Starts Kamailio (kamailio.cfg + seatgate_registrar.py, 2 UDP workers) in the foreground
on 127.0.0.1 on a free UDP port, with its pid file, runtime dir and seat table in a
temporary folder, and drives it with sipp (register.xml):

 1. limit + 2 extensions REGISTER at once: exactly `limit` get 200, 2 get 403 whose
    reason phrase names the full type;
 2. a renewal REGISTER is answered 200 and restarts the seat's lease; a refused
    extension trying again is still refused;
 3. two extensions unREGISTER (Expires: 0): their seats are free;
 4. the two refused extensions now get 200, and the next one 403;
 5. a registration with Expires: 2 that is not renewed expires, and its seat with it;
 6. everyone unregisters: no seat is left.

After every step, the report read through the Python wrapper attached to the same shm
table (another process than Kamailio's workers) must show exactly the registered
extensions. Kamailio is stopped on exit, whatever happens. Its log must hold no error.
Kamailio and sipp are installed by scripts/setup.sh when missing.
"""

import atexit
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
PYDIR = os.path.join(ROOT, "examples", "python")
LIB = os.path.join(ROOT, "target", "release", "libseatgate.so")
sys.dont_write_bytecode = True  # keep the source tree free of __pycache__
sys.path.insert(0, PYDIR)
import seatgate  # noqa: E402

TYPE = "extension"
WORKERS = 2


def fail(message):
    print(f"test-kamailio: FAIL: {message}", flush=True)
    sys.exit(1)


def step(message):
    print(f"test-kamailio: {message}", flush=True)


def module_dir():
    """Kamailio's module folder, from the binary's build flags (Debian: multiarch)."""
    for folder in ("/usr/lib/x86_64-linux-gnu/kamailio/modules", "/usr/lib/aarch64-linux-gnu/kamailio/modules",
                   "/usr/lib/kamailio/modules", "/usr/local/lib64/kamailio/modules", "/usr/local/lib/kamailio/modules"):
        if os.path.exists(os.path.join(folder, "registrar.so")):
            return folder
    out = subprocess.run(["sh", "-c", "ls -d /usr/lib/*/kamailio/modules 2>/dev/null"], capture_output=True, text=True)
    return out.stdout.split()[0] if out.stdout.split() else None


def have_tools():
    folder = shutil.which("kamailio") and module_dir()
    return bool(folder and shutil.which("sipp") and os.path.exists(os.path.join(folder, "app_python3.so")))


def ensure_tools():
    if not have_tools():
        step("kamailio, kamailio-python3-modules or sipp missing: running scripts/setup.sh")
        subprocess.run(["bash", os.path.join(ROOT, "scripts", "setup.sh")], check=False)
    if not have_tools():
        fail("kamailio with app_python3 and sipp are needed (Debian: kamailio, kamailio-python3-modules, "
             "sip-tester); scripts/setup.sh could not install them")
    if not os.path.exists(LIB):
        fail(f"{LIB} is missing: run `make lib` first")


def versions():
    kam = subprocess.run(["kamailio", "-v"], capture_output=True, text=True).stdout.splitlines()
    sipp = subprocess.run(["sipp", "-v"], capture_output=True, text=True)
    sipp_line = next((line.strip() for line in (sipp.stdout + sipp.stderr).splitlines() if "SIPp v" in line), "?")
    return (kam[0].replace("version: ", "") if kam else "?"), sipp_line


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Kamailio:
    def __init__(self, tmp, port, config):
        self.tmp, self.port, self.config = tmp, port, config
        self.log_path = os.path.join(tmp, "kamailio.log")
        self.pid_file = os.path.join(tmp, "kamailio.pid")
        self.proc = None

    def start(self):
        env = dict(os.environ, SEATGATE_CONFIG=self.config, SEATGATE_LIB=LIB, SEATGATE_PYTHON_DIR=PYDIR)
        command = [
            "kamailio", "-f", os.path.join(HERE, "kamailio.cfg"),
            "-DD", "-E",                                  # stay in the foreground, log to stderr
            "-n", str(WORKERS), "-l", f"udp:127.0.0.1:{self.port}",
            "-P", self.pid_file, "-Y", self.tmp, "-w", self.tmp,
            "-m", "64", "-M", "8",
            "-A", f'KEMI_SCRIPT="{os.path.join(HERE, "seatgate_registrar.py")}"',
            "-A", "REG_MIN_EXPIRES=1",                    # the expiry step registers for 3 s
            "-A", "UL_TIMER_INTERVAL=1",                  # and the expiry timer runs every second
        ]
        log = open(self.log_path, "w")
        # Its own session, so that stop() can reach every process it forked by their group id.
        self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True, cwd=self.tmp)
        log.close()
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                fail(f"kamailio exited at start (status {self.proc.returncode}):\n{self.log_tail()}")
            if self.answers_options():
                return
        fail(f"kamailio did not answer on 127.0.0.1:{self.port} within 20 s:\n{self.log_tail()}")

    def answers_options(self):
        request = (f"OPTIONS sip:127.0.0.1:{self.port} SIP/2.0\r\n"
                   f"Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK-probe{time.time_ns()}\r\n"
                   f"From: <sip:probe@127.0.0.1>;tag=probe\r\nTo: <sip:127.0.0.1>\r\n"
                   f"Call-ID: probe-{time.time_ns()}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
                   f"Content-Length: 0\r\n\r\n")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            local = s.getsockname()[1]
            s.settimeout(0.5)
            s.sendto(request.replace("127.0.0.1:9", f"127.0.0.1:{local}").encode(), ("127.0.0.1", self.port))
            try:
                return s.recv(4096).startswith(b"SIP/2.0 200")
            except (socket.timeout, ConnectionRefusedError):
                return False

    def worker_pids(self):
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.proc.pid)], capture_output=True, text=True)
        return {int(p) for p in out.stdout.split()}

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()                             # kamailio's main process stops its children
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)      # whatever it left behind, by its group id
        except ProcessLookupError:
            pass
        self.proc.wait()

    def log_tail(self, lines=40):
        with open(self.log_path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()


class Sipp:
    def __init__(self, tmp, port):
        self.tmp, self.port, self.runs = tmp, port, 0

    def register(self, rows, concurrent=True):
        """REGISTER each (extension, expires); returns {extension: (code, reason)}."""
        self.runs += 1
        csv = os.path.join(self.tmp, f"run{self.runs}.csv")
        results = os.path.join(self.tmp, f"run{self.runs}.log")
        with open(csv, "w") as f:
            f.write("SEQUENTIAL\n" + "".join(f"{ext};{expires};\n" for ext, expires in rows))
        command = ["sipp", f"127.0.0.1:{self.port}", "-sf", os.path.join(HERE, "register.xml"),
                   "-inf", csv, "-m", str(len(rows)), "-l", str(len(rows) if concurrent else 1), "-r", "200",
                   "-i", "127.0.0.1", "-nostdin", "-trace_logs", "-log_file", results,
                   "-timeout", "20", "-timeout_error"]
        run = subprocess.run(command, capture_output=True, text=True, cwd=self.tmp, timeout=40)
        if run.returncode != 0:
            fail(f"sipp failed (status {run.returncode}) on {rows}:\n{run.stdout[-3000:]}{run.stderr[-2000:]}")
        outcome = {}
        with open(results) as f:
            for line in f:
                m = re.match(r"RESULT (\S+) (?:SIP/2\.0 )?(\d{3})(?: (.*))?$", line.strip())
                if m:
                    outcome[m.group(1)] = (int(m.group(2)), m.group(3) or "")
        missing = [ext for ext, _ in rows if ext not in outcome]
        if missing:
            fail(f"sipp logged no answer for {missing}: {open(results).read()}")
        return outcome


def check_table(expected, what):
    """The report, read through the wrapper from this process, shows exactly `expected`."""
    used, limit = seatgate.usage(TYPE)
    data = seatgate.report("json")
    holders = {h["user"]: h for h in data["holders"]}
    text = seatgate.report()
    if used != len(expected) or set(holders) != set(expected):
        fail(f"{what}: the report shows {TYPE} {used}/{limit} held by {sorted(holders)}, "
             f"expected {len(expected)} held by {sorted(expected)}\n{text}")
    if not re.search(rf"^\s*{TYPE}\s+{used}/{limit}\s", text, re.M):
        fail(f"{what}: the text report has no line '{TYPE} {used}/{limit}':\n{text}")
    step(f"  report: {TYPE} {used}/{limit}, held by {', '.join(sorted(holders)) or 'nobody'}")
    return holders


def main():
    ensure_tools()
    kam_version, sipp_version = versions()
    step(f"{kam_version}; {sipp_version}; seatgate {seatgate.version()}")

    tmp = tempfile.mkdtemp(prefix="seatgate-kamailio-")
    kamailio = None

    def cleanup():
        if kamailio is not None:
            kamailio.stop()
        try:
            seatgate.shutdown()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    atexit.register(cleanup)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: sys.exit(128 + signum))

    # The shipped seats.toml, with its shm table moved into the temporary folder.
    with open(os.path.join(HERE, "seats.toml")) as f:
        shipped = f.read()
    config = os.path.join(tmp, "seats.toml")
    with open(config, "w") as f:
        f.write(re.sub(r'(?m)^path = ".*"', f'path = "{tmp}/table"', shipped, count=1))

    port = free_udp_port()
    kamailio = Kamailio(tmp, port, config)
    kamailio.start()
    seatgate.init(config)                                # this process attaches to the same table
    used, limit = seatgate.usage(TYPE)
    step(f"kamailio on udp:127.0.0.1:{port} with {WORKERS} workers; {TYPE} limit {limit}")
    if used != 0 or limit < 1:
        fail(f"expected an empty table with a limit, got {used}/{limit}")
    sipp = Sipp(tmp, port)
    refusal = f"Seat limit: license type '{TYPE}' is full ({limit}/{limit})"

    # 1. limit + 2 extensions at once.
    storm = [str(2001 + i) for i in range(limit + 2)]
    step(f"1. {len(storm)} extensions REGISTER at once")
    outcome = sipp.register([(ext, 3600) for ext in storm])
    ok = sorted(ext for ext in storm if outcome[ext][0] == 200)
    refused = sorted(ext for ext in storm if outcome[ext][0] == 403)
    step(f"  200: {', '.join(ok)}; 403: {', '.join(refused)}")
    if len(ok) != limit or len(refused) != 2:
        fail(f"expected exactly {limit} x 200 and 2 x 403, got {outcome}")
    for ext in refused:
        if outcome[ext][1] != refusal:
            fail(f"the 403 of {ext} says {outcome[ext][1]!r}, expected {refusal!r}")
    step(f"  403 reason phrase: {refusal}")
    holders = check_table(ok, "after the storm")
    # shm: each holder names the process that took its seat ("pid 1234").
    pids = {int(m.group(1)) for h in holders.values() for node in h.get("nodes") or []
            for m in [re.fullmatch(r"pid (\d+)", node)] if m}
    workers = kamailio.worker_pids()
    if len(pids) < 1 or not pids <= workers:
        fail(f"seats held by {[h.get('nodes') for h in holders.values()]}, expected kamailio's workers {workers}")
    step(f"  seats taken by kamailio worker pid(s) {', '.join(map(str, sorted(pids)))}")

    # 2. A renewal restarts the lease; a refused extension is still refused.
    renewed = ok[0]
    time.sleep(2.2)
    before = seatgate.report("json")
    left_before = next(h["lease_left_seconds"] for h in before["holders"] if h["user"] == renewed)
    step(f"2. {renewed} renews its registration ({left_before:.1f} s of lease left), {refused[0]} tries again")
    outcome = sipp.register([(renewed, 3600), (refused[0], 3600)], concurrent=False)
    if outcome[renewed][0] != 200 or outcome[refused[0]] != (403, refusal):
        fail(f"renewal: expected 200 for {renewed} and the 403 for {refused[0]}, got {outcome}")
    after = seatgate.report("json")
    left_after = next(h["lease_left_seconds"] for h in after["holders"] if h["user"] == renewed)
    if not left_after > left_before:
        fail(f"the renewal REGISTER did not restart the lease of {renewed}: {left_before} s left before, "
             f"{left_after} s after")
    step(f"  lease of {renewed}: {left_before:.1f} s left before the renewal, {left_after:.1f} s after")
    check_table(ok, "after the renewal")

    # 3. Two extensions unregister.
    gone, stay = ok[:2], ok[2:]
    step(f"3. {', '.join(gone)} unREGISTER (Expires: 0)")
    outcome = sipp.register([(ext, 0) for ext in gone])
    if any(outcome[ext][0] != 200 for ext in gone):
        fail(f"unREGISTER: expected 200, got {outcome}")
    check_table(stay, "after the unREGISTERs")

    # 4. The refused ones now get in; the next one does not.
    step(f"4. {', '.join(refused)} REGISTER again")
    outcome = sipp.register([(ext, 3600) for ext in refused])
    if any(outcome[ext][0] != 200 for ext in refused):
        fail(f"expected 200 for {refused} after the unREGISTERs, got {outcome}")
    registered = sorted(stay + refused)
    check_table(registered, "after the refused ones came back")
    extra = str(2001 + len(storm))
    outcome = sipp.register([(extra, 3600)])
    if outcome[extra] != (403, refusal):
        fail(f"{extra}: expected the 403 with a full table, got {outcome[extra]}")
    step(f"  {extra}: 403 {refusal}")

    # 5. A registration that is not renewed expires, and gives its seat back.
    leaving = registered[0]
    registered.remove(leaving)
    step(f"5. {leaving} unREGISTERs; {extra} registers for 3 s and does not renew")
    outcome = sipp.register([(leaving, 0)])
    if outcome[leaving][0] != 200:
        fail(f"unREGISTER of {leaving}: {outcome}")
    outcome = sipp.register([(extra, 3)])
    if outcome[extra][0] != 200:
        fail(f"{extra} with a free seat: expected 200, got {outcome[extra]}")
    check_table(registered + [extra], f"after {extra} registered")
    deadline = time.time() + 10
    while time.time() < deadline and seatgate.usage(TYPE)[0] != len(registered):
        time.sleep(0.2)
    check_table(registered, f"after the registration of {extra} expired")
    if f"seat of {extra} released (registration expired)" not in kamailio.log():
        fail(f"kamailio's log does not say the seat of {extra} was released by the expiry")

    # 6. Everyone leaves.
    step(f"6. {', '.join(registered)} unREGISTER")
    outcome = sipp.register([(ext, 0) for ext in registered])
    if any(outcome[ext][0] != 200 for ext in registered):
        fail(f"unREGISTER: {outcome}")
    check_table([], "at the end")

    running = len(kamailio.log().splitlines())
    kamailio.stop()
    lines = kamailio.log().splitlines()
    # While stopping, Kamailio's TCP main process may see its children's sockets close
    # before it exits itself, and logs that as CRITICAL (core/pass_fd.c); once it has
    # dropped every one of them it may wait on an epoll set with room for 0 events,
    # which the kernel refuses (core/io_wait.h: "epoll_wait(N, ..., 0, ...): Invalid
    # argument"). Those two lines, after the stop only, are Kamailio's shutdown order,
    # not an error of this setup.
    shutdown_noise = re.compile(
        r"CRITICAL: <core> \[core/pass_fd\.c:\d+\]: receive_fd\(\): EOF on \d+$"
        r"|ERROR: <core> \[core/io_wait\.h:\d+\]: io_wait_loop_epoll\(\): "
        r"epoll_wait\(\d+, 0x[0-9a-f]+, 0, \d+\): Invalid argument \[22\]$")
    problems = [("(while stopping) " if i >= running else "") + line for i, line in enumerate(lines)
                if re.search(r"\b(ERROR|CRITICAL|BUG)\b|Traceback|Exception", line)
                and not (i >= running and shutdown_noise.search(line))]
    if problems:
        fail("kamailio logged errors:\n" + "\n".join(problems[:20]))
    step(f"passed: 6 steps, {sipp.runs} sipp runs, kamailio logged no error")
    return 0


if __name__ == "__main__":
    sys.exit(main())
