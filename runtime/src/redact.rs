//! Secret redaction for anything that leaves the host: container logs, error
//! messages from the Docker daemon, audit records.
//!
//! A [`Redactor`] replaces, with `[REDACTED]`:
//!
//! 1. every occurrence of each known secret value (the resolved
//!    `PEARLD_RPC_PASSWORD`, `HF_TOKEN`, ...), longest first, wherever it
//!    appears;
//! 2. whatever follows the well-known secret *names* (reference §3.4, plus the
//!    `HF_TOKEN` forms the reference forgot), so a secret is hidden even when
//!    the redactor was not told its value (another session's password, a value
//!    changed since):
//!    - `rpc_password:` + optional whitespace + a non-space run (any case);
//!    - `PEARLD_RPC_PASSWORD=` / `HF_TOKEN=` + a non-space run (any case);
//!    - JSON `"PEARLD_RPC_PASSWORD": "<value>"` / `"HF_TOKEN": "<value>"`
//!      (the value inside the quotes; the quotes are kept).
//!
//! Which values count as secrets by value: a value is redacted wherever it
//! appears only if it is at least [`MIN_SECRET_LEN`] characters long. An empty
//! value would match between every two characters, and a one- to
//! three-character value ("1", "abc") would shred unrelated text while
//! protecting nothing (it is guessed instantly). Such short values are still
//! hidden where the name patterns above see them. A value with surrounding
//! whitespace (read from a file with its newline) is also matched trimmed.

use std::borrow::Cow;
use std::fmt;
use std::sync::LazyLock;

use regex::{Regex, RegexBuilder};

/// What a redacted value becomes.
pub const REDACTED: &str = "[REDACTED]";

/// Shorter secret values are not redacted by value (see the module docs).
pub const MIN_SECRET_LEN: usize = 4;

/// `(pattern, replacement)`: group 1 is kept before the value, group 3 (when
/// present) after it.
static NAME_PATTERNS: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    let build = |pattern: &str| {
        RegexBuilder::new(pattern)
            .case_insensitive(true)
            .build()
            .expect("redaction pattern compiles")
    };
    vec![
        (build(r"(rpc_password:\s*)\S+"), "${1}[REDACTED]"),
        (build(r"(PEARLD_RPC_PASSWORD=)\S+"), "${1}[REDACTED]"),
        (
            build(r#"("PEARLD_RPC_PASSWORD"\s*:\s*")((?:[^"\\]|\\.)+)(")"#),
            "${1}[REDACTED]${3}",
        ),
        (build(r"(HF_TOKEN=)\S+"), "${1}[REDACTED]"),
        (
            build(r#"("HF_TOKEN"\s*:\s*")((?:[^"\\]|\\.)+)(")"#),
            "${1}[REDACTED]${3}",
        ),
    ]
});

/// Hides secrets in text. Cheap to clone; never prints the values it holds.
#[derive(Clone, Default)]
pub struct Redactor {
    /// The secret values, longest first (so a secret containing another is
    /// replaced whole).
    values: Vec<String>,
    /// One alternation of all `values`; `None` when there are none.
    matcher: Option<Regex>,
}

impl Redactor {
    /// A redactor for these secret values plus the name patterns. Empty and
    /// short values are ignored as values (see the module docs).
    pub fn new<I, S>(secret_values: I) -> Redactor
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut values: Vec<String> = Vec::new();
        for value in secret_values {
            let value = value.as_ref();
            for candidate in [value, value.trim()] {
                if candidate.chars().count() >= MIN_SECRET_LEN
                    && !values.iter().any(|known| known == candidate)
                {
                    values.push(candidate.to_owned());
                }
            }
        }
        values.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        let matcher = (!values.is_empty()).then(|| {
            let alternation: Vec<String> = values.iter().map(|v| regex::escape(v)).collect();
            Regex::new(&alternation.join("|")).expect("escaped alternation compiles")
        });
        Redactor { values, matcher }
    }

    /// A redactor that knows no values and applies only the name patterns.
    /// Redacts the current values of the host environment variables
    /// `names` (the secrets a container or process was given).
    pub fn for_variables<'a>(names: impl IntoIterator<Item = &'a str>) -> Redactor {
        Redactor::new(
            names
                .into_iter()
                .filter(|n| !n.is_empty())
                .filter_map(|name| std::env::var(name).ok()),
        )
    }

    pub fn patterns_only() -> Redactor {
        Redactor::default()
    }

    /// How many secret values this redactor replaces by value.
    pub fn value_count(&self) -> usize {
        self.values.len()
    }

    /// `text` with every secret replaced by `[REDACTED]`; borrowed when
    /// nothing needed hiding.
    pub fn redact<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let mut out = Cow::Borrowed(text);
        if let Some(matcher) = &self.matcher
            && let Cow::Owned(replaced) = matcher.replace_all(&out, REDACTED)
        {
            out = Cow::Owned(replaced);
        }
        for (pattern, replacement) in NAME_PATTERNS.iter() {
            if let Cow::Owned(replaced) = pattern.replace_all(&out, *replacement) {
                out = Cow::Owned(replaced);
            }
        }
        out
    }

    /// [`redact`](Self::redact) into an owned string.
    pub fn redact_owned(&self, text: &str) -> String {
        self.redact(text).into_owned()
    }
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor")
            .field("values", &format_args!("<{} hidden>", self.values.len()))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "s3cr3t-pw";

    fn count(text: &str) -> usize {
        text.matches(REDACTED).count()
    }

    #[test]
    fn the_three_reference_forms_give_exactly_three_redactions() {
        let log = format!(
            "gateway settings rpc_password: {SECRET}\n\
             gateway config: PEARLD_RPC_PASSWORD={SECRET}\n\
             {{\"PEARLD_RPC_PASSWORD\": \"{SECRET}\"}}\n"
        );
        for redactor in [Redactor::new([SECRET]), Redactor::patterns_only()] {
            let out = redactor.redact(&log);
            assert_eq!(count(&out), 3, "{out}");
            assert!(!out.contains(SECRET), "{out}");
            assert!(
                out.contains(r#"{"PEARLD_RPC_PASSWORD": "[REDACTED]"}"#),
                "{out}"
            );
        }
    }

    #[test]
    fn rpc_password_is_matched_in_any_case_and_without_space() {
        let out = Redactor::patterns_only().redact("RPC_Password:hunter22 next");
        assert_eq!(out, "RPC_Password:[REDACTED] next");
    }

    #[test]
    fn hf_token_forms_are_redacted() {
        let token = "hf_abcdefghijklmnop";
        let log = format!(
            "hub login with HF_TOKEN={token}\n{{\"PEARLD_RPC_PASSWORD\": \"x\", \"HF_TOKEN\": \"{token}\"}}\n"
        );
        for redactor in [Redactor::new([token]), Redactor::patterns_only()] {
            let out = redactor.redact(&log);
            assert!(!out.contains(token), "{out}");
            assert!(out.contains("HF_TOKEN=[REDACTED]"), "{out}");
            assert!(out.contains(r#""HF_TOKEN": "[REDACTED]""#), "{out}");
        }
    }

    #[test]
    fn a_secret_value_is_redacted_anywhere() {
        let redactor = Redactor::new([SECRET]);
        let text = format!("connecting as rpcuser:{SECRET}@localhost ({SECRET})");
        let out = redactor.redact(&text);
        assert_eq!(
            out,
            "connecting as rpcuser:[REDACTED]@localhost ([REDACTED])"
        );
    }

    #[test]
    fn an_empty_secret_redacts_nothing() {
        let redactor = Redactor::new([""]);
        assert_eq!(redactor.value_count(), 0);
        let text = "Block accepted by node!\nINFO: Uvicorn running on http://0.0.0.0:8000";
        assert!(matches!(redactor.redact(text), Cow::Borrowed(_)));
    }

    #[test]
    fn empty_values_in_the_name_forms_stay_as_they_are() {
        let text = "PEARLD_RPC_PASSWORD=\n{\"HF_TOKEN\": \"\"}\nhub login with HF_TOKEN=";
        assert_eq!(Redactor::new(["", ""]).redact(text), text);
    }

    #[test]
    fn short_values_are_only_hidden_by_the_name_patterns() {
        let redactor = Redactor::new(["abc"]);
        assert_eq!(redactor.value_count(), 0);
        assert_eq!(redactor.redact("abc abc"), "abc abc");
        assert_eq!(
            redactor.redact("PEARLD_RPC_PASSWORD=abc"),
            "PEARLD_RPC_PASSWORD=[REDACTED]"
        );
    }

    #[test]
    fn the_longest_secret_wins_and_trimmed_values_match() {
        let redactor = Redactor::new(["pass", "password1\n"]);
        assert_eq!(redactor.redact("password1 pass"), "[REDACTED] [REDACTED]");
    }

    #[test]
    fn text_without_secrets_is_borrowed() {
        let redactor = Redactor::new([SECRET]);
        assert!(matches!(
            redactor.redact("Submitting block"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn debug_never_prints_values() {
        let shown = format!("{:?}", Redactor::new([SECRET]));
        assert!(!shown.contains(SECRET), "{shown}");
    }
}
