//! AUTH answered by the proxy for an interlay with a password, and a password-protected
//! backend that clients never see.

use godwit_tests::{GodwitFixture, RedisServer, Reply};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interlay_password_noauth_wrongpass_ok() {
    let redis = RedisServer::start().unwrap();
    let godwit = GodwitFixture::builder()
        .endpoint("old", &redis.url())
        .interlay_with_password("main", "old", "s3cret")
        .start()
        .await
        .unwrap();
    let mut c = godwit.raw().await.unwrap();
    let r = c.cmd(&["GET", "k"]).await.unwrap();
    assert!(r.error_text().unwrap().starts_with("NOAUTH"), "{r:?}");
    let r = c.cmd(&["AUTH", "wrong"]).await.unwrap();
    assert!(r.error_text().unwrap().starts_with("WRONGPASS"), "{r:?}");
    let r = c.cmd(&["SET", "k", "v"]).await.unwrap();
    assert!(r.error_text().unwrap().starts_with("NOAUTH"), "{r:?}");
    c.ok(&["AUTH", "s3cret"]).await.unwrap();
    assert_eq!(c.cmd(&["GET", "k"]).await.unwrap(), Reply::Nil);
    c.ok(&["SET", "k", "v"]).await.unwrap();

    // the two-argument form with the default user, and HELLO ... AUTH
    let mut c2 = godwit.raw().await.unwrap();
    c2.ok(&["AUTH", "default", "s3cret"]).await.unwrap();
    assert_eq!(c2.cmd(&["GET", "k"]).await.unwrap(), Reply::bulk("v"));
    let mut c3 = godwit.raw().await.unwrap();
    let hello = c3
        .cmd(&["HELLO", "3", "AUTH", "default", "s3cret"])
        .await
        .unwrap();
    assert_eq!(hello.get("proto"), Some(&Reply::Integer(3)), "{hello:?}");
    assert_eq!(c3.cmd(&["GET", "k"]).await.unwrap(), Reply::bulk("v"));
    let mut c4 = godwit.raw().await.unwrap();
    let r = c4
        .cmd(&["HELLO", "3", "AUTH", "default", "nope"])
        .await
        .unwrap();
    assert!(r.error_text().unwrap().starts_with("WRONGPASS"), "{r:?}");

    // pipelined: the commands before AUTH are refused, the ones after run
    let mut c5 = godwit.raw().await.unwrap();
    c5.send_raw(b"GET k\r\nAUTH s3cret\r\nGET k\r\n")
        .await
        .unwrap();
    let got = c5.read_replies(3).await.unwrap();
    assert!(
        got[0].error_text().unwrap().starts_with("NOAUTH"),
        "{got:?}"
    );
    assert_eq!(&got[1..], &[Reply::ok(), Reply::bulk("v")]);
    godwit.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_password_comes_from_the_endpoint_url() {
    let redis = RedisServer::builder()
        .password("backend-pw")
        .start()
        .unwrap();
    let godwit = GodwitFixture::single(&redis).await.unwrap();
    let mut c = godwit.raw().await.unwrap();
    c.ok(&["SET", "k", "v"]).await.unwrap();
    assert_eq!(c.cmd(&["GET", "k"]).await.unwrap(), Reply::bulk("v"));
    // blocking and transactions use their own connections: they authenticate too
    assert_eq!(
        c.cmd(&["BLPOP", "nothing", "0.1"]).await.unwrap(),
        Reply::Nil
    );
    c.ok(&["MULTI"]).await.unwrap();
    assert_eq!(c.cmd(&["GET", "k"]).await.unwrap(), Reply::simple("QUEUED"));
    assert_eq!(
        c.cmd(&["EXEC"]).await.unwrap(),
        Reply::Array(vec![Reply::bulk("v")])
    );
    godwit.shutdown().await;
}
