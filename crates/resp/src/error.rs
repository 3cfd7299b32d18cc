//! Protocol errors. Their `Display` is the text after `-ERR ` that Redis itself would send.

/// A request or reply that is not valid RESP (or exceeds a configured limit). The connection it
/// came from cannot be trusted to stay in sync and must be closed after the error is reported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// `*<n>` with n not a valid count.
    #[error("Protocol error: invalid multibulk length")]
    InvalidMultibulkLength,
    /// `$<n>` with n not a valid length, or above the limit.
    #[error("Protocol error: invalid bulk length")]
    InvalidBulkLength,
    /// A multibulk element that is not a bulk string.
    #[error("Protocol error: expected '$', got '{0}'")]
    ExpectedBulk(char),
    /// An inline request longer than the limit without a newline.
    #[error("Protocol error: too big inline request")]
    InlineTooBig,
    /// Quotes that do not close in an inline request.
    #[error("Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
    /// A request bigger than `max_frame_bytes`.
    #[error("Protocol error: request larger than the proxy's max_frame_bytes")]
    FrameTooLarge,
    /// A reply byte that starts no RESP type, or a malformed reply header.
    #[error("Protocol error: invalid reply from server (type byte {0:#04x})")]
    InvalidReply(u8),
    /// A line without its `\r\n`, or a number that does not parse.
    #[error("Protocol error: invalid line")]
    InvalidLine,
}
