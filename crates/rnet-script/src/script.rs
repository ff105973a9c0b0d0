//! Script parsing ([`Instructions`]), building ([`Builder`]) and disassembly.

use core::fmt::Write as _;

use rnet_crypto::PublicKey;

use crate::error::ScriptError;
use crate::num::encode_num;
use crate::opcodes::{
    OP_0, OP_1, OP_1NEGATE, OP_16, OP_PUSHBYTES_75, OP_PUSHDATA1, OP_PUSHDATA2, OP_PUSHDATA4,
    opcode_name,
};

/// The maximum size of a script (a witness script), in bytes.
pub const MAX_SCRIPT_SIZE: usize = 10_000;
/// The maximum size of a stack element (pushed or from the witness), in bytes.
pub const MAX_SCRIPT_ELEMENT_SIZE: usize = 520;

/// One parsed instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Instruction<'a> {
    /// A push of data: `OP_0`, a direct push 0x01..=0x4b, or `OP_PUSHDATA1/2/4`. `opcode` is the
    /// byte that introduced it; `OP_1NEGATE` and `OP_1..OP_16` are [`Instruction::Op`].
    Push {
        /// The opcode used.
        opcode: u8,
        /// The data pushed.
        data: &'a [u8],
    },
    /// Any other opcode (not necessarily defined).
    Op(u8),
}

/// Iterator over the instructions of a script. Yields `Err(TruncatedPush)` (once, then stops)
/// when a push runs past the end.
#[derive(Debug, Clone)]
pub struct Instructions<'a> {
    script: &'a [u8],
    pos: usize,
    done: bool,
}

impl<'a> Instructions<'a> {
    /// Instructions of `script`.
    pub fn new(script: &'a [u8]) -> Self {
        Self { script, pos: 0, done: false }
    }

    /// Byte offset of the next instruction.
    pub fn position(&self) -> usize {
        self.pos
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.script.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    fn read_len(&mut self, width: usize) -> Option<usize> {
        let b = self.take(width)?;
        let mut n: usize = 0;
        for (i, &x) in b.iter().enumerate() {
            n |= usize::from(x) << (8 * i);
        }
        Some(n)
    }
}

impl<'a> Iterator for Instructions<'a> {
    type Item = Result<Instruction<'a>, ScriptError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let &op = self.script.get(self.pos)?;
        self.pos += 1;
        let len = match op {
            OP_0 => Some(0),
            0x01..=OP_PUSHBYTES_75 => Some(usize::from(op)),
            OP_PUSHDATA1 => self.read_len(1),
            OP_PUSHDATA2 => self.read_len(2),
            OP_PUSHDATA4 => self.read_len(4),
            _ => return Some(Ok(Instruction::Op(op))),
        };
        match len.and_then(|n| self.take(n)) {
            Some(data) => Some(Ok(Instruction::Push { opcode: op, data })),
            None => {
                self.done = true;
                Some(Err(ScriptError::TruncatedPush))
            }
        }
    }
}

/// Whether `data` was pushed with the shortest possible opcode (Bitcoin's `CheckMinimalPush`):
/// empty → `OP_0`; one byte 1..=16 → `OP_1..OP_16`; 0x81 → `OP_1NEGATE`; ≤ 75 bytes → direct
/// push; ≤ 255 → `OP_PUSHDATA1`; ≤ 65535 → `OP_PUSHDATA2`.
pub fn is_minimal_push(opcode: u8, data: &[u8]) -> bool {
    match data {
        [] => opcode == OP_0,
        [b] if (1..=16).contains(b) || *b == 0x81 => false,
        _ if data.len() <= usize::from(OP_PUSHBYTES_75) => usize::from(opcode) == data.len(),
        _ if data.len() <= 0xff => opcode == OP_PUSHDATA1,
        _ if data.len() <= 0xffff => opcode == OP_PUSHDATA2,
        _ => opcode == OP_PUSHDATA4,
    }
}

/// Builds scripts with minimal pushes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Builder {
    script: Vec<u8>,
}

impl Builder {
    /// An empty script.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends an opcode.
    pub fn push_opcode(mut self, op: u8) -> Self {
        self.script.push(op);
        self
    }

    /// Appends the minimal push of `data` (a one-byte 1..=16 or 0x81 becomes `OP_n` /
    /// `OP_1NEGATE`, as the minimal-push rule requires).
    pub fn push_slice(mut self, data: &[u8]) -> Self {
        match data {
            [] => self.script.push(OP_0),
            [b @ 1..=16] => self.script.push(OP_1 + b - 1),
            [0x81] => self.script.push(OP_1NEGATE),
            _ => {
                let n = data.len();
                if n <= usize::from(OP_PUSHBYTES_75) {
                    self.script.push(n as u8);
                } else if n <= 0xff {
                    self.script.push(OP_PUSHDATA1);
                    self.script.push(n as u8);
                } else if n <= 0xffff {
                    self.script.push(OP_PUSHDATA2);
                    self.script.extend_from_slice(&(n as u16).to_le_bytes());
                } else {
                    self.script.push(OP_PUSHDATA4);
                    self.script.extend_from_slice(&(n as u32).to_le_bytes());
                }
                self.script.extend_from_slice(data);
            }
        }
        self
    }

    /// Appends the minimal push of the script number `n`.
    pub fn push_int(self, n: i64) -> Self {
        self.push_slice(&encode_num(n))
    }

    /// Appends a push of a public key's 32 bytes.
    pub fn push_key(self, key: &PublicKey) -> Self {
        self.push_slice(key.as_bytes())
    }

    /// The script built so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.script
    }

    /// The finished script.
    pub fn into_bytes(self) -> Vec<u8> {
        self.script
    }
}

/// A human-readable form of a script: opcode names and pushes as hex (`<0a0b>`), e.g.
/// `OP_IF <…> OP_CHECKSIG OP_ELSE 144 …`. Small numbers pushed with `OP_n` show as `OP_n`;
/// undefined opcodes as `OP_UNKNOWN_0xNN`; a truncated push ends with `[truncated]`.
pub fn disassemble(script: &[u8]) -> String {
    let mut out = String::new();
    for ins in Instructions::new(script) {
        if !out.is_empty() {
            out.push(' ');
        }
        match ins {
            Ok(Instruction::Push { data: [], .. }) => out.push_str("OP_0"),
            Ok(Instruction::Push { data, .. }) => {
                out.push('<');
                for b in data {
                    let _ = write!(out, "{b:02x}");
                }
                out.push('>');
            }
            Ok(Instruction::Op(op)) => match opcode_name(op) {
                Some(name) => out.push_str(name),
                None => {
                    let _ = write!(out, "OP_UNKNOWN_0x{op:02x}");
                }
            },
            Err(_) => out.push_str("[truncated]"),
        }
    }
    out
}

/// Whether `op` is a push opcode for op-count purposes (Bitcoin: opcodes ≤ `OP_16` do not count).
pub(crate) fn counts_as_op(op: u8) -> bool {
    op > OP_16
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::opcodes::*;

    #[test]
    fn parse_pushes() {
        let mut s = vec![OP_0, 0x02, 0xaa, 0xbb, OP_PUSHDATA1, 0x01, 0xcc, OP_DUP];
        s.extend_from_slice(&[OP_PUSHDATA2, 0x01, 0x00, 0xdd, OP_PUSHDATA4, 1, 0, 0, 0, 0xee]);
        let ins: Vec<_> = Instructions::new(&s).collect::<Result<_, _>>().unwrap();
        assert_eq!(
            ins,
            vec![
                Instruction::Push { opcode: OP_0, data: &[] },
                Instruction::Push { opcode: 2, data: &[0xaa, 0xbb] },
                Instruction::Push { opcode: OP_PUSHDATA1, data: &[0xcc] },
                Instruction::Op(OP_DUP),
                Instruction::Push { opcode: OP_PUSHDATA2, data: &[0xdd] },
                Instruction::Push { opcode: OP_PUSHDATA4, data: &[0xee] },
            ]
        );
    }

    #[test]
    fn truncated_pushes() {
        for s in [
            &[0x02, 0xaa][..],
            &[OP_PUSHDATA1],
            &[OP_PUSHDATA1, 2, 0],
            &[OP_PUSHDATA2, 1],
            &[OP_PUSHDATA4, 0xff, 0xff, 0xff, 0xff, 0],
        ] {
            let v: Vec<_> = Instructions::new(s).collect();
            assert_eq!(v.last(), Some(&Err(ScriptError::TruncatedPush)), "{s:?}");
            assert_eq!(v.len(), 1);
        }
    }

    #[test]
    fn builder_is_minimal() {
        for len in [0usize, 1, 2, 75, 76, 255, 256, 520, 65_535, 65_536] {
            let data = vec![0x42u8; len];
            let script = Builder::new().push_slice(&data).into_bytes();
            let ins: Vec<_> = Instructions::new(&script).collect::<Result<_, _>>().unwrap();
            assert_eq!(ins.len(), 1);
            let Instruction::Push { opcode, data: d } = ins[0] else { panic!("not a push") };
            assert_eq!(d, &data[..]);
            assert!(is_minimal_push(opcode, d), "len {len}");
        }
        assert_eq!(Builder::new().push_slice(&[5]).into_bytes(), vec![OP_1 + 4]);
        assert_eq!(Builder::new().push_slice(&[0x81]).into_bytes(), vec![OP_1NEGATE]);
        assert_eq!(Builder::new().push_slice(&[0]).into_bytes(), vec![1, 0]);
        assert_eq!(Builder::new().push_int(0).into_bytes(), vec![OP_0]);
        assert_eq!(Builder::new().push_int(-1).into_bytes(), vec![OP_1NEGATE]);
        assert_eq!(Builder::new().push_int(16).into_bytes(), vec![OP_16]);
        assert_eq!(Builder::new().push_int(17).into_bytes(), vec![1, 17]);
        assert_eq!(Builder::new().push_int(144).into_bytes(), vec![2, 0x90, 0x00]);
    }

    #[test]
    fn minimal_push_rule() {
        assert!(!is_minimal_push(OP_PUSHDATA1, &[]));
        assert!(!is_minimal_push(1, &[3]));
        assert!(!is_minimal_push(1, &[0x81]));
        assert!(is_minimal_push(1, &[0]));
        assert!(is_minimal_push(1, &[17]));
        assert!(!is_minimal_push(OP_PUSHDATA1, &[17]));
        assert!(!is_minimal_push(OP_PUSHDATA2, &[0; 100]));
        assert!(is_minimal_push(OP_PUSHDATA1, &[0; 100]));
    }

    #[test]
    fn disassembly() {
        let s = Builder::new()
            .push_opcode(OP_IF)
            .push_slice(&[0xab, 0xcd])
            .push_opcode(OP_CHECKSIG)
            .push_opcode(OP_ELSE)
            .push_int(3)
            .push_opcode(0xfe)
            .push_opcode(OP_ENDIF)
            .push_opcode(0x05)
            .into_bytes();
        assert_eq!(
            disassemble(&s),
            "OP_IF <abcd> OP_CHECKSIG OP_ELSE OP_3 OP_UNKNOWN_0xfe OP_ENDIF [truncated]"
        );
    }
}
