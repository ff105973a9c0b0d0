//! Big-endian field reader and writer shared by the message codec and the channel state's
//! persistence format. The reader is strict and bounds-checked: every read either returns the
//! field or a [`WireError::Truncated`] naming it.

use rnet_crypto::PublicKey;

use super::error::WireError;

/// A cursor over untrusted bytes.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `bytes`.
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    /// Bytes not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// Takes the next `n` bytes.
    pub(crate) fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], WireError> {
        let available = self.remaining();
        if n > available {
            return Err(WireError::Truncated { field, needed: n, available });
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// Takes everything that is left.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let out = &self.bytes[self.pos..];
        self.pos = self.bytes.len();
        out
    }

    /// A fixed-size array.
    pub(crate) fn array<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<[u8; N], WireError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    /// One byte.
    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, WireError> {
        Ok(self.array::<1>(field)?[0])
    }

    /// A big-endian `u16`.
    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, WireError> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }

    /// A big-endian `u32`.
    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, WireError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    /// A big-endian `u64`.
    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }

    /// A `u16` length followed by that many bytes.
    pub(crate) fn var_bytes(&mut self, field: &'static str) -> Result<Vec<u8>, WireError> {
        let len = self.u16(field)?;
        Ok(self.take(usize::from(len), field)?.to_vec())
    }

    /// A 32-byte Ed25519 public key (must decode to a point; weakness is checked by the
    /// channel layer, which knows where a weak key matters).
    pub(crate) fn key(&mut self, field: &'static str) -> Result<PublicKey, WireError> {
        PublicKey::from_bytes(&self.array(field)?).map_err(|_| WireError::InvalidKey(field))
    }

    /// A boolean byte (0 or 1 only).
    pub(crate) fn bool(&mut self, field: &'static str) -> Result<bool, WireError> {
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(WireError::InvalidField { field, reason: "not 0 or 1" }),
        }
    }
}

/// Appends big-endian fields to a buffer.
pub(crate) trait Put {
    /// One byte.
    fn put_u8(&mut self, v: u8);
    /// A big-endian `u16`.
    fn put_u16(&mut self, v: u16);
    /// A big-endian `u32`.
    fn put_u32(&mut self, v: u32);
    /// A big-endian `u64`.
    fn put_u64(&mut self, v: u64);
    /// Raw bytes.
    fn put(&mut self, v: &[u8]);
    /// A `u16` length and the bytes; fails if longer than 65535.
    fn put_var(&mut self, field: &'static str, v: &[u8]) -> Result<(), WireError>;
}

impl Put for Vec<u8> {
    fn put_u8(&mut self, v: u8) {
        self.push(v);
    }
    fn put_u16(&mut self, v: u16) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn put_u32(&mut self, v: u32) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn put_u64(&mut self, v: u64) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn put(&mut self, v: &[u8]) {
        self.extend_from_slice(v);
    }
    fn put_var(&mut self, field: &'static str, v: &[u8]) -> Result<(), WireError> {
        let len =
            u16::try_from(v.len()).map_err(|_| WireError::FieldTooLong { field, len: v.len() })?;
        self.put_u16(len);
        self.put(v);
        Ok(())
    }
}
