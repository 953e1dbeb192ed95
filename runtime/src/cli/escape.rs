//! Text from elsewhere (providers, container logs, remote servers, files,
//! arguments) made harmless for a terminal: every character that could
//! control one is shown as a visible escape instead (`\x1b`, `\r`, `\u{9b}`,
//! `\u{202e}`), so text can neither move the cursor, erase, retitle the
//! window, hide what follows, nor reorder what is shown (Trojan Source).
//!
//! Escaped: C0 controls, DEL, C1 controls (U+0080–U+009F, which some
//! terminals obey like `ESC [`), the bidirectional embeddings, overrides,
//! isolates and marks (U+202A–U+202E, U+2066–U+2069, U+200E, U+200F,
//! U+061C), and the line and paragraph separators (U+2028, U+2029).
//! A tab is escaped too (it moves the cursor); a newline only where a text is
//! one line ([`Lines::Escape`]). Backslashes are not doubled: the escapes are
//! for eyes, not for parsing.

use std::fmt;

/// Whether `\n` is printed as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    /// Multi-line text: our own messages and whole outputs.
    Keep,
    /// One field on one line (an id, a reason, a log line): a newline could
    /// start a line that looks like ours.
    Escape,
}

/// Whether `c` is shown as an escape.
pub fn is_control(c: char, lines: Lines) -> bool {
    match c {
        '\n' => lines == Lines::Escape,
        '\0'..='\x1f' | '\x7f' | '\u{80}'..='\u{9f}' => true,
        '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => {
            true
        }
        '\u{2028}' | '\u{2029}' => true,
        _ => false,
    }
}

/// Writes `text` with every control shown as an escape.
pub fn write(out: &mut dyn fmt::Write, text: &str, lines: Lines) -> fmt::Result {
    let mut rest = text;
    while let Some((at, c)) = rest.char_indices().find(|(_, c)| is_control(*c, lines)) {
        out.write_str(&rest[..at])?;
        match c {
            '\n' => out.write_str("\\n")?,
            '\t' => out.write_str("\\t")?,
            '\r' => out.write_str("\\r")?,
            c if c.is_ascii() => write!(out, "\\x{:02x}", c as u32)?,
            c => write!(out, "\\u{{{:x}}}", c as u32)?,
        }
        rest = &rest[at + c.len_utf8()..];
    }
    out.write_str(rest)
}

/// One field of foreign text, escaped to stay on its line; padding
/// (`{:<22}`) applies to what is shown.
pub fn one_line(text: &str) -> OneLine<'_> {
    OneLine(text)
}

pub struct OneLine<'a>(&'a str);

impl fmt::Display for OneLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.0.chars().any(|c| is_control(c, Lines::Escape)) {
            return f.pad(self.0);
        }
        let mut shown = String::with_capacity(self.0.len() + 8);
        write(&mut shown, self.0, Lines::Escape)?;
        f.pad(&shown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(text: &str, lines: Lines) -> String {
        let mut out = String::new();
        write(&mut out, text, lines).unwrap();
        out
    }

    #[test]
    fn every_code_point_class() {
        // C0: all but \n in multi-line text; that too in one line.
        for c in (0u32..0x20).filter_map(char::from_u32) {
            assert_eq!(is_control(c, Lines::Keep), c != '\n', "{c:?}");
            assert!(is_control(c, Lines::Escape), "{c:?}");
        }
        assert!(is_control('\x7f', Lines::Keep));
        // C1.
        for c in (0x80u32..=0x9f).filter_map(char::from_u32) {
            assert!(is_control(c, Lines::Keep), "{c:?}");
        }
        // Bidi controls and separators.
        for c in [
            0x61c, 0x200e, 0x200f, 0x202a, 0x202b, 0x202c, 0x202d, 0x202e, 0x2066, 0x2067, 0x2068,
            0x2069, 0x2028, 0x2029,
        ] {
            assert!(is_control(char::from_u32(c).unwrap(), Lines::Keep), "{c:x}");
        }
        // Printable ASCII, Latin-1 after C1, and the rest of Unicode stay.
        for c in (0x20u32..0x7f)
            .chain(0xa0..0x250)
            .chain([0x200d, 0x2030, 0x2065, 0x206a, 0x2713, 0x1f600])
            .filter_map(char::from_u32)
        {
            assert!(!is_control(c, Lines::Escape), "{c:?}");
        }
    }

    #[test]
    fn controls_are_shown_not_obeyed() {
        assert_eq!(
            escaped("\x1b]0;owned\x07ok\r\x1b[2KSUPPORTED", Lines::Keep),
            "\\x1b]0;owned\\x07ok\\r\\x1b[2KSUPPORTED"
        );
        assert_eq!(
            escaped("a\u{9b}31mb\u{7f}\u{202e}cba\u{2069}", Lines::Keep),
            "a\\u{9b}31mb\\x7f\\u{202e}cba\\u{2069}"
        );
        assert_eq!(
            escaped("two\nlines\tand tab", Lines::Keep),
            "two\nlines\\tand tab"
        );
        assert_eq!(
            escaped("two\nlines\tand tab", Lines::Escape),
            "two\\nlines\\tand tab"
        );
        assert_eq!(escaped("naïve ✓ 日本", Lines::Escape), "naïve ✓ 日本");
    }

    #[test]
    fn one_line_pads_what_is_shown() {
        assert_eq!(format!("[{:<6}]", one_line("a\nb")), "[a\\nb  ]");
        assert_eq!(format!("[{:<4}]", one_line("ab")), "[ab  ]");
    }
}
