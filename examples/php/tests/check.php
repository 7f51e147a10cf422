<?php
/*
 * The tests' tally: check() counts a pass or prints the failure; finish() prints
 * "NAME: N passed, M failed" and exits 1 on any failure.
 */

declare(strict_types=1);

$passed = 0;
$failed = 0;

function check(bool $ok, string $what): void
{
    global $passed, $failed;
    if ($ok) {
        $passed++;
    } else {
        $failed++;
        echo basename($_SERVER['SCRIPT_NAME'], '.php'), ": FAILED: $what\n";
    }
}

function finish(): never
{
    global $passed, $failed;
    echo basename($_SERVER['SCRIPT_NAME'], '.php'), ": $passed passed, $failed failed\n";
    exit($failed === 0 ? 0 : 1);
}
