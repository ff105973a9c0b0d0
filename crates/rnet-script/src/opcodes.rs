//! Opcode byte values.
//!
//! Every opcode that also exists in Bitcoin keeps Bitcoin's byte value. `OP_KECCAK256D` takes
//! Bitcoin's `OP_HASH256` slot (0xaa) and the two covenant opcodes use previously unassigned
//! bytes (0xc0, 0xc1). Any byte not listed here is undefined: a script that contains one fails
//! with [`ScriptError::BadOpcode`](crate::ScriptError::BadOpcode), wherever it appears (executed
//! branch or not).

/// Pushes the empty byte string (false, the number 0).
pub const OP_0: u8 = 0x00;
/// Alias of [`OP_0`].
pub const OP_FALSE: u8 = OP_0;
/// Bytes 0x01..=0x4b push that many following bytes; this is the largest such byte.
pub const OP_PUSHBYTES_75: u8 = 0x4b;
/// The next byte is the length of the data to push.
pub const OP_PUSHDATA1: u8 = 0x4c;
/// The next two bytes (little-endian) are the length of the data to push.
pub const OP_PUSHDATA2: u8 = 0x4d;
/// The next four bytes (little-endian) are the length of the data to push.
pub const OP_PUSHDATA4: u8 = 0x4e;
/// Pushes the number -1.
pub const OP_1NEGATE: u8 = 0x4f;
/// Pushes the number 1.
pub const OP_1: u8 = 0x51;
/// Alias of [`OP_1`].
pub const OP_TRUE: u8 = OP_1;
/// Pushes the number 2.
pub const OP_2: u8 = 0x52;
/// Pushes the number 3.
pub const OP_3: u8 = 0x53;
/// Pushes the number 4.
pub const OP_4: u8 = 0x54;
/// Pushes the number 5.
pub const OP_5: u8 = 0x55;
/// Pushes the number 6.
pub const OP_6: u8 = 0x56;
/// Pushes the number 7.
pub const OP_7: u8 = 0x57;
/// Pushes the number 8.
pub const OP_8: u8 = 0x58;
/// Pushes the number 9.
pub const OP_9: u8 = 0x59;
/// Pushes the number 10.
pub const OP_10: u8 = 0x5a;
/// Pushes the number 11.
pub const OP_11: u8 = 0x5b;
/// Pushes the number 12.
pub const OP_12: u8 = 0x5c;
/// Pushes the number 13.
pub const OP_13: u8 = 0x5d;
/// Pushes the number 14.
pub const OP_14: u8 = 0x5e;
/// Pushes the number 15.
pub const OP_15: u8 = 0x5f;
/// Pushes the number 16 (`OP_n` = `OP_1 + n - 1` for n in 1..=16).
pub const OP_16: u8 = 0x60;

/// `<cond> IF … [ELSE …] ENDIF`: runs the first branch if `cond` is true (MINIMALIF applies).
pub const OP_IF: u8 = 0x63;
/// Like [`OP_IF`] with the condition inverted.
pub const OP_NOTIF: u8 = 0x64;
/// Switches the innermost conditional to its other branch.
pub const OP_ELSE: u8 = 0x67;
/// Ends the innermost conditional.
pub const OP_ENDIF: u8 = 0x68;
/// Pops the top item; fails unless it is true.
pub const OP_VERIFY: u8 = 0x69;
/// Fails the script immediately when executed.
pub const OP_RETURN: u8 = 0x6a;

/// Moves the top item to the alt stack.
pub const OP_TOALTSTACK: u8 = 0x6b;
/// Moves the top alt-stack item back to the main stack.
pub const OP_FROMALTSTACK: u8 = 0x6c;
/// Removes the top two items.
pub const OP_2DROP: u8 = 0x6d;
/// Duplicates the top two items.
pub const OP_2DUP: u8 = 0x6e;
/// Removes the top item.
pub const OP_DROP: u8 = 0x75;
/// Duplicates the top item.
pub const OP_DUP: u8 = 0x76;
/// Copies the second item to the top.
pub const OP_OVER: u8 = 0x78;
/// `<n> PICK`: copies the item `n` back (0 = top) to the top.
pub const OP_PICK: u8 = 0x79;
/// `<n> ROLL`: moves the item `n` back (0 = top) to the top.
pub const OP_ROLL: u8 = 0x7a;
/// Rotates the top three items: `x1 x2 x3 → x2 x3 x1`.
pub const OP_ROT: u8 = 0x7b;
/// Swaps the top two items.
pub const OP_SWAP: u8 = 0x7c;
/// Pushes the byte length of the top item (which stays).
pub const OP_SIZE: u8 = 0x82;
/// Pops two items and pushes whether they are byte-for-byte equal.
pub const OP_EQUAL: u8 = 0x87;
/// [`OP_EQUAL`] then [`OP_VERIFY`].
pub const OP_EQUALVERIFY: u8 = 0x88;

/// Adds 1 to the top number.
pub const OP_1ADD: u8 = 0x8b;
/// Pushes 1 if the top number is 0, else 0.
pub const OP_NOT: u8 = 0x91;
/// Pushes 0 if the top number is 0, else 1.
pub const OP_0NOTEQUAL: u8 = 0x92;
/// `a b → a + b`.
pub const OP_ADD: u8 = 0x93;
/// `a b → a - b`.
pub const OP_SUB: u8 = 0x94;
/// `a b → a ≠ 0 ∧ b ≠ 0`.
pub const OP_BOOLAND: u8 = 0x9a;
/// `a b → a ≠ 0 ∨ b ≠ 0`.
pub const OP_BOOLOR: u8 = 0x9b;
/// `a b → a = b` (numerically).
pub const OP_NUMEQUAL: u8 = 0x9c;
/// [`OP_NUMEQUAL`] then [`OP_VERIFY`].
pub const OP_NUMEQUALVERIFY: u8 = 0x9d;
/// `a b → a < b`.
pub const OP_LESSTHAN: u8 = 0x9f;
/// `a b → a > b`.
pub const OP_GREATERTHAN: u8 = 0xa0;
/// `x min max → min ≤ x < max`.
pub const OP_WITHIN: u8 = 0xa5;

/// Replaces the top item by its Keccak-256d (Bitcoin's `OP_HASH256` slot, redefined).
pub const OP_KECCAK256D: u8 = 0xaa;
/// `<sig> <pubkey> → bool`: Ed25519 signature check against the signature hash.
pub const OP_CHECKSIG: u8 = 0xac;
/// [`OP_CHECKSIG`] then [`OP_VERIFY`].
pub const OP_CHECKSIGVERIFY: u8 = 0xad;
/// `<sig_1>…<sig_n> <m> <pk_1>…<pk_n> <n> → bool`: threshold multisig, one signature slot per
/// key, without Bitcoin's dummy element.
pub const OP_CHECKMULTISIG: u8 = 0xae;
/// [`OP_CHECKMULTISIG`] then [`OP_VERIFY`].
pub const OP_CHECKMULTISIGVERIFY: u8 = 0xaf;
/// BIP65: fails unless the transaction's lock time satisfies the top number (left on the stack).
pub const OP_CHECKLOCKTIMEVERIFY: u8 = 0xb1;
/// BIP112: fails unless the input's sequence satisfies the top number (left on the stack).
pub const OP_CHECKSEQUENCEVERIFY: u8 = 0xb2;
/// Covenant: `<new_key> <owner> <cancel_window> →` (nothing); the output at this input's index
/// must pay the recovery-pending template. See `docs/protocol.md (Part IV)`.
pub const OP_CHECKRECOVERYPENDINGVERIFY: u8 = 0xc0;
/// Covenant: every output of the transaction must be an emission-return output, and the
/// transaction's fee is bounded. See `docs/protocol.md (Part IV)`.
pub const OP_CHECKEMISSIONVERIFY: u8 = 0xc1;

/// The name of a defined non-push opcode, or of a push opcode (`OP_0`, `OP_PUSHDATA1`, `OP_1`…).
/// `None` for an undefined byte. Direct pushes 0x01..=0x4b are named `OP_PUSHBYTES_<n>`, which
/// this function does not allocate, so it returns `None` for them too.
pub fn opcode_name(op: u8) -> Option<&'static str> {
    Some(match op {
        OP_0 => "OP_0",
        OP_PUSHDATA1 => "OP_PUSHDATA1",
        OP_PUSHDATA2 => "OP_PUSHDATA2",
        OP_PUSHDATA4 => "OP_PUSHDATA4",
        OP_1NEGATE => "OP_1NEGATE",
        0x51 => "OP_1",
        0x52 => "OP_2",
        0x53 => "OP_3",
        0x54 => "OP_4",
        0x55 => "OP_5",
        0x56 => "OP_6",
        0x57 => "OP_7",
        0x58 => "OP_8",
        0x59 => "OP_9",
        0x5a => "OP_10",
        0x5b => "OP_11",
        0x5c => "OP_12",
        0x5d => "OP_13",
        0x5e => "OP_14",
        0x5f => "OP_15",
        0x60 => "OP_16",
        OP_IF => "OP_IF",
        OP_NOTIF => "OP_NOTIF",
        OP_ELSE => "OP_ELSE",
        OP_ENDIF => "OP_ENDIF",
        OP_VERIFY => "OP_VERIFY",
        OP_RETURN => "OP_RETURN",
        OP_TOALTSTACK => "OP_TOALTSTACK",
        OP_FROMALTSTACK => "OP_FROMALTSTACK",
        OP_2DROP => "OP_2DROP",
        OP_2DUP => "OP_2DUP",
        OP_DROP => "OP_DROP",
        OP_DUP => "OP_DUP",
        OP_OVER => "OP_OVER",
        OP_PICK => "OP_PICK",
        OP_ROLL => "OP_ROLL",
        OP_ROT => "OP_ROT",
        OP_SWAP => "OP_SWAP",
        OP_SIZE => "OP_SIZE",
        OP_EQUAL => "OP_EQUAL",
        OP_EQUALVERIFY => "OP_EQUALVERIFY",
        OP_1ADD => "OP_1ADD",
        OP_NOT => "OP_NOT",
        OP_0NOTEQUAL => "OP_0NOTEQUAL",
        OP_ADD => "OP_ADD",
        OP_SUB => "OP_SUB",
        OP_BOOLAND => "OP_BOOLAND",
        OP_BOOLOR => "OP_BOOLOR",
        OP_NUMEQUAL => "OP_NUMEQUAL",
        OP_NUMEQUALVERIFY => "OP_NUMEQUALVERIFY",
        OP_LESSTHAN => "OP_LESSTHAN",
        OP_GREATERTHAN => "OP_GREATERTHAN",
        OP_WITHIN => "OP_WITHIN",
        OP_KECCAK256D => "OP_KECCAK256D",
        OP_CHECKSIG => "OP_CHECKSIG",
        OP_CHECKSIGVERIFY => "OP_CHECKSIGVERIFY",
        OP_CHECKMULTISIG => "OP_CHECKMULTISIG",
        OP_CHECKMULTISIGVERIFY => "OP_CHECKMULTISIGVERIFY",
        OP_CHECKLOCKTIMEVERIFY => "OP_CHECKLOCKTIMEVERIFY",
        OP_CHECKSEQUENCEVERIFY => "OP_CHECKSEQUENCEVERIFY",
        OP_CHECKRECOVERYPENDINGVERIFY => "OP_CHECKRECOVERYPENDINGVERIFY",
        OP_CHECKEMISSIONVERIFY => "OP_CHECKEMISSIONVERIFY",
        _ => return None,
    })
}

/// Whether `op` is defined (a push opcode or one of the opcodes of this module).
pub fn is_defined(op: u8) -> bool {
    (op <= OP_16 && op != 0x50) || opcode_name(op).is_some()
}

/// The push opcode `OP_n` for `n` in 1..=16.
pub const fn op_n(n: u8) -> Option<u8> {
    if n >= 1 && n <= 16 { Some(OP_1 + n - 1) } else { None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defined_set() {
        assert!(is_defined(OP_0));
        assert!(is_defined(0x01));
        assert!(is_defined(OP_PUSHBYTES_75));
        assert!(is_defined(OP_1NEGATE));
        assert!(!is_defined(0x50), "OP_RESERVED is undefined");
        assert!(is_defined(OP_16));
        assert!(!is_defined(0x61), "OP_NOP is undefined");
        assert!(!is_defined(0xa9), "OP_HASH160 is undefined");
        assert!(!is_defined(0xab), "OP_CODESEPARATOR is undefined");
        assert!(is_defined(OP_KECCAK256D));
        assert!(is_defined(OP_CHECKEMISSIONVERIFY));
        assert!(!is_defined(0xff));
        let defined = (0..=255u8).filter(|&b| is_defined(b)).count();
        // 0x00..=0x4f (80) + OP_1..OP_16 (16) + 41 named non-push opcodes.
        assert_eq!(defined, 80 + 16 + 41);
    }

    #[test]
    fn op_n_values() {
        assert_eq!(op_n(1), Some(OP_1));
        assert_eq!(op_n(16), Some(OP_16));
        assert_eq!(op_n(0), None);
        assert_eq!(op_n(17), None);
    }
}
