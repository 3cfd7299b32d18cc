//! Table-driven tests of the pure cluster helpers.

use super::*;

fn bulk(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
}

fn node(host: &str, port: i64, id: &str) -> Value {
    Value::Array(vec![bulk(host), Value::Int(port), bulk(id)])
}

fn range(first: i64, last: i64, master: Value, replicas: Vec<Value>) -> Value {
    let mut v = vec![Value::Int(first), Value::Int(last), master];
    v.extend(replicas);
    Value::Array(v)
}

#[test]
fn key_slots_follow_redis_cluster() {
    let cases: &[(&[u8], u16)] = &[
        (b"", 0),
        (b"foo", 12182),
        (b"123456789", 12739),
        (b"{user1000}.following", key_slot(b"user1000")),
        (b"{user1000}.followers", key_slot(b"user1000")),
        // an empty tag is no tag: the whole key is hashed
        (b"foo{}{bar}", 8363), // CLUSTER KEYSLOT
        (b"foo{{bar}}zap", key_slot(b"{bar")),
        (b"foo{bar}{zap}", key_slot(b"bar")),
        (b"{", godwit_router::keys::slot(b"{")),
    ];
    for (key, want) in cases {
        assert_eq!(key_slot(key), *want, "{}", String::from_utf8_lossy(key));
    }
    assert_eq!(
        key_slot(b"{user1000}.following"),
        key_slot(b"{user1000}.followers")
    );
    // the merge scratch key shares the slot of its key
    for key in [&b"user:1"[..], b"{u1}:a", b"{}x", b""] {
        let scratch = crate::io::merge::scratch_key(key);
        assert_eq!(key_slot(&scratch), key_slot(key), "{key:?}");
    }
}

#[test]
fn cluster_slots_reply_parses_to_a_sorted_master_map() {
    let reply = Value::Array(vec![
        range(
            10923,
            16383,
            node("10.0.0.3", 7002, "c"),
            vec![node("10.0.0.6", 7005, "f")],
        ),
        range(0, 5460, node("10.0.0.1", 7000, "a"), vec![]),
        range(5461, 10922, node("", 7001, "b"), vec![]),
    ]);
    let ranges = parse_cluster_slots(&reply, "seed.local").unwrap();
    assert_eq!(ranges[2], (5461, 10922, "seed.local:7001".to_string()));
    let map = SlotMap::new(&ranges);
    assert_eq!(
        map.masters,
        vec!["10.0.0.1:7000", "10.0.0.3:7002", "seed.local:7001"]
    );
    assert_eq!(map.covered(), SLOTS);
    for (slot, want) in [
        (0, "10.0.0.1:7000"),
        (5460, "10.0.0.1:7000"),
        (5461, "seed.local:7001"),
        (12182, "10.0.0.3:7002"),
        (16383, "10.0.0.3:7002"),
    ] {
        assert_eq!(map.master_of(slot), want, "slot {slot}");
    }
    // a partly covered map routes unassigned slots to the first master
    let partial = SlotMap::new(&[(100, 200, "b:1".to_string())]);
    assert_eq!(partial.covered(), 101);
    assert_eq!(partial.master_of(5), "b:1");

    for bad in [
        bulk("nope"),
        Value::Array(vec![bulk("x")]),
        Value::Array(vec![range(5, 2, node("h", 1, "a"), vec![])]),
        Value::Array(vec![range(0, 16384, node("h", 1, "a"), vec![])]),
        Value::Array(vec![Value::Array(vec![Value::Int(0), Value::Int(1)])]),
    ] {
        assert!(parse_cluster_slots(&bad, "s").is_err(), "{bad:?}");
    }
}

#[test]
fn redirects_parse() {
    let from = "127.0.0.1:7000";
    let cases: &[(&str, &str, Option<Redirect>)] = &[
        (
            "MOVED",
            "3999 127.0.0.1:6381",
            Some(Redirect::Moved("127.0.0.1:6381".into())),
        ),
        (
            "ASK",
            "3999 10.1.2.3:7001",
            Some(Redirect::Ask("10.1.2.3:7001".into())),
        ),
        // an unknown endpoint is given as ":port": the replying node's host
        (
            "MOVED",
            "12182 :7002",
            Some(Redirect::Moved("127.0.0.1:7002".into())),
        ),
        (
            "TRYAGAIN",
            "Multiple keys request during rehashing",
            Some(Redirect::Wait),
        ),
        ("CLUSTERDOWN", "The cluster is down", Some(Redirect::Wait)),
        ("MOVED", "3999", None),
        ("MOVED", "3999 host-without-port", None),
        ("BUSYKEY", "Target key name already exists.", None),
        ("ERR", "MOVED 1 a:1", None),
    ];
    for (code, details, want) in cases {
        assert_eq!(
            &parse_redirect(code, details, from),
            want,
            "{code} {details}"
        );
    }
}

#[test]
fn cursors_encode_node_and_position() {
    let cases: &[(usize, u64, Option<u64>)] = &[
        (0, 0, Some(0)),
        (1, 0, Some(1)),
        (2, 5, Some(5 << 10 | 2)),
        (1023, 1, Some(1 << 10 | 1023)),
        (0, (1 << 54) - 1, Some(((1u64 << 54) - 1) << 10)),
        (1024, 0, None),
        (0, 1 << 54, None),
    ];
    for &(node, cursor, want) in cases {
        assert_eq!(encode_cursor(node, cursor), want, "{node} {cursor}");
        if let Some(enc) = want {
            assert_eq!(decode_cursor(enc), (node, cursor));
        }
    }
}

#[test]
fn addresses_split_and_join() {
    for (host, port, addr) in [
        ("127.0.0.1", 7000, "127.0.0.1:7000"),
        ("node-a.svc", 6379, "node-a.svc:6379"),
        ("::1", 7001, "[::1]:7001"),
    ] {
        assert_eq!(join_addr(host, port), addr);
        assert_eq!(split_addr(addr), Some((host.to_string(), port)));
    }
    assert_eq!(split_addr("no-port"), None);
    assert_eq!(split_addr("h:99999"), None);
}
