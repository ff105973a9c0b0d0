//! `-blocknotify=CMD` and `-walletnotify=CMD`, as in Bitcoin Core: a shell command per new
//! block (`%s` = its hash) or per wallet transaction (`%s` = txid, `%w` = wallet name), run by
//! `sh -c` in order on a worker thread of its own, so a slow command delays only later
//! notifications, never the node. A command that fails is logged.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::TryRecvError;

use crate::events::NodeEvent;
use crate::node::Node;

/// How often wallets' new transactions are published and notifications run.
const POLL: Duration = Duration::from_millis(100);

/// The notification commands.
#[derive(Debug, Clone, Default)]
pub struct NotifyCommands {
    /// `-blocknotify`.
    pub block: Option<String>,
    /// `-walletnotify`.
    pub wallet: Option<String>,
}

/// `cmd` with `%s` and `%w` replaced (`%w` single-quoted for the shell, as Core does).
pub fn substitute(cmd: &str, s: &str, wallet: Option<&str>) -> String {
    let mut out = cmd.replace("%s", s);
    if let Some(w) = wallet {
        out = out.replace("%w", &format!("'{}'", w.replace('\'', "'\\''")));
    }
    out
}

fn run(command: &str) {
    match std::process::Command::new("sh").arg("-c").arg(command).status() {
        Ok(status) if status.success() => {}
        Ok(status) => tracing::warn!(%command, "notify command failed: {status}"),
        Err(e) => tracing::warn!(%command, "notify command could not start: {e}"),
    }
}

/// Starts the thread that publishes wallets' new transactions as events and runs the
/// commands; it ends when the node shuts down.
pub fn start(node: Arc<Node>, commands: NotifyCommands) -> std::io::Result<()> {
    let mut events = node.events.subscribe();
    std::thread::Builder::new().name("notify".into()).spawn(move || {
        while !node.shutting_down() {
            node.wallets.publish_recorded(&node.events);
            loop {
                match events.try_recv() {
                    Ok(NodeEvent::BlockConnected { hash, .. }) => {
                        if let Some(cmd) = &commands.block {
                            run(&substitute(cmd, &hash.to_hex(), None));
                        }
                    }
                    Ok(NodeEvent::WalletTransaction { wallet, txid }) => {
                        if let Some(cmd) = &commands.wallet {
                            run(&substitute(cmd, &txid.to_hex(), Some(&wallet)));
                        }
                    }
                    Ok(_) => {}
                    Err(TryRecvError::Lagged(n)) => {
                        tracing::warn!("notifications fell behind: {n} events skipped");
                    }
                    Err(TryRecvError::Empty | TryRecvError::Closed) => break,
                }
            }
            std::thread::sleep(POLL);
        }
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_replaced_and_wallet_names_quoted() {
        assert_eq!(substitute("echo %s >> f", "ab", None), "echo ab >> f");
        assert_eq!(substitute("n %s %w", "t", Some("w")), "n t 'w'");
        assert_eq!(substitute("n %w", "t", Some("it's")), "n 'it'\\''s'");
    }
}
