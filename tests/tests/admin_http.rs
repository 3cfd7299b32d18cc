//! The admin listener's health and metrics endpoints, as a load balancer and Prometheus see them.

use godwit_tests::proxied;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_and_metrics() {
    let (_redis, godwit) = proxied().await.unwrap();
    let mut c = godwit.raw().await.unwrap();
    c.ok(&["SET", "k", "v"]).await.unwrap();
    let base = format!("http://{}", godwit.admin_addr());
    let http = reqwest::Client::new();

    let health = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert!(health.status().is_success(), "{}", health.status());

    let metrics = http.get(format!("{base}/metrics")).send().await.unwrap();
    assert!(metrics.status().is_success(), "{}", metrics.status());
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains("# TYPE godwit_"),
        "no godwit metrics in:\n{text}"
    );
    godwit.shutdown().await;
}
