//! RESP3 per client: HELLO 3 switches only that client; maps, nulls, doubles and push messages
//! arrive in RESP3 while other clients on the same backend keep RESP2.

use godwit_tests::{proxied, Reply};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_3_gives_map_replies_to_that_client_only() {
    let (_redis, godwit) = proxied().await.unwrap();
    let mut v3 = godwit.raw().await.unwrap();
    let mut v2 = godwit.raw().await.unwrap();

    let hello = v3.cmd(&["HELLO", "3"]).await.unwrap();
    assert!(matches!(hello, Reply::Map(_)), "{hello:?}");
    assert_eq!(hello.get("proto"), Some(&Reply::Integer(3)));
    assert_eq!(hello.get("server").and_then(Reply::as_str), Some("redis"));

    v2.cmd(&["HSET", "h", "f1", "a", "f2", "b"]).await.unwrap();
    let map = v3.cmd(&["HGETALL", "h"]).await.unwrap();
    let Reply::Map(mut pairs) = map else {
        panic!("HGETALL in RESP3: {map:?}")
    };
    pairs.sort_by_key(|(k, _)| k.as_str().unwrap_or_default().to_owned());
    assert_eq!(
        pairs,
        vec![
            (Reply::bulk("f1"), Reply::bulk("a")),
            (Reply::bulk("f2"), Reply::bulk("b"))
        ]
    );
    let flat = v2.cmd(&["HGETALL", "h"]).await.unwrap();
    assert!(
        matches!(&flat, Reply::Array(a) if a.len() == 4),
        "HGETALL in RESP2: {flat:?}"
    );

    assert_eq!(v3.cmd(&["GET", "missing"]).await.unwrap(), Reply::Null);
    assert_eq!(v2.cmd(&["GET", "missing"]).await.unwrap(), Reply::Nil);

    v2.cmd(&["ZADD", "z", "1.5", "m"]).await.unwrap();
    assert_eq!(
        v3.cmd(&["ZSCORE", "z", "m"]).await.unwrap(),
        Reply::Double("1.5".into())
    );
    assert_eq!(
        v2.cmd(&["ZSCORE", "z", "m"]).await.unwrap(),
        Reply::bulk("1.5")
    );

    // interleaved pipelines on both protocols stay correct
    for _ in 0..20 {
        v3.send(&["HGETALL", "h"]).await.unwrap();
        v2.send(&["HGETALL", "h"]).await.unwrap();
    }
    for _ in 0..20 {
        assert!(matches!(v3.read_reply().await.unwrap(), Reply::Map(_)));
        assert!(matches!(v2.read_reply().await.unwrap(), Reply::Array(_)));
    }

    // back to RESP2
    let hello = v3.cmd(&["HELLO", "2"]).await.unwrap();
    assert_eq!(hello.get("proto"), Some(&Reply::Integer(2)));
    assert_eq!(v3.cmd(&["GET", "missing"]).await.unwrap(), Reply::Nil);
    godwit.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resp3_pubsub_pushes_and_regular_commands_on_one_connection() {
    let (_redis, godwit) = proxied().await.unwrap();
    let mut c = godwit.raw().await.unwrap();
    let mut publisher = godwit.raw().await.unwrap();
    c.cmd(&["HELLO", "3"]).await.unwrap();
    c.send(&["SUBSCRIBE", "ch"]).await.unwrap();
    assert_eq!(
        c.read_reply().await.unwrap(),
        Reply::Push(vec![
            Reply::bulk("subscribe"),
            Reply::bulk("ch"),
            Reply::Integer(1)
        ])
    );
    assert_eq!(
        publisher.cmd(&["PUBLISH", "ch", "m1"]).await.unwrap(),
        Reply::Integer(1)
    );
    assert_eq!(
        c.read_reply().await.unwrap(),
        Reply::Push(vec![
            Reply::bulk("message"),
            Reply::bulk("ch"),
            Reply::bulk("m1")
        ])
    );
    // RESP3 allows ordinary commands while subscribed
    c.ok(&["SET", "k", "v"]).await.unwrap();
    assert_eq!(c.cmd(&["GET", "k"]).await.unwrap(), Reply::bulk("v"));
    godwit.shutdown().await;
}
