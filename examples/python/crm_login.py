#!/usr/bin/env python3
"""A CRM's login path through seatgate, from Python.

Agents and admins log in and out of a small CRM; every login asks seatgate for the
seats its profile implies, and a refusal tells the user which license type ran out.
At the end the admin's report is printed.

    python3 examples/python/crm_login.py [examples/python/crm.toml]

The license check sits where the CRM accepts a login: after the password check and
before the session is created (`login` below). The logout gives the seat back, and a
session with a lease (the API connector) renews it from its heartbeat.
"""

import os
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import seatgate  # noqa: E402  (the wrapper beside this file)

sessions = {}  # the CRM's own session table: user -> list of seats


def login(user, profile, extension=None):
    """The CRM's login: the password was checked; now the license seats."""
    try:
        seat = seatgate.try_acquire(user, profile, extension=extension, session=f"crm-{user}")
    except seatgate.LicenseDenied as refusal:
        # What the user sees, and what the program can act on.
        print(f"login {user:<6} as {profile:<16} REFUSED: {refusal}")
        print(f"       refusal: type={refusal.license_type} used/limit={refusal.used}/{refusal.limit}"
              f" reason={refusal.reason_name}")
        return None
    sessions.setdefault(user, []).append(seat)
    print(f"login {user:<6} as {profile:<16} ok")
    return seat


def logout(user):
    """The CRM's logout: every session of the user ends."""
    for seat in sessions.pop(user, []):
        seat.release()
    print(f"logout {user}")


def show_usage(*types):
    print("  usage: " + ", ".join(f"{t} {'%d/%d' % seatgate.usage(t)}" for t in types))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    config = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "crm.toml")
    print(f"seatgate {seatgate.version()} ({seatgate.library_path()})")
    try:
        seatgate.init(config)
    except seatgate.SeatgateError as e:
        print(f"seatgate: cannot start: {e} ({e.name})", file=sys.stderr)
        return 1
    print("license types: " + ", ".join(seatgate.license_types()))

    print("\n-- the morning: three agents fill the call center")
    for user, ext in (("ana", "2001"), ("bruno", "2002"), ("carla", "2003")):
        login(user, "agent", extension=ext)
    login("davi", "agent", extension="2004")       # the fourth agent: callcenter is full
    show_usage("user", "callcenter")

    print("\n-- the back office: one CRM admin seat")
    login("erin", "admin")
    login("fabio", "admin")                        # crm is full

    print("\n-- chat: all or nothing")
    login("ana", "agent,chat_team")                # ana's second session: only chat is new
    login("bruno", "agent,chat_team")              # chat is full: bruno keeps his agent seat only
    show_usage("user", "callcenter", "chat")

    print("\n-- bruno logs out, and davi gets in")
    logout("bruno")
    login("davi", "agent", extension="2004")
    show_usage("user", "callcenter", "chat")

    print("\n-- an API connector renews its lease, then stops")
    connector = login("connector", "connector")
    time.sleep(1.2)
    connector.touch()
    time.sleep(1.2)                                # 2.4 s after login, 1.2 s after the touch
    connector.touch()
    print("connector touched twice: still held, api %d/%d" % seatgate.usage("api"))
    time.sleep(2.5)                                # no heartbeat for longer than the lease
    try:
        connector.touch()
        print("connector: still held after its lease ran out (unexpected)")
    except seatgate.SeatgateError as e:
        print(f"connector lease ran out: {e.name} ({e.detail}); api {'%d/%d' % seatgate.usage('api')}")
    sessions.pop("connector", None)

    print("\n-- a double logout is caught, never frees someone else's seat")
    erin_seat = sessions["erin"][0]
    logout("erin")
    try:
        erin_seat.release()
    except seatgate.SeatgateError as e:
        print(f"second release of erin's seat: {e.name}: {e.detail}")

    report = seatgate.report("json")
    online = ", ".join(h["user"] for h in report["holders"])
    print(f"\nonline now: {online}")
    print("\n-- the admin's report")
    print(seatgate.report())

    for user in list(sessions):
        logout(user)
    seatgate.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
