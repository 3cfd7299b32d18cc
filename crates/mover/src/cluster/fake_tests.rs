//! In-crate IO tests of the cluster path against a scripted one-node "cluster" on a loopback
//! port chosen by the kernel: detection by `INFO cluster`, `TRYAGAIN`/`CLUSTERDOWN` retried
//! after short pauses, and a cluster that stays down failing with a retryable error.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::conn::Conn;
use crate::error::Side;
use crate::io::{Entry, Outcome, WriteMode};

type Script = dyn Fn(&[Vec<u8>], usize) -> Vec<u8> + Send + Sync;

/// Serves RESP on a kernel-chosen port: every command gets `script(args, n)` where `n`
/// counts the commands of that name so far. `make` builds the script from the port.
async fn fake_node(make: impl FnOnce(u16) -> Arc<Script>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let script = make(port);
    let seen: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let (script, seen) = (script.clone(), seen.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while let Some((args, used)) = parse(&buf) {
                        buf.drain(..used);
                        let name = args[0].to_ascii_uppercase();
                        let n = {
                            let mut seen = seen.lock().unwrap();
                            seen.push(name.clone());
                            seen.iter().filter(|c| **c == name).count()
                        };
                        let reply = match &name[..] {
                            b"CLIENT" | b"SELECT" => b"+OK\r\n".to_vec(),
                            _ => script(&args, n),
                        };
                        if s.write_all(&reply).await.is_err() {
                            return;
                        }
                    }
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    port
}

/// One complete `*N $len arg …` command from the front of `buf`.
fn parse(buf: &[u8]) -> Option<(Vec<Vec<u8>>, usize)> {
    fn line(buf: &[u8], at: usize) -> Option<(usize, usize)> {
        let end = buf[at..].windows(2).position(|w| w == b"\r\n")? + at;
        let n = std::str::from_utf8(&buf[at + 1..end]).ok()?.parse().ok()?;
        Some((n, end + 2))
    }
    if buf.first() != Some(&b'*') {
        return None;
    }
    let (count, mut at) = line(buf, 0)?;
    let mut args = Vec::with_capacity(count);
    for _ in 0..count {
        let (len, start) = line(buf, at)?;
        if buf.len() < start + len + 2 {
            return None;
        }
        args.push(buf[start..start + len].to_vec());
        at = start + len + 2;
    }
    Some((args, at))
}

fn bulk(s: &str) -> Vec<u8> {
    format!("${}\r\n{s}\r\n", s.len()).into_bytes()
}

/// A node that is the only master of a cluster; `RESTORE` gets `restore(n)`.
async fn cluster_node(restore: fn(usize) -> &'static str) -> u16 {
    fake_node(move |port| {
        Arc::new(
            move |args: &[Vec<u8>], n: usize| match &args[0].to_ascii_uppercase()[..] {
                b"INFO" => bulk("# Cluster\r\ncluster_enabled:1\r\n"),
                b"CLUSTER" => {
                    let mut r = b"*1\r\n*3\r\n:0\r\n:16383\r\n*3\r\n".to_vec();
                    r.extend(bulk("127.0.0.1"));
                    r.extend(format!(":{port}\r\n").into_bytes());
                    r.extend(bulk("id-a"));
                    r
                }
                b"RESTORE" => restore(n).as_bytes().to_vec(),
                _ => b"-ERR unexpected\r\n".to_vec(),
            },
        )
    })
    .await
}

fn entry(key: &str) -> Entry {
    Entry {
        key: Bytes::from(key.to_string()),
        expire_at: 0,
        payload: Some(b"payload".to_vec()),
    }
}

#[tokio::test]
async fn tryagain_and_clusterdown_are_retried_after_a_pause() {
    let port = cluster_node(|n| match n {
        // a, then b, then a again, then a third time
        1 => "-TRYAGAIN Multiple keys request during rehashing of slot\r\n",
        3 => "-CLUSTERDOWN The cluster is down\r\n",
        _ => "+OK\r\n",
    })
    .await;
    let url = format!("redis://127.0.0.1:{port}");
    let mut c = Conn::connect(&url, Side::Target, Duration::from_secs(2))
        .await
        .unwrap();
    assert!(matches!(c, Conn::Cluster(_)));
    let started = std::time::Instant::now();
    let out = c
        .write(&[entry("a"), entry("b")], WriteMode::Replace)
        .await
        .unwrap();
    assert_eq!(out, vec![Outcome::Copied(7), Outcome::Copied(7)]);
    // two pauses: 25 ms, then 50 ms
    assert!(started.elapsed() >= Duration::from_millis(75));
}

#[tokio::test]
async fn a_cluster_that_stays_down_fails_retryably() {
    let port = cluster_node(|_| "-CLUSTERDOWN The cluster is down\r\n").await;
    let url = format!("redis://127.0.0.1:{port}");
    let mut c = Conn::connect(&url, Side::Target, Duration::from_secs(2))
        .await
        .unwrap();
    let err = c
        .write(&[entry("a")], WriteMode::Replace)
        .await
        .unwrap_err();
    assert!(err.retryable(), "{err}");
}

#[tokio::test]
async fn a_standalone_server_is_detected() {
    let port = fake_node(|_| {
        Arc::new(
            |args: &[Vec<u8>], _| match &args[0].to_ascii_uppercase()[..] {
                b"INFO" => bulk("# Cluster\r\ncluster_enabled:0\r\n"),
                _ => b":3\r\n".to_vec(),
            },
        )
    })
    .await;
    let url = format!("redis://127.0.0.1:{port}");
    let mut c = Conn::connect(&url, Side::Source, Duration::from_secs(2))
        .await
        .unwrap();
    assert!(matches!(c, Conn::Single(..)));
    assert_eq!(c.dbsize().await.unwrap(), 3);
}
