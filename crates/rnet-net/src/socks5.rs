//! A minimal SOCKS5 client (RFC 1928, no authentication) for outbound connections through a
//! proxy such as Tor (`-proxy`); onion hosts are passed as domain names.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::addr::{NetAddr, PeerAddr};

/// Connects to `target` through the SOCKS5 proxy at `proxy`.
pub async fn connect(proxy: std::net::SocketAddr, target: &PeerAddr) -> std::io::Result<TcpStream> {
    let mut s = TcpStream::connect(proxy).await?;
    s.write_all(&[5, 1, 0]).await?;
    let mut resp = [0u8; 2];
    s.read_exact(&mut resp).await?;
    if resp != [5, 0] {
        return Err(std::io::Error::other("SOCKS5 proxy refused the no-auth method"));
    }
    let mut req = vec![5, 1, 0];
    match &target.addr {
        NetAddr::V4(a) => {
            req.push(1);
            req.extend_from_slice(a);
        }
        NetAddr::V6(a) => {
            req.push(4);
            req.extend_from_slice(a);
        }
        NetAddr::TorV3(_) => {
            let host = target.addr.host();
            req.push(3);
            req.push(host.len() as u8);
            req.extend_from_slice(host.as_bytes());
        }
    }
    req.extend_from_slice(&target.port.to_be_bytes());
    s.write_all(&req).await?;
    let mut head = [0u8; 4];
    s.read_exact(&mut head).await?;
    if head[0] != 5 || head[1] != 0 {
        return Err(std::io::Error::other(format!("SOCKS5 connect failed (reply {})", head[1])));
    }
    let skip = match head[3] {
        1 => 4,
        4 => 16,
        3 => {
            let mut l = [0u8; 1];
            s.read_exact(&mut l).await?;
            usize::from(l[0])
        }
        _ => return Err(std::io::Error::other("SOCKS5 bad address type")),
    };
    let mut rest = vec![0u8; skip + 2];
    s.read_exact(&mut rest).await?;
    Ok(s)
}
