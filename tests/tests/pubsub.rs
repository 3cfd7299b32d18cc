//! Pub/sub through the proxy: SUBSCRIBE/PSUBSCRIBE on a proxied connection, messages published
//! through the proxy and straight to Redis arrive, and UNSUBSCRIBE returns to normal mode.

use std::time::Duration;

use godwit_tests::{proxied, Reply};

fn arr(items: &[&str]) -> Reply {
    Reply::Array(items.iter().map(Reply::bulk).collect())
}

fn sub(kind: &str, channel: &str, n: i64) -> Reply {
    Reply::Array(vec![
        Reply::bulk(kind),
        Reply::bulk(channel),
        Reply::Integer(n),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_receives_messages_published_through_proxy_and_directly() {
    let (redis, godwit) = proxied().await.unwrap();
    let mut subscriber = godwit.raw().await.unwrap();
    let mut publisher = godwit.raw().await.unwrap();
    let mut direct = redis.raw().await.unwrap();

    subscriber
        .send(&["SUBSCRIBE", "news", "sport"])
        .await
        .unwrap();
    assert_eq!(
        subscriber.read_replies(2).await.unwrap(),
        vec![sub("subscribe", "news", 1), sub("subscribe", "sport", 2)]
    );
    assert_eq!(
        publisher.cmd(&["PUBLISH", "news", "hello"]).await.unwrap(),
        Reply::Integer(1)
    );
    assert_eq!(
        subscriber.read_reply().await.unwrap(),
        arr(&["message", "news", "hello"])
    );
    assert_eq!(
        direct.cmd(&["PUBLISH", "sport", "goal"]).await.unwrap(),
        Reply::Integer(1)
    );
    assert_eq!(
        subscriber.read_reply().await.unwrap(),
        arr(&["message", "sport", "goal"])
    );
    assert_eq!(
        publisher.cmd(&["PUBLISH", "other", "x"]).await.unwrap(),
        Reply::Integer(0)
    );

    // PING in subscribed mode (RESP2) answers ["pong", ""]
    subscriber.send(&["PING"]).await.unwrap();
    assert_eq!(subscriber.read_reply().await.unwrap(), arr(&["pong", ""]));

    // UNSUBSCRIBE without channels: one reply per channel, in Redis's order, counting down
    subscriber.send(&["UNSUBSCRIBE"]).await.unwrap();
    let got = subscriber.read_replies(2).await.unwrap();
    let mut channels: Vec<&str> = got
        .iter()
        .map(|r| r.as_array().unwrap()[1].as_str().unwrap())
        .collect();
    channels.sort();
    assert_eq!(channels, ["news", "sport"]);
    for (r, n) in got.iter().zip([1, 0]) {
        let a = r.as_array().unwrap();
        assert_eq!(
            (&a[0], &a[2]),
            (&Reply::bulk("unsubscribe"), &Reply::Integer(n))
        );
    }
    // back in normal mode
    subscriber.ok(&["SET", "after", "1"]).await.unwrap();
    assert_eq!(
        subscriber.cmd(&["GET", "after"]).await.unwrap(),
        Reply::bulk("1")
    );
    assert_eq!(
        publisher.cmd(&["PUBLISH", "news", "late"]).await.unwrap(),
        Reply::Integer(0)
    );
    godwit.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psubscribe_receives_pattern_messages() {
    let (_redis, godwit) = proxied().await.unwrap();
    let mut subscriber = godwit.raw().await.unwrap();
    let mut publisher = godwit.raw().await.unwrap();
    subscriber.send(&["PSUBSCRIBE", "news.*"]).await.unwrap();
    assert_eq!(
        subscriber.read_reply().await.unwrap(),
        sub("psubscribe", "news.*", 1)
    );
    assert_eq!(
        publisher
            .cmd(&["PUBLISH", "news.tech", "rust"])
            .await
            .unwrap(),
        Reply::Integer(1)
    );
    assert_eq!(
        subscriber.read_reply().await.unwrap(),
        arr(&["pmessage", "news.*", "news.tech", "rust"])
    );
    assert_eq!(
        publisher
            .cmd(&["PUBLISH", "weather", "rain"])
            .await
            .unwrap(),
        Reply::Integer(0)
    );
    assert_eq!(
        subscriber
            .try_read_reply(Duration::from_millis(200))
            .await
            .unwrap(),
        None
    );
    godwit.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_subscribers_each_get_every_message() {
    let (_redis, godwit) = proxied().await.unwrap();
    let mut subs = Vec::new();
    for _ in 0..10 {
        let mut s = godwit.raw().await.unwrap();
        s.send(&["SUBSCRIBE", "fan"]).await.unwrap();
        assert_eq!(s.read_reply().await.unwrap(), sub("subscribe", "fan", 1));
        subs.push(s);
    }
    let mut publisher = godwit.raw().await.unwrap();
    for i in 0..20 {
        let n = publisher
            .cmd(&["PUBLISH", "fan", &i.to_string()])
            .await
            .unwrap();
        assert_eq!(n, Reply::Integer(10));
    }
    for s in &mut subs {
        for i in 0..20 {
            assert_eq!(
                s.read_reply().await.unwrap(),
                arr(&["message", "fan", &i.to_string()])
            );
        }
    }
    godwit.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssubscribe_receives_sharded_messages() {
    let (_redis, godwit) = proxied().await.unwrap();
    let mut subscriber = godwit.raw().await.unwrap();
    let mut publisher = godwit.raw().await.unwrap();
    subscriber.send(&["SSUBSCRIBE", "shard"]).await.unwrap();
    assert_eq!(
        subscriber.read_reply().await.unwrap(),
        sub("ssubscribe", "shard", 1)
    );
    assert_eq!(
        publisher.cmd(&["SPUBLISH", "shard", "s1"]).await.unwrap(),
        Reply::Integer(1)
    );
    assert_eq!(
        subscriber.read_reply().await.unwrap(),
        arr(&["smessage", "shard", "s1"])
    );
    godwit.shutdown().await;
}
