//! Client requests: find one complete command at the start of a buffer, record where its
//! arguments are, allocate nothing. The caller forwards `&buf[..cmd.len]` unchanged.

use crate::num::{find_crlf, parse_int};
use crate::ProtocolError;

/// How many argument positions a [`Command`] records; later ones are found by rescanning.
pub const MAX_INDEXED_ARGS: usize = 8;

/// Limits applied while parsing requests.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest whole request accepted, in bytes (Redis's `proto-max-bulk-len` plays this role).
    pub max_frame_bytes: usize,
    /// Largest inline request line (Redis uses 64 KiB).
    pub max_inline_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame_bytes: 512 * 1024 * 1024,
            max_inline_bytes: 64 * 1024,
        }
    }
}

/// One complete request found at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Command {
    /// Bytes the request occupies at the start of the buffer.
    pub len: usize,
    /// Number of arguments (the command name included). 0 = an empty request that Redis ignores
    /// silently (an empty inline line or `*0`): consume `len` bytes and send no reply.
    pub argc: usize,
    /// True for an inline request: its arguments must be split with [`crate::split_inline`]
    /// and it must be re-encoded as a multibulk before forwarding.
    pub inline: bool,
    args: [(u32, u32); MAX_INDEXED_ARGS],
}

impl Command {
    /// Argument `i` (0 = command name) as a slice of `buf`, the buffer the command was parsed
    /// from. Multibulk only; `None` past `argc` or for inline requests.
    #[inline]
    pub fn arg<'b>(&self, buf: &'b [u8], i: usize) -> Option<&'b [u8]> {
        if i >= self.argc || self.inline {
            return None;
        }
        if i < MAX_INDEXED_ARGS {
            let (s, e) = self.args[i];
            return buf.get(s as usize..e as usize);
        }
        self.rescan_arg(buf, i)
    }

    /// The command name (argument 0).
    #[inline]
    pub fn name<'b>(&self, buf: &'b [u8]) -> Option<&'b [u8]> {
        self.arg(buf, 0)
    }

    fn rescan_arg<'b>(&self, buf: &'b [u8], want: usize) -> Option<&'b [u8]> {
        // walk forward from the end of the last recorded argument
        let mut pos = self.args[MAX_INDEXED_ARGS - 1].1 as usize + 2;
        for _ in MAX_INDEXED_ARGS..want {
            let (_, _, next) = bulk_at(buf, pos).ok()??;
            pos = next;
        }
        let (s, e, _) = bulk_at(buf, pos).ok()??;
        buf.get(s..e)
    }
}

/// Reads the bulk string whose header starts at `pos`: returns (data start, data end, next pos).
#[inline]
fn bulk_at(buf: &[u8], pos: usize) -> Result<Option<(usize, usize, usize)>, ProtocolError> {
    let Some(&t) = buf.get(pos) else {
        return Ok(None);
    };
    if t != b'$' {
        return Err(ProtocolError::ExpectedBulk(t as char));
    }
    let Some(cr) = find_crlf(buf, pos + 1) else {
        return Ok(None);
    };
    let n = parse_int(&buf[pos + 1..cr]).map_err(|_| ProtocolError::InvalidBulkLength)?;
    if n < 0 {
        return Err(ProtocolError::InvalidBulkLength);
    }
    let start = cr + 2;
    let end = start + n as usize;
    if buf.len() < end + 2 {
        return Ok(None);
    }
    Ok(Some((start, end, end + 2)))
}

/// Parses one request at the start of `buf`.
///
/// Returns `Ok(None)` when more bytes are needed, `Err` when the bytes can never become a valid
/// request (the connection must then be closed after reporting the error).
pub fn parse_command(buf: &[u8], limits: &Limits) -> Result<Option<Command>, ProtocolError> {
    match buf.first() {
        None => Ok(None),
        Some(b'*') => parse_multibulk(buf, limits),
        Some(_) => parse_inline(buf, limits),
    }
}

fn parse_multibulk(buf: &[u8], limits: &Limits) -> Result<Option<Command>, ProtocolError> {
    let Some(cr) = find_crlf(buf, 1) else {
        if buf.len() > limits.max_inline_bytes {
            return Err(ProtocolError::InvalidMultibulkLength);
        }
        return Ok(None);
    };
    let n = parse_int(&buf[1..cr]).map_err(|_| ProtocolError::InvalidMultibulkLength)?;
    let mut cmd = Command {
        len: cr + 2,
        argc: 0,
        inline: false,
        args: [(0, 0); MAX_INDEXED_ARGS],
    };
    if n <= 0 {
        return Ok(Some(cmd));
    }
    if n > i64::from(i32::MAX) {
        return Err(ProtocolError::InvalidMultibulkLength);
    }
    let argc = n as usize;
    let max = limits.max_frame_bytes.min(u32::MAX as usize);
    let mut pos = cr + 2;
    for i in 0..argc {
        let Some(&t) = buf.get(pos) else {
            return Ok(None);
        };
        if t != b'$' {
            return Err(ProtocolError::ExpectedBulk(t as char));
        }
        let Some(cr) = find_crlf(buf, pos + 1) else {
            if buf.len() - pos > 32 {
                return Err(ProtocolError::InvalidBulkLength);
            }
            return Ok(None);
        };
        let len = parse_int(&buf[pos + 1..cr]).map_err(|_| ProtocolError::InvalidBulkLength)?;
        if len < 0 || len as usize > max {
            return Err(ProtocolError::InvalidBulkLength);
        }
        let start = cr + 2;
        let end = start + len as usize;
        if end + 2 > max {
            return Err(ProtocolError::FrameTooLarge);
        }
        if buf.len() < end + 2 {
            return Ok(None);
        }
        if i < MAX_INDEXED_ARGS {
            cmd.args[i] = (start as u32, end as u32);
        }
        pos = end + 2;
    }
    cmd.len = pos;
    cmd.argc = argc;
    Ok(Some(cmd))
}

fn parse_inline(buf: &[u8], limits: &Limits) -> Result<Option<Command>, ProtocolError> {
    let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
        if buf.len() > limits.max_inline_bytes {
            return Err(ProtocolError::InlineTooBig);
        }
        return Ok(None);
    };
    let line = &buf[..nl];
    let blank = line.iter().all(|b| b.is_ascii_whitespace());
    Ok(Some(Command {
        len: nl + 1,
        argc: usize::from(!blank),
        inline: true,
        args: [(0, 0); MAX_INDEXED_ARGS],
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(b: &[u8]) -> Result<Option<Command>, ProtocolError> {
        parse_command(b, &Limits::default())
    }

    #[test]
    fn complete_multibulk() {
        let b = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\nextra";
        let c = parse(b).unwrap().unwrap();
        assert_eq!(c.len, b.len() - 5);
        assert_eq!(c.argc, 3);
        assert_eq!(c.name(b), Some(&b"SET"[..]));
        assert_eq!(c.arg(b, 1), Some(&b"k"[..]));
        assert_eq!(c.arg(b, 2), Some(&b"hello"[..]));
        assert_eq!(c.arg(b, 3), None);
    }

    #[test]
    fn every_prefix_is_incomplete() {
        let b = b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n";
        for i in 0..b.len() {
            assert_eq!(parse(&b[..i]), Ok(None), "prefix {i}");
        }
        assert!(parse(b).unwrap().is_some());
    }

    #[test]
    fn many_args_rescan() {
        let mut b = b"*12\r\n$4\r\nMSET\r\n".to_vec();
        for i in 0..11 {
            let s = format!("v{i}");
            b.extend_from_slice(format!("${}\r\n{}\r\n", s.len(), s).as_bytes());
        }
        let c = parse(&b).unwrap().unwrap();
        assert_eq!(c.argc, 12);
        assert_eq!(c.arg(&b, 7), Some(&b"v6"[..]));
        assert_eq!(c.arg(&b, 8), Some(&b"v7"[..]));
        assert_eq!(c.arg(&b, 11), Some(&b"v10"[..]));
        assert_eq!(c.arg(&b, 12), None);
    }

    #[test]
    fn empty_and_inline() {
        let c = parse(b"*0\r\n").unwrap().unwrap();
        assert_eq!((c.len, c.argc), (4, 0));
        let c = parse(b"\r\nPING\r\n").unwrap().unwrap();
        assert_eq!((c.len, c.argc, c.inline), (2, 0, true));
        let c = parse(b"PING\r\n").unwrap().unwrap();
        assert_eq!((c.len, c.argc, c.inline), (6, 1, true));
        assert_eq!(parse(b"PIN"), Ok(None));
    }

    #[test]
    fn errors() {
        let cases: &[(&[u8], ProtocolError)] = &[
            (b"*x\r\n", ProtocolError::InvalidMultibulkLength),
            (b"*1\r\n:1\r\n", ProtocolError::ExpectedBulk(':')),
            (b"*1\r\n$-5\r\n", ProtocolError::InvalidBulkLength),
            (b"*1\r\n$abc\r\n", ProtocolError::InvalidBulkLength),
        ];
        for (b, e) in cases {
            assert_eq!(
                parse(b).as_ref().err(),
                Some(e),
                "{:?}",
                String::from_utf8_lossy(b)
            );
        }
        let small = Limits {
            max_frame_bytes: 10,
            max_inline_bytes: 8,
        };
        assert_eq!(
            parse_command(b"*1\r\n$100\r\n", &small),
            Err(ProtocolError::InvalidBulkLength)
        );
        assert_eq!(
            parse_command(b"GET aaaaaaaaaaaa", &small),
            Err(ProtocolError::InlineTooBig)
        );
    }
}
