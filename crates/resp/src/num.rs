//! Line and integer scanning shared by the request and reply parsers.

use crate::ProtocolError;

/// Finds the `\r\n` that ends the line starting at `from`; returns the index of `\r`.
#[inline]
pub(crate) fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i < buf.len() {
        // memchr-like scan for '\n', then check the '\r' before it
        match buf[i..].iter().position(|&b| b == b'\n') {
            None => return None,
            Some(off) => {
                let nl = i + off;
                if nl > from && buf[nl - 1] == b'\r' {
                    return Some(nl - 1);
                }
                i = nl + 1;
            }
        }
    }
    None
}

/// Parses a signed decimal integer (the digits between a type byte and `\r\n`).
#[inline]
pub(crate) fn parse_int(digits: &[u8]) -> Result<i64, ProtocolError> {
    let (neg, digits) = match digits.first() {
        Some(b'-') => (true, &digits[1..]),
        Some(b'+') => (false, &digits[1..]),
        _ => (false, digits),
    };
    if digits.is_empty() || digits.len() > 18 {
        return Err(ProtocolError::InvalidLine);
    }
    let mut v: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return Err(ProtocolError::InvalidLine);
        }
        v = v * 10 + i64::from(d - b'0');
    }
    Ok(if neg { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_and_ints() {
        assert_eq!(find_crlf(b"abc\r\n", 0), Some(3));
        assert_eq!(find_crlf(b"a\nb\r\n", 0), Some(3));
        assert_eq!(find_crlf(b"abc\r", 0), None);
        assert_eq!(find_crlf(b"\r\n", 0), Some(0));
        assert_eq!(parse_int(b"123"), Ok(123));
        assert_eq!(parse_int(b"-1"), Ok(-1));
        assert!(parse_int(b"").is_err());
        assert!(parse_int(b"1x").is_err());
        assert!(parse_int(b"9999999999999999999").is_err());
    }
}
