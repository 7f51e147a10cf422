<?php
/*
 * The PHP example's behaviour: crm_login.php's story, run as a CRM would run it, and
 * the Seatgate class's answers to refusals and to bad input.
 *
 *   php test_crm_login.php LIBRARY
 *
 * Prints one line per failure and "test_crm_login: N passed, M failed"; exit 1 on failure.
 */

declare(strict_types=1);

require __DIR__ . '/../Seatgate.php';

$library = $argv[1] ?? '';
if ($library === '' || !is_file($library)) {
    fwrite(STDERR, "usage: php test_crm_login.php LIBRARY (the library '$library' is not a file)\n");
    exit(2);
}

require __DIR__ . '/check.php';

/** Runs a PHP script in a fresh process; returns [exit status, stdout, stderr]. */
function run_php(array $args, array $env): array
{
    $cmd = array_merge([PHP_BINARY], $args);
    $proc = proc_open($cmd, [1 => ['pipe', 'w'], 2 => ['pipe', 'w']], $pipes, null, $env + getenv());
    $out = stream_get_contents($pipes[1]);
    $err = stream_get_contents($pipes[2]);
    fclose($pipes[1]);
    fclose($pipes[2]);
    return [proc_close($proc), $out, $err];
}

/** Asserts that $text has a line matching $regex, naming $what. */
function has_line(string $text, string $regex, string $what): void
{
    check(preg_match($regex . 'm', $text) === 1, "$what: no line matches $regex in:\n$text");
}

function expect_error(callable $f, string $status, string $messagePart, string $what): void
{
    try {
        $f();
        check(false, "$what: no SeatgateException (wanted $status)");
    } catch (SeatgateException $e) {
        check($e->status === $status, "$what: status {$e->status}, wanted $status ({$e->getMessage()})");
        check(str_contains($e->getMessage(), $messagePart), "$what: message '{$e->getMessage()}' lacks '$messagePart'");
    }
}

function write_config(string $toml): string
{
    $path = tempnam(sys_get_temp_dir(), 'seatgate-php-') ;
    file_put_contents($path, $toml);
    register_shutdown_function(fn () => @unlink($path));
    return $path;
}

/* ---- 1. The example's story, in its own process ---- */

$example = __DIR__ . '/../crm_login.php';
[$rc, $out, $err] = run_php([$example], ['SEATGATE_LIB' => $library]);
check($rc === 0, "crm_login.php exited with $rc: $err");
has_line($out, '/^seatgate \d+\.\d+\.\d+, config crm-seats\.toml$/', 'version banner');
has_line($out, '/^login   alice  -> ok \(agent, extension 2001\)$/', 'alice logs in');
has_line($out, '/^login   bob    -> ok \(agent, extension 2002\)$/', 'bob logs in');
has_line($out, '/^login   carol  -> wrong user or password$/', 'a wrong password is refused before the license check');
has_line($out, "/^login   carol  -> REFUSED by 'callcenter' \\(reason full, 2\\/2 used\\): license type 'callcenter' is full \\(2\\/2\\)$/", 'carol refused: callcenter full');
has_line($out, "/^login   erin   -> REFUSED by 'crm_admin' \\(reason full, 1\\/1 used\\): /", 'erin refused: crm_admin full');
has_line($out, "/^login   frank  -> REFUSED by 'chat' \\(reason no_seats, 0\\/0 used\\): /", 'frank refused: chat has no seats');
has_line($out, "/^login   grace  -> REFUSED by 'recording' \\(reason requirement_missing, 0\\/2 used\\): .*requires 'callcenter'/", 'grace refused: recording requires callcenter');
has_line($out, '/^seats   user 3\/5, callcenter 2\/2, crm_admin 1\/1, chat 0\/0$/', 'refused logins took nothing (all or nothing)');
has_line($out, '/^logout  alice  -> ok$/', 'alice logs out');
has_line($out, '/^login   carol  -> ok \(agent, extension 2003\)$/', "carol gets alice's seat");
// The report: the type lines and the three holders.
has_line($out, '/^  callcenter\s+2\/2\s+0\s+2\s+3\s+1\s.*\bfull\b/', 'report: callcenter 2/2, peak 2, 3 acquired, 1 denied, full');
has_line($out, '/^  chat\s+0\/0\s.*\bfull\b/', 'report: chat 0/0 full');
has_line($out, "/warning\\[zero-limit-consumed\\]: profile 'chat_team'/", 'report: the chat lint');
foreach (['bob' => '2002', 'carol' => '2003', 'dave' => '2004'] as $user => $ext) {
    has_line($out, "/^  \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d\\s+$user\\s+$ext\\s/", "report: $user holds seats");
}
check(preg_match('/^  \S+ \S+\s+alice\s/m', $out) === 0, 'report: alice, logged out, is not listed');
has_line($out, '/^showing 1 to 3 of 3$/', 'report: paging footer');
has_line($out, '/^logout  bob    -> again: error UNKNOWN_SEAT: seat \d+ is not held/', 'a second logout is refused');
has_line($out, '/^seats   user 0\/5, callcenter 0\/2, crm_admin 0\/1, chat 0\/0$/', 'every seat is back at the end');

// It fails loudly, not silently, without its library or with a broken config.
[$rc, $out, $err] = run_php([$example], ['SEATGATE_LIB' => '/nonexistent/libseatgate.so']);
check($rc === 1 && str_contains($err, 'cannot load /nonexistent/libseatgate.so'), "a missing library: exit $rc, stderr '$err'");
$broken = write_config("[licenses.user]\nlimt = 3\n");
[$rc, $out, $err] = run_php([$example, $broken], ['SEATGATE_LIB' => $library]);
check($rc === 1 && str_contains($err, 'license_init failed (CONFIG)') && str_contains($err, "unknown field `limt`"),
    "a broken config: exit $rc, stderr '$err'");

/* ---- 2. The Seatgate class ---- */

$sg = Seatgate::open($library);
expect_error(fn () => $sg->login('alice', 'agent'), 'NOT_INITIALIZED', 'not initialized', 'login before init');
expect_error(fn () => $sg->init($broken), 'CONFIG', ':2:1: unknown field `limt`', 'init with a broken config names file:line');

$sg->init(write_config(<<<'TOML'
[licenses.user]
limit = 3
[licenses.callcenter]
limit = 1
[licenses.recording]
limit = 1
requires = ["callcenter"]
[profiles.agent]
consumes = ["user", "callcenter"]
[profiles.capped_team]
consumes = ["user"]
cap = { user = 1 }
TOML));

$a = $sg->login('ana', 'agent', extension: '3001', session: 'web-1');
check(is_int($a) && $a !== 0, 'ana logs in and gets a non-zero seat handle');
$again = $sg->login('ana', 'agent', extension: '3001b', session: 'web-2');
check(is_int($again) && $again !== $a, "ana's second device gets its own handle");
check($sg->usage('callcenter') === ['used' => 1, 'limit' => 1], "a user's second handle takes no second seat (count = \"user\")");

$r = $sg->login('ben', 'agent');
check($r instanceof SeatgateRefusal, 'ben is refused: callcenter is full');
if ($r instanceof SeatgateRefusal) {
    check($r->status === 'LIMIT_REACHED' && $r->licenseType === 'callcenter' && $r->reason === 'full'
        && $r->used === 1 && $r->limit === 1 && $r->requires === '' && $r->profile === '',
        'the refusal names callcenter, full, 1/1: ' . var_export($r, true));
    check($r->detail === "license type 'callcenter' is full (1/1)", "the refusal's sentence: '{$r->detail}'");
}
check($sg->usage('user') === ['used' => 1, 'limit' => 3], "ben's refused login took no user seat either");

$r = $sg->login('ben', 'recording');
check($r instanceof SeatgateRefusal && $r->status === 'REQUIREMENT_MISSING' && $r->reason === 'requirement_missing'
    && $r->licenseType === 'recording' && $r->requires === 'callcenter',
    'recording without callcenter: ' . var_export($r, true));

$c1 = $sg->login('cy', 'capped_team');
$r = $sg->login('dee', 'capped_team');
check(is_int($c1) && $r instanceof SeatgateRefusal && $r->reason === 'capped' && $r->profile === 'capped_team'
    && $r->licenseType === 'user' && $r->used === 1 && $r->limit === 1,
    'the capped profile is refused, naming the profile: ' . var_export($r, true));

expect_error(fn () => $sg->login('ben', 'agnet'), 'UNKNOWN_PROFILE', "'agnet'", 'an unknown profile is an error, not a refusal');
expect_error(fn () => $sg->login("ev\0il", 'agent'), 'INVALID_ARGUMENT', 'NUL byte', 'a user name with a NUL byte');
expect_error(fn () => $sg->login('', 'agent'), 'INVALID_ARGUMENT', '', 'an empty user name');
expect_error(fn () => $sg->login(str_repeat('x', Seatgate::MAX_LABEL_LEN + 1), 'agent'), 'INVALID_ARGUMENT', '', 'a user name over MAX_LABEL_LEN');
expect_error(fn () => $sg->usage('nosuch'), 'UNKNOWN_LICENSE_TYPE', 'nosuch', 'usage of an unknown type');

$json = json_decode($sg->report(json: true), true);
check(is_array($json) && count($json['holders'] ?? []) === 2, 'the JSON report lists ana and cy');
$users = array_column($json['holders'] ?? [], 'user');
sort($users);
check($users === ['ana', 'cy'], 'JSON holders: ' . implode(',', $users));
$ana = array_values(array_filter($json['holders'] ?? [], fn ($h) => $h['user'] === 'ana'))[0] ?? [];
check(($ana['sessions'] ?? null) === 2, "ana has 2 sessions in the report");

$metrics = $sg->report(prometheus: true);
check(str_contains($metrics, '# TYPE seatgate_license_seats_used gauge'), 'the Prometheus report declares seats_used');
check(preg_match('/^seatgate_license_seats_used\{[^}]*type="callcenter"[^}]*\} (\d+)$/m', $metrics, $m) === 1
    && (int) $m[1] === $sg->usage('callcenter')['used'], 'the Prometheus report counts callcenter as usage() does');

$sg->logout($a);
check($sg->usage('callcenter')['used'] === 1, "ana still holds callcenter through her second handle");
$sg->logout($again);
check($sg->usage('callcenter')['used'] === 0, "ana's last logout frees callcenter");
expect_error(fn () => $sg->logout($a), 'UNKNOWN_SEAT', 'is not held', 'a double logout');
expect_error(fn () => $sg->touch($a), 'UNKNOWN_SEAT', '', 'touching a released seat');
$b = $sg->login('ben', 'agent');
check(is_int($b), 'ben gets the freed callcenter seat');
$sg->touch($b);
check(true, 'touch of a held seat succeeds');
$sg->reload();
check($sg->usage('callcenter')['used'] === 1, 'a reload keeps the held seat');
$sg->shutdown();
expect_error(fn () => $sg->logout($b), 'NOT_INITIALIZED', '', 'a logout after shutdown');

finish();
