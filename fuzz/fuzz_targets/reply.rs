//! The reply scanner on arbitrary bytes: never a panic; every reply length is within the
//! buffer; scanning a buffer that grows byte by byte (as reads arrive) finds the same replies
//! as scanning it whole.
#![no_main]

use godwit_resp::ReplyScanner;
use libfuzzer_sys::fuzz_target;

fn whole(data: &[u8]) -> Vec<usize> {
    let mut s = ReplyScanner::new();
    let mut out = Vec::new();
    let mut off = 0;
    while let Ok(Some(n)) = s.next(&data[off..]) {
        assert!(n > 0 && off + n <= data.len());
        out.push(n);
        off += n;
        s = ReplyScanner::new();
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let all = whole(data);
    // grow the buffer in steps set by the first byte, as socket reads would
    let step = data.first().map_or(1, |b| (*b as usize % 7) + 1);
    let mut s = ReplyScanner::new();
    let mut got = Vec::new();
    let (mut start, mut end) = (0, 0);
    while end < data.len() {
        end = (end + step).min(data.len());
        loop {
            match s.next(&data[start..end]) {
                Ok(Some(n)) => {
                    assert!(start + n <= end);
                    got.push(n);
                    start += n;
                }
                Ok(None) => break,
                Err(_) => {
                    assert!(got.len() <= all.len());
                    assert_eq!(&all[..got.len()], &got[..]);
                    return;
                }
            }
        }
    }
    assert_eq!(got, all);
});
