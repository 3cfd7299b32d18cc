//! One complete RESP2/RESP3 reply as JSON, for templates and APIs run over HTTP.
//!
//! Strings (simple, bulk, verbatim) → JSON strings (bytes that are not UTF-8 →
//! `{"hex": "…"}`); integers and doubles → numbers (`inf`/`nan` and big numbers → strings);
//! arrays, sets and pushes → arrays; maps → objects (non-string keys as their JSON text);
//! booleans → booleans; nil and RESP3 null → `null`. A top-level error reply is reported
//! apart ([`Reply::Error`]); errors nested in an array become `{"error": "…"}`.

use serde_json::{Map, Number, Value};

/// A decoded reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// Any non-error reply.
    Value(Value),
    /// A top-level `-ERR …` (or RESP3 `!`) reply: its text.
    Error(String),
}

impl Reply {
    /// Whether the reply is an error.
    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }
}

const MAX_DEPTH: usize = 64;

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn line(&mut self) -> Result<&'a [u8], String> {
        let rest = &self.buf[self.pos..];
        let end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated reply")?;
        self.pos += end + 2;
        Ok(&rest[..end])
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.buf.len() < self.pos + n + 2 {
            return Err("truncated reply".into());
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n + 2;
        Ok(out)
    }
}

fn int(line: &[u8]) -> Result<i64, String> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| "invalid integer in reply".to_string())
}

fn text(b: &[u8]) -> Value {
    match std::str::from_utf8(b) {
        Ok(s) => Value::String(s.to_string()),
        Err(_) => {
            let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
            let mut m = Map::new();
            m.insert("hex".into(), Value::String(hex));
            Value::Object(m)
        }
    }
}

fn err_obj(b: &[u8]) -> Value {
    let mut m = Map::new();
    m.insert(
        "error".into(),
        Value::String(String::from_utf8_lossy(b).into_owned()),
    );
    Value::Object(m)
}

fn value(c: &mut Cursor<'_>, depth: usize) -> Result<Value, String> {
    if depth > MAX_DEPTH {
        return Err("reply nested too deeply".into());
    }
    let Some(&tag) = c.buf.get(c.pos) else {
        return Err("truncated reply".into());
    };
    c.pos += 1;
    let line = c.line()?;
    Ok(match tag {
        b'+' => text(line),
        b'-' => err_obj(line),
        b':' => Value::Number(int(line)?.into()),
        b'(' => Value::String(String::from_utf8_lossy(line).into_owned()),
        b',' => {
            let s = String::from_utf8_lossy(line);
            match s.parse::<f64>().ok().and_then(Number::from_f64) {
                Some(n) => Value::Number(n),
                None => Value::String(s.into_owned()),
            }
        }
        b'#' => Value::Bool(line == b"t"),
        b'_' => Value::Null,
        b'$' | b'=' | b'!' => {
            let n = int(line)?;
            if n < 0 {
                return Ok(Value::Null);
            }
            let data = c.take(n as usize)?;
            match tag {
                b'!' => err_obj(data),
                // verbatim strings carry a 3-letter format and ':' first
                b'=' if data.len() >= 4 && data[3] == b':' => text(&data[4..]),
                _ => text(data),
            }
        }
        b'*' | b'~' | b'>' => {
            let n = int(line)?;
            if n < 0 {
                return Ok(Value::Null);
            }
            let mut out = Vec::with_capacity((n as usize).min(1024));
            for _ in 0..n {
                out.push(value(c, depth + 1)?);
            }
            Value::Array(out)
        }
        b'%' => {
            let n = int(line)?;
            let mut out = Map::new();
            for _ in 0..n.max(0) {
                let k = match value(c, depth + 1)? {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                out.insert(k, value(c, depth + 1)?);
            }
            Value::Object(out)
        }
        b'|' => {
            // attributes annotate the next value: skip them
            let n = int(line)?;
            for _ in 0..n.max(0) * 2 {
                value(c, depth + 1)?;
            }
            return value(c, depth);
        }
        other => return Err(format!("unknown reply type byte 0x{other:02x}")),
    })
}

/// Decodes one complete reply.
pub fn decode(buf: &[u8]) -> Result<Reply, String> {
    match buf.first() {
        Some(b'-') => {
            let end = buf
                .windows(2)
                .position(|w| w == b"\r\n")
                .unwrap_or(buf.len());
            Ok(Reply::Error(
                String::from_utf8_lossy(&buf[1..end]).into_owned(),
            ))
        }
        Some(b'!') => {
            let mut c = Cursor { buf, pos: 0 };
            match value(&mut c, 0)? {
                Value::Object(mut m) => Ok(Reply::Error(match m.remove("error") {
                    Some(Value::String(s)) => s,
                    _ => String::new(),
                })),
                _ => Err("invalid error reply".into()),
            }
        }
        _ => {
            let mut c = Cursor { buf, pos: 0 };
            value(&mut c, 0).map(Reply::Value)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn v(b: &[u8]) -> Value {
        match decode(b).unwrap() {
            Reply::Value(v) => v,
            Reply::Error(e) => panic!("{e}"),
        }
    }

    #[test]
    fn resp2_and_resp3() {
        assert_eq!(v(b"+OK\r\n"), json!("OK"));
        assert_eq!(v(b":-42\r\n"), json!(-42));
        assert_eq!(v(b"$5\r\nhe\r\no\r\n"), json!("he\r\no"));
        assert_eq!(v(b"$-1\r\n"), Value::Null);
        assert_eq!(v(b"*-1\r\n"), Value::Null);
        assert_eq!(v(b"_\r\n"), Value::Null);
        assert_eq!(v(b"$2\r\n\xff\x00\r\n"), json!({"hex": "ff00"}));
        assert_eq!(
            v(b"*3\r\n$1\r\na\r\n:1\r\n*1\r\n-ERR x\r\n"),
            json!(["a", 1, [{"error": "ERR x"}]])
        );
        assert_eq!(
            v(b"%2\r\n+f\r\n:1\r\n:7\r\n#t\r\n"),
            json!({"f": 1, "7": true})
        );
        assert_eq!(v(b",1.5\r\n"), json!(1.5));
        assert_eq!(v(b",inf\r\n"), json!("inf"));
        assert_eq!(v(b"=8\r\ntxt:abcd\r\n"), json!("abcd"));
        assert_eq!(v(b"~1\r\n+x\r\n"), json!(["x"]));
        assert_eq!(v(b"|1\r\n+a\r\n+b\r\n:3\r\n"), json!(3));
        assert_eq!(
            decode(b"-WRONGTYPE Operation\r\n").unwrap(),
            Reply::Error("WRONGTYPE Operation".into())
        );
        assert_eq!(
            decode(b"!3\r\nERR\r\n").unwrap(),
            Reply::Error("ERR".into())
        );
        assert!(decode(b"$5\r\nab\r\n").is_err());
        assert!(decode(b"?x\r\n").is_err());
    }
}
