//! Limits and backpressure: max_frame_bytes, max_clients, max_pipeline.

use std::time::{Duration, Instant};

use godwit_tests::reply::encode_command;
use godwit_tests::{GodwitFixture, RedisServer, Reply, RespClient};

async fn with_limit(name: &str, value: &str) -> (RedisServer, GodwitFixture) {
    let redis = RedisServer::start().unwrap();
    let godwit = GodwitFixture::builder()
        .endpoint("old", &redis.url())
        .interlay("main", "old")
        .limit(name, value)
        .start()
        .await
        .unwrap();
    (redis, godwit)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_over_max_frame_bytes_is_refused_and_closed() {
    let (_redis, godwit) = with_limit("max_frame_bytes", "1048576").await;
    let mut c = godwit.raw().await.unwrap();
    let fits = vec![b'a'; 512 * 1024];
    c.ok(&[b"SET".as_slice(), b"fits", &fits]).await.unwrap();
    let too_big = vec![b'b'; 2 * 1024 * 1024];
    c.send(&[b"SET".as_slice(), b"big", &too_big])
        .await
        .unwrap();
    let r = c.read_reply().await.unwrap();
    let text = r.error_text().unwrap_or_else(|| panic!("{r:?}"));
    assert!(text.starts_with("ERR Protocol error"), "{text}");
    c.expect_closed(Duration::from_secs(5)).await.unwrap();
    let mut other = godwit.raw().await.unwrap();
    assert_eq!(
        other.cmd(&["EXISTS", "big"]).await.unwrap(),
        Reply::Integer(0)
    );
    assert_eq!(
        other.cmd(&["STRLEN", "fits"]).await.unwrap(),
        Reply::Integer(512 * 1024)
    );
    godwit.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_clients_refuses_the_extra_connection() {
    let (_redis, godwit) = with_limit("max_clients", "2").await;
    let mut a = godwit.raw().await.unwrap();
    let mut b = godwit.raw().await.unwrap();
    assert_eq!(a.cmd(&["PING"]).await.unwrap(), Reply::simple("PONG"));
    assert_eq!(b.cmd(&["PING"]).await.unwrap(), Reply::simple("PONG"));
    let mut c = godwit.raw().await.unwrap();
    let r = c.read_reply().await.unwrap();
    assert!(
        r.error_text().unwrap().contains("max number of clients"),
        "{r:?}"
    );
    c.expect_closed(Duration::from_secs(5)).await.unwrap();

    // a slot frees when a client leaves
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut d = RespClient::connect(godwit.addr()).await.unwrap();
        d.send(&["PING"]).await.unwrap();
        match d.read_reply().await.unwrap() {
            r if r == Reply::simple("PONG") => break,
            r => assert!(Instant::now() < deadline, "slot never freed: {r:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(b.cmd(&["PING"]).await.unwrap(), Reply::simple("PONG"));
    godwit.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_longer_than_max_pipeline_is_served_in_order() {
    let (_redis, godwit) = with_limit("max_pipeline", "4").await;
    let mut c = godwit.raw().await.unwrap();
    let mut bytes = Vec::new();
    for i in 0..1000 {
        bytes.extend(encode_command(&["ECHO", &i.to_string()]));
    }
    c.send_raw(&bytes).await.unwrap();
    for i in 0..1000 {
        assert_eq!(c.read_reply().await.unwrap(), Reply::bulk(i.to_string()));
    }
    godwit.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_read_does_not_stall_others() {
    let (_redis, godwit) = proxied_with_value().await;
    // 200 GETs of a 256 KiB value = 50 MiB of replies nobody reads
    let mut lazy = godwit.raw().await.unwrap();
    let mut bytes = Vec::new();
    for _ in 0..200 {
        bytes.extend(encode_command(&["GET", "v"]));
    }
    lazy.send_raw(&bytes).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut other = godwit.raw().await.unwrap();
    let started = Instant::now();
    for i in 0..50 {
        assert_eq!(
            other.cmd(&["ECHO", &i.to_string()]).await.unwrap(),
            Reply::bulk(i.to_string())
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // the lazy client still gets all its replies, in order, when it reads
    lazy.set_timeout(Duration::from_secs(30));
    for _ in 0..200 {
        let r = lazy.read_reply().await.unwrap();
        assert_eq!(r.as_bytes().map(<[u8]>::len), Some(256 * 1024));
    }
    godwit.shutdown().await;
}

async fn proxied_with_value() -> (RedisServer, GodwitFixture) {
    let (redis, godwit) = godwit_tests::proxied().await.unwrap();
    let mut c = godwit.raw().await.unwrap();
    c.ok(&[b"SET".as_slice(), b"v", &vec![b'v'; 256 * 1024]])
        .await
        .unwrap();
    (redis, godwit)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interlay_max_clients_caps_that_interlay_only() {
    let redis = RedisServer::start().unwrap();
    let godwit = GodwitFixture::builder()
        .endpoint("old", &redis.url())
        .interlay("main", "old")
        .extra_toml("[[interlays]]\nid = \"capped\"\nendpoint = \"old\"\nlisten = \"127.0.0.1:0\"\nmax_clients = 1\n")
        .start()
        .await
        .unwrap();
    let capped = godwit.interlay_addr("capped");
    let mut a = RespClient::connect(capped).await.unwrap();
    assert_eq!(a.cmd(&["PING"]).await.unwrap(), Reply::simple("PONG"));
    let mut b = RespClient::connect(capped).await.unwrap();
    let r = b.read_reply().await.unwrap();
    assert!(
        r.error_text().unwrap().contains("max number of clients"),
        "{r:?}"
    );
    // the other interlay is not affected
    let mut others = Vec::new();
    for _ in 0..3 {
        let mut c = godwit.raw().await.unwrap();
        assert_eq!(c.cmd(&["PING"]).await.unwrap(), Reply::simple("PONG"));
        others.push(c);
    }
    assert_eq!(a.cmd(&["PING"]).await.unwrap(), Reply::simple("PONG"));
    godwit.shutdown().await;
}
