//! The string jobs on every acquire, done a machine word at a time: checking a label
//! (a user name, an extension), finding a profile or type name, and keying a user
//! name for the user table ([`NameKey`]).
//!
//! Both read at most 8 bytes per step with unaligned little-endian loads and no
//! per-byte branch, so a 14-byte user name costs two words and a profile lookup
//! one hash, one probe and (for names of up to 16 bytes) two word compares.

use crate::types::TypeSet;

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;
const SPACES: u64 = ONES * b' ' as u64;

/// The first 8 bytes and the last 8 bytes of `b` as words (overlapping when `b` is
/// shorter than 16), short names padded with `pad`.
#[inline(always)]
fn ends(b: &[u8], pad: u8) -> (u64, u64) {
    let n = b.len();
    if n >= 8 {
        let mut first = [0u8; 8];
        let mut last = [0u8; 8];
        first.copy_from_slice(&b[..8]);
        last.copy_from_slice(&b[n - 8..]);
        (u64::from_le_bytes(first), u64::from_le_bytes(last))
    } else {
        let w = short_word(b) | pad_above(n, pad);
        (w, w)
    }
}

/// The bytes of `b` (shorter than 8) as a little-endian word, zero above them. Built
/// from fixed-size loads that overlap (two of 4 bytes, or two of 2 bytes for 2 or 3): a
/// copy of a variable length into a buffer compiles to a call to `memcpy`, which
/// cost three calls and about 60 instructions on every login with a short user
/// name ("1001", "u03").
#[inline(always)]
fn short_word(b: &[u8]) -> u64 {
    let n = b.len();
    if n >= 4 {
        let lo = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let hi = u32::from_le_bytes([b[n - 4], b[n - 3], b[n - 2], b[n - 1]]);
        // The overlap holds the same bytes in both, so OR keeps them.
        u64::from(lo) | u64::from(hi) << (8 * (n - 4))
    } else if n >= 2 {
        // Two of 2 bytes, overlapping for 3 ("101").
        let lo = u16::from_le_bytes([b[0], b[1]]);
        let hi = u16::from_le_bytes([b[n - 2], b[n - 1]]);
        u64::from(lo) | u64::from(hi) << (8 * (n - 2))
    } else if n == 1 {
        u64::from(b[0])
    } else {
        0
    }
}

/// `pad` in every byte from byte `n` (below 8) up.
#[inline(always)]
fn pad_above(n: usize, pad: u8) -> u64 {
    (ONES * u64::from(pad)) << (8 * n)
}

/// Whether every byte of `b` is ASCII. Up to 16 bytes (most names) it is two word
/// tests, inline; the standard test goes a byte at a time below a word.
#[inline(always)]
pub fn is_ascii(b: &[u8]) -> bool {
    if b.len() <= 16 {
        let (first, last) = ends(b, 0);
        (first | last) & HIGH == 0
    } else {
        b.is_ascii()
    }
}

/// A name's key: its length and its first and last 8 bytes as words (overlapping
/// below 16 bytes, zero above a name shorter than 8). Names of up to 16 bytes are the
/// same exactly when their keys are. Finding a user makes the caller's key once, for
/// the hash and the compare both, where hashing the name and comparing it gathered
/// its bytes twice.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct NameKey {
    first: u64,
    last: u64,
    len: usize,
}

impl NameKey {
    #[inline(always)]
    pub fn of(b: &[u8]) -> NameKey {
        let (first, last) = ends(b, 0);
        NameKey { first, last, len: b.len() }
    }

    /// Whether the key alone tells names apart: up to 16 bytes. A longer name's
    /// middle is not in its key.
    #[inline(always)]
    pub fn is_whole(&self) -> bool {
        self.len <= 16
    }

    /// The key hashed with `seed` (two random words): two folded multiplies, so that
    /// every bit of the key moves both halves of the result. For whole keys only.
    #[inline(always)]
    pub fn hash(&self, seed: [u64; 2]) -> u64 {
        let h = folded_multiply(self.first ^ seed[0], self.last ^ seed[1]);
        folded_multiply(h ^ self.len as u64, seed[0] ^ 0x9e37_79b9_7f4a_7c15)
    }
}

/// The full 128-bit product of `x` and `y`, its halves XORed together.
#[inline(always)]
fn folded_multiply(x: u64, y: u64) -> u64 {
    let full = u128::from(x) * u128::from(y);
    (full as u64) ^ ((full >> 64) as u64)
}

/// Whether `bytes` is a plain label: 1 to `max` bytes, every one printable ASCII
/// (0x20 to 0x7e), not all spaces. Plain labels need no further check (ASCII is valid
/// UTF-8 and has no control character); anything else takes the careful path.
#[inline(always)]
pub fn plain_label(bytes: &[u8], max: usize) -> bool {
    let n = bytes.len();
    if n == 0 || n > max {
        return false;
    }
    if n > 16 {
        return plain_long_label(bytes);
    }
    // Padding with spaces changes neither answer.
    let (first, last) = ends(bytes, b' ');
    let mut test = LabelTest::default();
    test.word(first);
    test.word(last);
    test.plain()
}

/// [`plain_label`] of a label longer than 16 bytes: kept out of line, so that the
/// short label's test stays small enough to inline where it is called.
#[inline(never)]
fn plain_long_label(bytes: &[u8]) -> bool {
    let mut test = LabelTest::default();
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        test.word(u64::from_le_bytes(w));
    }
    // The last 8 bytes (overlapping the chunks read already).
    let mut w = [0u8; 8];
    w.copy_from_slice(&bytes[bytes.len() - 8..]);
    test.word(u64::from_le_bytes(w));
    test.plain()
}

/// What [`plain_label`] learns a word at a time.
#[derive(Default)]
struct LabelTest {
    bad: u64,
    other_than_space: u64,
}

impl LabelTest {
    #[inline(always)]
    fn word(&mut self, w: u64) {
        // A byte below 0x20 sets its high bit in the first term (exact for "some byte
        // is", the classic test); a byte of 0x7f or more sets it in the second.
        self.bad |= (w.wrapping_sub(ONES * 0x20) & !w) | w.wrapping_add(ONES) | w;
        self.other_than_space |= w ^ SPACES;
    }

    #[inline(always)]
    fn plain(&self) -> bool {
        self.bad & HIGH == 0 && self.other_than_space != 0
    }
}

/// Profile and bare type names to their seat sets, built once per configuration and
/// read on every acquire. Open addressing over a power-of-two table; the hash is one
/// multiply of the name's length and its first and last 8 bytes. A name that shares
/// all three with another only probes further (names come from the vendor's file, and
/// a caller's miss ends at the first empty slot).
#[derive(Debug, Clone, Default)]
pub struct NameTable {
    /// Entry index + 1 per slot (0: empty).
    slots: Box<[u32]>,
    entries: Vec<Entry>,
}

#[derive(Debug, Clone)]
struct Entry {
    first: u64,
    last: u64,
    name: Box<str>,
    set: TypeSet,
}

#[inline]
fn hash_of(len: usize, first: u64, last: u64) -> u64 {
    let h = (first ^ last.rotate_left(29) ^ (len as u64).rotate_left(58)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h ^ (h >> 32)
}

impl NameTable {
    /// A table of `names`; a name given twice keeps its last set.
    pub fn new<'a>(names: impl IntoIterator<Item = (&'a str, TypeSet)>) -> NameTable {
        let names: Vec<(&str, TypeSet)> = names.into_iter().collect();
        let size = (names.len() * 2).next_power_of_two().max(8);
        let mut table = NameTable { slots: vec![0u32; size].into_boxed_slice(), entries: Vec::new() };
        for (name, set) in names {
            match table.find(name) {
                Ok(i) => table.entries[i].set = set,
                Err(at) => {
                    let (first, last) = ends(name.as_bytes(), 0);
                    table.entries.push(Entry { first, last, name: name.into(), set });
                    table.slots[at] = table.entries.len() as u32;
                }
            }
        }
        table
    }

    /// The seat set of `name`, compared byte for byte.
    #[inline(always)]
    pub fn get(&self, name: &str) -> Option<TypeSet> {
        self.find(name).ok().map(|i| self.entries[i].set)
    }

    /// `Ok(entry)` holding `name`, or `Err(slot)`: the empty slot where its probe
    /// ended (where it would go).
    #[inline(always)]
    fn find(&self, name: &str) -> Result<usize, usize> {
        let b = name.as_bytes();
        let (first, last) = ends(b, 0);
        let mask = self.slots.len().wrapping_sub(1);
        let mut at = hash_of(b.len(), first, last) as usize & mask;
        // Never more probes than slots (the table is at most half full).
        for _ in 0..self.slots.len() {
            let e = match self.slots[at] {
                0 => return Err(at),
                i => i as usize - 1,
            };
            let entry = &self.entries[e];
            // Up to 16 bytes the two words are the whole name.
            if entry.name.len() == b.len()
                && entry.first == first
                && entry.last == last
                && (b.len() <= 16 || *entry.name == *name)
            {
                return Ok(e);
            }
            at = (at + 1) & mask;
        }
        Err(usize::MAX)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_key_hashes_spread_over_the_upper_half() {
        // The user index takes its tag and probe start from the upper 32 bits.
        let seed = [0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210];
        let mut tags = std::collections::HashSet::new();
        // Probe starts: the upper half's low bits (a small table's), and its top bits.
        let mut low = vec![0u32; 1 << 12];
        let mut top = vec![0u32; 1 << 12];
        let n = 100_000;
        for i in 0..n {
            let name = format!("u{i}");
            let hash = NameKey::of(name.as_bytes()).hash(seed);
            tags.insert(hash >> 32);
            low[(hash >> 32) as usize & 0xfff] += 1;
            top[(hash >> 52) as usize] += 1;
        }
        // 100k random 32-bit tags collide about once.
        assert!(n - tags.len() <= 8, "{} tags shared", n - tags.len());
        // Every 12-bit bucket gets about 24; none is crowded, none left empty.
        for (what, buckets) in [("low", &low), ("top", &top)] {
            let (least, most) = (*buckets.iter().min().unwrap(), *buckets.iter().max().unwrap());
            assert!(most < 60 && least > 3, "{what} bits: buckets of {least} to {most} names");
        }
    }

    #[test]
    fn is_ascii_agrees_with_the_standard_test_at_every_length_and_position() {
        for n in 0..40 {
            let plain = vec![b'a'; n];
            assert!(is_ascii(&plain), "{n}");
            for at in 0..n {
                for high in [0x80u8, 0xc3, 0xff] {
                    let mut b = plain.clone();
                    b[at] = high;
                    assert_eq!(is_ascii(&b), b.is_ascii(), "{n} bytes, {high:#x} at {at}");
                    assert!(!is_ascii(&b));
                }
            }
        }
    }

    #[test]
    fn short_names_load_as_if_copied_into_a_padded_word() {
        let source: Vec<u8> = (0..16u8).map(|i| i.wrapping_mul(37).wrapping_add(0x81)).collect();
        for n in 0..8 {
            for pad in [0u8, b' ', 0xff] {
                let b = &source[3..3 + n];
                let mut w = [pad; 8];
                w[..n].copy_from_slice(b);
                let want = u64::from_le_bytes(w);
                assert_eq!(ends(b, pad), (want, want), "{n} bytes, pad {pad:#x}");
            }
        }
    }

    /// The definition `plain_label` must agree with, byte by byte.
    fn plain_by_bytes(b: &[u8], max: usize) -> bool {
        !b.is_empty()
            && b.len() <= max
            && b.iter().all(|&c| (0x20..=0x7e).contains(&c))
            && b.iter().any(|&c| c != b' ')
    }

    #[test]
    fn plain_label_agrees_with_the_byte_by_byte_definition() {
        // Every length up to 40, each byte value at each position of a plain label.
        for n in 1..=40usize {
            let base: Vec<u8> = (0..n).map(|i| b'a' + (i % 26) as u8).collect();
            assert!(plain_label(&base, 255), "{n}");
            for at in 0..n {
                for c in 0..=255u8 {
                    let mut b = base.clone();
                    b[at] = c;
                    assert_eq!(plain_label(&b, 255), plain_by_bytes(&b, 255), "len {n}, byte {c:#x} at {at}");
                }
            }
            let spaces = vec![b' '; n];
            assert!(!plain_label(&spaces, 255), "{n} spaces");
            let mut one = spaces.clone();
            one[n - 1] = b'x';
            assert!(plain_label(&one, 255));
        }
        assert!(!plain_label(b"", 255));
        assert!(!plain_label(&[b'a'; 256], 255));
        assert!(plain_label(&[b'a'; 255], 255));
        assert!(!plain_label("agent-é".as_bytes(), 255));
        // Neighbouring bytes that would carry or borrow into each other.
        for pair in [[0xffu8, 0x7e], [0x7e, 0xff], [0x20, 0x1f], [0x1f, 0x20], [0x00, 0x7e], [0x7f, 0x20]] {
            let mut b = b"abcdefghij".to_vec();
            b[3..5].copy_from_slice(&pair);
            assert!(!plain_label(&b, 255), "{pair:?}");
        }
    }

    #[test]
    fn whole_name_keys_agree_with_slice_equality() {
        // Every pair of lengths up to 16 (whole keys), and every one-byte difference
        // (including a 0 byte, which short names are padded with) at every position.
        for n in 0..=16usize {
            let a: Vec<u8> = (0..n).map(|i| b'a' + (i % 26) as u8).collect();
            assert!(NameKey::of(&a).is_whole());
            assert_eq!(NameKey::of(&a), NameKey::of(&a.clone()), "{n}");
            for m in 0..=16usize {
                let b: Vec<u8> = (0..m).map(|i| b'a' + (i % 26) as u8).collect();
                assert_eq!(NameKey::of(&a) == NameKey::of(&b), a == b, "{n} vs {m}");
            }
            for at in 0..n {
                for c in [0u8, b'b', 0x80, 0xff] {
                    let mut b = a.clone();
                    b[at] = c;
                    assert_eq!(NameKey::of(&a) == NameKey::of(&b), a == b, "len {n}, {c:#x} at {at}");
                }
            }
        }
        // Overlapping ends: the same two words, told apart by the length alone.
        assert_ne!(NameKey::of(b"abcdefghi"), NameKey::of(b"abcdefghbcdefghi"));
        assert!(!NameKey::of(&[b'a'; 17]).is_whole());
    }

    #[test]
    fn name_table_finds_exactly_the_names_it_holds() {
        let names = [
            "a",
            "callcenter",
            "crm_admin",
            "operator",
            "operator-with-a-long-name-x",
            "operator-with-a-long-name-y",
            // Same length, first and last 8 bytes as the one above: probes further.
            "operator-wiTh-a-long-name-y",
            "12345678",
            "123456789",
            "1234567890123456",
            "12345678901234567",
        ];
        let table = NameTable::new(names.iter().enumerate().map(|(i, n)| (*n, TypeSet::single(i))));
        assert_eq!(table.len(), names.len());
        for (i, n) in names.iter().enumerate() {
            assert_eq!(table.get(n), Some(TypeSet::single(i)), "{n}");
        }
        for miss in [
            "",
            "b",
            "callcente",
            "callcenterr",
            "Callcenter",
            "operator-with-a-long-name-z",
            "1234567",
            "123456789012345678",
            "12345678\0",
        ] {
            assert_eq!(table.get(miss), None, "{miss:?}");
        }
        let empty = NameTable::new([]);
        assert!(empty.is_empty());
        assert_eq!(empty.get("x"), None);
        let again = NameTable::new([("x", TypeSet::single(1)), ("x", TypeSet::single(2))]);
        assert_eq!((again.len(), again.get("x")), (1, Some(TypeSet::single(2))));
    }

    #[test]
    fn name_table_handles_many_names() {
        let names: Vec<String> = (0..500).map(|i| format!("profile-{i:04}-of-the-installation")).collect();
        let table = NameTable::new(
            names.iter().enumerate().map(|(i, n)| (n.as_str(), TypeSet::from_bits(i as u64 + 1))),
        );
        for (i, n) in names.iter().enumerate() {
            assert_eq!(table.get(n), Some(TypeSet::from_bits(i as u64 + 1)));
        }
        assert_eq!(table.get("profile-0500-of-the-installation"), None);
    }
}
