#!/usr/bin/env python3
"""The interleavings of seatgate_registrar.py that a real Kamailio makes only by chance.

usrloc expires a contact in its timer process while holding its slot lock, and the
registrar's event callback gives the seat back there, without the htable lock (a
REGISTER holds that lock while save() waits for usrloc's). So a renewal REGISTER can
touch its seat, wait in save() while the expiry releases that seat, and then save a
fresh binding. Here `KSR` is a stand-in for Kamailio's module whose save() runs the
expiry (and, in one case, another phone's REGISTER) at exactly that point; seatgate
itself is the real library, through the Python wrapper, on a memory table with one
`extension` seat. make test-kamailio runs this before test_kamailio.py.
"""

import os
import sys
import tempfile
import types
import importlib.util

HERE = os.path.dirname(os.path.abspath(__file__))


class Kamailio:
    """What the script uses of Kamailio: the current request's pseudo-variables, the
    htable `seats`, usrloc bindings (one contact per AOR) and the replies sent."""

    def __init__(self):
        self.requests = []      # stack of pseudo-variable dicts (a nested request pushes)
        self.htable = {}
        self.locked = set()
        self.bindings = set()   # AOR URIs with a contact
        self.replies = []       # (user, code, reason)
        self.expiring = None    # $ulc(exp=>aor) during an expiry callback
        self.during_save = None  # run once inside the next save()

    def module(self):
        k = self
        ksr = types.ModuleType("KSR")
        ksr.info = lambda text: None
        ksr.err = lambda text: sys.stderr.write("KSR.err: " + text)
        ksr.is_REGISTER = lambda: True
        ksr.is_OPTIONS = lambda: False

        pv = types.SimpleNamespace()
        pv.get = lambda name: k.expiring if name == "$ulc(exp=>aor)" else k.requests[-1].get(name)
        ksr.pv = pv

        def sht_lock(table, key):
            assert key not in k.locked, "the htable lock of %s taken twice" % key
            k.locked.add(key)

        ksr.htable = types.SimpleNamespace(
            sht_get=lambda table, key: k.htable.get(key),
            sht_sets=lambda table, key, value: k.htable.__setitem__(key, value),
            sht_rm=lambda table, key: k.htable.pop(key, None),
            sht_lock=sht_lock,
            sht_unlock=lambda table, key: k.locked.discard(key),
        )

        def save(table, flags):
            hook, k.during_save = k.during_save, None
            if hook:
                hook()
            request = k.requests[-1]
            if request["$hdr(Expires)"] == "0":
                k.bindings.discard(request["$tu"])
            else:
                k.bindings.add(request["$tu"])
            return 1

        ksr.registrar = types.SimpleNamespace(
            save=save,
            registered_uri=lambda table, uri: 1 if uri in k.bindings else -1,
            reg_send_reply=lambda: k.replies.append((k.requests[-1]["$tU"], 200, "OK")),
            unregister=lambda table, uri: k.bindings.discard(uri) or 1,
        )
        ksr.sl = types.SimpleNamespace(
            send_reply=lambda code, reason: k.replies.append((k.requests[-1]["$tU"], code, reason)))
        return ksr

    def register(self, script, user, expires=3600):
        self.requests.append({
            "$tU": user, "$tu": "sip:%s@127.0.0.1" % user, "$ci": "call-%s-%d" % (user, len(self.replies)),
            "$hdr(Contact)": "<sip:%s@127.0.0.1:5070>" % user, "$hdr(Expires)": str(expires),
        })
        try:
            script.ksr_request_route(None)
        finally:
            self.requests.pop()
        return self.replies[-1][1:]

    def expire(self, script, user):
        """usrloc's timer expiring the AOR's contact: the binding goes, then the callback."""
        self.bindings.discard("sip:%s@127.0.0.1" % user)
        self.expiring = user
        try:
            script.ksr_registrar_event(None, "usrloc:contact-expired")
        finally:
            self.expiring = None


failures = []


def check(what, ok, detail=""):
    print("%s %s%s" % ("ok  " if ok else "FAIL", what, (": " + detail) if detail and not ok else ""))
    if not ok:
        failures.append(what)


def main():
    folder = tempfile.mkdtemp(prefix="seatgate-registrar-race-")
    config = os.path.join(folder, "seats.toml")
    with open(config, "w") as f:
        f.write("[licenses.extension]\nlimit = 1\n")
    os.environ["SEATGATE_CONFIG"] = config
    os.environ["SEATGATE_PROFILES"] = "extension"

    kamailio = Kamailio()
    sys.modules["KSR"] = kamailio.module()
    spec = importlib.util.spec_from_file_location("seatgate_registrar", os.path.join(HERE, "seatgate_registrar.py"))
    registrar = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(registrar)
    seatgate = registrar.seatgate
    script = registrar.mod_init()
    check("a worker starts seatgate", script.child_init(1) == 0)

    def holders():
        return sorted(h["user"] for h in seatgate.report("json")["holders"])

    # 1. The renewal that waits in save() while its contact expires keeps a seat.
    check("1001 registers", kamailio.register(script, "1001") == (200, "OK"))
    kamailio.during_save = lambda: kamailio.expire(script, "1001")
    reply = kamailio.register(script, "1001")
    check("the renewal racing the expiry is answered 200", reply == (200, "OK"), str(reply))
    check("1001 is registered", "sip:1001@127.0.0.1" in kamailio.bindings)
    check("and holds a seat: the table says 1/1 held by 1001",
          seatgate.usage("extension") == (1, 1) and holders() == ["1001"],
          "%s %s" % (seatgate.usage("extension"), holders()))
    seat = registrar.stored_seat("1001")
    check("the htable holds the seat that is held", seat is not None and holders() == ["1001"])

    # 2. The same race, but another phone takes the freed seat before the renewal's
    # save() ends: the renewal cannot keep a binding without a seat.
    def expiry_then_1002():
        kamailio.expire(script, "1001")
        reply = kamailio.register(script, "1002")
        check("1002 takes the seat 1001's expiry freed", reply == (200, "OK"), str(reply))

    kamailio.during_save = expiry_then_1002
    reply = kamailio.register(script, "1001")
    check("1001's renewal is refused with the limit", reply[0] == 403 and "'extension' is full (1/1)" in reply[1],
          str(reply))
    check("1001 has no binding left", "sip:1001@127.0.0.1" not in kamailio.bindings)
    check("1002 is registered, holding the one seat",
          "sip:1002@127.0.0.1" in kamailio.bindings and holders() == ["1002"]
          and seatgate.usage("extension") == (1, 1), "%s %s" % (holders(), seatgate.usage("extension")))
    check("the htable holds 1002's seat only",
          registrar.stored_seat("1001") is None and registrar.stored_seat("1002") is not None)

    # 3. The plain flows around it: an unREGISTER gives the seat back; an expiry with
    # no REGISTER in flight gives it back too.
    check("1002 unregisters", kamailio.register(script, "1002", expires=0) == (200, "OK"))
    check("its seat is back", seatgate.usage("extension") == (0, 1) and registrar.stored_seat("1002") is None)
    check("1001 registers again", kamailio.register(script, "1001") == (200, "OK"))
    kamailio.expire(script, "1001")
    check("its expiry gives the seat back", seatgate.usage("extension") == (0, 1) and holders() == [])
    check("no htable lock left taken", not kamailio.locked)

    seatgate.shutdown()
    if failures:
        print("%d check(s) failed: %s" % (len(failures), "; ".join(failures)))
        return 1
    print("registrar race: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
