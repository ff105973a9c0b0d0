//! Mnemonics, SLIP-10 derivation, signatures and encrypted backups.

use super::{parse_hex, parse_hex_array, print_json};
use anyhow::{Context, bail};
use clap::Subcommand;
use rnet_crypto::backup::{BackupParams, decrypt_backup, encrypt_backup};
use rnet_crypto::ed25519::{PublicKey, Signature, SigningKey};
use rnet_crypto::mnemonic::Mnemonic;
use rnet_crypto::slip10::{DerivationPath, derive_from_seed};
use std::path::PathBuf;

/// `rnet-util mnemonic ...`
#[derive(Subcommand)]
pub enum MnemonicCommand {
    /// Generate a fresh 24-word mnemonic from the OS random number generator.
    New,
    /// The 64-byte BIP39 seed of a mnemonic (checksum validated).
    Seed {
        /// The 24 words, quoted.
        words: String,
        /// Optional BIP39 passphrase.
        #[arg(long, default_value = "")]
        passphrase: String,
    },
}

/// `rnet-util backup ...`
#[derive(Subcommand)]
pub enum BackupCommand {
    /// Encrypt a file into the versioned backup format.
    Encrypt {
        /// Plaintext file.
        input: PathBuf,
        /// Backup file to write.
        output: PathBuf,
    },
    /// Decrypt a backup file (fails on a wrong passphrase or any modification).
    Decrypt {
        /// Backup file.
        input: PathBuf,
        /// Plaintext file to write.
        output: PathBuf,
    },
}

/// Runs a mnemonic subcommand.
pub fn mnemonic(command: MnemonicCommand) -> anyhow::Result<()> {
    match command {
        MnemonicCommand::New => {
            let mnemonic = Mnemonic::generate_24();
            println!("{}", mnemonic.phrase().as_str());
        }
        MnemonicCommand::Seed { words, passphrase } => {
            let mnemonic = Mnemonic::parse(&words).context("invalid mnemonic")?;
            println!("{}", hex::encode(mnemonic.to_seed(&passphrase).as_bytes()));
        }
    }
    Ok(())
}

/// Derives a key at a hardened SLIP-10 path and prints it as JSON.
pub fn derive(seed_hex: &str, path: &str) -> anyhow::Result<()> {
    let seed = zeroize::Zeroizing::new(parse_hex("seed", seed_hex)?);
    let path: DerivationPath = path.parse().context("invalid derivation path")?;
    let key = derive_from_seed(&seed, &path).context("derivation failed")?;
    print_json(&serde_json::json!({
        "path": path.to_string(),
        "private_key": hex::encode(key.secret_bytes()),
        "public_key": hex::encode(key.public_key().to_bytes()),
        "chain_code": hex::encode(key.chain_code()),
    }));
    Ok(())
}

/// Signs a message and prints the 64-byte signature.
pub fn sign(priv_hex: &str, msg_hex: &str) -> anyhow::Result<()> {
    let secret = zeroize::Zeroizing::new(parse_hex_array::<32>("private key", priv_hex)?);
    let message = parse_hex("message", msg_hex)?;
    let key = SigningKey::from_bytes(&secret);
    println!("{}", hex::encode(key.sign(&message).to_bytes()));
    Ok(())
}

/// Verifies a signature; prints `true` or fails.
pub fn verify(pub_hex: &str, msg_hex: &str, sig_hex: &str) -> anyhow::Result<()> {
    let public = PublicKey::from_bytes(&parse_hex_array::<32>("public key", pub_hex)?)
        .context("invalid public key")?;
    let message = parse_hex("message", msg_hex)?;
    let signature = Signature::from_bytes(parse_hex_array::<64>("signature", sig_hex)?);
    public.verify(&message, &signature).context("signature does not verify")?;
    println!("true");
    Ok(())
}

/// The backup passphrase: `RNET_PASSPHRASE`, else a prompt on the terminal.
fn passphrase(confirm: bool) -> anyhow::Result<zeroize::Zeroizing<String>> {
    if let Ok(value) = std::env::var("RNET_PASSPHRASE") {
        return Ok(zeroize::Zeroizing::new(value));
    }
    let first = zeroize::Zeroizing::new(
        rpassword::prompt_password("Backup passphrase: ")
            .context("no RNET_PASSPHRASE set and no terminal to prompt on")?,
    );
    if confirm {
        let second = zeroize::Zeroizing::new(rpassword::prompt_password("Repeat passphrase: ")?);
        if *first != *second {
            bail!("passphrases do not match");
        }
    }
    if first.is_empty() {
        bail!("empty passphrase");
    }
    Ok(first)
}

/// Encrypts or decrypts a backup file.
pub fn backup(command: BackupCommand) -> anyhow::Result<()> {
    match command {
        BackupCommand::Encrypt { input, output } => {
            let plaintext = zeroize::Zeroizing::new(
                std::fs::read(&input).with_context(|| format!("reading {}", input.display()))?,
            );
            let pass = passphrase(true)?;
            let sealed = encrypt_backup(&plaintext, pass.as_bytes(), BackupParams::DEFAULT)
                .context("encryption failed")?;
            write_new(&output, &sealed)?;
        }
        BackupCommand::Decrypt { input, output } => {
            let sealed =
                std::fs::read(&input).with_context(|| format!("reading {}", input.display()))?;
            let pass = passphrase(false)?;
            let plaintext = decrypt_backup(&sealed, pass.as_bytes())
                .with_context(|| format!("cannot decrypt {}", input.display()))?;
            write_new(&output, &plaintext)?;
        }
    }
    Ok(())
}

/// Writes a file atomically (temp file + rename) so a crash never leaves half a file.
pub fn write_new(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}
