//! MCP over streamable HTTP at `/api/v1/mcp/migrations`, spoken by a plain JSON-RPC client:
//! initialize (session id), tools/list, define_migration + run_migration + migration_status on
//! a real interlay, RBAC (a read-only token lists but cannot run), protocol errors.

use godwit_tests::{auth_toml, ApiToken, GodwitFixture, RedisServer};
use serde_json::{json, Value};

type Result = anyhow::Result<()>;

fn admin_token() -> ApiToken {
    ApiToken::new("ci", "default", "admin")
}
fn reader_token() -> ApiToken {
    ApiToken::new("dashboard", "default", "read")
}

/// A minimal MCP client: JSON-RPC over HTTP POST with the transport's headers.
struct Mcp {
    url: String,
    token: String,
    http: reqwest::Client,
    session: Option<String>,
    next_id: u64,
}

impl Mcp {
    fn new(addr: std::net::SocketAddr, token: &str) -> Mcp {
        Mcp {
            url: format!("http://{addr}/api/v1/mcp/migrations"),
            token: token.to_string(),
            http: reqwest::Client::new(),
            session: None,
            next_id: 0,
        }
    }

    async fn post(&self, body: &Value) -> anyhow::Result<(u16, reqwest::header::HeaderMap, Value)> {
        let mut req = self
            .http
            .post(&self.url)
            .bearer_auth(&self.token)
            .header("Accept", "application/json, text/event-stream")
            .json(body);
        if let Some(s) = &self.session {
            req = req.header("Mcp-Session-Id", s);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await?;
        Ok((
            status,
            headers,
            serde_json::from_str(&text).unwrap_or(Value::Null),
        ))
    }

    async fn request(&mut self, method: &str, params: Value) -> anyhow::Result<Value> {
        self.next_id += 1;
        let (status, _, body) = self
            .post(
                &json!({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params}),
            )
            .await?;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["jsonrpc"], "2.0");
        assert_eq!(body["id"], self.next_id);
        Ok(body)
    }

    async fn initialize(&mut self) -> anyhow::Result<Value> {
        let (status, headers, body) = self
            .post(
                &json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": "2025-03-26", "capabilities": {},
                "clientInfo": {"name": "godwit-e2e", "version": "0"}}}),
            )
            .await?;
        assert_eq!(status, 200, "{body}");
        let sid = headers
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .expect("Mcp-Session-Id on initialize");
        self.session = Some(sid.to_string());
        let (status, _, _) = self
            .post(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await?;
        assert_eq!(status, 202);
        Ok(body["result"].clone())
    }

    /// `tools/call`: the tool result (`content`, `isError`, ...).
    async fn call(&mut self, name: &str, args: Value) -> anyhow::Result<Value> {
        let body = self
            .request("tools/call", json!({"name": name, "arguments": args}))
            .await?;
        Ok(body["result"].clone())
    }
}

/// The JSON inside a tool result's text content.
fn content(result: &Value) -> Value {
    let text = result["content"][0]["text"].as_str().expect("text content");
    serde_json::from_str(text).expect("JSON text")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_client_defines_runs_and_reads_a_migration() -> Result {
    let old = RedisServer::start()?;
    let new = RedisServer::start()?;
    let auth = auth_toml(&[admin_token(), reader_token()], "", "");
    let godwit = GodwitFixture::builder()
        .endpoint("old_redis", &old.url())
        .endpoint("new_redis", &new.url())
        .interlay("cache", "old_redis")
        .extra_toml(&auth)
        .start()
        .await?;

    let mut admin = Mcp::new(godwit.admin_addr(), &admin_token().token);
    let init = admin.initialize().await?;
    assert_eq!(init["protocolVersion"], "2025-03-26");
    assert!(init["capabilities"]["tools"].is_object());
    assert!(init["serverInfo"]["name"].is_string());

    let tools = admin.request("tools/list", json!({})).await?;
    let names: Vec<&str> = tools["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for n in [
        "list_migrations",
        "get_migration",
        "define_migration",
        "run_migration",
        "set_traffic",
        "migration_status",
        "rollback_migration",
    ] {
        assert!(names.contains(&n), "{n} in {names:?}");
    }

    // define: create + attach the interlay in one call (idempotent by id)
    let def = json!({"id": "mcp_m", "description": "via MCP",
        "strategy": {"type": "canary", "read_percentage": 0.1,
                     "write_mode": {"mode": "dual_write", "policy": "old_authoritative"}},
        "interlays": [{"interlay_id": "cache", "endpoint": "new_redis"}]});
    let r = admin.call("define_migration", def.clone()).await?;
    assert_eq!(r["isError"], false, "{r}");
    let m = content(&r);
    assert_eq!(
        (m["id"].as_str(), m["status"].as_str()),
        (Some("mcp_m"), Some("ready"))
    );
    assert_eq!(m["created"], true);
    let r = admin.call("define_migration", def).await?;
    assert_eq!(content(&r)["created"], false, "{r}");

    // a read-only token lists, but cannot run (or define, or read one)
    let mut reader = Mcp::new(godwit.admin_addr(), &reader_token().token);
    reader.initialize().await?;
    let r = reader.call("list_migrations", json!({})).await?;
    assert_eq!(r["isError"], false, "{r}");
    assert_eq!(content(&r)["migrations"][0]["id"], "mcp_m");
    for (tool, args) in [
        (
            "run_migration",
            json!({"migration_id": "mcp_m", "mode": "migrate"}),
        ),
        ("define_migration", json!({"id": "other"})),
        ("get_migration", json!({"migration_id": "mcp_m"})),
    ] {
        let r = reader.call(tool, args).await?;
        assert_eq!(r["isError"], true, "{tool}: {r}");
        assert_eq!(
            content(&r),
            json!({"error": "Forbidden", "message": "Insufficient permissions to perform this action"})
        );
    }

    // run: test, then migrate; read the status
    let r = admin
        .call(
            "run_migration",
            json!({"migration_id": "mcp_m", "mode": "test"}),
        )
        .await?;
    let t = content(&r);
    assert_eq!(
        (t["valid"].as_bool(), t["interlays_tested"].as_u64()),
        (Some(true), Some(1)),
        "{t}"
    );
    let r = admin
        .call(
            "run_migration",
            json!({"migration_id": "mcp_m", "mode": "migrate"}),
        )
        .await?;
    assert_eq!(content(&r)["message"], "migration commit completed", "{r}");
    let r = admin
        .call("migration_status", json!({"migration_id": "mcp_m"}))
        .await?;
    let st = content(&r);
    assert_eq!(st["status"], "running", "{st}");
    assert_eq!(r["structuredContent"]["status"], "running");
    let r = admin
        .call(
            "set_traffic",
            json!({"migration_id": "mcp_m", "read_percentage": 0.3}),
        )
        .await?;
    assert_eq!(r["isError"], false, "{r}");
    let r = admin
        .call("get_migration", json!({"migration_id": "mcp_m"}))
        .await?;
    assert_eq!(content(&r)["strategy"]["read_percentage"], 0.3);
    // a failing operation is a tool error with the REST envelope
    let r = admin
        .call(
            "run_migration",
            json!({"migration_id": "nope", "mode": "test"}),
        )
        .await?;
    assert_eq!(r["isError"], true);
    assert_eq!(
        content(&r),
        json!({"error": "Not found", "message": "Migration 'nope' does not exist"})
    );
    let r = admin
        .call(
            "rollback_migration",
            json!({"migration_id": "mcp_m", "reason": "done"}),
        )
        .await?;
    assert_eq!(r["isError"], false, "{r}");
    let r = admin
        .call("list_migrations", json!({"status": "rolled_back"}))
        .await?;
    assert_eq!(content(&r)["migrations"][0]["id"], "mcp_m");

    // protocol errors
    let b = admin
        .request("tools/call", json!({"name": "nope", "arguments": {}}))
        .await?;
    assert_eq!(b["error"]["code"], -32602);
    let b = admin.request("resources/list", json!({})).await?;
    assert_eq!(b["error"]["code"], -32601);
    let b = admin
        .request(
            "tools/call",
            json!({"name": "run_migration", "arguments": {"migration_id": "mcp_m"}}),
        )
        .await?;
    assert_eq!(b["error"]["code"], -32602, "{b}");
    // no token: 401; GET (no server stream): 405
    let r = reqwest::Client::new()
        .post(&admin.url)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 401);
    let r = reqwest::Client::new()
        .get(&admin.url)
        .bearer_auth(&admin.token)
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 405);
    godwit.shutdown().await;
    Ok(())
}
