//! Control methods for tests: `setmocktime` (regtest only, as in Bitcoin Core).

use std::sync::Arc;

use rnet_primitives::Network;
use rnet_rpc::{MethodInfo, RegisterError, Registry, RpcError};
use serde_json::Value;

use super::reg;
use crate::node::Node;

pub(super) fn register(r: &mut Registry, node: &Arc<Node>) -> Result<(), RegisterError> {
    reg(
        r,
        node,
        MethodInfo::new("setmocktime", "Control").params(["timestamp"]).help(
            "setmocktime timestamp\n\nSet the node's clock (unix seconds) for regression testing (-regtest only). \
             It drives block templates (curtime and the stall-escape discount of the required improvement), \
             the time-too-new check of received blocks and mempool acceptance. Pass 0 to return to the system clock.",
        ),
        |node, p| {
            if node.params.network != Network::Regtest {
                return Err(RpcError::misc("setmocktime is for regression testing (-regtest mode) only"));
            }
            let time: i64 = p.required(0)?;
            let time = u64::try_from(time)
                .map_err(|_| RpcError::invalid_parameter("Mocktime cannot be negative"))?;
            node.set_mock_time(time);
            Ok(Value::Null)
        },
    )
}
