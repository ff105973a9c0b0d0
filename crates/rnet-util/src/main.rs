//! `rnet-util`: ResonanceNet's offline tool for hashes, keys, mnemonics, addresses, encodings,
//! backups, checkpoints and training. Output is lowercase hex or JSON; any bad input ends the
//! process with exit code 1 and a one-line error on stderr.

mod commands;

use clap::{Parser, Subcommand};

/// Command-line arguments.
#[derive(Parser)]
#[command(name = "rnet-util", version, about = "ResonanceNet offline utility", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Every subcommand, grouped by the protocol noun it works on.
#[derive(Subcommand)]
enum Command {
    /// Keccak-256 (original 0x01 padding) of hex-encoded bytes.
    Keccak256 {
        /// Input bytes as hex (may be empty: "").
        hex: String,
    },
    /// Keccak-256d (Keccak-256 applied twice) of hex-encoded bytes.
    Keccak256d {
        /// Input bytes as hex (may be empty: "").
        hex: String,
    },
    /// BIP39 24-word mnemonics.
    #[command(subcommand)]
    Mnemonic(commands::keys::MnemonicCommand),
    /// SLIP-10 Ed25519 hardened derivation: prints the private and public key.
    Derive {
        /// The seed as hex (16 to 64 bytes; a BIP39 seed is 64).
        seed_hex: String,
        /// Derivation path such as m/44'/9555'/0' (hardened components only).
        path: String,
    },
    /// Ed25519 signature of a message.
    Sign {
        /// 32-byte private key (seed) as hex.
        priv_hex: String,
        /// Message as hex.
        msg_hex: String,
    },
    /// Ed25519 verification under the frozen ZIP-215 rules; prints true, or fails with exit 1.
    Verify {
        /// 32-byte public key as hex.
        pub_hex: String,
        /// Message as hex.
        msg_hex: String,
        /// 64-byte signature as hex.
        sig_hex: String,
    },
    /// Bech32m addresses.
    #[command(subcommand)]
    Address(commands::address::AddressCommand),
    /// Encrypted backups (Argon2id → AES-256-CBC + HMAC-SHA256). The passphrase comes from
    /// RNET_PASSPHRASE or a prompt.
    #[command(subcommand)]
    Backup(commands::keys::BackupCommand),
    /// Decode a consensus-encoded transaction (hex) to JSON.
    DecodeTx {
        /// The transaction as hex.
        hex: String,
    },
    /// Decode a consensus-encoded block header (hex) to JSON.
    DecodeHeader {
        /// The header as hex.
        hex: String,
    },
    /// Model checkpoints: create, inspect, evaluate, grow, export and import safetensors.
    #[command(subcommand)]
    Checkpoint(commands::checkpoint::CheckpointCommand),
    /// Model updates (what a block carries): safetensors export and strict import.
    #[command(subcommand)]
    Update(commands::update::UpdateCommand),
    /// Train a checkpoint on a data file with the CPU training engine.
    Train(commands::train::TrainArgs),
    /// The evaluation sample a block draws: seed and sorted record indices as JSON.
    Sample(commands::sample::SampleArgs),
    /// Generate text from a checkpoint, streamed to stdout.
    Generate(commands::generate::GenerateArgs),
    /// Chat with a checkpoint: one message per line of stdin, the conversation kept in the
    /// recurrent state.
    Chat(commands::generate::ChatArgs),
    /// Serve a checkpoint over the OpenAI-compatible HTTP API (/v1/models, /v1/completions,
    /// /v1/chat/completions).
    Serve(commands::generate::ServeArgs),
    /// Reference outputs of the evaluator and the training engine for external trainers'
    /// agreement tests (contrib/pytorch): logits, losses, gradient, a short run.
    #[command(hide = true)]
    DevReference(commands::dev::DevReferenceArgs),
}

fn run(cli: Cli) -> anyhow::Result<()> {
    use commands::*;
    match cli.command {
        Command::Keccak256 { hex } => hash::keccak(&hex, false),
        Command::Keccak256d { hex } => hash::keccak(&hex, true),
        Command::Mnemonic(command) => keys::mnemonic(command),
        Command::Derive { seed_hex, path } => keys::derive(&seed_hex, &path),
        Command::Sign { priv_hex, msg_hex } => keys::sign(&priv_hex, &msg_hex),
        Command::Verify { pub_hex, msg_hex, sig_hex } => keys::verify(&pub_hex, &msg_hex, &sig_hex),
        Command::Address(command) => address::run(command),
        Command::Backup(command) => keys::backup(command),
        Command::DecodeTx { hex } => decode::transaction(&hex),
        Command::DecodeHeader { hex } => decode::header(&hex),
        Command::Checkpoint(command) => checkpoint::run(command),
        Command::Update(command) => update::run(command),
        Command::Train(args) => train::run(args),
        Command::Sample(args) => sample::run(args),
        Command::Generate(args) => generate::run_generate(args),
        Command::Chat(args) => generate::run_chat(args),
        Command::Serve(args) => generate::run_serve(args),
        Command::DevReference(args) => dev::run(args),
    }
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            // Help and version are successes; every usage error is one line and exit code 1.
            if !error.use_stderr() {
                let _ = error.print();
                std::process::exit(0);
            }
            let text = error.to_string();
            let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("invalid arguments");
            eprintln!("{}", first.trim_start_matches("error: ").trim());
            eprintln!("(see rnet-util --help)");
            std::process::exit(1);
        }
    };
    if let Err(error) = run(cli) {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}
