#!/usr/bin/env bash
# A model that learns, on one machine: a solo testnet node (no peers) mines by training for
# MINUTES minutes (default 60), then its learning curve is plotted (docs/training.md, "A model that
# learns"). benchmark_loss (the tip model on the held-out benchmark slice) is logged as it falls.
#
#   bash scripts/solo-testnet.sh [MINUTES] [DATADIR] [extra rnetd options...]
#
# DATADIR (default ./solo-testnet) is created fresh: the wallet `miner` gets an emission-return
# recovery policy (mined coins go back to the emission pool after 4,320 blocks of inactivity), as
# every mined coin needs a recovery path. Writes DATADIR/learning-curve.svg and .csv.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-60}
datadir=${2:-solo-testnet}
shift $(( $# < 2 ? $# : 2 ))
[[ "$minutes" =~ ^[0-9]+$ && "$minutes" -gt 0 ]] || { echo "MINUTES must be a positive integer" >&2; exit 2; }
if [[ -e "$datadir/testnet" ]]; then
    echo "$datadir/testnet exists: give a fresh DATADIR (the demo starts from the genesis model)" >&2
    exit 2
fi
cargo build --release --locked --bin rnetd --bin rnet-cli
bin=target/release
cli=(-testnet "-datadir=$datadir")
node=("${cli[@]}" -connect=0 -listen=0 -printtoconsole=0)
mkdir -p "$datadir"

# 1. Create the payout wallet on a node that does not mine yet.
"$bin/rnetd" "${node[@]}" &
pid=$!
for _ in $(seq 100); do "$bin/rnet-cli" "${cli[@]}" getblockcount >/dev/null 2>&1 && break; sleep 0.2; done
"$bin/rnet-cli" "${cli[@]}" createwallet miner '{"emission":{"inactivity":4320}}' > "$datadir/wallet.json"
"$bin/rnet-cli" "${cli[@]}" stop >/dev/null
wait "$pid"
echo "wallet miner created; its 24 recovery words are in $datadir/wallet.json"

# 2. Mine for the given time (Ctrl-C stops early; the curve is plotted either way).
echo "mining for $minutes min; follow it with: tail -f $datadir/testnet/debug.log | grep -E 'mined block|benchmark loss'"
timeout --signal=INT "$((minutes * 60))" "$bin/rnetd" "${node[@]}" -mine -miningwallet=miner "$@" || true

# 3. Plot.
python3 scripts/learning_curve.py "$datadir/testnet/debug.log" "$datadir/learning-curve.svg" \
    > "$datadir/learning-curve.csv"
echo "final benchmark_loss (bits/byte): $(tail -1 "$datadir/learning-curve.csv" | cut -d, -f3)"
echo "curve: $datadir/learning-curve.svg, points: $datadir/learning-curve.csv"
