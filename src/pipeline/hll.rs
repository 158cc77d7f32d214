//! HyperLogLog distinct counting: a plain [`HyperLogLog`], the register
//! words a pipeline worker publishes for lock-free readers (keys are mixed
//! by `hash.rs`).
//!
//! # Error
//!
//! With `m = 2^precision` registers the estimate's relative standard error
//! is `1.04 / sqrt(m)` (1.63 % at the default precision 12, 4 KiB of
//! registers): about 68 % of estimates lie within one standard error of the
//! true count, 99.7 % within three. The estimator is Otmar Ertl's "improved
//! raw estimator" (*New cardinality estimation algorithms for HyperLogLog
//! sketches*, 2017), which needs no empirical bias tables and has that error
//! from 0 up to far beyond `2^40` distinct keys; small counts (a few times
//! below `m`) are nearly exact. Keys are 64-bit integers hashed with the
//! splitmix64 finalizer, so the error holds for any set of distinct keys
//! (consecutive ids included).

use super::hash::mix64;
use crate::sync::{AtomicU64, Ordering};

/// The smallest precision accepted.
pub const MIN_PRECISION: u8 = 4;
/// The largest precision accepted.
pub const MAX_PRECISION: u8 = 16;

/// `(register index, register value)` for a key hash: the top `p` bits pick
/// the register; the value is 1 + the number of leading zeros of the other
/// `64 - p` bits, at most `65 - p`.
#[inline]
fn register_of(hash: u64, p: u8) -> (usize, u8) {
    let idx = (hash >> (64 - u32::from(p))) as usize;
    let rest = hash << p;
    let q = 64 - u32::from(p);
    let value = (rest.leading_zeros() + 1).min(q + 1);
    (idx, value as u8)
}

/// Ertl's improved raw estimate from a register histogram `c[k]` = number of
/// registers holding `k`, `k in 0..=q + 1`.
fn estimate_from_histogram(c: &[u32; 66], p: u8) -> f64 {
    let q = 64 - usize::from(p);
    let m = f64::from(1u32 << p);
    let mut z = m * tau((m - f64::from(c[q + 1])) / m);
    for k in (1..=q).rev() {
        z = 0.5 * (z + f64::from(c[k]));
    }
    z += m * sigma(f64::from(c[0]) / m);
    // alpha_inf = 1 / (2 ln 2)
    const ALPHA_INF: f64 = 0.721_347_520_444_481_7;
    ALPHA_INF * m * m / z
}

fn sigma(x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let (mut x, mut y, mut z) = (x, 1.0, x);
    loop {
        x *= x;
        let prev = z;
        z += x * y;
        y += y;
        if z == prev {
            return z;
        }
    }
}

fn tau(x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let (mut x, mut y, mut z) = (x, 1.0, 1.0 - x);
    loop {
        x = x.sqrt();
        let prev = z;
        y *= 0.5;
        z -= (1.0 - x) * (1.0 - x) * y;
        if z == prev {
            return z / 3.0;
        }
    }
}

/// The estimate for a full register array.
pub(crate) fn estimate(registers: &[u8], p: u8) -> f64 {
    let mut c = [0u32; 66];
    for &r in registers {
        c[usize::from(r)] += 1;
    }
    estimate_from_histogram(&c, p)
}

/// A HyperLogLog sketch of distinct `u64` keys (single-threaded; the
/// pipeline keeps its own lock-free partials and merges them on read).
///
/// Error: relative standard error `1.04 / sqrt(2^precision)` (1.63 % at
/// precision 12); about 68 % of estimates lie within one standard error,
/// 99.7 % within three. The estimator is Ertl's improved raw estimator
/// (2017), unbiased from 0 to far beyond `2^40` keys without bias tables;
/// counts well below `2^precision` are nearly exact. Keys are hashed with
/// the splitmix64 finalizer, so consecutive ids are fine.
///
/// # Examples
///
/// ```
/// use ringstat::pipeline::HyperLogLog;
///
/// let mut users = HyperLogLog::new(12)?;
/// for id in 0..10_000u64 {
///     users.insert(id);
///     users.insert(id); // duplicates do not count
/// }
/// let est = users.count();
/// assert!((est - 10_000.0).abs() < 10_000.0 * 4.0 * users.standard_error());
/// # Ok::<(), ringstat::pipeline::PipelineError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct HyperLogLog {
    /// `2^p` registers, each `0..=65 - p`.
    registers: Box<[u8]>,
    /// Precision `p`, `MIN_PRECISION..=MAX_PRECISION`.
    p: u8,
}

impl HyperLogLog {
    /// An empty sketch with `2^precision` registers.
    ///
    /// # Errors
    ///
    /// [`PipelineError::InvalidPrecision`](super::PipelineError::InvalidPrecision)
    /// unless `4 <= precision <= 16`.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::pipeline::HyperLogLog;
    /// assert!(HyperLogLog::new(12).is_ok());
    /// assert!(HyperLogLog::new(3).is_err());
    /// ```
    pub fn new(precision: u8) -> Result<Self, super::PipelineError> {
        check_precision(precision)?;
        Ok(Self {
            registers: vec![0; 1 << precision].into_boxed_slice(),
            p: precision,
        })
    }

    /// Adds `key` (counting it once however often it is added).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut h = ringstat::pipeline::HyperLogLog::new(8)?;
    /// h.insert(1);
    /// assert!(h.count() > 0.5);
    /// # Ok::<(), ringstat::pipeline::PipelineError>(())
    /// ```
    #[inline]
    pub fn insert(&mut self, key: u64) {
        let (i, v) = register_of(mix64(key), self.p);
        if self.registers[i] < v {
            self.registers[i] = v;
        }
    }

    /// The estimated number of distinct keys inserted.
    ///
    /// # Examples
    ///
    /// ```
    /// let h = ringstat::pipeline::HyperLogLog::new(8)?;
    /// assert_eq!(h.count(), 0.0);
    /// # Ok::<(), ringstat::pipeline::PipelineError>(())
    /// ```
    #[must_use]
    pub fn count(&self) -> f64 {
        estimate(&self.registers, self.p)
    }

    /// Adds every key of `other` (the union of the two sets).
    ///
    /// # Errors
    ///
    /// [`PipelineError::InvalidPrecision`](super::PipelineError::InvalidPrecision)
    /// (with `other`'s precision) if the precisions differ.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringstat::pipeline::HyperLogLog;
    /// let (mut a, mut b) = (HyperLogLog::new(10)?, HyperLogLog::new(10)?);
    /// a.insert(1);
    /// b.insert(2);
    /// a.merge(&b)?;
    /// assert!((a.count() - 2.0).abs() < 0.1);
    /// # Ok::<(), ringstat::pipeline::PipelineError>(())
    /// ```
    pub fn merge(&mut self, other: &Self) -> Result<(), super::PipelineError> {
        if other.p != self.p {
            return Err(super::PipelineError::InvalidPrecision { precision: other.p });
        }
        for (a, &b) in self.registers.iter_mut().zip(other.registers.iter()) {
            *a = (*a).max(b);
        }
        Ok(())
    }

    /// The precision `p` (`2^p` registers).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(ringstat::pipeline::HyperLogLog::new(9)?.precision(), 9);
    /// # Ok::<(), ringstat::pipeline::PipelineError>(())
    /// ```
    #[must_use]
    pub fn precision(&self) -> u8 {
        self.p
    }

    /// The relative standard error, `1.04 / sqrt(2^p)`.
    ///
    /// # Examples
    ///
    /// ```
    /// let h = ringstat::pipeline::HyperLogLog::new(12)?;
    /// assert!((h.standard_error() - 0.01625).abs() < 1e-9);
    /// # Ok::<(), ringstat::pipeline::PipelineError>(())
    /// ```
    #[must_use]
    pub fn standard_error(&self) -> f64 {
        standard_error(self.p)
    }

    /// A sketch with the given registers (tests compare atomic and plain).
    #[cfg(test)]
    pub(crate) fn from_registers(registers: Vec<u8>, p: u8) -> Self {
        debug_assert_eq!(registers.len(), 1 << p);
        Self {
            registers: registers.into_boxed_slice(),
            p,
        }
    }
}

impl core::fmt::Debug for HyperLogLog {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HyperLogLog")
            .field("precision", &self.p)
            .field("count", &self.count())
            .finish()
    }
}

/// `1.04 / sqrt(2^p)`.
pub(crate) fn standard_error(p: u8) -> f64 {
    1.04 / f64::from(1u32 << p).sqrt()
}

pub(crate) fn check_precision(p: u8) -> Result<(), super::PipelineError> {
    if (MIN_PRECISION..=MAX_PRECISION).contains(&p) {
        Ok(())
    } else {
        Err(super::PipelineError::InvalidPrecision { precision: p })
    }
}

/// HyperLogLog registers packed eight to an `AtomicU64` (register `i` is
/// byte `i % 8` of word `i / 8`).
///
/// Written by exactly one thread (the owning worker), which loads, raises a
/// byte and stores the word; read by any thread at any time. Every access is
/// `Relaxed`: a register only rises between clears, and any mix of old and
/// new words is the register array of a subset of the keys inserted, which
/// is what a live read promises. Clears are ordered against readers by the
/// tag of the window slot that owns the registers (see `keyed.rs`).
pub(crate) struct Registers {
    words: Box<[AtomicU64]>,
    p: u8,
}

impl Registers {
    /// `2^p` zeroed registers, `None` if the memory cannot be had.
    pub(crate) fn try_new(p: u8) -> Option<Self> {
        let words = ((1usize << p) / 8).max(1);
        let mut v = Vec::new();
        v.try_reserve_exact(words).ok()?;
        v.extend((0..words).map(|_| AtomicU64::new(0)));
        Some(Self {
            words: v.into_boxed_slice(),
            p,
        })
    }

    /// Inserts a key hash. Only the owning thread may call this.
    #[inline]
    pub(crate) fn insert(&self, hash: u64) {
        let (i, v) = register_of(hash, self.p);
        let word = &self.words[i / 8];
        let shift = (i % 8) * 8;
        // Relaxed: single writer (we read our own last store); see the type
        // docs for readers.
        let cur = word.load(Ordering::Relaxed);
        if ((cur >> shift) & 0xff) < u64::from(v) {
            let new = (cur & !(0xff << shift)) | (u64::from(v) << shift);
            word.store(new, Ordering::Relaxed);
        }
    }

    /// Zeroes every register. Only the owning thread may call this.
    pub(crate) fn clear(&self) {
        for w in self.words.iter() {
            // Relaxed: ordered by the caller's slot tag protocol.
            w.store(0, Ordering::Relaxed);
        }
    }

    /// Raises each byte of `acc` (`2^p` registers) to this array's register.
    pub(crate) fn merge_into(&self, acc: &mut [u8]) {
        for (chunk, w) in acc.chunks_mut(8).zip(self.words.iter()) {
            // Relaxed: see the type docs.
            let bytes = w.load(Ordering::Relaxed).to_le_bytes();
            for (a, b) in chunk.iter_mut().zip(bytes) {
                *a = (*a).max(b);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_values() {
        assert_eq!(register_of(0, 4), (0, 61));
        assert_eq!(register_of(u64::MAX, 4), (15, 1));
        assert_eq!(register_of(1 << 59, 4), (0, 1));
    }

    #[test]
    fn empty_and_small() {
        let mut h = HyperLogLog::new(12).unwrap();
        assert_eq!(h.count(), 0.0);
        for k in 0..10 {
            h.insert(k);
        }
        assert!((h.count() - 10.0).abs() < 0.1, "{}", h.count());
    }

    #[test]
    fn atomic_registers_match_plain() {
        let regs = Registers::try_new(8).unwrap();
        let mut plain = HyperLogLog::new(8).unwrap();
        for k in 0..5_000u64 {
            regs.insert(mix64(k));
            plain.insert(k);
        }
        let mut acc = vec![0u8; 256];
        regs.merge_into(&mut acc);
        assert_eq!(HyperLogLog::from_registers(acc, 8), plain);
        regs.clear();
        let mut acc = vec![0u8; 256];
        regs.merge_into(&mut acc);
        assert!(acc.iter().all(|&b| b == 0));
    }

    #[test]
    fn precision_bounds() {
        assert!(HyperLogLog::new(MIN_PRECISION).is_ok());
        assert!(HyperLogLog::new(MAX_PRECISION).is_ok());
        assert!(HyperLogLog::new(MAX_PRECISION + 1).is_err());
        let mut a = HyperLogLog::new(5).unwrap();
        assert!(a.merge(&HyperLogLog::new(6).unwrap()).is_err());
    }
}
