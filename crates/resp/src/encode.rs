//! Writers for the replies and requests the proxy produces itself.

use bytes::{BufMut, BytesMut};

/// `+<s>\r\n`
pub fn simple(out: &mut BytesMut, s: &str) {
    out.reserve(s.len() + 3);
    out.put_u8(b'+');
    out.put_slice(s.as_bytes());
    out.put_slice(b"\r\n");
}

/// `-<msg>\r\n`; `msg` includes the error code (`ERR ...`, `NOAUTH ...`). Newlines in `msg` are
/// replaced by spaces so the reply stays one line.
pub fn error(out: &mut BytesMut, msg: &str) {
    out.reserve(msg.len() + 3);
    out.put_u8(b'-');
    for &b in msg.as_bytes() {
        out.put_u8(if b == b'\r' || b == b'\n' { b' ' } else { b });
    }
    out.put_slice(b"\r\n");
}

/// `:<n>\r\n`
pub fn integer(out: &mut BytesMut, n: i64) {
    out.put_u8(b':');
    out.put_slice(n.to_string().as_bytes());
    out.put_slice(b"\r\n");
}

/// `$<len>\r\n<data>\r\n`
pub fn bulk(out: &mut BytesMut, data: &[u8]) {
    out.reserve(data.len() + 16);
    out.put_u8(b'$');
    out.put_slice(data.len().to_string().as_bytes());
    out.put_slice(b"\r\n");
    out.put_slice(data);
    out.put_slice(b"\r\n");
}

/// The null bulk string: `$-1\r\n` in RESP2, `_\r\n` in RESP3.
pub fn null(out: &mut BytesMut, resp3: bool) {
    out.put_slice(if resp3 { b"_\r\n" } else { b"$-1\r\n" });
}

/// A request as a multibulk of bulk strings.
pub fn command<A: AsRef<[u8]>>(out: &mut BytesMut, args: &[A]) {
    out.put_u8(b'*');
    out.put_slice(args.len().to_string().as_bytes());
    out.put_slice(b"\r\n");
    for a in args {
        bulk(out, a.as_ref());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes() {
        let mut b = BytesMut::new();
        simple(&mut b, "OK");
        error(&mut b, "ERR a\nb");
        integer(&mut b, -3);
        bulk(&mut b, b"hi");
        null(&mut b, false);
        null(&mut b, true);
        command(&mut b, &["GET", "k"]);
        assert_eq!(
            &b[..],
            b"+OK\r\n-ERR a b\r\n:-3\r\n$2\r\nhi\r\n$-1\r\n_\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"
        );
    }
}
