//! The request decoder on arbitrary bytes: never a panic; every complete request lies within
//! the buffer and consumes at least one byte; the same bytes split in two decode to the same
//! requests (the first byte picks the split point).
#![no_main]

use godwit_resp::{parse_command, Limits};
use libfuzzer_sys::fuzz_target;

fn decode_all(buf: &[u8], limits: &Limits) -> (Vec<(usize, usize, bool)>, bool) {
    let mut out = Vec::new();
    let mut off = 0;
    loop {
        match parse_command(&buf[off..], limits) {
            Ok(Some(c)) => {
                assert!(c.len > 0 && off + c.len <= buf.len());
                if !c.inline {
                    for i in 0..c.argc.min(16) {
                        let a = c.arg(&buf[off..off + c.len], i);
                        assert!(a.is_some() || i >= c.argc);
                    }
                    let _ = c.name(&buf[off..off + c.len]);
                }
                out.push((off, c.len, c.inline));
                off += c.len;
            }
            Ok(None) => return (out, false),
            Err(_) => return (out, true),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_frame_bytes: 1 << 20,
        max_inline_bytes: 4096,
    };
    let (whole, _) = decode_all(data, &limits);
    // incremental: requests complete in a prefix are the same requests
    if let Some(&first) = data.first() {
        let cut = first as usize % (data.len() + 1);
        let (prefix, err) = decode_all(&data[..cut], &limits);
        if !err {
            assert!(prefix.len() <= whole.len());
            assert_eq!(&whole[..prefix.len()], &prefix[..]);
        }
    }
});
