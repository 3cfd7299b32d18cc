//! Free loopback ports. A port found here is free at the time of the call only; callers that
//! spawn a server on it must retry on `EADDRINUSE` (another test may win the race).

use std::net::{SocketAddr, TcpListener};

/// Returns a port on 127.0.0.1 that the kernel handed out and that is closed again now.
pub fn free_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// `127.0.0.1:port`.
pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}
