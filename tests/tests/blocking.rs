//! Blocking commands through the proxy: they wait on the client's own backend connection, so
//! they neither block other clients nor time out early.

use std::time::{Duration, Instant};

use godwit_tests::{proxied, Reply};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blpop_waits_until_another_client_pushes() {
    let (_redis, godwit) = proxied().await.unwrap();
    let mut waiter = godwit.raw().await.unwrap();
    let mut pusher = godwit.raw().await.unwrap();
    waiter.send(&["BLPOP", "queue", "0"]).await.unwrap();
    assert_eq!(
        waiter
            .try_read_reply(Duration::from_millis(300))
            .await
            .unwrap(),
        None
    );
    // other clients are served while it waits
    for i in 0..10 {
        let r = pusher.cmd(&["ECHO", &i.to_string()]).await.unwrap();
        assert_eq!(r, Reply::bulk(i.to_string()));
    }
    assert_eq!(
        pusher.cmd(&["LPUSH", "queue", "job"]).await.unwrap(),
        Reply::Integer(1)
    );
    assert_eq!(
        waiter.read_reply().await.unwrap(),
        Reply::Array(vec![Reply::bulk("queue"), Reply::bulk("job")])
    );
    // the waiter's connection is usable afterwards
    assert_eq!(
        waiter.cmd(&["LLEN", "queue"]).await.unwrap(),
        Reply::Integer(0)
    );
    godwit.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blpop_with_timeout_1_returns_nil_after_about_a_second() {
    let (_redis, godwit) = proxied().await.unwrap();
    let mut c = godwit.raw().await.unwrap();
    let started = Instant::now();
    assert_eq!(c.cmd(&["BLPOP", "empty", "1"]).await.unwrap(), Reply::Nil);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "returned after {took:?}"
    );
    assert!(took < Duration::from_secs(5), "returned after {took:?}");
    assert_eq!(c.cmd(&["PING"]).await.unwrap(), Reply::simple("PONG"));
    godwit.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_blocked_clients_do_not_starve_others() {
    let (_redis, godwit) = proxied().await.unwrap();
    let mut waiters = Vec::new();
    for i in 0..20 {
        let mut w = godwit.raw().await.unwrap();
        w.send(&["BRPOP", &format!("q{i}"), "0"]).await.unwrap();
        waiters.push(w);
    }
    let mut other = godwit.raw().await.unwrap();
    let started = Instant::now();
    other.ok(&["SET", "k", "v"]).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(1));
    for i in 0..20 {
        other.cmd(&["RPUSH", &format!("q{i}"), "x"]).await.unwrap();
    }
    for (i, w) in waiters.iter_mut().enumerate() {
        assert_eq!(
            w.read_reply().await.unwrap(),
            Reply::Array(vec![Reply::bulk(format!("q{i}")), Reply::bulk("x")])
        );
    }
    godwit.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blmove_bzpopmin_xread_block_and_wait() {
    let (_redis, godwit) = proxied().await.unwrap();
    let mut w = godwit.raw().await.unwrap();
    let mut p = godwit.raw().await.unwrap();

    w.send(&["BLMOVE", "src", "dst", "LEFT", "RIGHT", "0"])
        .await
        .unwrap();
    assert_eq!(
        w.try_read_reply(Duration::from_millis(200)).await.unwrap(),
        None
    );
    p.cmd(&["RPUSH", "src", "a"]).await.unwrap();
    assert_eq!(w.read_reply().await.unwrap(), Reply::bulk("a"));

    w.send(&["BZPOPMIN", "zq", "0"]).await.unwrap();
    assert_eq!(
        w.try_read_reply(Duration::from_millis(200)).await.unwrap(),
        None
    );
    p.cmd(&["ZADD", "zq", "5", "m"]).await.unwrap();
    assert_eq!(
        w.read_reply().await.unwrap(),
        Reply::Array(vec![Reply::bulk("zq"), Reply::bulk("m"), Reply::bulk("5")])
    );

    w.send(&["XREAD", "BLOCK", "0", "STREAMS", "stream", "$"])
        .await
        .unwrap();
    assert_eq!(
        w.try_read_reply(Duration::from_millis(200)).await.unwrap(),
        None
    );
    p.cmd(&["XADD", "stream", "1-1", "f", "v"]).await.unwrap();
    let r = w.read_reply().await.unwrap();
    assert_eq!(
        r,
        Reply::Array(vec![Reply::Array(vec![
            Reply::bulk("stream"),
            Reply::Array(vec![Reply::Array(vec![
                Reply::bulk("1-1"),
                Reply::Array(vec![Reply::bulk("f"), Reply::bulk("v")]),
            ])]),
        ])])
    );

    // WAIT with no replicas returns 0 after its own timeout
    let started = Instant::now();
    assert_eq!(
        w.cmd(&["WAIT", "1", "300"]).await.unwrap(),
        Reply::Integer(0)
    );
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    godwit.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_block_is_not_cut_short_by_the_proxy() {
    let (_redis, godwit) = proxied().await.unwrap();
    let mut w = godwit.raw().await.unwrap();
    w.set_timeout(Duration::from_secs(20));
    w.send(&["BLPOP", "slow", "0"]).await.unwrap();
    assert_eq!(
        w.try_read_reply(Duration::from_secs(6)).await.unwrap(),
        None
    );
    let mut p = godwit.raw().await.unwrap();
    p.cmd(&["LPUSH", "slow", "finally"]).await.unwrap();
    assert_eq!(
        w.read_reply().await.unwrap(),
        Reply::Array(vec![Reply::bulk("slow"), Reply::bulk("finally")])
    );
    godwit.shutdown().await;
}
