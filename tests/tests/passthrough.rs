//! Ordinary traffic through one interlay: pipelining order, inline commands, SELECT, large
//! values, rejected commands and malformed frames.

use std::time::Duration;

use godwit_tests::reply::encode_command;
use godwit_tests::{proxied, Reply, RespClient};

/// One mixed command and the reply Redis gives to it, for a pipeline of `n` commands.
fn mixed_pipeline(n: usize, tag: &str) -> (Vec<u8>, Vec<Reply>) {
    let mut bytes = Vec::new();
    let mut want = Vec::new();
    let mut counter = 0;
    for i in 0..n {
        let key = format!("{tag}:k{}", i % 50);
        let (cmd, reply): (Vec<String>, Reply) = match i % 6 {
            0 => (vec!["SET".into(), key, format!("v{i}")], Reply::ok()),
            1 => {
                let prev = format!("{tag}:k{}", (i - 1) % 50);
                (vec!["GET".into(), prev], Reply::bulk(format!("v{}", i - 1)))
            }
            2 => {
                counter += 1;
                (
                    vec!["INCR".into(), format!("{tag}:counter")],
                    Reply::Integer(counter),
                )
            }
            3 => (
                vec!["ECHO".into(), format!("echo-{i}")],
                Reply::bulk(format!("echo-{i}")),
            ),
            4 => {
                // WRONGTYPE: key (i-4)%50 holds a string set at i-4
                let prev = format!("{tag}:k{}", (i - 4) % 50);
                let err = Reply::Error(
                    "WRONGTYPE Operation against a key holding the wrong kind of value".into(),
                );
                (vec!["LPUSH".into(), prev, "x".into()], err)
            }
            _ => (vec!["PING".into()], Reply::simple("PONG")),
        };
        bytes.extend(encode_command(&cmd));
        want.push(reply);
    }
    (bytes, want)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_of_1000_mixed_commands_in_one_write_replies_in_order() {
    let (_redis, godwit) = proxied().await.unwrap();
    let mut c = godwit.raw().await.unwrap();
    let (bytes, want) = mixed_pipeline(1000, "p");
    c.send_raw(&bytes).await.unwrap();
    let got = c.read_replies(want.len()).await.unwrap();
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "reply {i}");
    }
    assert_eq!(c.cmd(&["PING"]).await.unwrap(), Reply::simple("PONG"));
    godwit.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_split_at_odd_byte_boundaries() {
    let (_redis, godwit) = proxied().await.unwrap();
    let mut c = godwit.raw().await.unwrap();
    let (bytes, want) = mixed_pipeline(120, "split");
    for chunk in bytes.chunks(7) {
        c.send_raw(chunk).await.unwrap();
        tokio::time::sleep(Duration::from_micros(50)).await;
    }
    assert_eq!(c.read_replies(want.len()).await.unwrap(), want);
    godwit.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pipelining_clients_each_get_their_own_replies() {
    let (_redis, godwit) = proxied().await.unwrap();
    let mut tasks = Vec::new();
    for t in 0..16 {
        let addr = godwit.addr();
        tasks.push(tokio::spawn(async move {
            let mut c = RespClient::connect(addr).await.unwrap();
            for round in 0..5 {
                let (bytes, want) = mixed_pipeline(200, &format!("c{t}r{round}"));
                c.send_raw(&bytes).await.unwrap();
                assert_eq!(
                    c.read_replies(want.len()).await.unwrap(),
                    want,
                    "client {t}"
                );
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    godwit.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_commands() {
    let (_redis, godwit) = proxied().await.unwrap();
    let mut c = godwit.raw().await.unwrap();
    c.send_raw(b"PING\r\n").await.unwrap();
    assert_eq!(c.read_reply().await.unwrap(), Reply::simple("PONG"));
    c.send_raw(b"SET greeting \"hello world\"\r\nGET greeting\r\n")
        .await
        .unwrap();
    assert_eq!(
        c.read_replies(2).await.unwrap(),
        vec![Reply::ok(), Reply::bulk("hello world")]
    );
    // inline and multibulk mixed in one write, bare newline as the terminator
    let mut mixed = b"ECHO one\n".to_vec();
    mixed.extend(encode_command(&["ECHO", "two"]));
    mixed.extend(b"ECHO three\r\n");
    c.send_raw(&mixed).await.unwrap();
    assert_eq!(
        c.read_replies(3).await.unwrap(),
        vec![Reply::bulk("one"), Reply::bulk("two"), Reply::bulk("three")]
    );
    godwit.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select_1_is_isolated_from_db_0() {
    let (redis, godwit) = proxied().await.unwrap();
    let mut db1 = godwit.raw().await.unwrap();
    let mut db0 = godwit.raw().await.unwrap();
    db1.ok(&["SELECT", "1"]).await.unwrap();
    db1.ok(&["SET", "k", "in-db1"]).await.unwrap();
    db0.ok(&["SET", "k", "in-db0"]).await.unwrap();
    assert_eq!(db1.cmd(&["GET", "k"]).await.unwrap(), Reply::bulk("in-db1"));
    assert_eq!(db0.cmd(&["GET", "k"]).await.unwrap(), Reply::bulk("in-db0"));
    assert_eq!(db1.cmd(&["DBSIZE"]).await.unwrap(), Reply::Integer(1));

    // what Redis itself holds
    let mut direct = redis.raw().await.unwrap();
    assert_eq!(
        direct.cmd(&["GET", "k"]).await.unwrap(),
        Reply::bulk("in-db0")
    );
    direct.ok(&["SELECT", "1"]).await.unwrap();
    assert_eq!(
        direct.cmd(&["GET", "k"]).await.unwrap(),
        Reply::bulk("in-db1")
    );

    // a pipeline that switches back and forth
    let mut bytes = encode_command(&["SELECT", "0"]);
    bytes.extend(encode_command(&["GET", "k"]));
    bytes.extend(encode_command(&["SELECT", "1"]));
    bytes.extend(encode_command(&["GET", "k"]));
    db1.send_raw(&bytes).await.unwrap();
    assert_eq!(
        db1.read_replies(4).await.unwrap(),
        vec![
            Reply::ok(),
            Reply::bulk("in-db0"),
            Reply::ok(),
            Reply::bulk("in-db1")
        ]
    );
    // out-of-range db: Redis's own error, connection stays on db 1
    let r = db1.cmd(&["SELECT", "99999"]).await.unwrap();
    assert!(r.is_error(), "{r:?}");
    assert_eq!(db1.cmd(&["GET", "k"]).await.unwrap(), Reply::bulk("in-db1"));
    godwit.shutdown().await;
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ seed).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_values_round_trip() {
    let (redis, godwit) = proxied().await.unwrap();
    let mut c = godwit.raw().await.unwrap();
    c.set_timeout(Duration::from_secs(60));
    let mut other = godwit.raw().await.unwrap();
    for (mib, seed) in [(16usize, 1u8), (32, 2)] {
        let value = pattern(mib << 20, seed);
        let key = format!("big{mib}");
        c.ok(&[b"SET".as_slice(), key.as_bytes(), &value])
            .await
            .unwrap();
        let got = c.cmd(&[b"GET".as_slice(), key.as_bytes()]).await.unwrap();
        // not assert_eq: a 32 MiB diff is no use in a failure message
        assert!(got == Reply::Bulk(value), "{mib} MiB value differs");
        assert_eq!(
            c.cmd(&["STRLEN", &key]).await.unwrap(),
            Reply::Integer((mib << 20) as i64)
        );
        // a small command from another client is not stuck behind the big one
        assert_eq!(other.cmd(&["PING"]).await.unwrap(), Reply::simple("PONG"));
    }
    let mut direct = redis.raw().await.unwrap();
    assert_eq!(
        direct.cmd(&["STRLEN", "big32"]).await.unwrap(),
        Reply::Integer(32 << 20)
    );
    godwit.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_sync_psync_are_rejected_and_the_connection_stays_usable() {
    let (_redis, godwit) = proxied().await.unwrap();
    let mut c = godwit.raw().await.unwrap();
    for cmd in [vec!["MONITOR"], vec!["SYNC"], vec!["PSYNC", "?", "-1"]] {
        let r = c.cmd(&cmd).await.unwrap();
        let text = r.error_text().unwrap_or_else(|| panic!("{cmd:?}: {r:?}"));
        assert!(text.starts_with("ERR"), "{cmd:?}: {text}");
        assert_eq!(
            c.cmd(&["PING"]).await.unwrap(),
            Reply::simple("PONG"),
            "{cmd:?}"
        );
    }
    c.ok(&["SET", "after", "1"]).await.unwrap();
    godwit.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_get_protocol_error_and_close() {
    let (_redis, godwit) = proxied().await.unwrap();
    let mut bystander = godwit.raw().await.unwrap();
    bystander.ok(&["SET", "x", "1"]).await.unwrap();
    let cases: [&[u8]; 3] = [b"*1\r\n$abc\r\n", b"*1\r\nfoo\r\n", b"*abc\r\n"];
    for bad in cases {
        let mut c = godwit.raw().await.unwrap();
        // a good command first: its reply must still arrive, in order
        let mut bytes = encode_command(&["PING"]);
        bytes.extend_from_slice(bad);
        c.send_raw(&bytes).await.unwrap();
        assert_eq!(c.read_reply().await.unwrap(), Reply::simple("PONG"));
        let r = c.read_reply().await.unwrap();
        let text = r.error_text().unwrap_or_else(|| panic!("{bad:?}: {r:?}"));
        assert!(text.starts_with("ERR Protocol error"), "{bad:?}: {text}");
        c.expect_closed(Duration::from_secs(5)).await.unwrap();
    }
    assert_eq!(
        bystander.cmd(&["GET", "x"]).await.unwrap(),
        Reply::bulk("1")
    );
    godwit.shutdown().await;
}
