//! `rnetd`: the ResonanceNet full node. Options: `rnetd -help`; see `docs/node.md`.

use anyhow::Result;
use rnet_node::{Command, config};

fn main() {
    if let Err(e) = real_main() {
        eprintln!("Error: {e:#}");
        std::process::exit(1);
    }
}

fn real_main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match config::parse(&args, rnet_rpc::default_datadir())? {
        Command::Help => println!("{}", config::HELP),
        Command::Version => println!("rnetd {}", env!("CARGO_PKG_VERSION")),
        Command::Run(c) => rnet_node::run(&c)?,
    }
    Ok(())
}
