//! Inline requests (`PING\r\n`, `SET k "a b"\n`): split like Redis's `sdssplitargs`.
//! Rare (telnet, health checks), so this path may allocate.

use crate::ProtocolError;

/// Splits one inline request line (without its newline) into arguments, honouring double
/// quotes with `\n \r \t \b \a \\ \" \xHH` escapes and single quotes with `\'`.
pub fn split_inline(line: &[u8]) -> Result<Vec<Vec<u8>>, ProtocolError> {
    let mut out = Vec::new();
    let mut i = 0;
    let n = line.len();
    loop {
        while i < n && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= n {
            return Ok(out);
        }
        let mut cur = Vec::new();
        match line[i] {
            b'"' => {
                i += 1;
                loop {
                    if i >= n {
                        return Err(ProtocolError::UnbalancedQuotes);
                    }
                    match line[i] {
                        b'\\'
                            if i + 3 < n
                                && line[i + 1] == b'x'
                                && is_hex(line[i + 2])
                                && is_hex(line[i + 3]) =>
                        {
                            cur.push(hex(line[i + 2]) * 16 + hex(line[i + 3]));
                            i += 4;
                        }
                        b'\\' if i + 1 < n => {
                            cur.push(match line[i + 1] {
                                b'n' => b'\n',
                                b'r' => b'\r',
                                b't' => b'\t',
                                b'b' => 8,
                                b'a' => 7,
                                c => c,
                            });
                            i += 2;
                        }
                        b'"' => {
                            i += 1;
                            if i < n && !line[i].is_ascii_whitespace() {
                                return Err(ProtocolError::UnbalancedQuotes);
                            }
                            break;
                        }
                        c => {
                            cur.push(c);
                            i += 1;
                        }
                    }
                }
            }
            b'\'' => {
                i += 1;
                loop {
                    if i >= n {
                        return Err(ProtocolError::UnbalancedQuotes);
                    }
                    match line[i] {
                        b'\\' if i + 1 < n && line[i + 1] == b'\'' => {
                            cur.push(b'\'');
                            i += 2;
                        }
                        b'\'' => {
                            i += 1;
                            if i < n && !line[i].is_ascii_whitespace() {
                                return Err(ProtocolError::UnbalancedQuotes);
                            }
                            break;
                        }
                        c => {
                            cur.push(c);
                            i += 1;
                        }
                    }
                }
            }
            _ => {
                while i < n && !line[i].is_ascii_whitespace() {
                    cur.push(line[i]);
                    i += 1;
                }
            }
        }
        out.push(cur);
    }
}

fn is_hex(c: u8) -> bool {
    c.is_ascii_hexdigit()
}

fn hex(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        _ => c - b'A' + 10,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_redis() {
        let cases: &[(&[u8], &[&[u8]])] = &[
            (b"PING", &[b"PING"]),
            (b"  set k   v ", &[b"set", b"k", b"v"]),
            (b"set k \"a b\\n\"", &[b"set", b"k", b"a b\n"]),
            (b"set k \"\\x41\"", &[b"set", b"k", b"A"]),
            (b"set k 'it\\'s'", &[b"set", b"k", b"it's"]),
            (b"", &[]),
        ];
        for (line, want) in cases {
            let got = split_inline(line).unwrap();
            let want: Vec<Vec<u8>> = want.iter().map(|w| w.to_vec()).collect();
            assert_eq!(got, want);
        }
        assert_eq!(
            split_inline(b"set \"k"),
            Err(ProtocolError::UnbalancedQuotes)
        );
        assert_eq!(
            split_inline(b"set \"k\"x"),
            Err(ProtocolError::UnbalancedQuotes)
        );
    }
}
