//! `rnet-tx`: offline transactions. `create` builds an unsigned transaction from
//! `--input TXID:VOUT:AMOUNT:SCRIPTPUBKEY` and `--output ADDR:AMOUNT` (amounts in RNT);
//! `sign` signs the inputs a key controls (v1 key outputs, or v0 outputs of a given witness
//! script, on the owner `IF` branch or the delayed `ELSE` branch) for the network given by
//! `--chain` (signatures commit to its genesis id, so they are valid on no other network);
//! `decode` prints JSON.
//! Errors: exit 1, one line.

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use rnet_consensus::ChainParams;
use rnet_crypto::{DerivationPath, ExtendedSecretKey, Mnemonic, SigningKey};
use rnet_primitives::{
    Address, Amount, Network, OutPoint, Transaction, TxIn, TxOut, Txid, Witness,
};
use rnet_script::templates::script_hash_script_pubkey;
use rnet_script::{PlainKey, SighashCache, SighashType, VerifyFlags, verify_transaction};
use zeroize::Zeroizing;

#[derive(Parser)]
#[command(name = "rnet-tx", version, about = "Offline ResonanceNet transaction tool")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum Branch {
    /// Owner path (`[sig, 01, script]`).
    Owner,
    /// Delayed path: heartbeat recovery / pending claim (`[sig, "", script]`); sets the
    /// sequence from --sequence.
    Else,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build an unsigned transaction (prints its hex).
    Create {
        /// TXID:VOUT:AMOUNT:SCRIPTPUBKEY_HEX (repeat).
        #[arg(long = "input", required = true)]
        inputs: Vec<String>,
        /// ADDRESS:AMOUNT (repeat).
        #[arg(long = "output", required = true)]
        outputs: Vec<String>,
        /// Input sequence (default 0xFFFFFFFD: RBF, no relative lock).
        #[arg(long, default_value_t = 0xFFFF_FFFD)]
        sequence: u32,
        /// Lock time.
        #[arg(long, default_value_t = 0)]
        locktime: u32,
    },
    /// Sign the inputs the key controls (prints the hex and whether it is complete).
    Sign {
        /// The network the transaction is for: main, test or regtest (the signatures commit to
        /// its genesis block and are invalid on every other network).
        #[arg(long, value_parser = parse_network)]
        chain: Network,
        /// The transaction hex.
        #[arg(long)]
        tx: String,
        /// The spent outputs, one per input in order: TXID:VOUT:AMOUNT:SCRIPTPUBKEY_HEX.
        #[arg(long = "input", required = true)]
        inputs: Vec<String>,
        /// Secret key hex (or RNET_TX_KEY).
        #[arg(long)]
        key: Option<String>,
        /// Derive the key from RNET_TX_MNEMONIC (24 words) at this SLIP-10 path.
        #[arg(long)]
        path: Option<String>,
        /// Witness script hex for v0 script-hash inputs.
        #[arg(long)]
        witness_script: Option<String>,
        /// Which branch of the witness script to take.
        #[arg(long, value_enum, default_value = "owner")]
        branch: Branch,
    },
    /// Decode a transaction hex to JSON.
    Decode {
        /// The transaction hex.
        hex: String,
    },
}

fn parse_network(s: &str) -> Result<Network, String> {
    s.parse().map_err(|_| format!("unknown chain {s:?} (main, test or regtest)"))
}

fn parse_input(s: &str) -> Result<(OutPoint, TxOut)> {
    let parts: Vec<&str> = s.split(':').collect();
    let [txid, vout, amount, spk] = parts[..] else {
        bail!("input {s:?} is not TXID:VOUT:AMOUNT:SCRIPTPUBKEY");
    };
    let txid: Txid = txid.parse().with_context(|| format!("bad txid in {s:?}"))?;
    let vout: u32 = vout.parse().with_context(|| format!("bad vout in {s:?}"))?;
    let value: Amount = amount.parse().with_context(|| format!("bad amount in {s:?}"))?;
    let script_pubkey = hex::decode(spk).with_context(|| format!("bad script hex in {s:?}"))?;
    Ok((OutPoint::new(txid, vout), TxOut { value, script_pubkey }))
}

fn parse_output(s: &str) -> Result<TxOut> {
    let (addr, amount) =
        s.rsplit_once(':').with_context(|| format!("output {s:?} is not ADDRESS:AMOUNT"))?;
    let addr: Address = addr.parse().with_context(|| format!("bad address {addr:?}"))?;
    let value: Amount = amount.parse().with_context(|| format!("bad amount {amount:?}"))?;
    Ok(TxOut { value, script_pubkey: addr.script_pubkey() })
}

fn decode_tx(h: &str) -> Result<Transaction> {
    let bytes = hex::decode(h.trim()).context("transaction is not hex")?;
    Transaction::from_bytes(&bytes).map_err(|e| anyhow::anyhow!("bad transaction: {e}"))
}

fn signing_key(key: Option<&str>, path: Option<&str>) -> Result<SigningKey> {
    if let Some(p) = path {
        let words = Zeroizing::new(
            std::env::var("RNET_TX_MNEMONIC").context("--path needs RNET_TX_MNEMONIC")?,
        );
        let m = Mnemonic::parse(&words)?;
        let pass = Zeroizing::new(std::env::var("RNET_TX_BIP39_PASSPHRASE").unwrap_or_default());
        let path: DerivationPath = p.parse()?;
        return Ok(ExtendedSecretKey::from_seed(&m.to_seed(&pass))
            .derive_path(&path)
            .signing_key());
    }
    let hexkey = Zeroizing::new(match key {
        Some(k) => k.to_owned(),
        None => std::env::var("RNET_TX_KEY").context("give --key, RNET_TX_KEY or --path")?,
    });
    let bytes = Zeroizing::new(hex::decode(hexkey.trim()).context("key is not hex")?);
    Ok(SigningKey::from_slice(&bytes)?)
}

fn run() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Create { inputs, outputs, sequence, locktime } => {
            let ins = inputs.iter().map(|s| parse_input(s)).collect::<Result<Vec<_>>>()?;
            let outs = outputs.iter().map(|s| parse_output(s)).collect::<Result<Vec<_>>>()?;
            let in_sum = ins
                .iter()
                .try_fold(Amount::ZERO, |a, (_, o)| a.checked_add(o.value))
                .context("input overflow")?;
            let out_sum = outs
                .iter()
                .try_fold(Amount::ZERO, |a, o| a.checked_add(o.value))
                .context("output overflow")?;
            let fee = in_sum.checked_sub(out_sum).context("outputs exceed inputs")?;
            let tx = Transaction {
                version: 2,
                inputs: ins
                    .iter()
                    .map(|(o, _)| TxIn {
                        previous_output: *o,
                        script_sig: Vec::new(),
                        sequence,
                        witness: Witness::new(),
                    })
                    .collect(),
                outputs: outs,
                lock_time: locktime,
            };
            println!(
                "{}",
                serde_json::json!({ "hex": hex::encode(tx.to_bytes()), "txid": tx.txid().to_string(), "fee": fee })
            );
        }
        Cmd::Sign { chain, tx, inputs, key, path, witness_script, branch } => {
            let mut tx = decode_tx(&tx)?;
            let spent: Vec<TxOut> =
                inputs.iter().map(|s| parse_input(s).map(|(_, o)| o)).collect::<Result<_>>()?;
            if spent.len() != tx.inputs.len() {
                bail!("give one --input per transaction input ({} inputs)", tx.inputs.len());
            }
            let key = signing_key(key.as_deref(), path.as_deref())?;
            let plain = PlainKey::new(key.public_key()).script_pubkey();
            let script = witness_script
                .map(|s| hex::decode(s).context("witness script is not hex"))
                .transpose()?;
            let script_spk =
                script.as_ref().map(|s| script_hash_script_pubkey(&rnet_crypto::keccak256d(s)));
            let genesis = ChainParams::for_network(chain).genesis_hash();
            let mut signed = Vec::new();
            {
                let cache =
                    SighashCache::new(&genesis, &tx, &spent).map_err(|e| anyhow::anyhow!("{e}"))?;
                for (i, s) in spent.iter().enumerate() {
                    if s.script_pubkey == plain {
                        let sig = cache
                            .sign(&key, i, &plain, SighashType::All)
                            .map_err(|e| anyhow::anyhow!("{e}"))?;
                        signed.push((i, Witness(vec![sig])));
                    } else if let (Some(script), Some(sspk)) = (&script, &script_spk) {
                        if s.script_pubkey == *sspk {
                            let sig = cache
                                .sign(&key, i, script, SighashType::All)
                                .map_err(|e| anyhow::anyhow!("{e}"))?;
                            let b = match branch {
                                Branch::Owner => vec![1u8],
                                Branch::Else => Vec::new(),
                            };
                            signed.push((i, Witness(vec![sig, b, script.clone()])));
                        }
                    }
                }
            }
            if signed.is_empty() {
                bail!("the key controls none of the inputs");
            }
            for (i, w) in signed {
                tx.inputs[i].witness = w;
            }
            let complete = verify_transaction(&genesis, &tx, &spent, VerifyFlags::STANDARD).is_ok();
            println!(
                "{}",
                serde_json::json!({ "hex": hex::encode(tx.to_bytes()), "txid": tx.txid().to_string(), "complete": complete })
            );
        }
        Cmd::Decode { hex } => {
            let tx = decode_tx(&hex)?;
            println!("{}", serde_json::to_string_pretty(&tx)?);
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
