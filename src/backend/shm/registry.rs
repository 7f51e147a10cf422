//! The tenants' numbers that every process sharing a seat table agrees on.
//!
//! A seat handle carries its tenant's number in its top bits, so a handle taken in
//! one process and released in another (two Kamailio workers, a PHP worker and the
//! CLI) must name the same tenant in both. Numbering tenants in each process by the
//! order it met them does not do that: a process started after a reload that added
//! a tenant, or one that was given a tenant's limit at run time, counts differently.
//!
//! The registry is the file `{path}@@tenants` beside the table (a tenant name cannot
//! hold `@`, so no tenant's pool file is named so): one tenant name per line, and the
//! tenant on line *n* (from 1) is tenant number *n*. It is only ever appended to,
//! under an exclusive `flock`, so a number once given stays with its tenant for as
//! long as the file lives: a handle can never come to mean another tenant.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::error::Error;

/// The tenant registry of one seat table, with this process's copy of it.
pub struct TenantRegistry {
    path: PathBuf,
    /// The names read from the file so far.
    known: Mutex<Names>,
}

/// A registry's names in number order (number = index + 1), indexed by name.
#[derive(Default)]
struct Names {
    order: Vec<Arc<str>>,
    numbers: HashMap<Arc<str>, u32>,
}

impl Names {
    fn len(&self) -> usize {
        self.order.len()
    }

    /// The number of `name` (its first line).
    fn number(&self, name: &str) -> Option<u32> {
        self.numbers.get(name).copied()
    }

    fn name(&self, number: u32) -> Option<&Arc<str>> {
        self.order.get((number as usize).checked_sub(1)?)
    }

    /// Adds the next line; a name already there keeps its first number.
    fn push(&mut self, name: Arc<str>) {
        self.order.push(name.clone());
        let number = self.order.len() as u32;
        self.numbers.entry(name).or_insert(number);
    }
}

impl TenantRegistry {
    /// The registry of the table at `table` (nothing is opened yet).
    pub fn beside(table: &Path) -> TenantRegistry {
        let mut path = table.as_os_str().to_owned();
        path.push("@@tenants");
        TenantRegistry { path: path.into(), known: Mutex::new(Names::default()) }
    }

    #[cfg(test)]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The numbers of `names`, registering those the file does not hold yet (in the
    /// order given); at most `max` tenants in all.
    pub fn numbers(&self, names: &[&str], max: usize) -> Result<Vec<u32>, Error> {
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = names.iter().map(|n| known.number(n)).collect::<Option<Vec<u32>>>() {
            return Ok(found);
        }
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(|e| self.error("cannot open or create it", &e))?;
        file.lock().map_err(|e| self.error("cannot lock it", &e))?;
        let (mut lines, complete) = self.read(&mut file)?;
        // A writer that died half-way through a line left a tail no number was given
        // to: cut it before appending.
        if file.metadata().map_err(|e| self.error("cannot stat it", &e))?.len() != complete {
            file.set_len(complete).map_err(|e| self.error("cannot cut its unfinished last line", &e))?;
        }
        let mut added = String::new();
        for &name in names {
            if lines.number(name).is_none() {
                if lines.len() >= max {
                    return Err(Error::InvalidArgument(format!(
                        "cannot add tenant '{name}': one installation serves at most {max} tenants (registry {})",
                        self.path.display()
                    )));
                }
                lines.push(Arc::from(name));
                added.push_str(name);
                added.push('\n');
            }
        }
        if !added.is_empty() {
            // One write of whole lines, on disk before any handle carries the numbers.
            file.write_all(added.as_bytes())
                .and_then(|()| file.sync_data())
                .map_err(|e| self.error("cannot write it", &e))?;
        }
        let numbers = names.iter().map(|n| lines.number(n).unwrap_or(0)).collect();
        *known = lines;
        Ok(numbers)
    }

    /// The tenant registered under `number`, by any process (`None`: nobody did).
    pub fn name_of(&self, number: u32) -> Result<Option<Arc<str>>, Error> {
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(name) = known.name(number) {
            return Ok(Some(name.clone()));
        }
        let mut file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.error("cannot open it", &e)),
        };
        file.lock_shared().map_err(|e| self.error("cannot lock it", &e))?;
        let (lines, _) = self.read(&mut file)?;
        *known = lines;
        Ok(known.name(number).cloned())
    }

    /// The complete lines of the file, checked, and the length they take.
    fn read(&self, file: &mut File) -> Result<(Names, u64), Error> {
        let mut text = String::new();
        file.seek(SeekFrom::Start(0))
            .and_then(|_| file.read_to_string(&mut text))
            .map_err(|e| self.error("cannot read it", &e))?;
        let complete = text.rfind('\n').map_or(0, |i| i + 1);
        let mut lines = Names::default();
        for (n, line) in text[..complete].lines().enumerate() {
            if super::super::check_tenant_name(line).is_err() {
                return Err(Error::Backend(format!(
                    "tenant registry {} line {}: '{}' is not a tenant name (the file is not seatgate's, or was damaged: stop every process using the table and remove it with the table)",
                    self.path.display(),
                    n + 1,
                    line.escape_debug()
                )));
            }
            lines.push(Arc::from(line));
        }
        Ok((lines, complete as u64))
    }

    fn error(&self, what: &str, e: &std::io::Error) -> Error {
        Error::Backend(format!("tenant registry {}: {what}: {e}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A folder of its own for a table path, removed when the test ends.
    struct Folder(PathBuf);

    impl Folder {
        fn new(tag: &str) -> Folder {
            let dir = std::env::temp_dir().join(format!("seatgate-registry-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Folder(dir)
        }

        fn table(&self) -> PathBuf {
            self.0.join("table")
        }
    }

    impl Drop for Folder {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn two_registries_of_one_table_agree_whatever_order_they_meet_tenants_in() {
        let folder = Folder::new("agree");
        let a = TenantRegistry::beside(&folder.table());
        let b = TenantRegistry::beside(&folder.table());
        assert_eq!(a.numbers(&["globex", "initech"], 10).unwrap(), vec![1, 2]);
        // b meets them in the other order, and one more that sorts before both.
        assert_eq!(b.numbers(&["aardvark", "initech", "globex"], 10).unwrap(), vec![3, 2, 1]);
        assert_eq!(a.name_of(3).unwrap().as_deref(), Some("aardvark"));
        assert_eq!(a.numbers(&["aardvark"], 10).unwrap(), vec![3]);
        assert_eq!(a.name_of(4).unwrap(), None);
        assert_eq!(a.name_of(0).unwrap(), None);
        assert_eq!(std::fs::read_to_string(a.path()).unwrap(), "globex\ninitech\naardvark\n");
    }

    #[test]
    fn an_unfinished_last_line_is_cut_and_never_numbered() {
        let folder = Folder::new("torn");
        let r = TenantRegistry::beside(&folder.table());
        std::fs::write(r.path(), "globex\ninit").unwrap();
        assert_eq!(r.name_of(2).unwrap(), None);
        assert_eq!(r.numbers(&["acme"], 10).unwrap(), vec![2]);
        assert_eq!(std::fs::read_to_string(r.path()).unwrap(), "globex\nacme\n");
    }

    #[test]
    fn the_tenant_cap_and_a_damaged_file_are_errors() {
        let folder = Folder::new("cap");
        let r = TenantRegistry::beside(&folder.table());
        assert_eq!(r.numbers(&["a", "b"], 2).unwrap(), vec![1, 2]);
        let e = r.numbers(&["c"], 2).unwrap_err().to_string();
        assert!(e.contains("at most 2 tenants"), "{e}");
        assert_eq!(
            std::fs::read_to_string(r.path()).unwrap(),
            "a\nb\n",
            "nothing was written for the refused one"
        );

        let damaged = Folder::new("damaged");
        let other = TenantRegistry::beside(&damaged.table());
        std::fs::write(other.path(), "globex\nnot a name\n").unwrap();
        let e = other.numbers(&["x"], 10).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("not a tenant name"), "{e}");
        assert_eq!(std::fs::read_to_string(other.path()).unwrap(), "globex\nnot a name\n", "lost nothing");
    }
}
