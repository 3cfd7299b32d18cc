//! Faults: clients that vanish mid-pipeline or while blocked/subscribed, and a backend that
//! restarts under connected clients. One reply per request, always, and no desync.

use std::time::{Duration, Instant};

use godwit_tests::reply::encode_command;
use godwit_tests::{proxied, Reply, RespClient};

/// A client that pipelines ECHOs and checks every reply, `rounds` times.
async fn echo_checker(addr: std::net::SocketAddr, tag: String, rounds: usize) {
    let mut c = RespClient::connect(addr).await.unwrap();
    for round in 0..rounds {
        let mut bytes = Vec::new();
        for i in 0..100 {
            bytes.extend(encode_command(&["ECHO", &format!("{tag}-{round}-{i}")]));
        }
        c.send_raw(&bytes).await.unwrap();
        for i in 0..100 {
            let r = c.read_reply().await.unwrap();
            assert_eq!(
                r,
                Reply::bulk(format!("{tag}-{round}-{i}")),
                "desync for {tag}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_disconnecting_mid_pipeline_do_not_disturb_others() {
    let (_redis, godwit) = proxied().await.unwrap();
    let checkers: Vec<_> = (0..4)
        .map(|t| tokio::spawn(echo_checker(godwit.addr(), format!("t{t}"), 40)))
        .collect();

    let value = vec![b'x'; 64 * 1024];
    for i in 0..30 {
        let mut c = godwit.raw().await.unwrap();
        let mut bytes = Vec::new();
        for j in 0..300 {
            let key = format!("gone{i}:{j}");
            if j % 10 == 0 {
                bytes.extend(encode_command(&[b"SET".as_slice(), key.as_bytes(), &value]));
            } else {
                bytes.extend(encode_command(&["INCR", &key]));
            }
        }
        // end on half a frame
        bytes.extend_from_slice(b"*3\r\n$3\r\nSET\r\n$4\r\nhal");
        c.send_raw(&bytes).await.unwrap();
        if i % 3 == 0 {
            // read a little, then vanish
            c.read_replies(2).await.unwrap();
        }
        drop(c);
    }
    for t in checkers {
        t.await.unwrap();
    }
    let mut fresh = godwit.raw().await.unwrap();
    assert_eq!(fresh.cmd(&["PING"]).await.unwrap(), Reply::simple("PONG"));
    fresh.ok(&["SET", "after", "1"]).await.unwrap();
    godwit.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn a_blocked_client_that_disconnects_does_not_steal_later_pushes() {
    let (_redis, godwit) = proxied().await.unwrap();
    let mut waiter = godwit.raw().await.unwrap();
    waiter.send(&["BLPOP", "orphan", "0"]).await.unwrap();
    assert_eq!(
        waiter
            .try_read_reply(Duration::from_millis(200))
            .await
            .unwrap(),
        None
    );
    drop(waiter);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut pusher = godwit.raw().await.unwrap();
    pusher.cmd(&["LPUSH", "orphan", "item"]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        pusher.cmd(&["LLEN", "orphan"]).await.unwrap(),
        Reply::Integer(1),
        "the departed client's backend connection popped the item"
    );
    godwit.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_disconnects_is_unsubscribed() {
    let (_redis, godwit) = proxied().await.unwrap();
    let mut sub = godwit.raw().await.unwrap();
    sub.send(&["SUBSCRIBE", "gone"]).await.unwrap();
    sub.read_reply().await.unwrap();
    drop(sub);
    let mut publisher = godwit.raw().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let n = publisher.cmd(&["PUBLISH", "gone", "x"]).await.unwrap();
        if n == Reply::Integer(0) {
            break;
        }
        assert!(Instant::now() < deadline, "subscriber still counted: {n:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    godwit.shutdown().await;
}

/// Waits until PING through `client` answers PONG again, accepting only error replies meanwhile.
async fn until_pong(client: &mut RespClient, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = client
            .cmd(&["PING"])
            .await
            .unwrap_or_else(|e| panic!("{name}: {e:#}"));
        if r == Reply::simple("PONG") {
            return;
        }
        assert!(r.is_error(), "{name}: {r:?}");
        assert!(Instant::now() < deadline, "{name}: no recovery: {r:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_restart_errors_while_down_and_recovers_without_reconnecting() {
    let (mut redis, godwit) = proxied().await.unwrap();
    let mut c = godwit.raw().await.unwrap();
    c.ok(&["SET", "k", "v"]).await.unwrap();

    redis.stop();
    // every request gets exactly one error reply, promptly
    let mut bytes = Vec::new();
    for _ in 0..10 {
        bytes.extend(encode_command(&["GET", "k"]));
    }
    c.send_raw(&bytes).await.unwrap();
    for r in c.read_replies(10).await.unwrap() {
        let text = r
            .error_text()
            .unwrap_or_else(|| panic!("expected an error, got {r:?}"));
        assert!(text.starts_with("ERR"), "{text}");
    }

    redis.start_again().unwrap();
    // the same client connection recovers (the restarted Redis is empty)
    until_pong(&mut c, "client").await;
    assert_eq!(c.cmd(&["GET", "k"]).await.unwrap(), Reply::Nil);
    c.ok(&["SET", "k", "after"]).await.unwrap();
    assert_eq!(c.cmd(&["GET", "k"]).await.unwrap(), Reply::bulk("after"));
    // a client connecting now is served as well
    let mut fresh = godwit.raw().await.unwrap();
    assert_eq!(
        fresh.cmd(&["GET", "k"]).await.unwrap(),
        Reply::bulk("after")
    );
    godwit.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn backend_restart_keeps_a_selected_db() {
    let (mut redis, godwit) = proxied().await.unwrap();
    let mut db1 = godwit.raw().await.unwrap();
    db1.ok(&["SELECT", "1"]).await.unwrap();
    db1.ok(&["SET", "k", "db1"]).await.unwrap();
    redis.stop();
    let r = db1.cmd(&["GET", "k"]).await.unwrap();
    assert!(r.is_error(), "{r:?}");
    redis.start_again().unwrap();
    until_pong(&mut db1, "SELECT 1 client").await;
    db1.ok(&["SET", "k", "db1-after"]).await.unwrap();
    let mut direct = redis.raw().await.unwrap();
    direct.ok(&["SELECT", "1"]).await.unwrap();
    assert_eq!(
        direct.cmd(&["GET", "k"]).await.unwrap(),
        Reply::bulk("db1-after")
    );
    godwit.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_backend_answers_in_order_after_resume() {
    let (mut redis, godwit) = proxied().await.unwrap();
    let mut c = godwit.raw().await.unwrap();
    redis.pause().unwrap();
    for i in 0..5 {
        c.send(&["ECHO", &i.to_string()]).await.unwrap();
    }
    assert_eq!(
        c.try_read_reply(Duration::from_millis(300)).await.unwrap(),
        None
    );
    redis.resume().unwrap();
    let want: Vec<_> = (0..5).map(|i| Reply::bulk(i.to_string())).collect();
    assert_eq!(c.read_replies(5).await.unwrap(), want);
    godwit.shutdown().await;
}
