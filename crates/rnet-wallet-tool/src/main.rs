//! `rnet-wallet-tool`: create, restore, inspect, encrypt and back up wallet files without a
//! running node. Passphrases come from `RNET_WALLET_PASSPHRASE` (wallet) and
//! `RNET_BACKUP_PASSPHRASE` (backup files), else from a prompt. Errors: exit 1, one line.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use rnet_crypto::{BackupParams, Mnemonic};
use rnet_primitives::Network;
use rnet_wallet::{
    Encryption, KeyChain, PolicyConfig, Wallet, parse_hex_key, parse_key_or_address, parse_lock,
};
use zeroize::Zeroizing;

#[derive(Parser)]
#[command(name = "rnet-wallet-tool", version, about = "Offline ResonanceNet wallet-file tool")]
struct Cli {
    /// The wallet file.
    #[arg(long, global = true, default_value = "wallet.rnw")]
    wallet: PathBuf,
    /// Argon2id memory cost in KiB for new encryption (default 65536).
    #[arg(long, global = true, hide = true)]
    kdf_memory_kib: Option<u32>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a wallet from fresh 24 words (shown once).
    Create(NewWallet),
    /// Create a wallet file from existing 24 words (RNET_WALLET_MNEMONIC or --words).
    Restore {
        /// The 24 words (prefer the RNET_WALLET_MNEMONIC environment variable).
        #[arg(long)]
        words: Option<String>,
        #[command(flatten)]
        new: NewWallet,
    },
    /// Show network, policy, encryption state, balances and the first address.
    Info,
    /// Encrypt an unencrypted wallet file.
    Encrypt,
    /// Write an encrypted backup.
    Backup {
        /// Backup file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Create a wallet file from an encrypted backup.
    RestoreBackup {
        /// Backup file to read.
        #[arg(long)]
        backup: PathBuf,
        /// Encrypt the restored wallet with RNET_WALLET_PASSPHRASE / prompt.
        #[arg(long)]
        encrypt: bool,
    },
}

#[derive(Args)]
struct NewWallet {
    /// mainnet, testnet or regtest.
    #[arg(long, default_value = "mainnet")]
    network: Network,
    /// heartbeat, social or emission.
    #[arg(long)]
    policy: String,
    /// Heartbeat: recovery key (hex) or plain-key address.
    #[arg(long)]
    recovery: Option<String>,
    /// Heartbeat: interval (N blocks or Ns seconds).
    #[arg(long)]
    interval: Option<String>,
    /// Social: guardian key (hex), repeated.
    #[arg(long = "guardian")]
    guardians: Vec<String>,
    /// Social: threshold.
    #[arg(long)]
    threshold: Option<usize>,
    /// Social: cancel window.
    #[arg(long)]
    cancel_window: Option<String>,
    /// Emission: inactivity period.
    #[arg(long)]
    inactivity: Option<String>,
    /// Optional BIP39 passphrase (RNET_BIP39_PASSPHRASE also works).
    #[arg(long)]
    bip39_passphrase: Option<String>,
    /// Encrypt the wallet file (RNET_WALLET_PASSPHRASE or prompt).
    #[arg(long)]
    encrypt: bool,
}

fn need<T>(v: Option<T>, flag: &str) -> Result<T> {
    v.with_context(|| format!("--{flag} is required for this policy"))
}

impl NewWallet {
    fn policy(&self) -> Result<PolicyConfig> {
        let p = match self.policy.as_str() {
            "heartbeat" => PolicyConfig::Heartbeat {
                recovery: parse_key_or_address(need(self.recovery.as_deref(), "recovery")?)?,
                interval: parse_lock(need(self.interval.as_deref(), "interval")?)?,
            },
            "social" => PolicyConfig::Social {
                guardians: self
                    .guardians
                    .iter()
                    .map(|g| parse_hex_key(g))
                    .collect::<Result<_, _>>()?,
                threshold: need(self.threshold, "threshold")?,
                cancel_window: parse_lock(need(self.cancel_window.as_deref(), "cancel-window")?)?,
            },
            "emission" | "emission-return" => PolicyConfig::EmissionReturn {
                inactivity: parse_lock(need(self.inactivity.as_deref(), "inactivity")?)?,
            },
            other => bail!("unknown policy {other:?} (heartbeat, social, emission)"),
        };
        p.validate()?;
        Ok(p)
    }

    fn bip39(&self) -> Zeroizing<String> {
        Zeroizing::new(
            self.bip39_passphrase
                .clone()
                .or_else(|| std::env::var("RNET_BIP39_PASSPHRASE").ok())
                .unwrap_or_default(),
        )
    }
}

fn passphrase(var: &str, prompt: &str) -> Result<Zeroizing<String>> {
    let p = match std::env::var(var) {
        Ok(p) => p,
        Err(_) => rpassword::prompt_password(prompt).context("cannot read passphrase")?,
    };
    if p.is_empty() {
        bail!("passphrase must not be empty");
    }
    Ok(Zeroizing::new(p))
}

fn params(cli: &Cli) -> BackupParams {
    match cli.kdf_memory_kib {
        Some(m) => BackupParams { m_cost_kib: m, t_cost: 1, p_cost: 1 },
        None => BackupParams::DEFAULT,
    }
}

fn encryption(cli: &Cli, on: bool) -> Result<Option<Encryption>> {
    if !on {
        return Ok(None);
    }
    let p = passphrase("RNET_WALLET_PASSPHRASE", "Wallet passphrase: ")?;
    Ok(Some(Encryption::new(&p).with_params(params(cli))))
}

fn open_unlocked(path: &std::path::Path) -> Result<Wallet> {
    let mut w = Wallet::open(path)?;
    if w.is_locked() {
        let p = passphrase("RNET_WALLET_PASSPHRASE", "Wallet passphrase: ")?;
        w.unlock(&p, Duration::from_secs(60))?;
    }
    Ok(w)
}

fn summary(w: &Wallet) -> serde_json::Value {
    serde_json::json!({
        "wallet": w.path().display().to_string(),
        "network": w.network().to_string(),
        "policy": w.policy().to_json(),
        "encrypted": w.is_encrypted(),
        "locked": w.is_locked(),
        "first_address": w.address_at(KeyChain::Receive, 0).map(|a| a.to_string()),
        "next_indices": w.next_indices(),
        "tip_height": w.tip_height(),
        "balances": w.balances(0),
        "guardian_key": hex::encode(w.guardian_public_key().as_bytes()),
    })
}

fn run() -> Result<()> {
    let cli = Cli::parse();
    match &cli.cmd {
        Cmd::Create(n) => {
            let policy = n.policy()?;
            let m = Mnemonic::generate_24();
            let w = Wallet::create(
                &cli.wallet,
                n.network,
                &m,
                &n.bip39(),
                policy,
                encryption(&cli, n.encrypt)?,
            )?;
            let mut out = summary(&w);
            out["mnemonic"] = serde_json::Value::String(m.phrase().to_string());
            out["warning"] = "write the 24 words down now; they are not shown again".into();
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Cmd::Restore { words, new } => {
            let phrase = Zeroizing::new(match words {
                Some(w) => w.clone(),
                None => std::env::var("RNET_WALLET_MNEMONIC")
                    .context("give --words or RNET_WALLET_MNEMONIC")?,
            });
            let m = Mnemonic::parse(&phrase)?;
            let policy = new.policy()?;
            let w = Wallet::create(
                &cli.wallet,
                new.network,
                &m,
                &new.bip39(),
                policy,
                encryption(&cli, new.encrypt)?,
            )?;
            println!("{}", serde_json::to_string_pretty(&summary(&w))?);
        }
        Cmd::Info => {
            let w = Wallet::open(&cli.wallet)?;
            println!("{}", serde_json::to_string_pretty(&summary(&w))?);
        }
        Cmd::Encrypt => {
            let mut w = Wallet::open(&cli.wallet)?;
            let enc = encryption(&cli, true)?.context("passphrase")?;
            w.encrypt(enc)?;
            println!("{}", serde_json::to_string_pretty(&summary(&w))?);
        }
        Cmd::Backup { out } => {
            let w = open_unlocked(&cli.wallet)?;
            let p = passphrase("RNET_BACKUP_PASSPHRASE", "Backup passphrase: ")?;
            w.backup(out, &p, params(&cli))?;
            println!("{}", serde_json::json!({ "backup": out.display().to_string() }));
        }
        Cmd::RestoreBackup { backup, encrypt } => {
            let p = passphrase("RNET_BACKUP_PASSPHRASE", "Backup passphrase: ")?;
            let w = Wallet::restore_backup(backup, &p, &cli.wallet, encryption(&cli, *encrypt)?)?;
            println!("{}", serde_json::to_string_pretty(&summary(&w))?);
        }
    }
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        let msg = format!("{e:#}").replace('\n', " ");
        eprintln!("error: {msg}");
        std::process::exit(1);
    }
}
