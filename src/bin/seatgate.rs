//! `seatgate`: the command line for vendors (and admins) around seatgate license files.
//!
//! Exit codes: 0 success, 1 a refusal or failure (bad signature, expired, file exists...),
//! 2 a usage error. Each subcommand is one function taking its own arguments; add new
//! ones to the dispatch `match` in [`run`].

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use seatgate::config::Date;
use seatgate::signed::{self, SignedLicense, VendorKey, VendorSigningKey};

const USAGE: &str = "\
seatgate: vendor tools for seatgate license files

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

    seatgate help [COMMAND]

EXIT STATUS:
    0 success, 1 verification failed or the command was refused, 2 usage error.

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

/// How a subcommand failed, which decides the exit code.
enum Failure {
    /// Bad arguments: exit 2, with the subcommand's usage.
    Usage { message: String, usage: &'static str },
    /// A refusal or failure: exit 1.
    Refused(String),
}

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
        // Planned here: "check" CONFIG, "report".
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
    for (name, value) in &args.options {
        if name == "--pub" {
            signed::trust_key(VendorKey::load(Path::new(value)).map_err(refused)?);
        }
    }
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
