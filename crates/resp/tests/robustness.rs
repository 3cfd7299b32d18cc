//! Randomised robustness of the decoders (a deterministic, CI-sized fuzz): any byte string is
//! either incomplete, one complete frame of a length within the buffer, or an error — never a
//! panic; valid pipelines split at random points decode to exactly the commands sent.

use godwit_resp::{encode, parse_command, Limits, ReplyScanner};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

const ALPHABET: &[u8] = b"*$+-:_,#(!=%~>|\r\n0123456789-?abcXYZ ";

/// Bytes biased towards RESP's own characters, so the parsers get past the first byte.
fn resp_noise(rng: &mut Rng, n: usize) -> Vec<u8> {
    (0..n)
        .map(|_| ALPHABET[rng.below(ALPHABET.len() as u64) as usize])
        .collect()
}

#[test]
fn arbitrary_bytes_never_panic_and_lengths_are_in_bounds() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let limits = Limits {
        max_frame_bytes: 1 << 20,
        max_inline_bytes: 4096,
    };
    for i in 0..200_000 {
        let n = rng.below(64) as usize;
        let buf = if i % 2 == 0 {
            resp_noise(&mut rng, n)
        } else {
            rng.bytes(n)
        };
        if let Ok(Some(cmd)) = parse_command(&buf, &limits) {
            assert!(cmd.len <= buf.len() && cmd.len > 0, "{buf:?}");
            for a in 0..cmd.argc.min(16) {
                let _ = cmd.arg(&buf, a);
            }
        }
        if let Ok(Some(len)) = ReplyScanner::new().next(&buf) {
            assert!(len <= buf.len() && len > 0, "{buf:?}");
        }
    }
}

#[test]
fn mutated_valid_frames_never_panic() {
    let mut rng = Rng(42);
    let limits = Limits::default();
    for _ in 0..50_000 {
        let mut b = bytes::BytesMut::new();
        let argc = 1 + rng.below(5) as usize;
        let args: Vec<Vec<u8>> = (0..argc)
            .map(|_| {
                let n = rng.below(12) as usize;
                rng.bytes(n)
            })
            .collect();
        encode::command(&mut b, &args);
        let mut v = b.to_vec();
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(v.len() as u64) as usize;
            v[at] = ALPHABET[rng.below(ALPHABET.len() as u64) as usize];
        }
        let _ = parse_command(&v, &limits);
        let _ = ReplyScanner::new().next(&v);
    }
}

#[test]
fn pipelines_split_anywhere_decode_to_what_was_sent() {
    let mut rng = Rng(7);
    let limits = Limits::default();
    for _ in 0..300 {
        let mut wire = bytes::BytesMut::new();
        let mut sent = Vec::new();
        for _ in 0..1 + rng.below(40) {
            let argc = 1 + rng.below(10) as usize;
            let args: Vec<Vec<u8>> = (0..argc)
                .map(|_| {
                    let n = rng.below(40) as usize;
                    rng.bytes(n)
                })
                .collect();
            encode::command(&mut wire, &args);
            sent.push(args);
        }
        // feed it in random chunks, as reads would deliver it
        let mut buf = Vec::new();
        let mut got = Vec::new();
        let mut off = 0;
        while off < wire.len() {
            let take = (1 + rng.below(50) as usize).min(wire.len() - off);
            buf.extend_from_slice(&wire[off..off + take]);
            off += take;
            while let Some(cmd) = parse_command(&buf, &limits).unwrap() {
                got.push(
                    (0..cmd.argc)
                        .map(|i| cmd.arg(&buf, i).unwrap().to_vec())
                        .collect::<Vec<_>>(),
                );
                buf.drain(..cmd.len);
            }
        }
        assert!(buf.is_empty());
        assert_eq!(got, sent);
        // the same bytes read back as replies (arrays of bulk strings), resumably
        let mut scanner = ReplyScanner::new();
        let mut replies = 0;
        let mut rbuf = Vec::new();
        let mut off = 0;
        while off < wire.len() {
            let take = (1 + rng.below(50) as usize).min(wire.len() - off);
            rbuf.extend_from_slice(&wire[off..off + take]);
            off += take;
            while let Some(n) = scanner.next(&rbuf).unwrap() {
                rbuf.drain(..n);
                replies += 1;
            }
        }
        assert_eq!(replies, sent.len());
    }
}
