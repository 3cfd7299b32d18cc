//! Server replies: find where each complete reply ends, for every RESP2 and RESP3 type,
//! nested to any depth, resuming where the last call stopped.

use crate::num::{find_crlf, parse_int};
use crate::ProtocolError;

/// Resumable scanner over a buffer whose first byte starts a reply.
///
/// Call [`ReplyScanner::next`] after each read; when it returns `Some(len)`, the first `len`
/// bytes are one complete reply: remove them from the buffer and call again. Between calls the
/// buffer may only grow at its end.
#[derive(Debug, Default, Clone)]
pub struct ReplyScanner {
    pos: usize,
    pending: u64,
    in_frame: bool,
}

impl ReplyScanner {
    /// A scanner at the start of a reply.
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns the length of the complete reply at the start of `buf`, `None` if more bytes are
    /// needed, or an error if the bytes are not RESP.
    pub fn next(&mut self, buf: &[u8]) -> Result<Option<usize>, ProtocolError> {
        if !self.in_frame {
            if buf.is_empty() {
                return Ok(None);
            }
            self.pos = 0;
            self.pending = 1;
            self.in_frame = true;
        }
        while self.pending > 0 {
            let Some(&t) = buf.get(self.pos) else {
                return Ok(None);
            };
            let Some(cr) = find_crlf(buf, self.pos + 1) else {
                return Ok(None);
            };
            let header = &buf[self.pos + 1..cr];
            match t {
                b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => {
                    self.pos = cr + 2;
                }
                b'$' | b'!' | b'=' => {
                    let n = parse_int(header).map_err(|_| ProtocolError::InvalidReply(t))?;
                    if n < 0 {
                        self.pos = cr + 2;
                    } else {
                        let end = cr + 2 + n as usize + 2;
                        if buf.len() < end {
                            return Ok(None);
                        }
                        self.pos = end;
                    }
                }
                b'*' | b'~' | b'>' | b'%' | b'|' => {
                    let n = parse_int(header).map_err(|_| ProtocolError::InvalidReply(t))?;
                    self.pos = cr + 2;
                    if n > 0 {
                        let n = n as u64;
                        self.pending += match t {
                            b'%' => 2 * n,
                            b'|' => 2 * n + 1,
                            _ => n,
                        };
                    } else if t == b'|' {
                        self.pending += 1;
                    }
                }
                other => return Err(ProtocolError::InvalidReply(other)),
            }
            self.pending -= 1;
        }
        self.in_frame = false;
        Ok(Some(self.pos))
    }

    /// Forgets any partial progress (after the connection is reset).
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(b: &[u8]) -> Option<usize> {
        ReplyScanner::new().next(b).unwrap()
    }

    #[test]
    fn every_type() {
        let cases: &[&[u8]] = &[
            b"+OK\r\n",
            b"-ERR x\r\n",
            b":12\r\n",
            b"$5\r\nhello\r\n",
            b"$-1\r\n",
            b"*-1\r\n",
            b"*0\r\n",
            b"*2\r\n$1\r\na\r\n:1\r\n",
            b"*2\r\n*1\r\n+a\r\n*0\r\n",
            b"_\r\n",
            b",1.5\r\n",
            b"#t\r\n",
            b"(123\r\n",
            b"!3\r\nerr\r\n",
            b"=7\r\ntxt:abc\r\n",
            b"%1\r\n+k\r\n:1\r\n",
            b"~2\r\n+a\r\n+b\r\n",
            b">3\r\n+message\r\n+ch\r\n$1\r\nx\r\n",
            b"|1\r\n+key\r\n+val\r\n:5\r\n",
        ];
        for c in cases {
            assert_eq!(whole(c), Some(c.len()), "{}", String::from_utf8_lossy(c));
            for i in 0..c.len() {
                assert_eq!(
                    whole(&c[..i]),
                    None,
                    "prefix {i} of {}",
                    String::from_utf8_lossy(c)
                );
            }
        }
    }

    #[test]
    fn resumes_across_reads() {
        let full = b"*3\r\n$3\r\nabc\r\n:1\r\n%1\r\n+a\r\n+b\r\n+NEXT\r\n";
        let mut s = ReplyScanner::new();
        let mut got = None;
        for i in 1..=full.len() {
            if let Some(n) = s.next(&full[..i]).unwrap() {
                got = Some(n);
                break;
            }
        }
        assert_eq!(got, Some(full.len() - 7));
        assert_eq!(s.next(&full[full.len() - 7..]).unwrap(), Some(7));
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(
            ReplyScanner::new().next(b"x\r\n"),
            Err(ProtocolError::InvalidReply(b'x'))
        );
        assert_eq!(
            ReplyScanner::new().next(b"$x\r\n"),
            Err(ProtocolError::InvalidReply(b'$'))
        );
    }
}
