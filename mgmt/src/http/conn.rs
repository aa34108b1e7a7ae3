//! HTTP/1.1 message framing shared by the server and the client: a read buffer filled under
//! an absolute deadline, locating the end of a message head, header-line parsing, and
//! `Content-Length` / chunked bodies, each with a size limit, so neither side can be made to
//! buffer more than it agreed to or to wait longer than its deadline.

use std::io::{self, Read};
use std::net::TcpStream;
use std::time::Instant;

/// Bytes requested from the socket per read.
const READ_CHUNK: usize = 8192;
/// Longest accepted chunk-size line (`<hex>[;extensions]\r\n`).
const MAX_CHUNK_LINE: usize = 1024;

/// A byte source whose reads can be bounded by an absolute deadline.
pub(crate) trait TimedRead {
    /// Reads some bytes, failing with `TimedOut`/`WouldBlock` once `deadline` has passed.
    /// `Ok(0)` means the peer closed its side.
    fn read_before(&mut self, buf: &mut [u8], deadline: Instant) -> io::Result<usize>;
}

impl TimedRead for TcpStream {
    fn read_before(&mut self, buf: &mut [u8], deadline: Instant) -> io::Result<usize> {
        loop {
            let remaining = deadline
                .checked_duration_since(Instant::now())
                .filter(|d| !d.is_zero())
                .ok_or(io::ErrorKind::TimedOut)?;
            // The socket timeout is re-armed with what is left before every read, so a peer
            // trickling one byte at a time still hits the deadline.
            self.set_read_timeout(Some(remaining))?;
            match self.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                result => return result,
            }
        }
    }
}

/// Why reading a message stopped.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The deadline passed.
    Timeout,
    /// The peer closed the connection.
    Closed,
    /// The head, body or trailers exceed their limit.
    TooLarge,
    /// The bytes are not HTTP/1.1 framing; the reason is safe to show to the peer.
    Malformed(&'static str),
    /// Any other socket error.
    Io(io::Error),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => ReadError::Timeout,
            _ => ReadError::Io(e),
        }
    }
}

/// Received bytes not yet consumed by a parsed message. Holds at most one read beyond
/// what the current message needs (keep-alive and pipelining leftovers).
#[derive(Default)]
pub(crate) struct InputBuffer {
    buf: Vec<u8>,
}

impl InputBuffer {
    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Drops the first `n` bytes (all of them if `n` exceeds the buffer).
    pub(crate) fn consume(&mut self, n: usize) {
        self.buf.drain(..n.min(self.buf.len()));
    }

    /// Takes everything buffered.
    pub(crate) fn take_all(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    /// One read from `src`, appended to the buffer.
    pub(crate) fn fill<R: TimedRead>(
        &mut self,
        src: &mut R,
        deadline: Instant,
    ) -> Result<(), ReadError> {
        let old = self.buf.len();
        self.buf.resize(old + READ_CHUNK, 0);
        let result = src.read_before(&mut self.buf[old..], deadline);
        let got = *result.as_ref().unwrap_or(&0);
        self.buf.truncate(old + got);
        match result {
            Ok(0) => Err(ReadError::Closed),
            Ok(_) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads until the buffer starts with a complete message head and returns the head's
    /// length including its terminating blank line. Blank lines before the head are part
    /// of it (RFC 9112 §2.2 lets a server ignore them).
    pub(crate) fn read_head<R: TimedRead>(
        &mut self,
        src: &mut R,
        deadline: Instant,
        max_head: usize,
    ) -> Result<usize, ReadError> {
        let mut scanned = 0;
        loop {
            if let Some(end) = find_head_end(&self.buf, scanned) {
                return if end > max_head {
                    Err(ReadError::TooLarge)
                } else {
                    Ok(end)
                };
            }
            if self.buf.len() > max_head {
                return Err(ReadError::TooLarge);
            }
            // A terminator may straddle the old end: rescan its last three bytes only.
            scanned = self.buf.len().saturating_sub(3);
            self.fill(src, deadline)?;
        }
    }

    /// Reads until at least `len` bytes are buffered.
    pub(crate) fn read_to<R: TimedRead>(
        &mut self,
        src: &mut R,
        len: usize,
        deadline: Instant,
    ) -> Result<(), ReadError> {
        while self.buf.len() < len {
            self.fill(src, deadline)?;
        }
        Ok(())
    }

    /// Reads a `Content-Length` body of `len` bytes from the front of the buffer and
    /// consumes it.
    pub(crate) fn read_body<R: TimedRead>(
        &mut self,
        src: &mut R,
        len: usize,
        deadline: Instant,
    ) -> Result<Vec<u8>, ReadError> {
        self.read_to(src, len, deadline)?;
        let rest = self.buf.split_off(len);
        Ok(std::mem::replace(&mut self.buf, rest))
    }

    /// Decodes a chunked body from the front of the buffer and consumes it with its
    /// trailers (which are discarded). The decoded body may not exceed `max_body` and the
    /// trailer section `max_trailers`; consumed framing is dropped as decoding proceeds so
    /// that many tiny chunks cannot inflate memory beyond the body itself.
    pub(crate) fn read_chunked<R: TimedRead>(
        &mut self,
        src: &mut R,
        max_body: usize,
        max_trailers: usize,
        deadline: Instant,
    ) -> Result<Vec<u8>, ReadError> {
        let mut body = Vec::new();
        loop {
            let line_end = self.read_line(src, MAX_CHUNK_LINE, deadline)?;
            let size = parse_chunk_size(self.buf.get(..line_end).unwrap_or_default())?;
            self.consume(line_end);
            if size == 0 {
                break;
            }
            if size > max_body - body.len() {
                return Err(ReadError::TooLarge);
            }
            let framed = size + 2;
            self.read_to(src, framed, deadline)?;
            match self.buf.get(..framed) {
                Some(chunk) if chunk.ends_with(b"\r\n") => body.extend_from_slice(&chunk[..size]),
                _ => return Err(ReadError::Malformed("chunk data is not followed by CRLF")),
            }
            self.consume(framed);
        }
        let mut trailer_bytes = 0;
        loop {
            let line_end =
                self.read_line(src, max_trailers.saturating_sub(trailer_bytes), deadline)?;
            let blank = matches!(self.buf.get(..line_end), Some(b"\r\n" | b"\n"));
            self.consume(line_end);
            trailer_bytes += line_end;
            if blank {
                return Ok(body);
            }
        }
    }

    /// Reads until the buffer holds a full line and returns the index after its `\n`.
    fn read_line<R: TimedRead>(
        &mut self,
        src: &mut R,
        max_line: usize,
        deadline: Instant,
    ) -> Result<usize, ReadError> {
        let mut scanned = 0;
        loop {
            if let Some(i) = self.buf[scanned..].iter().position(|&b| b == b'\n') {
                let end = scanned + i + 1;
                return if end > max_line {
                    Err(ReadError::TooLarge)
                } else {
                    Ok(end)
                };
            }
            if self.buf.len() > max_line {
                return Err(ReadError::TooLarge);
            }
            scanned = self.buf.len();
            self.fill(src, deadline)?;
        }
    }
}

/// Index just past the blank line that ends a message head, searching from `from`. Leading
/// blank lines do not count as the end.
fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    let start = buf.iter().position(|&b| b != b'\r' && b != b'\n')?;
    let from = from.max(start);
    let tail = buf.get(from..)?;
    tail.iter().enumerate().find_map(|(i, &b)| {
        if b != b'\n' {
            return None;
        }
        match tail.get(i + 1..) {
            Some([b'\n', ..]) => Some(from + i + 2),
            Some([b'\r', b'\n', ..]) => Some(from + i + 3),
            _ => None,
        }
    })
}

/// `<hex>[;ext]\r\n` → size. Extensions are ignored (RFC 9112 §7.1.1).
fn parse_chunk_size(line: &[u8]) -> Result<usize, ReadError> {
    const BAD: ReadError = ReadError::Malformed("invalid chunk size line");
    let line = std::str::from_utf8(line).map_err(|_| BAD)?;
    let line = line.trim_end_matches(['\r', '\n']);
    let hex = line
        .split(';')
        .next()
        .unwrap_or_default()
        .trim_matches([' ', '\t']);
    if hex.is_empty() || hex.len() > 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(BAD);
    }
    let size = u64::from_str_radix(hex, 16).map_err(|_| BAD)?;
    usize::try_from(size).map_err(|_| ReadError::TooLarge)
}

/// Splits a head into its lines (without line endings), skipping leading blank lines and
/// dropping the terminating blank line.
pub(crate) fn head_lines(head: &str) -> impl Iterator<Item = &str> {
    head.split('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
        .skip_while(|line| line.is_empty())
        .take_while(|line| !line.is_empty())
}

/// RFC 9110 `tchar`: the characters of methods and header names.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Parses header lines into `(lowercased name, trimmed value)` pairs, in order.
pub(crate) fn parse_header_lines<'a>(
    lines: impl Iterator<Item = &'a str>,
) -> Result<Vec<(String, String)>, &'static str> {
    let mut headers = Vec::new();
    for line in lines {
        if line.starts_with([' ', '\t']) {
            return Err("obsolete header line folding is not supported");
        }
        let (name, value) = line.split_once(':').ok_or("header line without a colon")?;
        if !is_token(name) {
            return Err("invalid header name");
        }
        let value = value.trim_matches([' ', '\t']);
        if value.chars().any(|c| c.is_control() && c != '\t') {
            return Err("control character in a header value");
        }
        headers.push((name.to_ascii_lowercase(), value.to_owned()));
    }
    Ok(headers)
}

/// First value of `name` (lowercase) in parsed headers.
pub(crate) fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Whether a comma-separated header (e.g. `Connection`) carries `token`.
pub(crate) fn has_token(headers: &[(String, String)], name: &str, token: &str) -> bool {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .flat_map(|(_, v)| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// How the body of a message is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    Length(usize),
    Chunked,
    /// Only for responses: the body runs until the connection closes.
    UntilClose,
}

/// Why a message's framing headers were refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FramingError {
    Malformed(&'static str),
    UnsupportedTransferEncoding,
}

/// Framing from `Content-Length` / `Transfer-Encoding`, refusing the ambiguous combinations
/// used for request smuggling (both present, conflicting lengths, non-final chunked).
pub(crate) fn framing(
    headers: &[(String, String)],
    absent: Framing,
) -> Result<Framing, FramingError> {
    let mut encodings = headers
        .iter()
        .filter(|(n, _)| n == "transfer-encoding")
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
        .peekable();
    let chunked = match encodings.peek() {
        None => false,
        Some(_) => {
            let list: Vec<&str> = encodings.collect();
            if list.len() == 1 && list[0].eq_ignore_ascii_case("chunked") {
                true
            } else {
                return Err(FramingError::UnsupportedTransferEncoding);
            }
        }
    };
    let mut length: Option<usize> = None;
    for (_, value) in headers.iter().filter(|(n, _)| n == "content-length") {
        for item in value.split(',').map(str::trim) {
            let parsed =
                (!item.is_empty() && item.len() <= 19 && item.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| item.parse::<usize>().ok())
                    .flatten()
                    .ok_or(FramingError::Malformed("invalid Content-Length"))?;
            if length.is_some_and(|l| l != parsed) {
                return Err(FramingError::Malformed("conflicting Content-Length values"));
            }
            length = Some(parsed);
        }
    }
    match (chunked, length) {
        (true, Some(_)) => Err(FramingError::Malformed(
            "both Content-Length and Transfer-Encoding are present",
        )),
        (true, None) => Ok(Framing::Chunked),
        (false, Some(len)) => Ok(Framing::Length(len)),
        (false, None) => Ok(absent),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    /// Serves pre-cut fragments, one per read, as a socket would.
    struct Fragments(Vec<Vec<u8>>);

    impl TimedRead for Fragments {
        fn read_before(&mut self, buf: &mut [u8], _deadline: Instant) -> io::Result<usize> {
            if self.0.is_empty() {
                return Ok(0);
            }
            let first = &mut self.0[0];
            let n = first.len().min(buf.len());
            buf[..n].copy_from_slice(&first[..n]);
            first.drain(..n);
            if first.is_empty() {
                self.0.remove(0);
            }
            Ok(n)
        }
    }

    fn cut(bytes: &[u8], cuts: &[usize]) -> Fragments {
        let mut pieces = Vec::new();
        let mut at = 0;
        for &c in cuts {
            let c = c.clamp(at, bytes.len());
            if c > at {
                pieces.push(bytes[at..c].to_vec());
                at = c;
            }
        }
        pieces.push(bytes[at..].to_vec());
        Fragments(pieces)
    }

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    #[test]
    fn head_end_is_found_after_leading_blank_lines_and_with_bare_lf() {
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n\r\nrest", 0), Some(18));
        assert_eq!(
            find_head_end(b"\r\n\r\nGET / HTTP/1.1\r\n\r\n", 0),
            Some(22)
        );
        assert_eq!(find_head_end(b"GET / HTTP/1.1\n\n", 0), Some(16));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\nHost: x\r\n", 0), None);
        assert_eq!(find_head_end(b"\r\n\r\n", 0), None);
    }

    #[test]
    fn oversized_head_is_refused() {
        let mut input = InputBuffer::default();
        let mut src = Fragments(vec![vec![b'a'; 100]]);
        assert!(matches!(
            input.read_head(&mut src, later(), 64),
            Err(ReadError::TooLarge)
        ));
    }

    #[test]
    fn chunked_body_with_extensions_and_trailers_decodes_and_leaves_the_next_message() {
        let wire = b"4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT";
        let mut input = InputBuffer::default();
        let body = input
            .read_chunked(&mut cut(wire, &[3, 10, 20]), 1 << 20, 1024, later())
            .unwrap();
        assert_eq!(body, b"Wikipedia");
        assert_eq!(input.bytes(), b"NEXT");
    }

    #[test]
    fn chunked_limits_and_syntax_are_enforced() {
        let mut input = InputBuffer::default();
        let big = b"ffffffffffffffff\r\n";
        assert!(matches!(
            input.read_chunked(&mut cut(big, &[]), 1 << 20, 1024, later()),
            Err(ReadError::TooLarge)
        ));
        let mut input = InputBuffer::default();
        assert!(matches!(
            input.read_chunked(
                &mut cut(b"5\r\n0123456789\r\n", &[]),
                1 << 20,
                1024,
                later()
            ),
            Err(ReadError::Malformed(_))
        ));
        let mut input = InputBuffer::default();
        assert!(matches!(
            input.read_chunked(&mut cut(b"zz\r\n", &[]), 1 << 20, 1024, later()),
            Err(ReadError::Malformed(_))
        ));
        let mut input = InputBuffer::default();
        assert!(matches!(
            input.read_chunked(&mut cut(b"3\r\nab", &[]), 1 << 20, 1024, later()),
            Err(ReadError::Closed)
        ));
    }

    #[test]
    fn framing_refuses_smuggling_shapes() {
        let h = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect()
        };
        let none = Framing::Length(0);
        assert_eq!(framing(&h(&[]), none), Ok(Framing::Length(0)));
        assert_eq!(
            framing(&h(&[("content-length", "12")]), none),
            Ok(Framing::Length(12))
        );
        assert_eq!(
            framing(
                &h(&[("content-length", "12"), ("content-length", "12")]),
                none
            ),
            Ok(Framing::Length(12))
        );
        assert_eq!(
            framing(&h(&[("transfer-encoding", "Chunked")]), none),
            Ok(Framing::Chunked)
        );
        for bad in [
            h(&[("content-length", "12"), ("content-length", "13")]),
            h(&[("content-length", "-1")]),
            h(&[("content-length", "+5")]),
            h(&[("content-length", "99999999999999999999")]),
            h(&[("content-length", "5"), ("transfer-encoding", "chunked")]),
        ] {
            assert!(
                matches!(framing(&bad, none), Err(FramingError::Malformed(_))),
                "{bad:?}"
            );
        }
        assert_eq!(
            framing(&h(&[("transfer-encoding", "gzip, chunked")]), none),
            Err(FramingError::UnsupportedTransferEncoding)
        );
    }

    #[test]
    fn header_lines_are_lowercased_trimmed_and_checked() {
        let parsed = parse_header_lines(["Host:  a b  ", "X-Amz-Date:\t1"].into_iter()).unwrap();
        assert_eq!(
            parsed,
            [
                ("host".into(), "a b".into()),
                ("x-amz-date".into(), "1".into())
            ]
        );
        assert!(parse_header_lines([" folded"].into_iter()).is_err());
        assert!(parse_header_lines(["no colon"].into_iter()).is_err());
        assert!(parse_header_lines(["Bad Name: v"].into_iter()).is_err());
        assert!(parse_header_lines(["X: a\u{1}b"].into_iter()).is_err());
    }

    proptest! {
        /// Any body, cut into any chunks and delivered in any fragments, decodes back.
        #[test]
        fn chunked_round_trips(
            body in proptest::collection::vec(any::<u8>(), 0..600),
            chunk_sizes in proptest::collection::vec(1usize..50, 1..20),
            cuts in proptest::collection::vec(0usize..2000, 0..10),
        ) {
            let mut wire = Vec::new();
            let mut rest = &body[..];
            let mut sizes = chunk_sizes.iter().cycle();
            while !rest.is_empty() {
                let n = (*sizes.next().unwrap()).min(rest.len());
                wire.extend_from_slice(format!("{n:x}\r\n").as_bytes());
                wire.extend_from_slice(&rest[..n]);
                wire.extend_from_slice(b"\r\n");
                rest = &rest[n..];
            }
            wire.extend_from_slice(b"0\r\n\r\n");
            let mut sorted = cuts.clone();
            sorted.sort_unstable();
            let mut input = InputBuffer::default();
            let decoded = input.read_chunked(&mut cut(&wire, &sorted), 1 << 20, 1024, later()).unwrap();
            prop_assert_eq!(decoded, body);
            prop_assert!(input.is_empty());
        }

        /// Arbitrary bytes never panic the framing code.
        #[test]
        fn arbitrary_input_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut input = InputBuffer::default();
            let _ = input.read_chunked(&mut cut(&bytes, &[7, 50]), 100, 64, later());
            let mut input = InputBuffer::default();
            let _ = input.read_head(&mut cut(&bytes, &[7, 50]), later(), 128);
        }
    }
}
