//! Accept loop of one interlay.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use godwit_router::Id;
use godwit_telemetry as tm;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::client::Client;
use crate::ProxyShared;

/// Settings of one interlay listener.
#[derive(Debug, Clone)]
pub struct InterlayOptions {
    /// Interlay id: the key of its route in the routing table.
    pub id: Id,
    /// Password clients must AUTH with (none: AUTH is accepted with any password).
    pub password: Option<Arc<str>>,
    /// Most clients this interlay holds at once (the process-wide limit applies too).
    pub max_clients: Option<usize>,
}

/// Accepts clients on `listener` until `stop` turns true. Existing clients are not affected
/// by stopping: they finish on their own.
pub async fn serve_interlay(
    listener: TcpListener,
    opts: InterlayOptions,
    shared: Arc<ProxyShared>,
    mut stop: watch::Receiver<bool>,
) {
    let opts = Arc::new(opts);
    let mine = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => {
                if *stop.borrow() { return; }
                continue;
            }
        };
        let (mut sock, _peer) = match accepted {
            Ok(s) => s,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning
                tracing::warn!(interlay = %opts.id, error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let n = shared.clients.fetch_add(1, Ordering::Relaxed) + 1;
        let here = mine.fetch_add(1, Ordering::Relaxed) + 1;
        if n > shared.limits.max_clients || opts.max_clients.is_some_and(|m| here > m) {
            shared.clients.fetch_sub(1, Ordering::Relaxed);
            mine.fetch_sub(1, Ordering::Relaxed);
            metrics::counter!(tm::CLIENT_REJECTED_TOTAL, "interlay" => opts.id.to_string())
                .increment(1);
            tokio::spawn(async move {
                let _ = sock
                    .write_all(b"-ERR max number of clients reached\r\n")
                    .await;
            });
            continue;
        }
        let _ = sock.set_nodelay(true);
        let id = shared.next_conn_id.fetch_add(1, Ordering::Relaxed);
        let client = Client::new(id, sock, opts.clone(), shared.clone());
        let shared2 = shared.clone();
        let mine2 = mine.clone();
        let gauge = metrics::gauge!(tm::CLIENT_CONNECTIONS, "interlay" => opts.id.to_string());
        metrics::counter!(tm::CLIENT_CONNECTIONS_TOTAL, "interlay" => opts.id.to_string())
            .increment(1);
        gauge.increment(1.0);
        tokio::spawn(async move {
            client.run().await;
            shared2.clients.fetch_sub(1, Ordering::Relaxed);
            mine2.fetch_sub(1, Ordering::Relaxed);
            gauge.decrement(1.0);
        });
    }
}
