//! Host errors as a provider reads, passes on and reports them.
//!
//! The generated `Display` of [`Error`] is its debug form; [`Error::message`]
//! and [`Error::describe`] are what belongs in a stats line or a log.

use crate::types::Error;

impl Error {
    /// The host's message, which says what to change.
    pub fn message(&self) -> &str {
        match self {
            Error::Denied(m) | Error::Invalid(m) | Error::Unavailable(m) | Error::Failed(m) => m,
        }
    }

    /// `denied: <message>` and so on: the kind, then the message.
    pub fn describe(&self) -> String {
        let kind = match self {
            Error::Denied(_) => "denied",
            Error::Invalid(_) => "invalid",
            Error::Unavailable(_) => "unavailable",
            Error::Failed(_) => "failed",
        };
        format!("{kind}: {}", self.message())
    }

    /// The policy (or the purity of `detect`) refused the call.
    pub fn is_denied(&self) -> bool {
        matches!(self, Error::Denied(_))
    }
}

#[cfg(test)]
mod tests {
    use super::Error;

    #[test]
    fn describes_kind_and_message() {
        let denied = Error::Denied("image 'x' is not in providers.\"p\".containers.images".into());
        assert!(denied.is_denied());
        assert_eq!(
            denied.describe(),
            "denied: image 'x' is not in providers.\"p\".containers.images"
        );
        assert_eq!(Error::Failed("boom".into()).message(), "boom");
    }
}
