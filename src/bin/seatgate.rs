//! `seatgate`: the command line for vendors and admins: license files (keygen, sign,
//! verify), the emergency window, and checking a config and reading a live seat table
//! (check, report).
//!
//! Exit codes: 0 success, 1 a refusal or failure (bad signature, expired, file exists,
//! a table that cannot be read...), 2 a usage error; `check` and `report` add 3 (the
//! config is invalid) and `report` 4 (a `memory` table cannot be read from outside).
//! Each subcommand is one function taking its own arguments; add new ones to the
//! dispatch `match` in [`run`].

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use seatgate::backend::{
    Backend, BackendStatus, Changes, HeldSeat, LingeringSeat, ReleaseWhy, SeatRequest, TypeStats,
};
use seatgate::clock::{Mono, Now};
use seatgate::config::{BackendConfig, Config, Date, OnBackendError};
use seatgate::signed::{self, SignedLicense, VendorKey, VendorSigningKey};
use seatgate::{Engine, Error, Page, Report, SeatId};

const USAGE: &str = "\
seatgate: admin and vendor tools for seatgate

USAGE:
    seatgate keygen --out PREFIX
        Make a new vendor key pair: PREFIX.key (secret, mode 0600; keep it offline)
        and PREFIX.pub (public; compile it in or give it to hosts). Never overwrites.

    seatgate sign --key PREFIX.key UNSIGNED.toml [-o SIGNED.license]
        Check the [license] table and add a [signature]; writes to stdout without -o.

    seatgate verify [--pub PREFIX.pub]... FILE [--today YYYY-MM-DD]
        Check a signed license file and print what it grants. Without --pub, the
        vendor keys compiled in at build time (SEATGATE_VENDOR_KEYS) are trusted.

    seatgate emergency activate|status CONFIG [--pub PREFIX.pub]...
        Open the emergency window of CONFIG's [emergency] (once per permanent limit),
        or show it. Running hosts of the installation pick it up within a second.

    seatgate check CONFIG [--pub PREFIX.pub]...
        Validate CONFIG as license_init would (without opening its seat table) and
        print its lints and date warnings. Exit 0 clean, 1 warnings, 3 invalid.

    seatgate report [--format text|json|prometheus] [--tenant NAME] [CONFIG]
        Read the live seat table of an shm or redis installation and print the
        report; takes no seat and releases nothing. CONFIG defaults to
        $SEATGATE_CONFIG, then /etc/seatgate/seats.toml. Exit 1 if the table cannot
        be read, 3 if CONFIG is invalid, 4 for a memory table (in-process only).

    seatgate help [COMMAND]

EXIT STATUS:
    0 success, 1 verification failed or the command was refused, 2 usage error;
    check and report: 1, 3 and 4 as above (seatgate help check|report).

See docs/licenses.md for the file format and the key handling.
";

const KEYGEN_USAGE: &str = "\
usage: seatgate keygen --out PREFIX

Writes PREFIX.key (the secret signing key, created with mode 0600) and PREFIX.pub
(the public key), prints the key id and the SEATGATE_VENDOR_KEYS line that compiles
the public key into seatgate. Refuses to overwrite either file.
";

const SIGN_USAGE: &str = "\
usage: seatgate sign --key PREFIX.key UNSIGNED.toml [-o SIGNED.license]

Checks the [license] table of UNSIGNED.toml exactly as verification will, then writes
the file with a [signature] table appended (an old one is replaced). Comments and
[info] are kept as written and may be edited later; any change under [license]
breaks the signature. Writes to stdout unless -o is given.
";

const EMERGENCY_USAGE: &str = "\
usage: seatgate emergency activate|status CONFIG [--pub PREFIX.pub]...

activate: opens the emergency window of CONFIG's [emergency] section: its extra seats
are usable at once in every host of the installation (they read the state file in
state_dir within a second), and close when the window ends. Refused (exit 1) when a
window is open, or when one was used and no affected type's permanent limit has grown
since. status: prints the window and whether it can be opened. --pub trusts a vendor
key for CONFIG's signed license_file (keys compiled in are trusted without it).
";

const VERIFY_USAGE: &str = "\
usage: seatgate verify [--pub PREFIX.pub]... FILE [--today YYYY-MM-DD]

Checks FILE's signature against the given public keys (or, with no --pub, the keys
compiled in at build time) and that it has not expired, then prints the signed terms.
--today sets the date to check against (default: today, UTC).
";

const CHECK_USAGE: &str = "\
usage: seatgate check CONFIG [--pub PREFIX.pub]...

Validates CONFIG exactly as license_init does, without opening its seat table (no
shared file is created, no Redis is contacted): the TOML schema and every rule, the
vendor-signed license_file (against the keys compiled in and those given with
--pub), the emergency state file in state_dir, and the signed license's tenant
cap. Then prints the lints (file:line: warning[code]: ...) and the warnings about
dates (license or support ending soon or past, an emergency window). The audit
log's path is not opened.

EXIT STATUS:
    0  valid, nothing to warn about
    1  valid, with warnings (license_init would load it)
    2  usage error
    3  invalid: license_init would refuse it (the error is on stderr, file:line:col)
";

const REPORT_USAGE: &str = "\
usage: seatgate report [--format text|json|prometheus] [--tenant NAME]
                       [--pub PREFIX.pub]... [CONFIG]

Reads the live seat table of the installation CONFIG describes ([backend] kind =
\"shm\": the shared file; \"redis\": the server and prefix) and prints the report
that license_report gives inside a host: per-type used/limit, peaks, refusals, who
holds what since when, warnings. CONFIG should be the hosts' own file (its limits
are the ones shown). CONFIG defaults to $SEATGATE_CONFIG, then
/etc/seatgate/seats.toml.

It takes no seat, releases nothing, reaps nothing, writes no audit line and does
not register as a holder. What it does to the table is only what every process
attaching to it does: shm maps the existing file (it never creates one), takes its
lock for the copy, rebuilds the derived counts if a process died holding the lock,
and gives a license type of CONFIG that the file has never seen one of its 64 name
slots; redis runs its read-only queries, and stores the data set's identity key
when the prefix has never been used. Expired leases still held are shown as
expired (lease left 0), not reclaimed: the hosts' reaper does that.

--format prometheus prints the Prometheus text format 0.0.4 (seatgate_* metrics;
see the README), with every tenant declared in CONFIG whose pool exists (shm: its
{path}@NAME file). --tenant NAME reports one tenant's pool instead. --pub trusts a
vendor key for CONFIG's signed license_file.

EXIT STATUS:
    0  the report was printed
    1  the table cannot be read: the shm file does not exist (no host has started),
       Redis is unreachable, or the table refused the mapping
    2  usage error
    3  CONFIG is invalid (as for seatgate check)
    4  CONFIG uses the memory backend: that table lives inside each host process and
       cannot be read from outside (have the host serve license_report instead)
";

/// How a subcommand failed, which decides the exit code.
enum Failure {
    /// Bad arguments: exit 2, with the subcommand's usage.
    Usage { message: String, usage: &'static str },
    /// A refusal or failure: exit 1.
    Refused(String),
    /// A failure with its own exit code (`check`, `report`).
    Exit { code: u8, message: String },
}

/// `check` and `report`: CONFIG is invalid.
const EXIT_INVALID: u8 = 3;
/// `report`: the config's table is the in-process `memory` one.
const EXIT_IN_PROCESS: u8 = 4;

type Outcome = Result<(), Failure>;

fn usage(message: impl Into<String>, usage: &'static str) -> Failure {
    Failure::Usage { message: message.into(), usage }
}

fn refused(error: impl std::fmt::Display) -> Failure {
    Failure::Refused(error.to_string())
}

fn main() -> ExitCode {
    let mut args = Vec::new();
    for arg in std::env::args_os().skip(1) {
        match arg.into_string() {
            Ok(s) => args.push(s),
            Err(bad) => {
                eprintln!("seatgate: argument {bad:?} is not valid UTF-8\n\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage { message, usage }) => {
            eprintln!("seatgate: {message}\n\n{usage}");
            ExitCode::from(2)
        }
        Err(Failure::Refused(message)) => {
            eprintln!("seatgate: {message}");
            ExitCode::from(1)
        }
        Err(Failure::Exit { code, message }) => {
            if !message.is_empty() {
                eprintln!("seatgate: {message}");
            }
            ExitCode::from(code)
        }
    }
}

fn run(args: &[String]) -> Outcome {
    let Some((command, rest)) = args.split_first() else {
        return Err(usage("no command given", USAGE));
    };
    match command.as_str() {
        "keygen" => keygen(rest),
        "sign" => sign(rest),
        "verify" => verify(rest),
        "emergency" => emergency(rest),
        "check" => check(rest),
        "report" => report(rest),
        "help" | "--help" | "-h" => help(rest),
        "--version" | "-V" | "version" => {
            println!("seatgate {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        other => Err(usage(format!("unknown command '{other}'"), USAGE)),
    }
}

fn help(rest: &[String]) -> Outcome {
    let text = match rest.first().map(String::as_str) {
        None => USAGE,
        Some("keygen") => KEYGEN_USAGE,
        Some("sign") => SIGN_USAGE,
        Some("verify") => VERIFY_USAGE,
        Some("emergency") => EMERGENCY_USAGE,
        Some("check") => CHECK_USAGE,
        Some("report") => REPORT_USAGE,
        Some(other) => return Err(usage(format!("no help for unknown command '{other}'"), USAGE)),
    };
    print!("{text}");
    Ok(())
}

fn emergency(rest: &[String]) -> Outcome {
    let args = Args::parse(rest, &["--pub"], EMERGENCY_USAGE)?;
    if args.help {
        print!("{EMERGENCY_USAGE}");
        return Ok(());
    }
    let [action, config] = args.positional.as_slice() else {
        return Err(usage("emergency needs an action (activate or status) and a CONFIG", EMERGENCY_USAGE));
    };
    trust_pub_keys(&args)?;
    let engine = seatgate::Engine::from_file(config).map_err(refused)?;
    let status = match action.as_str() {
        "activate" => engine.emergency_activate().map_err(refused)?,
        "status" => engine
            .emergency_status()
            .ok_or_else(|| refused(format!("{config} has no [emergency] section")))?,
        other => return Err(usage(format!("unknown emergency action '{other}'"), EMERGENCY_USAGE)),
    };
    println!("emergency window: {}", status.state);
    if let (Some(from), Some(to)) = (&status.opened_at, &status.ends_at) {
        println!("  from {from}\n  to   {to}");
    }
    println!("  {} extra seats of {}", status.seats, status.types.join(", "));
    match &status.why_not {
        None => println!("  can be activated"),
        Some(why) => println!("  cannot be activated now: {why}"),
    }
    Ok(())
}

fn invalid(error: impl std::fmt::Display) -> Failure {
    Failure::Exit { code: EXIT_INVALID, message: error.to_string() }
}

/// Trusts the vendor keys given with `--pub` (for a config's signed `license_file`).
fn trust_pub_keys(args: &Args) -> Outcome {
    for value in args.all(&["--pub"]) {
        signed::trust_key(VendorKey::load(Path::new(value)).map_err(refused)?);
    }
    Ok(())
}

fn check(rest: &[String]) -> Outcome {
    let args = Args::parse(rest, &["--pub"], CHECK_USAGE)?;
    if args.help {
        print!("{CHECK_USAGE}");
        return Ok(());
    }
    let path = args.single_positional("CONFIG", CHECK_USAGE)?;
    trust_pub_keys(&args)?;
    let mut config = Config::from_file(path).map_err(invalid)?;
    let summary = format!(
        "{path}: valid: {} license types, {} profiles, {} tenants, backend {}",
        config.order.len(),
        config.profiles.profiles.len(),
        config.tenants.len(),
        config.backend.kind()
    );
    // Everything license_init checks beyond the file (state file, signed license,
    // tenant cap), over a private in-process table: the real one is not opened, and
    // the audit log is not touched.
    config.audit = None;
    let engine = Engine::with_backend(config, Box::new(seatgate::backend::memory::MemoryBackend::new()))
        .map_err(invalid)?;
    let lints = engine.lints();
    let report = engine.report(Page::ALL);
    println!("{summary}");
    for lint in &lints {
        println!("{lint}");
    }
    // The report's warnings start with the lints; the rest are the policy's.
    let others = report.warnings.get(lints.len()..).unwrap_or_default();
    for warning in others {
        println!("{path}: warning: {warning}");
    }
    let total = lints.len() + others.len();
    if total == 0 {
        println!("no warnings");
        return Ok(());
    }
    println!("{total} warning{}", if total == 1 { "" } else { "s" });
    Err(Failure::Exit { code: 1, message: String::new() })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Text,
    Json,
    Prometheus,
}

fn report(rest: &[String]) -> Outcome {
    let args = Args::parse(rest, &["--format", "-f", "--tenant", "-t", "--pub"], REPORT_USAGE)?;
    if args.help {
        print!("{REPORT_USAGE}");
        return Ok(());
    }
    let format = match args.one(&["--format", "-f"], REPORT_USAGE)? {
        None | Some("text") => Format::Text,
        Some("json") => Format::Json,
        Some("prometheus") => Format::Prometheus,
        Some(other) => {
            return Err(usage(
                format!("unknown format '{other}': use text, json or prometheus"),
                REPORT_USAGE,
            ));
        }
    };
    let tenant = args.one(&["--tenant", "-t"], REPORT_USAGE)?;
    let path = match args.positional.as_slice() {
        [one] => one.clone(),
        [] => std::env::var("SEATGATE_CONFIG").unwrap_or_else(|_| "/etc/seatgate/seats.toml".to_string()),
        [_, extra, ..] => return Err(usage(format!("unexpected argument '{extra}'"), REPORT_USAGE)),
    };
    trust_pub_keys(&args)?;
    let mut config = Config::from_file(&path).map_err(invalid)?;
    let cannot_read =
        |e: &dyn std::fmt::Display| refused(format!("cannot read the seat table of {path}: {e}"));
    // Where the tenants' pools are, to open only those that exist.
    let tenant_exists: Box<dyn Fn(&str) -> bool>;
    let backend: Box<dyn Backend> = match &mut config.backend {
        BackendConfig::Memory => {
            return Err(Failure::Exit {
                code: EXIT_IN_PROCESS,
                message: format!(
                    "{path} uses the memory backend: its seat table lives inside each host process and \
                     cannot be read from outside. Have the host serve license_report() (its admin page, or \
                     LICENSE_REPORT_PROMETHEUS on a metrics endpoint), or use [backend] kind = \"shm\" \
                     (one host) or \"redis\" (a cluster)"
                ),
            });
        }
        BackendConfig::Shm(shm) => {
            // Opening would create an empty table: a report must not.
            if !shm.path.exists() {
                return Err(cannot_read(&format!(
                    "the shared table {} does not exist: no host of this installation has started \
                     (license_init creates it)",
                    shm.path.display()
                )));
            }
            let table = seatgate::backend::shm::ShmBackend::open(shm).map_err(|e| cannot_read(&e))?;
            let base = table.tenant_path("");
            tenant_exists = Box::new(move |t: &str| {
                let mut file = base.clone().into_os_string();
                file.push(t);
                Path::new(&file).exists()
            });
            Box::new(table)
        }
        BackendConfig::Redis(redis) => {
            // A report of a node's local share would be no report of the cluster.
            redis.on_backend_error = OnBackendError::Deny;
            tenant_exists = Box::new(|_| true);
            seatgate::backend::open(&config).map_err(|e| cannot_read(&e))?
        }
    };
    config.audit = None;
    let engine = Engine::with_backend(config, Box::new(ReadOnly(backend))).map_err(|e| match e {
        Error::Backend(_) | Error::TableFull { .. } => cannot_read(&e),
        other => invalid(other),
    })?;
    let outside = |mut r: Report| {
        r.read_from_outside = true;
        r.reaper = "runs in the hosts (this report was read from outside by seatgate report)".to_string();
        r
    };
    let tenant_report = |t: &str| -> Result<Report, Failure> {
        if !tenant_exists(t) {
            return Err(refused(format!(
                "tenant '{t}' has no seat pool yet: none of its users has logged in since the table was made"
            )));
        }
        engine.report_tenant(t, Page::ALL).map(outside).map_err(|e| match e {
            Error::UnknownTenant(_) => {
                refused(format!("{e} (tenants given limits at run time are not known here)"))
            }
            other => cannot_read(&other),
        })
    };
    let mut reports = match tenant {
        Some(t) => vec![tenant_report(t)?],
        None => {
            // The declared tenants' pools first: the default report then lists them
            // (as a host's lists the pools it has open), and Prometheus gets their
            // metrics after the default pool's.
            let declared: Vec<String> = engine.config().tenants.keys().map(|t| t.to_string()).collect();
            let tenants = declared.iter().filter(|t| tenant_exists(t)).map(|t| tenant_report(t));
            let tenants = tenants.collect::<Result<Vec<Report>, Failure>>()?;
            std::iter::once(outside(engine.report(Page::ALL))).chain(tenants).collect::<Vec<Report>>()
        }
    };
    if let Some(why) = &reports[0].degraded {
        return Err(cannot_read(why));
    }
    if format != Format::Prometheus {
        reports.truncate(1);
    }
    let text = match format {
        Format::Text => reports[0].to_text(),
        Format::Json => format!("{}\n", reports[0].to_json()),
        Format::Prometheus => seatgate::report::to_prometheus(&reports.iter().collect::<Vec<_>>()),
    };
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| refused(format!("cannot write the report to stdout: {e}")))
}

/// A seat table seen through `seatgate report`: every query goes to the real table,
/// every change is refused or skipped, so nothing the engine does while building a
/// report (its policy may shed holders of an expired type, for one) reaches the hosts.
struct ReadOnly(Box<dyn Backend>);

const READ_ONLY: &str = "seatgate report reads the seat table only";

impl Backend for ReadOnly {
    fn kind(&self) -> &'static str {
        self.0.kind()
    }
    fn try_acquire(&self, _: &Config, _: &SeatRequest<'_>, _: &mut Changes) -> Result<SeatId, Error> {
        Err(Error::Backend(READ_ONLY.into()))
    }
    fn release(
        &self,
        _: &Config,
        _: SeatId,
        _: ReleaseWhy,
        _: &Now<'_>,
        _: &mut Changes,
    ) -> Result<(), Error> {
        Err(Error::Backend(READ_ONLY.into()))
    }
    fn release_user(
        &self,
        _: &Config,
        _: &str,
        _: ReleaseWhy,
        _: Mono,
        _: &mut Changes,
    ) -> Result<usize, Error> {
        Err(Error::Backend(READ_ONLY.into()))
    }
    fn touch(&self, _: &Config, _: SeatId, _: Mono, _: &mut Changes) -> Result<(), Error> {
        Err(Error::Backend(READ_ONLY.into()))
    }
    fn touch_user(&self, _: &Config, _: &str, _: Mono, _: &mut Changes) -> Result<usize, Error> {
        Err(Error::Backend(READ_ONLY.into()))
    }
    fn reap(&self, _: &Config, _: Mono, _: &mut Changes) -> usize {
        0
    }
    fn used(&self, config: &Config, slot: usize) -> u32 {
        self.0.used(config, slot)
    }
    fn stats(&self, config: &Config, slot: usize) -> TypeStats {
        self.0.stats(config, slot)
    }
    fn count_denial(&self, _: &Config, _: usize) {}
    fn reset_peaks(&self, _: &Config) {}
    fn holders(&self, config: &Config) -> Vec<HeldSeat> {
        self.0.holders(config)
    }
    fn own_holders(&self, _: &Config) -> Vec<HeldSeat> {
        Vec::new()
    }
    fn lingering(&self, config: &Config) -> Vec<LingeringSeat> {
        self.0.lingering(config)
    }
    fn reload_epoch(&self) -> u64 {
        self.0.reload_epoch()
    }
    fn announce_reload(&self) -> u64 {
        self.0.reload_epoch()
    }
    fn status(&self, config: &Config) -> BackendStatus {
        self.0.status(config)
    }
    fn shared(&self) -> bool {
        self.0.shared()
    }
    /// The hosts' own numbers, so the seat ids in a tenant's report are the ones the
    /// hosts know. Numbering the config's tenants is what every attaching process does.
    fn tenant_numbers(&self, names: &[&str], max: usize) -> Result<Option<Vec<u32>>, Error> {
        self.0.tenant_numbers(names, max)
    }
    fn tenant_named(&self, number: u32) -> Result<Option<std::sync::Arc<str>>, Error> {
        self.0.tenant_named(number)
    }
    fn open_tenant(&self, tenant: &str) -> Result<Box<dyn Backend>, Error> {
        Ok(Box::new(ReadOnly(self.0.open_tenant(tenant)?)))
    }
}

/// The arguments of one subcommand: `--name VALUE` / `--name=VALUE` options (each may be
/// repeated) and positional arguments. `--help` anywhere asks for the usage.
struct Args {
    options: Vec<(String, String)>,
    positional: Vec<String>,
    help: bool,
}

impl Args {
    /// Splits `args`; `takes_value` lists the accepted option names (long and short).
    fn parse(args: &[String], takes_value: &[&str], usage_text: &'static str) -> Result<Args, Failure> {
        let mut parsed = Args { options: Vec::new(), positional: Vec::new(), help: false };
        let mut iter = args.iter();
        while let Some(arg) = iter.next() {
            if arg == "--" {
                parsed.positional.extend(iter.by_ref().cloned());
                break;
            }
            if arg == "--help" || arg == "-h" {
                parsed.help = true;
                continue;
            }
            if !arg.starts_with('-') || arg == "-" {
                parsed.positional.push(arg.clone());
                continue;
            }
            let (name, inline) = match arg.split_once('=') {
                Some((name, value)) if name.starts_with("--") => (name, Some(value.to_string())),
                _ => (arg.as_str(), None),
            };
            if !takes_value.contains(&name) {
                return Err(usage(format!("unknown option '{name}'"), usage_text));
            }
            let value = match inline {
                Some(v) => v,
                None => {
                    iter.next().cloned().ok_or_else(|| usage(format!("{name} needs a value"), usage_text))?
                }
            };
            parsed.options.push((name.to_string(), value));
        }
        Ok(parsed)
    }

    /// The values given for an option under any of its `names`.
    fn all(&self, names: &[&str]) -> Vec<&str> {
        self.options.iter().filter(|(n, _)| names.contains(&n.as_str())).map(|(_, v)| v.as_str()).collect()
    }

    /// At most one value for the option.
    fn one(&self, names: &[&str], usage_text: &'static str) -> Result<Option<&str>, Failure> {
        match self.all(names).as_slice() {
            [] => Ok(None),
            [v] => Ok(Some(v)),
            _ => Err(usage(format!("{} given more than once", names[0]), usage_text)),
        }
    }

    /// Exactly one positional argument, named `what` in the error.
    fn single_positional(&self, what: &str, usage_text: &'static str) -> Result<&str, Failure> {
        match self.positional.as_slice() {
            [one] => Ok(one),
            [] => Err(usage(format!("{what} is missing"), usage_text)),
            [_, extra, ..] => Err(usage(format!("unexpected argument '{extra}'"), usage_text)),
        }
    }
}

fn keygen(rest: &[String]) -> Outcome {
    let args = Args::parse(rest, &["--out", "-o"], KEYGEN_USAGE)?;
    if args.help {
        print!("{KEYGEN_USAGE}");
        return Ok(());
    }
    if let Some(extra) = args.positional.first() {
        return Err(usage(format!("unexpected argument '{extra}'"), KEYGEN_USAGE));
    }
    let Some(prefix) = args.one(&["--out", "-o"], KEYGEN_USAGE)? else {
        return Err(usage("--out PREFIX is required", KEYGEN_USAGE));
    };
    if prefix.is_empty() || prefix.ends_with('/') {
        return Err(usage("--out needs a file name prefix such as keys/acme-vendor", KEYGEN_USAGE));
    }
    let key = VendorSigningKey::generate().map_err(refused)?;
    let files = key.write_key_pair(Path::new(prefix)).map_err(refused)?;
    let public = key.public_key();
    println!(
        "wrote {} (secret signing key, mode 0600: keep it offline, never ship it)",
        files.secret.display()
    );
    println!("wrote {} (public key)", files.public.display());
    println!("key id: {}", public.key_id());
    println!("to compile this key into seatgate, build with:");
    println!("  SEATGATE_VENDOR_KEYS={} cargo build --release", public.to_text());
    Ok(())
}

fn sign(rest: &[String]) -> Outcome {
    let args = Args::parse(rest, &["--key", "-k", "--output", "-o"], SIGN_USAGE)?;
    if args.help {
        print!("{SIGN_USAGE}");
        return Ok(());
    }
    let input = args.single_positional("the unsigned license file", SIGN_USAGE)?;
    let Some(key_path) = args.one(&["--key", "-k"], SIGN_USAGE)? else {
        return Err(usage("--key PREFIX.key is required", SIGN_USAGE));
    };
    let output = args.one(&["--output", "-o"], SIGN_USAGE)?;

    let key_path = Path::new(key_path);
    warn_if_key_is_readable_by_others(key_path);
    let key = VendorSigningKey::load(key_path).map_err(refused)?;
    let text = std::fs::read_to_string(input).map_err(|e| refused(format!("cannot read {input}: {e}")))?;
    let signed_text = signed::sign_text(&text, input, &key).map_err(refused)?;
    // Verified by sign_text against this key already; parse it again to print a summary.
    let license =
        SignedLicense::verify_signature(&signed_text, input, &[key.public_key()]).map_err(refused)?;

    match output {
        None | Some("-") => {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(signed_text.as_bytes())
                .and_then(|()| stdout.flush())
                .map_err(|e| refused(format!("cannot write the signed license to stdout: {e}")))?;
        }
        Some(path) => {
            std::fs::write(path, &signed_text).map_err(|e| refused(format!("cannot write {path}: {e}")))?;
        }
    }
    let destination = output.filter(|o| *o != "-").unwrap_or("stdout");
    eprintln!(
        "signed license {} for {} ({} license types) with key id {} -> {destination}",
        license.license_id,
        license.licensee,
        license.limits.len(),
        license.key_id
    );
    if let Some(until) = license.valid_until.filter(|_| license.is_expired(signed::today_utc())) {
        eprintln!("warning: license {} already expired on {until}", license.license_id);
    }
    Ok(())
}

/// A secret key that others can read is a leak waiting to happen; say so, but sign anyway.
fn warn_if_key_is_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            eprintln!(
                "warning: {} can be read by other users (mode {:o}); chmod 600 it",
                path.display(),
                meta.permissions().mode() & 0o777
            );
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

fn verify(rest: &[String]) -> Outcome {
    let args = Args::parse(rest, &["--pub", "-p", "--today"], VERIFY_USAGE)?;
    if args.help {
        print!("{VERIFY_USAGE}");
        return Ok(());
    }
    let file = args.single_positional("the license file", VERIFY_USAGE)?;
    let today = match args.one(&["--today"], VERIFY_USAGE)? {
        None => signed::today_utc(),
        Some(text) => Date::parse(text)
            .ok_or_else(|| usage(format!("--today '{text}' is not a date (YYYY-MM-DD)"), VERIFY_USAGE))?,
    };
    let pub_files = args.all(&["--pub", "-p"]);
    let (trusted, from) = if pub_files.is_empty() {
        (signed::compiled_in_keys(), "compiled in at build time")
    } else {
        let keys =
            pub_files.iter().map(|p| VendorKey::load(&PathBuf::from(p))).collect::<Result<Vec<_>, _>>();
        (keys.map_err(refused)?, "from --pub")
    };
    let license = match SignedLicense::load(Path::new(file), &trusted, today) {
        Ok(license) => license,
        Err(e @ signed::SignedError::NoTrustedKey { .. }) => {
            return Err(refused(format!(
                "{e}\n(this seatgate was built without SEATGATE_VENDOR_KEYS: pass --pub VENDOR.pub)"
            )));
        }
        Err(e) => return Err(refused(e)),
    };
    print_license(file, &license, today);
    println!(
        "trusted keys:   {} ({from})",
        trusted.iter().map(VendorKey::key_id).collect::<Vec<_>>().join(", ")
    );
    println!("signature OK (key id {})", license.key_id);
    Ok(())
}

fn print_license(file: &str, l: &SignedLicense, today: Date) {
    let until = |date: Option<Date>, days: Option<i64>, none: &str| match (date, days) {
        (Some(date), Some(0)) => format!("{date} (today is the last day)"),
        (Some(date), Some(1)) => format!("{date} (1 day left)"),
        (Some(date), Some(d)) if d > 0 => format!("{date} ({d} days left)"),
        (Some(date), Some(d)) => format!("{date} (ended {} days ago)", -d),
        _ => none.to_string(),
    };
    println!("license file:   {file}");
    println!("licensee:       {}", l.licensee);
    println!("license id:     {}", l.license_id);
    println!("issued:         {}", l.issued);
    println!("valid until:    {}", until(l.valid_until, l.days_left(today), "perpetual (no end date)"));
    println!("support until:  {}", until(l.support_until, l.support_days_left(today), "no support included"));
    if l.emergency_seats > 0 {
        println!("emergency:      up to {} extra seats for {} days", l.emergency_seats, l.emergency_days);
    } else {
        println!("emergency:      none");
    }
    match l.max_tenants {
        Some(n) => println!("max tenants:    {n}"),
        None => println!("max tenants:    no cap"),
    }
    println!("limits:");
    let width = l.limits.keys().map(String::len).max().unwrap_or(0);
    for (name, limit) in &l.limits {
        println!("  {name:<width$}  {limit}");
    }
    if let Some(description) = &l.description {
        println!("description:    {description} (from [info], not signed)");
    }
    println!("checked on:     {today} (UTC)");
}
