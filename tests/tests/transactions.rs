//! MULTI/EXEC/DISCARD/WATCH through the proxy: a transaction runs on the client's own backend
//! connection, isolated from other clients' traffic.

use godwit_tests::{proxied, Reply};

fn queued() -> Reply {
    Reply::simple("QUEUED")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_exec_runs_queued_commands() {
    let (_redis, godwit) = proxied().await.unwrap();
    let mut c = godwit.raw().await.unwrap();
    let mut other = godwit.raw().await.unwrap();
    c.ok(&["MULTI"]).await.unwrap();
    assert_eq!(c.cmd(&["SET", "a", "1"]).await.unwrap(), queued());
    assert_eq!(c.cmd(&["INCR", "a"]).await.unwrap(), queued());
    // another client's commands run now and are not queued into c's transaction
    assert_eq!(other.cmd(&["GET", "a"]).await.unwrap(), Reply::Nil);
    other.ok(&["SET", "b", "x"]).await.unwrap();
    assert_eq!(c.cmd(&["GET", "a"]).await.unwrap(), queued());
    assert_eq!(
        c.cmd(&["EXEC"]).await.unwrap(),
        Reply::Array(vec![Reply::ok(), Reply::Integer(2), Reply::bulk("2")])
    );
    assert_eq!(other.cmd(&["GET", "a"]).await.unwrap(), Reply::bulk("2"));
    // the connection is back to normal after EXEC
    assert_eq!(c.cmd(&["GET", "b"]).await.unwrap(), Reply::bulk("x"));
    godwit.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_transaction() {
    let (_redis, godwit) = proxied().await.unwrap();
    let mut c = godwit.raw().await.unwrap();
    c.send_raw(
        b"*1\r\n$5\r\nMULTI\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n\
          *2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nEXEC\r\n*1\r\n$4\r\nPING\r\n",
    )
    .await
    .unwrap();
    assert_eq!(
        c.read_replies(5).await.unwrap(),
        vec![
            Reply::ok(),
            queued(),
            queued(),
            Reply::Array(vec![Reply::ok(), Reply::bulk("v")]),
            Reply::simple("PONG"),
        ]
    );
    godwit.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discard_drops_the_queue() {
    let (_redis, godwit) = proxied().await.unwrap();
    let mut c = godwit.raw().await.unwrap();
    c.ok(&["MULTI"]).await.unwrap();
    assert_eq!(c.cmd(&["SET", "d", "1"]).await.unwrap(), queued());
    c.ok(&["DISCARD"]).await.unwrap();
    assert_eq!(c.cmd(&["GET", "d"]).await.unwrap(), Reply::Nil);
    let r = c.cmd(&["EXEC"]).await.unwrap();
    assert!(
        r.error_text().unwrap().contains("EXEC without MULTI"),
        "{r:?}"
    );
    godwit.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_aborts_when_another_client_writes_the_key() {
    let (_redis, godwit) = proxied().await.unwrap();
    let mut c = godwit.raw().await.unwrap();
    let mut other = godwit.raw().await.unwrap();
    c.ok(&["SET", "w", "start"]).await.unwrap();
    c.ok(&["WATCH", "w"]).await.unwrap();
    assert_eq!(c.cmd(&["GET", "w"]).await.unwrap(), Reply::bulk("start"));
    other.ok(&["SET", "w", "theirs"]).await.unwrap();
    c.ok(&["MULTI"]).await.unwrap();
    assert_eq!(c.cmd(&["SET", "w", "mine"]).await.unwrap(), queued());
    assert_eq!(
        c.cmd(&["EXEC"]).await.unwrap(),
        Reply::Nil,
        "EXEC must abort"
    );
    assert_eq!(c.cmd(&["GET", "w"]).await.unwrap(), Reply::bulk("theirs"));

    // without interference the same transaction commits
    c.ok(&["WATCH", "w"]).await.unwrap();
    c.ok(&["MULTI"]).await.unwrap();
    assert_eq!(c.cmd(&["SET", "w", "mine"]).await.unwrap(), queued());
    assert_eq!(
        c.cmd(&["EXEC"]).await.unwrap(),
        Reply::Array(vec![Reply::ok()])
    );
    assert_eq!(other.cmd(&["GET", "w"]).await.unwrap(), Reply::bulk("mine"));

    // UNWATCH forgets the watch
    c.ok(&["WATCH", "w"]).await.unwrap();
    other.ok(&["SET", "w", "again"]).await.unwrap();
    c.ok(&["UNWATCH"]).await.unwrap();
    c.ok(&["MULTI"]).await.unwrap();
    assert_eq!(c.cmd(&["SET", "w", "last"]).await.unwrap(), queued());
    assert_eq!(
        c.cmd(&["EXEC"]).await.unwrap(),
        Reply::Array(vec![Reply::ok()])
    );
    godwit.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queueing_error_aborts_exec() {
    let (_redis, godwit) = proxied().await.unwrap();
    let mut c = godwit.raw().await.unwrap();
    c.ok(&["MULTI"]).await.unwrap();
    assert_eq!(c.cmd(&["SET", "e", "1"]).await.unwrap(), queued());
    let r = c.cmd(&["SET", "only-key"]).await.unwrap();
    assert!(r.is_error(), "{r:?}");
    let r = c.cmd(&["EXEC"]).await.unwrap();
    assert!(r.error_text().unwrap().starts_with("EXECABORT"), "{r:?}");
    assert_eq!(c.cmd(&["GET", "e"]).await.unwrap(), Reply::Nil);
    godwit.shutdown().await;
}
