use std::fmt;

/// An error from key handling, signing or password hashing.
///
/// The kind is boxed so that `Result<T, Error>` stays one pointer wide on the happy path.
#[derive(Debug)]
pub struct Error(Box<ErrorKind>);

/// What went wrong.
#[derive(Debug)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Key material could not be parsed, or is too weak (fewer than 2048 bits, or an
    /// exponent other than 65537).
    InvalidKey(String),
    /// Generating a key failed.
    KeyGeneration(String),
    /// Signing a token failed.
    Signing,
    /// Claims could not be serialised.
    Serialization(serde_json::Error),
    /// Hashing a password failed (the hasher rejected its parameters or input).
    PasswordHash(String),
    /// The operating system's random number generator failed.
    Randomness,
}

impl Error {
    /// The kind of this error.
    pub fn kind(&self) -> &ErrorKind {
        &self.0
    }
}

impl From<ErrorKind> for Error {
    fn from(kind: ErrorKind) -> Self {
        Error(Box::new(kind))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.0 {
            ErrorKind::InvalidKey(why) => write!(f, "invalid signing key: {why}"),
            ErrorKind::KeyGeneration(why) => write!(f, "key generation failed: {why}"),
            ErrorKind::Signing => f.write_str("signing failed"),
            ErrorKind::Serialization(e) => write!(f, "claims could not be serialised: {e}"),
            ErrorKind::PasswordHash(why) => write!(f, "password hashing failed: {why}"),
            ErrorKind::Randomness => f.write_str("the operating system's random generator failed"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &*self.0 {
            ErrorKind::Serialization(e) => Some(e),
            _ => None,
        }
    }
}

/// A value from outside (a request, a command line) that does not parse.
///
/// The message is written for the person who sent the value: it says what was expected and
/// never echoes secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    what: &'static str,
    message: String,
}

impl ParseError {
    /// A refusal of a `what` (e.g. `"trusted proxy"`), with a message that says what was
    /// expected. Crates that parse values of their own use it so that every parse error
    /// reads the same.
    pub fn new(what: &'static str, message: impl Into<String>) -> Self {
        ParseError {
            what,
            message: message.into(),
        }
    }

    /// What was being parsed, e.g. `"username"`.
    pub fn what(&self) -> &'static str {
        self.what
    }

    /// What is wrong with it, without the "invalid …:" prefix.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {}: {}", self.what, self.message)
    }
}

impl std::error::Error for ParseError {}
