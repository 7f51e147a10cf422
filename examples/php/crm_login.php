<?php
/*
 * A CRM's login and logout, with seatgate's license check in between, through PHP's
 * FFI extension. It plays a short morning: agents and admins log in and out, the
 * refused ones are told which license type said no and why, and the admin's report
 * is printed at the end.
 *
 *   php examples/php/crm_login.php [CONFIG]
 *
 * CONFIG defaults to crm-seats.toml beside this file. The library is
 * $SEATGATE_LIB, or target/release/libseatgate.so of this repository (`make lib`).
 * Exit status: 0 when the story ran, 1 when the library could not be loaded or
 * initialized (the reason is printed).
 */

declare(strict_types=1);

require __DIR__ . '/Seatgate.php';

/** The CRM's user directory: who may log in, with which profiles and extension. */
const DIRECTORY = [
    'alice' => ['password' => 'a1', 'profiles' => 'agent', 'extension' => '2001'],
    'bob'   => ['password' => 'b2', 'profiles' => 'agent', 'extension' => '2002'],
    'carol' => ['password' => 'c3', 'profiles' => 'agent', 'extension' => '2003'],
    'dave'  => ['password' => 'd4', 'profiles' => 'admin', 'extension' => '2004'],
    'erin'  => ['password' => 'e5', 'profiles' => 'admin', 'extension' => '2005'],
    'frank' => ['password' => 'f6', 'profiles' => 'agent,chat_team', 'extension' => '2006'],
    'grace' => ['password' => 'g7', 'profiles' => 'admin,recorder', 'extension' => '2007'],
];

/**
 * The CRM's login handler. The license check sits after the password check (a
 * wrong password must not take a seat) and before the session is opened (a refused
 * user gets no session). The seat handle is kept in the session for the logout.
 *
 * @param array<string, int> $sessions session id => seat handle (the CRM's session store)
 */
function crm_login(Seatgate $sg, array &$sessions, string $user, string $password): ?string
{
    $entry = DIRECTORY[$user] ?? null;
    if ($entry === null || !hash_equals($entry['password'], $password)) {
        printf("login   %-6s -> wrong user or password\n", $user);
        return null;
    }
    $sessionId = 'crm-' . $user . '-' . (count($sessions) + 1);
    $r = $sg->login($user, $entry['profiles'], extension: $entry['extension'], session: $sessionId);
    if ($r instanceof SeatgateRefusal) {
        printf("login   %-6s -> REFUSED by '%s' (reason %s, %d/%d used): %s\n",
            $user, $r->licenseType, $r->reason, $r->used, $r->limit, $r->detail);
        return null;
    }
    $sessions[$sessionId] = $r;
    printf("login   %-6s -> ok (%s, extension %s)\n", $user, $entry['profiles'], $entry['extension']);
    return $sessionId;
}

/** The CRM's logout handler: gives the session's seat back. */
function crm_logout(Seatgate $sg, array &$sessions, string $sessionId): void
{
    $user = explode('-', $sessionId)[1];
    try {
        $sg->logout($sessions[$sessionId] ?? 0);
        printf("logout  %-6s -> ok\n", $user);
    } catch (SeatgateException $e) {
        printf("logout  %-6s -> error %s: %s\n", $user, $e->status, $e->getMessage());
    }
    unset($sessions[$sessionId]);
}

function usage_line(Seatgate $sg): string
{
    $parts = [];
    foreach (['user', 'callcenter', 'crm_admin', 'chat'] as $type) {
        $u = $sg->usage($type);
        $parts[] = "$type {$u['used']}/{$u['limit']}";
    }
    return 'seats   ' . implode(', ', $parts);
}

$config = $argv[1] ?? __DIR__ . '/crm-seats.toml';
$library = getenv('SEATGATE_LIB') ?: __DIR__ . '/../../target/release/libseatgate.so';

try {
    $sg = Seatgate::open($library);
    $sg->init($config);
} catch (FFI\Exception $e) {
    fwrite(STDERR, "crm_login: cannot load $library: {$e->getMessage()} (run `make lib`, or set SEATGATE_LIB)\n");
    exit(1);
} catch (SeatgateException $e) {
    fwrite(STDERR, "crm_login: license_init failed ({$e->status}): {$e->getMessage()}\n");
    exit(1);
}
printf("seatgate %s, config %s\n", $sg->version(), basename($config));

$sessions = [];
$s = [];
$s['alice'] = crm_login($sg, $sessions, 'alice', 'a1');
$s['bob'] = crm_login($sg, $sessions, 'bob', 'b2');
crm_login($sg, $sessions, 'carol', 'wrong');          // no seat for a wrong password
crm_login($sg, $sessions, 'carol', 'c3');             // callcenter is full
$s['dave'] = crm_login($sg, $sessions, 'dave', 'd4');
crm_login($sg, $sessions, 'erin', 'e5');              // crm_admin is full
crm_login($sg, $sessions, 'frank', 'f6');             // chat has no seats at all
crm_login($sg, $sessions, 'grace', 'g7');             // recording requires callcenter
echo usage_line($sg), "\n";

crm_logout($sg, $sessions, $s['alice']);
$s['carol'] = crm_login($sg, $sessions, 'carol', 'c3');   // alice's seat is free now
echo usage_line($sg), "\n";

echo "\n", $sg->report();

echo "\n";
$bobSeat = $sessions[$s['bob']];
foreach (['bob', 'carol', 'dave'] as $user) {
    crm_logout($sg, $sessions, $s[$user]);
}
try {
    $sg->logout($bobSeat);                            // a second logout frees nothing
} catch (SeatgateException $e) {
    printf("logout  %-6s -> again: error %s: %s\n", 'bob', $e->status, $e->getMessage());
}
echo usage_line($sg), "\n";
$sg->shutdown();
