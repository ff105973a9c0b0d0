//! Cookie and user/password authentication (HTTP Basic), compared in constant time.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand_core::{OsRng, RngCore};
use subtle::ConstantTimeEq;

/// The file name of the authentication cookie inside the (network's) data directory.
pub const COOKIE_FILE: &str = ".cookie";

/// The user name of cookie authentication, as in Core.
pub const COOKIE_USER: &str = "__cookie__";

/// The credentials the server accepts: the Keccak-256 of each `user:password`, so comparisons
/// are constant-time and independent of the secret's length.
#[derive(Clone, Default)]
pub(crate) struct Credentials {
    accepted: Vec<[u8; 32]>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({} accepted)", self.accepted.len())
    }
}

impl Credentials {
    pub(crate) fn add(&mut self, user: &str, password: &str) {
        self.accepted.push(rnet_crypto::keccak256(format!("{user}:{password}").as_bytes()));
    }

    /// Check an `Authorization` header value. Returns the user name when accepted.
    pub(crate) fn check(&self, header: &[u8]) -> Option<String> {
        let rest = header.strip_prefix(b"Basic ")?;
        let b64 = std::str::from_utf8(rest).ok()?.trim();
        let decoded = STANDARD.decode(b64).ok()?;
        let colon = decoded.iter().position(|&b| b == b':')?;
        let digest = rnet_crypto::keccak256(&decoded);
        // Check every entry (no early exit) so timing reveals nothing about which one matched.
        let mut ok = subtle::Choice::from(0u8);
        for a in &self.accepted {
            ok |= a.ct_eq(&digest);
        }
        if bool::from(ok) {
            Some(String::from_utf8_lossy(&decoded[..colon]).into_owned())
        } else {
            None
        }
    }
}

/// The `Authorization` header value for `user:password`.
pub fn basic_auth_header(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

/// A fresh random cookie password: 32 bytes from the OS, hex-encoded (64 characters).
pub(crate) fn random_cookie_password() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Write `<dir>/.cookie` as `__cookie__:<password>` (mode 0600 on Unix, via a temporary file
/// renamed into place as Core does). Creates `dir` if needed.
pub(crate) fn write_cookie(dir: &Path, password: &str) -> io::Result<PathBuf> {
    fs::create_dir_all(dir)?;
    let path = dir.join(COOKIE_FILE);
    let tmp = dir.join(format!("{COOKIE_FILE}.tmp"));
    let _ = fs::remove_file(&tmp);
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp)?;
    f.write_all(format!("{COOKIE_USER}:{password}").as_bytes())?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, &path)?;
    Ok(path)
}

/// Read a cookie file: its first line, `user:password`, split at the first colon.
pub fn read_cookie(path: &Path) -> io::Result<(String, String)> {
    let text = fs::read_to_string(path)?;
    let line = text.lines().next().unwrap_or("").trim_end_matches('\r');
    match line.split_once(':') {
        Some((u, p)) => Ok((u.to_owned(), p.to_owned())),
        None => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "malformed cookie file (expected user:password)",
        )),
    }
}

/// Removes the cookie file when dropped (clean shutdown, or the server future being dropped).
#[derive(Debug)]
pub(crate) struct CookieGuard {
    pub(crate) path: PathBuf,
    pub(crate) contents: String,
}

impl Drop for CookieGuard {
    fn drop(&mut self) {
        // Remove it only if it is still ours: a second server may have replaced it.
        if fs::read_to_string(&self.path).is_ok_and(|c| c == self.contents) {
            match fs::remove_file(&self.path) {
                Ok(()) => tracing::debug!(path = %self.path.display(), "removed RPC cookie"),
                Err(e) => {
                    tracing::warn!(path = %self.path.display(), "cannot remove RPC cookie: {e}")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_round_trip() {
        let mut c = Credentials::default();
        c.add("alice", "pw:with:colons");
        c.add(COOKIE_USER, "abc");
        let h = basic_auth_header("alice", "pw:with:colons");
        assert_eq!(c.check(h.as_bytes()).as_deref(), Some("alice"));
        assert_eq!(
            c.check(basic_auth_header(COOKIE_USER, "abc").as_bytes()).as_deref(),
            Some(COOKIE_USER)
        );
        assert_eq!(c.check(basic_auth_header("alice", "wrong").as_bytes()), None);
        assert_eq!(c.check(b"Basic !!!"), None);
        assert_eq!(c.check(b"Bearer abc"), None);
        assert_eq!(c.check(format!("Basic {}", STANDARD.encode("nocolon")).as_bytes()), None);
        assert_eq!(c.check(&[0xff, 0xfe]), None);
        assert_eq!(Credentials::default().check(h.as_bytes()), None);
    }

    #[test]
    fn cookie_password_is_64_hex() {
        let p = random_cookie_password();
        assert_eq!(p.len(), 64);
        assert!(p.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(p, random_cookie_password());
    }
}
