# Kamailio KEMI script (app_python3): a registrar whose REGISTER handling takes
# license seats from seatgate, through the ctypes wrapper in examples/python.
#
#   REGISTER of a new extension   -> takes a seat (license_try_acquire_ex); a refusal is
#                                    "403 Seat limit: license type 'extension' is full (3/3)"
#   re-REGISTER (renewal)         -> license_touch: the seat's lease starts again
#   unREGISTER (Expires: 0)       -> license_release once the extension has no contact left
#   registration expired          -> license_release (registrar event_callback)
#
# Every worker process of Kamailio runs this file. The seat table is seatgate's `shm`
# backend (one shared file: the count is one for every worker), and the seat handle of
# each extension lives in the htable "seats" (Kamailio shared memory), so the worker
# that takes a seat and the one that gives it back need not be the same process.
#
# Environment (read when Kamailio starts):
#   SEATGATE_CONFIG      the seats.toml ([backend] kind = "shm"); default /etc/seatgate/seats.toml
#   SEATGATE_PROFILES    the profiles an extension's REGISTER takes; default "extension"
#   SEATGATE_PYTHON_DIR  the folder holding seatgate.py; default ../python beside this file
#   SEATGATE_LIB         libseatgate.so to load (see seatgate.py for the default)

import os
import sys

import KSR

sys.dont_write_bytecode = True  # keep the source tree free of __pycache__
sys.path.insert(0, os.environ.get("SEATGATE_PYTHON_DIR")
                or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import seatgate  # noqa: E402

SEATGATE_CONFIG = os.environ.get("SEATGATE_CONFIG", "/etc/seatgate/seats.toml")
PROFILES = os.environ.get("SEATGATE_PROFILES", "extension")
LOCATION = "location"      # the usrloc table of save()/registered()
SEATS = "seats"            # the htable: AOR -> seat handle (decimal string)
SINGLE_CONTACT = 0x04      # save() flag: one contact per AOR (a new device replaces the old)
NO_REPLY = 0x02            # save() flag: reply later, with reg_send_reply()

_seatgate_pid = None       # the process that called license_init (each worker calls it)


def seatgate_ready():
    """license_init once per process. Kamailio forks its workers before they run any
    route, and each worker maps the same shm file (docs/backends.md): a worker's own
    init is what the library wants after a fork."""
    global _seatgate_pid
    if _seatgate_pid == os.getpid():
        return True
    try:
        seatgate.init(SEATGATE_CONFIG)
    except seatgate.SeatgateError as e:
        if e.code != seatgate.ERR_ALREADY_INITIALIZED:
            KSR.err("seatgate: cannot start with %s: %s (%s)\n" % (SEATGATE_CONFIG, e, e.name))
            return False
    _seatgate_pid = os.getpid()
    return True


def mod_init():
    # Runs in Kamailio's main process before it forks: seatgate is started in each
    # child instead (child_init below, or on first use).
    return kamailio()


def aor():
    """The AOR as usrloc keys it (usrloc use_domain = 0: the user part)."""
    return KSR.pv.get("$tU")


def is_unregister():
    """True when the REGISTER removes its binding: Contact "*", or expires 0 in the
    Contact parameter or (without one) in the Expires header."""
    contact = KSR.pv.get("$hdr(Contact)") or ""
    if contact.strip() == "*":
        return True
    for param in contact.split(">")[-1].split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "expires":
            return value.strip() == "0"
    expires = KSR.pv.get("$hdr(Expires)")
    return expires is not None and str(expires).strip() == "0"


def stored_seat(key):
    value = KSR.htable.sht_get(SEATS, key)
    return seatgate.Seat(int(value)) if value not in (None, "") else None


class kamailio:
    def child_init(self, rank):
        # SIP workers start seatgate now, so a broken seats.toml stops Kamailio at
        # start rather than failing every REGISTER. Other processes (the timer that
        # expires registrations) start it on first use.
        if rank > 0 and not seatgate_ready():
            return -1
        return 0

    def ksr_request_route(self, msg):
        if KSR.is_REGISTER():
            self.register()
            return 1
        if KSR.is_OPTIONS():
            KSR.sl.send_reply(200, "OK")
            return 1
        KSR.sl.send_reply(405, "Method Not Allowed (registrar only)")
        return 1

    def register(self):
        user = aor()
        if not user:
            KSR.sl.send_reply(400, "Missing user in To")
            return
        if not seatgate_ready():
            KSR.sl.send_reply(503, "License check unavailable")
            return
        # One REGISTER of this AOR at a time across the workers: the check, the take
        # and the record of the handle go together.
        KSR.htable.sht_lock(SEATS, user)
        try:
            self.register_locked(user)
        finally:
            KSR.htable.sht_unlock(SEATS, user)

    def register_locked(self, user):
        seat = stored_seat(user)
        taken_now = False
        if not is_unregister():
            if seat is not None:
                try:
                    seat.touch()                   # a renewal: the lease starts again
                except seatgate.SeatgateError as e:
                    # Its lease ran out (or seatgate restarted): take a seat anew.
                    KSR.info("seatgate: seat of %s was gone (%s); taking a new one\n" % (user, e.name))
                    KSR.htable.sht_rm(SEATS, user)
                    seat = None
            if seat is None:
                seat, refusal = self.take_seat(user)
                if seat is None:
                    KSR.sl.send_reply(*refusal)
                    return
                taken_now = True
        KSR.registrar.save(LOCATION, SINGLE_CONTACT | NO_REPLY)
        # The seat follows the binding: none left (an unREGISTER, or a save that
        # failed after the seat was taken) gives it back, before the phone hears.
        registered = KSR.registrar.registered_uri(LOCATION, KSR.pv.get("$tu")) >= 0
        if seat is not None and not registered:
            self.give_back(user, seat, "unregistered" if not taken_now else "not saved")
        elif registered and stored_seat(user) is None:
            # usrloc expired this AOR's old contact while save() waited for it (the
            # expiry runs in the timer process under usrloc's lock, which save()
            # needs), and the expiry's callback gave back the seat this renewal had
            # just touched. The binding save() made needs a seat of its own.
            KSR.info("seatgate: seat of %s went with its expired contact during this renewal; "
                     "taking a new one\n" % user)
            seat, refusal = self.take_seat(user)
            if seat is None:
                KSR.registrar.unregister(LOCATION, KSR.pv.get("$tu"))
                KSR.sl.send_reply(*refusal)
                return
        KSR.registrar.reg_send_reply()             # save()'s reply: 200 with the bindings, or its error

    def take_seat(self, user):
        """A new seat for `user`, recorded in the htable: (seat, None), or (None, the
        reply to send: 403 with the refusal, 503 when seatgate failed)."""
        try:
            seat = seatgate.try_acquire(user, PROFILES, extension=user, session=KSR.pv.get("$ci"))
        except seatgate.LicenseDenied as refusal:
            KSR.info("seatgate: REGISTER of %s refused: %s\n" % (user, refusal))
            return None, (403, "Seat limit: %s" % refusal)
        except seatgate.SeatgateError as e:
            KSR.err("seatgate: REGISTER of %s: %s (%s)\n" % (user, e, e.name))
            return None, (503, "License check failed")
        KSR.htable.sht_sets(SEATS, user, str(int(seat)))
        return seat, None

    def give_back(self, user, seat, why):
        KSR.htable.sht_rm(SEATS, user)
        try:
            seat.release()
            KSR.info("seatgate: seat of %s released (%s)\n" % (user, why))
        except seatgate.SeatgateError as e:
            # Already gone: its lease ran out, or an admin released it.
            KSR.info("seatgate: seat of %s already gone (%s)\n" % (user, e.name))

    def ksr_registrar_event(self, msg, evname):
        """registrar's event_callback: usrloc:contact-expired, in the timer process.
        One contact per AOR (SINGLE_CONTACT), so the AOR is gone with it. No
        sht_lock here: usrloc calls this while holding its own slot lock, and a
        REGISTER holds the htable lock while save() waits for that slot lock."""
        if evname != "usrloc:contact-expired" or not seatgate_ready():
            return 1
        user = KSR.pv.get("$ulc(exp=>aor)")
        seat = stored_seat(user) if user else None
        if seat is not None:
            self.give_back(user, seat, "registration expired")
        return 1
