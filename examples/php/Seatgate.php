<?php
/*
 * seatgate for PHP, through the FFI extension: a thin class over libseatgate.so.
 *
 *   $sg = Seatgate::open('/usr/lib/libseatgate.so');   // or the path of target/release
 *   $sg->init('/etc/seatgate/seats.toml');
 *   $r = $sg->login('alice', 'agent', extension: '2001', session: session_id());
 *   if ($r instanceof SeatgateRefusal) { ... $r->licenseType, $r->reason, $r->used, $r->limit }
 *   else { $_SESSION['seat'] = $r; }                     // the seat handle, an int
 *   $sg->logout($_SESSION['seat']);
 *   echo $sg->report();
 *
 * A refusal is an answer, not an error: login() returns it. Everything else that
 * goes wrong (a bad name, an unknown profile, the library not initialized, a config
 * error) throws SeatgateException with the library's status code and its sentence.
 *
 * The C declarations PHP uses are in seatgate.ffi.h beside this file; the constants
 * below restate the header's macros. `make test-php` checks both against
 * include/seatgate.h.
 */

declare(strict_types=1);

/** An error from libseatgate: getCode() is the LICENSE_ERR_* value, $status its name. */
final class SeatgateException extends RuntimeException
{
    public function __construct(public readonly string $status, int $code, string $message)
    {
        parent::__construct($message, $code);
    }
}

/** A refused login: which license type said no, why, and its use at that moment. */
final class SeatgateRefusal
{
    public function __construct(
        /** LIMIT_REACHED, REQUIREMENT_MISSING or EXPIRED */
        public readonly string $status,
        /** the license type that refused ('' when the whole license expired) */
        public readonly string $licenseType,
        /** full, no_seats, over_limit, requirement_missing, reserved, capped or expired */
        public readonly string $reason,
        public readonly int $used,
        public readonly int $limit,
        /** for requirement_missing: the type the user lacks */
        public readonly string $requires,
        /** for capped: the capped profile; for reserved: the profiles holding the seats */
        public readonly string $profile,
        /** the library's sentence, e.g. "license type 'chat' is full (0/0)" */
        public readonly string $detail,
    ) {
    }
}

final class Seatgate
{
    /* The header's macros (PHP's FFI cannot read #define). */
    public const VERSION = '0.1.0';
    public const MAX_LABEL_LEN = 255;
    public const MAX_PROFILES_LEN = 1023;
    public const MAX_NAME_LEN = 63;
    public const MAX_PATH_LEN = 4095;

    /** Status names by -code: STATUS[1] is LICENSE_ERR_LIMIT_REACHED's name. */
    public const STATUS = [
        'OK', 'LIMIT_REACHED', 'UNKNOWN_PROFILE', 'INVALID_ARGUMENT', 'NOT_INITIALIZED',
        'ALREADY_INITIALIZED', 'UNKNOWN_SEAT', 'CONFIG', 'BUFFER_TOO_SMALL', 'INTERNAL',
        'UNKNOWN_LICENSE_TYPE', 'REQUIREMENT_MISSING', 'UNKNOWN_USER', 'BACKEND', 'TABLE_FULL',
        'EXPIRED', 'UNKNOWN_TENANT', 'EMERGENCY_UNAVAILABLE', 'STATE', 'LICENSE_FILE',
    ];

    /** license_denial.reason names, by value (LICENSE_DENIAL_*, lower case). */
    public const DENIAL_REASON = [
        'full', 'no_seats', 'over_limit', 'requirement_missing', 'reserved', 'capped', 'expired',
    ];

    private function __construct(public readonly FFI $ffi)
    {
    }

    /**
     * Loads libseatgate.so at $library with the declarations of seatgate.ffi.h.
     * Throws FFI\Exception when the library or one of its functions is missing.
     */
    public static function open(string $library): self
    {
        $header = file_get_contents(__DIR__ . '/seatgate.ffi.h');
        if ($header === false) {
            throw new RuntimeException('seatgate: cannot read ' . __DIR__ . '/seatgate.ffi.h');
        }
        return new self(FFI::cdef($header, $library));
    }

    public function version(): string
    {
        return $this->ffi->license_version();
    }

    /** Loads the TOML configuration and starts the seat table (once per process). */
    public function init(string $configPath): void
    {
        $this->check($this->ffi->license_init($this->arg($configPath)));
    }

    /** Swaps in a new configuration (null: the same file again), keeping held seats. */
    public function reload(?string $configPath = null): void
    {
        $this->check($this->ffi->license_reload($configPath === null ? null : $this->arg($configPath)));
    }

    /** Forgets every seat; later calls throw NOT_INITIALIZED until the next init(). */
    public function shutdown(): void
    {
        $this->ffi->license_shutdown();
    }

    /**
     * Takes one seat of every license type the profiles (comma-separated) imply, all
     * or nothing. Returns the seat handle (an int, never 0) to keep in the session
     * for logout(), or the refusal. Throws SeatgateException for anything else.
     */
    public function login(
        string $user,
        string $profiles,
        ?string $extension = null,
        ?string $session = null,
        ?string $tenant = null,
    ): int|SeatgateRefusal {
        $req = $this->ffi->new('license_request');
        $req->size = FFI::sizeof($req);
        // The request holds pointers: the buffers must live until the call returns.
        $keep = [];
        $req->user = $this->cString($user, $keep);
        $req->profiles = $this->cString($profiles, $keep);
        $req->extension = $extension === null ? null : $this->cString($extension, $keep);
        $req->session = $session === null ? null : $this->cString($session, $keep);
        $req->tenant = $tenant === null ? null : $this->cString($tenant, $keep);

        $seat = $this->ffi->new('license_seat');
        $denial = $this->ffi->new('license_denial');
        $denial->size = FFI::sizeof($denial);

        $rc = $this->ffi->license_try_acquire_ex(FFI::addr($req), FFI::addr($seat), FFI::addr($denial));
        if ($rc === $this->ffi->LICENSE_OK) {
            return $seat->cdata;
        }
        $status = self::STATUS[-$rc] ?? 'UNKNOWN';
        if ($rc === $this->ffi->LICENSE_ERR_LIMIT_REACHED || $rc === $this->ffi->LICENSE_ERR_REQUIREMENT_MISSING) {
            return new SeatgateRefusal(
                $status,
                FFI::string($denial->license_type),
                self::DENIAL_REASON[$denial->reason] ?? "reason {$denial->reason}",
                $denial->used,
                $denial->limit,
                FFI::string($denial->requires),
                FFI::string($denial->profile),
                $this->lastError(),
            );
        }
        if ($rc === $this->ffi->LICENSE_ERR_EXPIRED) {
            // The denial struct is not filled for an expiry; the sentence names the type and date.
            return new SeatgateRefusal($status, '', 'expired', 0, 0, '', '', $this->lastError());
        }
        $this->check($rc);
        throw new LogicException('unreachable');
    }

    /** Gives the seat back (a logout). Throws UNKNOWN_SEAT for a seat not held. */
    public function logout(int $seat): void
    {
        $this->check($this->ffi->license_release($seat));
    }

    /** Renews the seat's lease (call it from the CRM's heartbeat). */
    public function touch(int $seat): void
    {
        $this->check($this->ffi->license_touch($seat));
    }

    /** @return array{used: int, limit: int} one license type's use right now */
    public function usage(string $licenseType): array
    {
        $used = $this->ffi->new('uint32_t');
        $limit = $this->ffi->new('uint32_t');
        $this->check($this->ffi->license_usage($this->arg($licenseType), FFI::addr($used), FFI::addr($limit)));
        return ['used' => $used->cdata, 'limit' => $limit->cdata];
    }

    /**
     * The "online / licenses" report: the admin's text, JSON, or with
     * $prometheus the Prometheus text exposition (for a /metrics page).
     */
    public function report(bool $json = false, bool $prometheus = false): string
    {
        $format = match (true) {
            $prometheus => $this->ffi->LICENSE_REPORT_PROMETHEUS,
            $json => $this->ffi->LICENSE_REPORT_JSON,
            default => $this->ffi->LICENSE_REPORT_TEXT,
        };
        $needed = $this->ffi->new('size_t');
        $this->check($this->ffi->license_report($format, null, 0, FFI::addr($needed)));
        // The report can grow between the size query and the copy: retry with the new size.
        for ($try = 0; $try < 4; $try++) {
            $len = $needed->cdata + 4096;
            $buf = $this->ffi->new("char[$len]");
            $rc = $this->ffi->license_report($format, $buf, $len, FFI::addr($needed));
            if ($rc !== $this->ffi->LICENSE_ERR_BUFFER_TOO_SMALL) {
                $this->check($rc);
                return FFI::string($buf);
            }
        }
        $this->check($rc);
        return '';
    }

    /** This thread's last failure in one sentence ('' if none). */
    public function lastError(): string
    {
        $buf = $this->ffi->new('char[1024]');
        $needed = $this->ffi->new('size_t');
        $this->ffi->license_last_error($buf, 1024, FFI::addr($needed));
        return FFI::string($buf);
    }

    /** Throws SeatgateException unless $rc is LICENSE_OK. */
    private function check(int $rc): void
    {
        if ($rc === $this->ffi->LICENSE_OK) {
            return;
        }
        $detail = $this->lastError();
        $name = self::STATUS[-$rc] ?? "status $rc";
        throw new SeatgateException($name, $rc, $detail !== '' ? $detail : $this->ffi->license_strerror($rc));
    }

    /**
     * A string argument. PHP strings may hold NUL bytes, which C would silently cut
     * at: refuse them here, as the library refuses any other malformed name.
     */
    private function arg(string $s): string
    {
        if (str_contains($s, "\0")) {
            throw new SeatgateException('INVALID_ARGUMENT', -3, 'seatgate: a string argument holds a NUL byte');
        }
        return $s;
    }

    /** A NUL-terminated C copy of $s for a struct field; $keep holds it alive. */
    private function cString(string $s, array &$keep): FFI\CData
    {
        $this->arg($s);
        $n = strlen($s);
        $buf = $this->ffi->new('char[' . ($n + 1) . ']');   // zero-filled: the NUL is there
        FFI::memcpy($buf, $s, $n);
        $keep[] = $buf;
        return FFI::cast('char *', FFI::addr($buf));
    }
}
