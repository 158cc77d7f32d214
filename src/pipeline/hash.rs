//! The key hashes: `str`/`bytes` keys to 64-bit keys, and the mix that
//! spreads keys over workers and HyperLogLog registers. One definition, used
//! by the core and the Python binding alike, so a key hashes the same way
//! everywhere.

/// splitmix64's finaliser: a bijection on `u64` with full avalanche.
#[inline]
fn finalise(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The 64-bit key of a string or byte-string key: FNV-1a, then the
/// splitmix64 finaliser (so nearby strings spread over workers and
/// registers). Stable across runs, processes and versions: Python's
/// `pipeline.seen("users", "alice")` and Rust's
/// `Event::seen(users, hash_key(b"alice"))` name the same key.
///
/// # Examples
///
/// ```
/// use ringstat::pipeline::hash_key;
/// assert_eq!(hash_key(b"alice"), hash_key("alice".as_bytes()));
/// assert_ne!(hash_key(b"alice"), hash_key(b"bob"));
/// ```
#[must_use]
pub fn hash_key(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    finalise(h)
}

/// The splitmix64 output function applied to `x + golden ratio`: a
/// bijection on `u64` with full avalanche, so 0 and consecutive keys hash
/// far apart.
#[inline]
#[must_use]
pub(crate) fn mix64(x: u64) -> u64 {
    finalise(x.wrapping_add(0x9e37_79b9_7f4a_7c15))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_hash_is_pinned() {
        // A key names the same worker and register in every version.
        assert_eq!(hash_key(b""), 0xf52a_15e9_a9b5_e89b);
        assert_eq!(hash_key(b"alice"), 0xc5d1_556d_6677_4a5c);
        assert_eq!(hash_key(b"user-42"), 0x7a15_96f0_e94b_5793);
        assert_eq!(hash_key("\u{e9}".as_bytes()), 0x2334_0361_7480_019e);
        assert_eq!(hash_key(b"alice"), hash_key(b"alice"));
        assert_ne!(hash_key(b"alice"), hash_key(b"alicf"));
    }

    #[test]
    fn mix_is_pinned() {
        // splitmix64's first outputs: routing and registers stay put.
        assert_eq!(mix64(0), 0xe220_a839_7b1d_cdaf);
        assert_eq!(mix64(1), 0x910a_2dec_8902_5cc1);
        assert_eq!(mix64(u64::MAX), 0xe4d9_7177_1b65_2c20);
        assert_ne!(mix64(0), 0);
    }
}
