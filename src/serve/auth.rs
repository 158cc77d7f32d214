//! [`BasicAuth`]: HTTP basic authentication against a SHA-256 digest of the
//! password, so a configuration need not hold the password itself.

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// A user name and the SHA-256 digest of their password: a scrape must
/// send `Authorization: Basic base64(user:password)` matching both, or it
/// gets `401 Unauthorized`.
///
/// SHA-256 is fast, not a password-hashing function: use a long random
/// password (as for any machine credential), and serve over TLS through a
/// reverse proxy if the network between Prometheus and the process is not
/// trusted (basic auth alone sends the password in clear).
///
/// # Examples
///
/// ```
/// use ringstat::serve::BasicAuth;
///
/// let a = BasicAuth::new("prom", "s3cret");
/// let b = BasicAuth::from_sha256_hex(
///     "prom",
///     "1ec1c26b50d5d3c58d9583181af8076655fe00756bf7285940ba3670f99fcba0",
/// )?;
/// assert_eq!(a, b);
/// assert!(a.check("Basic cHJvbTpzM2NyZXQ=")); // base64("prom:s3cret")
/// assert!(!a.check("Basic cHJvbTp3cm9uZw==")); // base64("prom:wrong")
/// # Ok::<(), ringstat::serve::ServeError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct BasicAuth {
    user: String,
    digest: [u8; 32],
}

impl BasicAuth {
    /// Accepts `user` with `password` (only its digest is kept).
    #[must_use]
    pub fn new(user: &str, password: &str) -> Self {
        Self {
            user: user.to_owned(),
            digest: Sha256::digest(password.as_bytes()).into(),
        }
    }

    /// Accepts `user` with the password whose SHA-256 digest is `hex` (64
    /// hex digits, as `sha256sum` prints it).
    ///
    /// # Errors
    ///
    /// [`ServeError::Config`](super::ServeError::Config) if `hex` is not 64
    /// hex digits.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(ringstat::serve::BasicAuth::from_sha256_hex("u", "abc").is_err());
    /// ```
    pub fn from_sha256_hex(user: &str, hex: &str) -> Result<Self, super::ServeError> {
        let bad = || super::ServeError::Config(format!("not a SHA-256 hex digest: {hex:?}"));
        if hex.len() != 64 || !hex.is_ascii() {
            return Err(bad());
        }
        let mut digest = [0u8; 32];
        for (i, d) in digest.iter_mut().enumerate() {
            *d = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(Self {
            user: user.to_owned(),
            digest,
        })
    }

    /// `true` when `header` (an `Authorization` value) is `Basic` with this
    /// user and password. Compares digests in constant time.
    #[must_use]
    pub fn check(&self, header: &str) -> bool {
        let Some(b64) = header
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
            .map(|(_, rest)| rest.trim())
        else {
            return false;
        };
        let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64) else {
            return false;
        };
        let Some(colon) = raw.iter().position(|&b| b == b':') else {
            return false;
        };
        let (user, password) = (&raw[..colon], &raw[colon + 1..]);
        let user_ok = ct_eq(&Sha256::digest(user), &Sha256::digest(self.user.as_bytes()));
        let password_ok = ct_eq(&Sha256::digest(password), &self.digest);
        user_ok & password_ok
    }
}

impl core::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BasicAuth")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// Equal slices, in time that depends only on their length.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
