//! Pub/sub: once a client subscribes, replies no longer pair with requests, so the connection
//! becomes a byte tunnel to its own server connection (with the client's db, name and protocol
//! restored) for the rest of its life.

use tokio::io::AsyncWriteExt;

use super::{connection, error_reply, Client};

pub(super) async fn run(mut c: Client) {
    let pool = match c.sources.serving_pool(&c.shared) {
        Ok(p) => p,
        Err(msg) => {
            let _ = c.sock.write_all(&error_reply(&msg)).await;
            return;
        }
    };
    let init = connection::restore_state(&c.state, &pool);
    let mut server = match pool.raw(&init).await {
        Ok(s) => s,
        Err(e) => {
            let _ = c
                .sock
                .write_all(&error_reply(&format!(
                    "ERR godwit: backend unavailable: {e}"
                )))
                .await;
            return;
        }
    };
    // the subscribing request and anything pipelined after it
    if server.write_all(&c.rbuf).await.is_err() {
        return;
    }
    c.rbuf.clear();
    let _ = tokio::io::copy_bidirectional(&mut c.sock, &mut server).await;
}
