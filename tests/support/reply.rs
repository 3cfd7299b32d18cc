//! `Reply`: one decoded RESP2/RESP3 reply, and an incremental parser over a byte buffer.
//!
//! Deliberately independent of `godwit_resp`: the tests check the proxy's bytes with a second,
//! simple implementation rather than with the code under test.

use std::fmt;

/// One reply as a client sees it. RESP2 nil bulk/array (`$-1`, `*-1`) is [`Reply::Nil`]; RESP3's
/// `_` is [`Reply::Null`], so tests can tell the protocols apart.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// `+text`
    Simple(String),
    /// `-ERR text` (the whole line, prefix included)
    Error(String),
    /// `:n`
    Integer(i64),
    /// `$n` payload
    Bulk(Vec<u8>),
    /// `$-1` or `*-1`
    Nil,
    /// `*n`
    Array(Vec<Reply>),
    /// RESP3 `_`
    Null,
    /// RESP3 `,` (kept as text so tests compare exactly)
    Double(String),
    /// RESP3 `#t` / `#f`
    Boolean(bool),
    /// RESP3 `(`
    BigNumber(String),
    /// RESP3 `!` blob error
    BlobError(String),
    /// RESP3 `=` with its three-letter format
    Verbatim { format: String, text: String },
    /// RESP3 `%`
    Map(Vec<(Reply, Reply)>),
    /// RESP3 `~`
    Set(Vec<Reply>),
    /// RESP3 `>` (pub/sub messages, invalidations)
    Push(Vec<Reply>),
    /// RESP3 `|` attributes and the reply they annotate
    Attribute {
        attrs: Vec<(Reply, Reply)>,
        reply: Box<Reply>,
    },
}

/// The bytes are not RESP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RESP parse error: {}", self.0)
    }
}

impl std::error::Error for ParseError {}

impl Reply {
    /// Parses one reply from the front of `buf`: `Ok(None)` if more bytes are needed, else the
    /// reply and how many bytes it used.
    pub fn parse(buf: &[u8]) -> Result<Option<(Reply, usize)>, ParseError> {
        parse_at(buf, 0)
    }

    /// `Reply::Bulk` of `s`.
    pub fn bulk(s: impl AsRef<[u8]>) -> Reply {
        Reply::Bulk(s.as_ref().to_vec())
    }

    /// `Reply::Simple` of `s`.
    pub fn simple(s: &str) -> Reply {
        Reply::Simple(s.to_owned())
    }

    /// `+OK`
    pub fn ok() -> Reply {
        Reply::simple("OK")
    }

    /// True for `+OK`.
    pub fn is_ok(&self) -> bool {
        matches!(self, Reply::Simple(s) if s == "OK")
    }

    /// True for `-...` and `!...`.
    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_) | Reply::BlobError(_))
    }

    /// The error text (`ERR ...`, `NOAUTH ...`) if this is an error.
    pub fn error_text(&self) -> Option<&str> {
        match self {
            Reply::Error(s) | Reply::BlobError(s) => Some(s),
            _ => None,
        }
    }

    /// Payload of a bulk, simple or verbatim string.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Reply::Bulk(b) => Some(b),
            Reply::Simple(s) => Some(s.as_bytes()),
            Reply::Verbatim { text, .. } => Some(text.as_bytes()),
            _ => None,
        }
    }

    /// Payload as UTF-8 text, if it is a string reply and valid UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        self.as_bytes().and_then(|b| std::str::from_utf8(b).ok())
    }

    /// The integer of `:n`.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Reply::Integer(n) => Some(*n),
            _ => None,
        }
    }

    /// Elements of an array, set or push reply.
    pub fn as_array(&self) -> Option<&[Reply]> {
        match self {
            Reply::Array(v) | Reply::Set(v) | Reply::Push(v) => Some(v),
            _ => None,
        }
    }

    /// Looks up a string key in a RESP3 map, or in a RESP2 flat key/value array.
    pub fn get(&self, key: &str) -> Option<&Reply> {
        match self {
            Reply::Map(pairs) => pairs
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            Reply::Array(v) => v
                .chunks(2)
                .find(|kv| kv.len() == 2 && kv[0].as_str() == Some(key))
                .map(|kv| &kv[1]),
            _ => None,
        }
    }
}

fn line(buf: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let rest = buf.get(at..)?;
    let end = rest.windows(2).position(|w| w == b"\r\n")?;
    Some((&rest[..end], at + end + 2))
}

fn text(b: &[u8]) -> Result<String, ParseError> {
    String::from_utf8(b.to_vec()).map_err(|_| ParseError("non-UTF-8 line".into()))
}

fn int(b: &[u8]) -> Result<i64, ParseError> {
    std::str::from_utf8(b)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ParseError(format!("bad integer {:?}", String::from_utf8_lossy(b))))
}

type Parsed = Result<Option<(Reply, usize)>, ParseError>;

fn parse_at(buf: &[u8], at: usize) -> Parsed {
    let Some(&kind) = buf.get(at) else {
        return Ok(None);
    };
    let Some((head, next)) = line(buf, at + 1) else {
        return Ok(None);
    };
    let reply = match kind {
        b'+' => Reply::Simple(text(head)?),
        b'-' => Reply::Error(text(head)?),
        b':' => Reply::Integer(int(head)?),
        b'_' => Reply::Null,
        b',' => Reply::Double(text(head)?),
        b'(' => Reply::BigNumber(text(head)?),
        b'#' => match head {
            b"t" => Reply::Boolean(true),
            b"f" => Reply::Boolean(false),
            _ => return Err(ParseError("bad boolean".into())),
        },
        b'$' | b'!' | b'=' => {
            let len = int(head)?;
            if len < 0 {
                return Ok(Some((Reply::Nil, next)));
            }
            let end = next + len as usize;
            if buf.len() < end + 2 {
                return Ok(None);
            }
            if &buf[end..end + 2] != b"\r\n" {
                return Err(ParseError("blob not followed by CRLF".into()));
            }
            let payload = &buf[next..end];
            let reply = match kind {
                b'$' => Reply::Bulk(payload.to_vec()),
                b'!' => Reply::BlobError(text(payload)?),
                _ => {
                    let t = text(payload)?;
                    let (format, text) = t.split_at(t.len().min(4));
                    Reply::Verbatim {
                        format: format.trim_end_matches(':').to_owned(),
                        text: text.to_owned(),
                    }
                }
            };
            return Ok(Some((reply, end + 2)));
        }
        b'*' | b'~' | b'>' => {
            let len = int(head)?;
            if len < 0 {
                return Ok(Some((Reply::Nil, next)));
            }
            let mut items = Vec::with_capacity(len.min(1024) as usize);
            let mut pos = next;
            for _ in 0..len {
                let Some((item, p)) = parse_at(buf, pos)? else {
                    return Ok(None);
                };
                items.push(item);
                pos = p;
            }
            let reply = match kind {
                b'*' => Reply::Array(items),
                b'~' => Reply::Set(items),
                _ => Reply::Push(items),
            };
            return Ok(Some((reply, pos)));
        }
        b'%' | b'|' => {
            let len = int(head)?;
            let mut pairs = Vec::with_capacity(len.clamp(0, 1024) as usize);
            let mut pos = next;
            for _ in 0..len {
                let Some((k, p)) = parse_at(buf, pos)? else {
                    return Ok(None);
                };
                let Some((v, p)) = parse_at(buf, p)? else {
                    return Ok(None);
                };
                pairs.push((k, v));
                pos = p;
            }
            if kind == b'%' {
                return Ok(Some((Reply::Map(pairs), pos)));
            }
            let Some((reply, pos)) = parse_at(buf, pos)? else {
                return Ok(None);
            };
            let reply = Reply::Attribute {
                attrs: pairs,
                reply: Box::new(reply),
            };
            return Ok(Some((reply, pos)));
        }
        other => return Err(ParseError(format!("unknown type byte {:?}", other as char))),
    };
    Ok(Some((reply, next)))
}

/// Encodes a command as a RESP array of bulk strings.
pub fn encode_command<A: AsRef<[u8]>>(args: &[A]) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(16 + args.iter().map(|a| a.as_ref().len() + 16).sum::<usize>());
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        let a = a.as_ref();
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_type_and_reports_incomplete() {
        let cases: &[(&[u8], Reply)] = &[
            (b"+OK\r\n", Reply::ok()),
            (b"-ERR x\r\n", Reply::Error("ERR x".into())),
            (b":-3\r\n", Reply::Integer(-3)),
            (b"$3\r\na\r\n\r\n", Reply::bulk("a\r\n")),
            (b"$-1\r\n", Reply::Nil),
            (b"*-1\r\n", Reply::Nil),
            (b"_\r\n", Reply::Null),
            (b"#t\r\n", Reply::Boolean(true)),
            (b",1.5\r\n", Reply::Double("1.5".into())),
            (
                b"(12345678901234567890\r\n",
                Reply::BigNumber("12345678901234567890".into()),
            ),
            (b"!3\r\nERR\r\n", Reply::BlobError("ERR".into())),
            (
                b"=7\r\ntxt:abc\r\n",
                Reply::Verbatim {
                    format: "txt".into(),
                    text: "abc".into(),
                },
            ),
            (
                b"*2\r\n:1\r\n$1\r\nx\r\n",
                Reply::Array(vec![Reply::Integer(1), Reply::bulk("x")]),
            ),
            (b"~1\r\n:1\r\n", Reply::Set(vec![Reply::Integer(1)])),
            (b">1\r\n:1\r\n", Reply::Push(vec![Reply::Integer(1)])),
            (
                b"%1\r\n+a\r\n:1\r\n",
                Reply::Map(vec![(Reply::simple("a"), Reply::Integer(1))]),
            ),
            (
                b"|1\r\n+a\r\n:1\r\n:2\r\n",
                Reply::Attribute {
                    attrs: vec![(Reply::simple("a"), Reply::Integer(1))],
                    reply: Box::new(Reply::Integer(2)),
                },
            ),
        ];
        for (bytes, want) in cases {
            assert_eq!(
                Reply::parse(bytes).unwrap(),
                Some((want.clone(), bytes.len())),
                "{bytes:?}"
            );
            for cut in 0..bytes.len() {
                assert_eq!(
                    Reply::parse(&bytes[..cut]).unwrap(),
                    None,
                    "{bytes:?} cut at {cut}"
                );
            }
        }
        assert!(Reply::parse(b"?x\r\n").is_err());
    }

    #[test]
    fn encodes_commands() {
        assert_eq!(
            encode_command(&["GET", "k"]),
            b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"
        );
    }
}
