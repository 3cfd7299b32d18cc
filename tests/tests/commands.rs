//! Scripting, functions and connection commands through the proxy: EVAL/EVALSHA/FCALL,
//! CLIENT SETNAME/GETNAME kept per client on shared backend connections, QUIT, RESET, ECHO.

use std::time::Duration;

use godwit_tests::{proxied, Reply};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eval_evalsha_and_fcall() {
    let (_redis, godwit) = proxied().await.unwrap();
    let mut c = godwit.raw().await.unwrap();
    let script = "redis.call('SET', KEYS[1], ARGV[1]); return redis.call('GET', KEYS[1])";
    assert_eq!(
        c.cmd(&["EVAL", script, "1", "lua:k", "from-lua"])
            .await
            .unwrap(),
        Reply::bulk("from-lua")
    );
    let sha = c
        .cmd(&["SCRIPT", "LOAD", "return ARGV[1] .. '!'"])
        .await
        .unwrap();
    let sha = sha.as_str().unwrap().to_owned();
    assert_eq!(
        c.cmd(&["EVALSHA", &sha, "0", "hi"]).await.unwrap(),
        Reply::bulk("hi!")
    );
    let r = c.cmd(&["EVALSHA", &"0".repeat(40), "0"]).await.unwrap();
    assert!(r.error_text().unwrap().starts_with("NOSCRIPT"), "{r:?}");
    // EVAL_RO and a script error
    assert_eq!(
        c.cmd(&["EVAL_RO", "return redis.call('GET', KEYS[1])", "1", "lua:k"])
            .await
            .unwrap(),
        Reply::bulk("from-lua")
    );
    let r = c
        .cmd(&["EVAL", "return redis.call('NOPE')", "0"])
        .await
        .unwrap();
    assert!(r.is_error(), "{r:?}");

    let lib = "#!lua name=godwitlib\n\
               redis.register_function('double', function(keys, args) return args[1] * 2 end)";
    assert_eq!(
        c.cmd(&["FUNCTION", "LOAD", lib]).await.unwrap(),
        Reply::bulk("godwitlib")
    );
    assert_eq!(
        c.cmd(&["FCALL", "double", "0", "21"]).await.unwrap(),
        Reply::Integer(42)
    );
    // FCALL_RO of a function without the no-writes flag: Redis refuses it; one reply either way
    let r = c.cmd(&["FCALL_RO", "double", "0", "2"]).await.unwrap();
    assert!(r.is_error(), "{r:?}");
    assert_eq!(c.cmd(&["PING"]).await.unwrap(), Reply::simple("PONG"));
    godwit.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_names_are_per_client() {
    let (_redis, godwit) = proxied().await.unwrap();
    let mut a = godwit.raw().await.unwrap();
    let mut b = godwit.raw().await.unwrap();
    a.ok(&["CLIENT", "SETNAME", "alpha"]).await.unwrap();
    assert_eq!(
        a.cmd(&["CLIENT", "GETNAME"]).await.unwrap(),
        Reply::bulk("alpha")
    );
    assert_eq!(b.cmd(&["CLIENT", "GETNAME"]).await.unwrap(), Reply::Nil);
    b.ok(&["CLIENT", "SETNAME", "beta"]).await.unwrap();
    assert_eq!(
        a.cmd(&["CLIENT", "GETNAME"]).await.unwrap(),
        Reply::bulk("alpha")
    );
    assert_eq!(
        b.cmd(&["CLIENT", "GETNAME"]).await.unwrap(),
        Reply::bulk("beta")
    );
    let id = a.cmd(&["CLIENT", "ID"]).await.unwrap();
    assert!(id.as_int().is_some(), "{id:?}");
    godwit.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_echo_quit() {
    let (_redis, godwit) = proxied().await.unwrap();
    let mut c = godwit.raw().await.unwrap();
    assert_eq!(c.cmd(&["PING"]).await.unwrap(), Reply::simple("PONG"));
    assert_eq!(c.cmd(&["PING", "hey"]).await.unwrap(), Reply::bulk("hey"));
    assert_eq!(c.cmd(&["ECHO", ""]).await.unwrap(), Reply::bulk(""));
    let r = c.cmd(&["ECHO"]).await.unwrap();
    assert!(
        r.error_text()
            .unwrap()
            .contains("wrong number of arguments"),
        "{r:?}"
    );
    c.send(&["SET", "before-quit", "1"]).await.unwrap();
    c.send(&["QUIT"]).await.unwrap();
    assert_eq!(
        c.read_replies(2).await.unwrap(),
        vec![Reply::ok(), Reply::ok()]
    );
    c.expect_closed(Duration::from_secs(5)).await.unwrap();
    let mut d = godwit.raw().await.unwrap();
    assert_eq!(
        d.cmd(&["GET", "before-quit"]).await.unwrap(),
        Reply::bulk("1")
    );
    godwit.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_restores_a_fresh_connection() {
    let (_redis, godwit) = proxied().await.unwrap();
    let mut c = godwit.raw().await.unwrap();
    c.ok(&["SET", "k", "db0"]).await.unwrap();
    c.ok(&["SELECT", "2"]).await.unwrap();
    c.ok(&["SET", "k", "db2"]).await.unwrap();
    c.ok(&["CLIENT", "SETNAME", "named"]).await.unwrap();
    c.cmd(&["HELLO", "3"]).await.unwrap();
    c.ok(&["MULTI"]).await.unwrap();
    assert_eq!(c.cmd(&["GET", "k"]).await.unwrap(), Reply::simple("QUEUED"));
    assert_eq!(c.cmd(&["RESET"]).await.unwrap(), Reply::simple("RESET"));
    // db 0, RESP2, no name, no transaction
    assert_eq!(c.cmd(&["GET", "k"]).await.unwrap(), Reply::bulk("db0"));
    assert_eq!(c.cmd(&["GET", "missing"]).await.unwrap(), Reply::Nil);
    assert_eq!(c.cmd(&["CLIENT", "GETNAME"]).await.unwrap(), Reply::Nil);
    let r = c.cmd(&["EXEC"]).await.unwrap();
    assert!(
        r.error_text().unwrap().contains("EXEC without MULTI"),
        "{r:?}"
    );
    godwit.shutdown().await;
}
