//! Small value types shared by the engine and every backend.

/// Most license types one configuration may declare (a type is one bit of a [`TypeSet`]).
pub const MAX_LICENSE_TYPES: usize = 64;
/// Longest license-type or profile name, in bytes.
pub const MAX_NAME_LEN: usize = 63;
/// Longest user name, extension label or session label, in bytes.
pub const MAX_LABEL_LEN: usize = 255;
/// Longest comma-separated profile list in one request, in bytes.
pub const MAX_PROFILES_LEN: usize = 1023;

/// A set of license types by index, as one machine word: bundles are unions of bits, so
/// resolving and comparing them never allocates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TypeSet(u64);

impl TypeSet {
    pub const EMPTY: TypeSet = TypeSet(0);

    #[inline]
    pub fn single(index: usize) -> TypeSet {
        debug_assert!(index < MAX_LICENSE_TYPES);
        TypeSet(1u64 << index)
    }
    #[inline]
    pub const fn from_bits(bits: u64) -> TypeSet {
        TypeSet(bits)
    }
    #[inline]
    pub fn bits(self) -> u64 {
        self.0
    }
    #[inline]
    pub fn insert(&mut self, index: usize) {
        self.0 |= 1u64 << index;
    }
    #[inline]
    pub fn contains(self, index: usize) -> bool {
        index < MAX_LICENSE_TYPES && self.0 & (1u64 << index) != 0
    }
    #[inline]
    pub fn contains_all(self, other: TypeSet) -> bool {
        self.0 & other.0 == other.0
    }
    #[inline]
    pub fn union(self, other: TypeSet) -> TypeSet {
        TypeSet(self.0 | other.0)
    }
    #[inline]
    pub fn intersect(self, other: TypeSet) -> TypeSet {
        TypeSet(self.0 & other.0)
    }
    #[inline]
    pub fn minus(self, other: TypeSet) -> TypeSet {
        TypeSet(self.0 & !other.0)
    }
    #[inline]
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    #[inline]
    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }
    /// The index of a set of exactly one type.
    #[inline]
    pub fn only(self) -> Option<usize> {
        (self.0 != 0 && self.0 & (self.0 - 1) == 0).then(|| self.0.trailing_zeros() as usize)
    }
    /// Indices in ascending order (config order).
    #[inline]
    pub fn iter(self) -> impl Iterator<Item = usize> {
        let mut bits = self.0;
        std::iter::from_fn(move || {
            if bits == 0 {
                return None;
            }
            let i = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            Some(i)
        })
    }
}

/// A seat handle. Never 0, and below 2^[`SEAT_ID_BITS`] as a backend returns it.
///
/// A backend keeps an id from being handed out again for as long as its layout allows
/// (see each backend's id layout); a stale handle is recognised as unknown, never
/// mistaken for another holder's.
pub type SeatId = u64;

/// Bits of a seat id that a backend may use: every id a [`Backend`] returns is nonzero
/// and below `1 << SEAT_ID_BITS`.
///
/// The top 16 bits belong to the engine: a hosted installation keeps one seat pool per
/// tenant ([`Backend::open_tenant`]), and the engine puts the tenant's number into them
/// in the id it returns to C, so a later release or renewal finds the tenant's pool
/// again. Backends therefore never set them.
///
/// [`Backend`]: crate::backend::Backend
/// [`Backend::open_tenant`]: crate::backend::Backend::open_tenant
pub const SEAT_ID_BITS: u32 = 48;
/// The bits of a seat id that belong to the backend (`(1 << SEAT_ID_BITS) - 1`).
pub const SEAT_ID_MASK: u64 = (1 << SEAT_ID_BITS) - 1;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typeset_ops() {
        let mut a = TypeSet::EMPTY;
        a.insert(0);
        a.insert(5);
        a.insert(63);
        assert_eq!(a.iter().collect::<Vec<_>>(), vec![0, 5, 63]);
        assert_eq!(a.len(), 3);
        assert!(a.contains(63) && !a.contains(64) && !a.contains(1));
        let b = TypeSet::single(5);
        assert!(a.contains_all(b));
        assert_eq!(a.minus(b).iter().collect::<Vec<_>>(), vec![0, 63]);
        assert_eq!(a.intersect(b), b);
        assert_eq!(TypeSet::EMPTY.union(b), b);
    }
}
