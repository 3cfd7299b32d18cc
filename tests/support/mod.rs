//! e2e test support: real `redis-server` processes on free ports with temp dirs (killed on
//! drop), a real Redis Cluster of N masters with a small slot-aware client, a raw RESP client
//! that sends exact bytes and reads exact replies, the in-process proxy fixture, an admin API
//! client, and the real `godwit` binary as a child process. No fixed ports, no shared static
//! servers.

pub mod admin;
pub mod binary;
pub mod cluster_client;
pub mod migration;
pub mod ports;
pub mod process;
pub mod redis_cluster;
pub mod redis_server;
pub mod reply;
pub mod resp_client;

pub mod godwit;

pub use admin::{auth_toml, sha256_hex, AdminClient, ApiResponse, ApiToken, CurlRequest};
pub use binary::godwit_bin;
pub use cluster_client::{key_slot, ClusterClient};
pub use godwit::{proxied, GodwitFixture, GodwitFixtureBuilder};
pub use process::GodwitProcess;
pub use redis_cluster::RedisCluster;
pub use redis_server::{RedisServer, RedisServerBuilder};
pub use reply::Reply;
pub use resp_client::RespClient;

/// Default time a fixture waits for a reply or for a server to come up before failing the test.
pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
