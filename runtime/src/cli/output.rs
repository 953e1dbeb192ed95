//! Terminal output: colour only on a terminal, and never with NO_COLOR; and
//! the one way text reaches the terminal, so that none of it can control it.
//!
//! Everything the commands print goes through an [`Escaping`] writer
//! ([`stdout`], [`stderr`], [`print`], [`error`], this module's `println!`
//! and `eprintln!`, the log), which shows every control character as an
//! escape (`escape.rs`), whoever wrote the text: a provider, a container, a
//! server, a file, an argument. The only bytes that pass unescaped are the
//! style codes [`paint`] emits while it is formatted straight into such a
//! writer; a thread-local flag marks them, and no text can set it. Painted
//! text formatted into a `String` first loses its colour, not its safety.

use super::escape::{self, Lines};
use anstyle::{AnsiColor, Style};
use std::cell::Cell;
use std::fmt;
use std::io::{self, Write};

pub const HEADING: Style = Style::new().bold();
pub const GOOD: Style = AnsiColor::Green.on_default().bold();
pub const BAD: Style = AnsiColor::Red.on_default().bold();
pub const DIM: Style = Style::new().dimmed();
pub const WARN: Style = AnsiColor::Yellow.on_default().bold();

thread_local! {
    /// Set while an `Escaping` writer formats its arguments.
    static FORMATTING: Cell<bool> = const { Cell::new(false) };
    /// Set while `paint` writes its own style codes into that writer.
    static STYLE_CODES: Cell<bool> = const { Cell::new(false) };
}

/// A writer that shows every control character it is given as an escape
/// (keeping `\n`), except [`paint`]'s style codes.
pub struct Escaping<W> {
    inner: W,
}

impl<W: Write> Escaping<W> {
    pub fn new(inner: W) -> Self {
        Escaping { inner }
    }
}

impl<W: Write> Write for Escaping<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if STYLE_CODES.get() {
            self.inner.write_all(buf)?;
            return Ok(buf.len());
        }
        let mut out = FmtToIo {
            inner: &mut self.inner,
            error: None,
        };
        let mut shown = || -> fmt::Result {
            for chunk in buf.utf8_chunks() {
                escape::write(&mut out, chunk.valid(), Lines::Keep)?;
                for byte in chunk.invalid() {
                    fmt::Write::write_fmt(&mut out, format_args!("\\x{byte:02x}"))?;
                }
            }
            Ok(())
        };
        match shown() {
            Ok(()) => Ok(buf.len()),
            Err(fmt::Error) => Err(out
                .error
                .take()
                .unwrap_or_else(|| io::Error::other("formatting failed"))),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }

    fn write_fmt(&mut self, args: fmt::Arguments<'_>) -> io::Result<()> {
        let outer = FORMATTING.replace(true);
        let mut out = FmtToIo {
            inner: self,
            error: None,
        };
        let result = fmt::write(&mut out, args);
        FORMATTING.set(outer);
        match result {
            Ok(()) => Ok(()),
            Err(fmt::Error) => Err(out
                .error
                .take()
                .unwrap_or_else(|| io::Error::other("formatting failed"))),
        }
    }
}

/// `fmt::Write` over an `io::Write`, keeping the I/O error.
struct FmtToIo<'a, W: Write> {
    inner: &'a mut W,
    error: Option<io::Error>,
}

impl<W: Write> fmt::Write for FmtToIo<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.inner.write_all(s.as_bytes()).map_err(|err| {
            self.error = Some(err);
            fmt::Error
        })
    }
}

/// Standard output as the commands write to it (escaped; colour stripped
/// off a terminal).
pub type Stdout = Escaping<anstream::AutoStream<io::StdoutLock<'static>>>;
pub type Stderr = Escaping<anstream::AutoStream<io::StderrLock<'static>>>;

pub fn stdout() -> Stdout {
    Escaping::new(anstream::stdout().lock())
}

pub fn stderr() -> Stderr {
    Escaping::new(anstream::stderr().lock())
}

/// `println!` through [`stdout`]; a failed write is not worth a panic.
macro_rules! escaped_println {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!($crate::cli::output::stdout(), $($arg)*);
    }};
}

/// `eprintln!` through [`stderr`].
macro_rules! escaped_eprintln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!($crate::cli::output::stderr(), $($arg)*);
    }};
}

pub(crate) use escaped_eprintln as eprintln;
pub(crate) use escaped_println as println;

/// `Error: <message>` on stderr, as the reference prints it.
pub fn error(message: &str) {
    let _ = writeln!(stderr(), "{} {message}", paint(BAD, "Error:"));
}

/// `text` in `style`, when written into an [`Escaping`] writer (stripped
/// later by anstream when colour is off); padding applies to the text.
pub fn paint<T: fmt::Display>(style: Style, text: T) -> Painted<T> {
    Painted { style, text }
}

pub struct Painted<T> {
    style: Style,
    text: T,
}

impl<T: fmt::Display> fmt::Display for Painted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !FORMATTING.get() {
            return fmt::Display::fmt(&self.text, f);
        }
        style_codes(|| write!(f, "{}", self.style.render()))?;
        fmt::Display::fmt(&self.text, f)?;
        style_codes(|| write!(f, "{}", self.style.render_reset()))
    }
}

/// Terminal codes of our own, which the escaping writer passes.
pub struct Codes(&'static str);

/// Clears the screen and homes the cursor (`status --watch`).
pub const CLEAR_SCREEN: Codes = Codes("\x1b[2J\x1b[H");

impl fmt::Display for Codes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !FORMATTING.get() {
            return Ok(());
        }
        style_codes(|| f.write_str(self.0))
    }
}

fn style_codes(write: impl FnOnce() -> fmt::Result) -> fmt::Result {
    STYLE_CODES.set(true);
    let result = write();
    STYLE_CODES.set(false);
    result
}

/// `value` as JSON (pretty or one line) that decodes to the exact text and
/// holds no terminal control: serde escapes C0 controls, and the rest (DEL,
/// C1, bidi controls) become `\uXXXX` escapes, which only occur in strings.
/// `7.20 MJ`, `900 J`: three significant digits with an SI prefix.
pub fn si_joules(joules: f64) -> String {
    let (value, prefix) = [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")]
        .into_iter()
        .find(|(scale, _)| joules.abs() >= *scale)
        .map_or((joules, ""), |(scale, prefix)| (joules / scale, prefix));
    let decimals = match value.abs() {
        v if v >= 100.0 => 0,
        v if v >= 10.0 => 1,
        _ => 2,
    };
    format!("{value:.decimals$} {prefix}J")
}

pub fn json<T: serde::Serialize>(value: &T, pretty: bool) -> String {
    let text = if pretty {
        serde_json::to_string_pretty(value)
    } else {
        serde_json::to_string(value)
    }
    .expect("command results serialize");
    if !text.chars().any(|c| escape::is_control(c, Lines::Keep)) {
        return text;
    }
    let mut escaped = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if escape::is_control(c, Lines::Keep) {
            // All such characters are in the Basic Multilingual Plane.
            escaped.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            escaped.push(c);
        }
    }
    escaped
}

/// Prints a command's result: pretty JSON with `--json` (exact, see
/// [`json`]), else `text` writes the human form.
pub fn print<T: serde::Serialize>(
    json: bool,
    value: &T,
    text: impl FnOnce(&mut Stdout, &T) -> io::Result<()>,
) -> Result<(), super::CliError> {
    let mut out = stdout();
    let written = if json {
        writeln!(out, "{}", self::json(value, true))
    } else {
        text(&mut out, value)
    };
    written.map_err(super::output_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joules_read_with_a_prefix() {
        assert_eq!(si_joules(900.0), "900 J");
        assert_eq!(si_joules(1.5), "1.50 J");
        assert_eq!(si_joules(12_345.0), "12.3 kJ");
        assert_eq!(si_joules(7_200_000.0), "7.20 MJ");
        assert_eq!(si_joules(3.6e12), "3.60 TJ");
    }

    fn shown(write: impl FnOnce(&mut Escaping<&mut Vec<u8>>) -> io::Result<()>) -> String {
        let mut bytes = Vec::new();
        write(&mut Escaping::new(&mut bytes)).unwrap();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn foreign_text_is_escaped_and_only_paint_styles() {
        let hostile = "\x1b[8mhidden\x1b]0;title\x07\r\u{9b}2K";
        let out = shown(|out| writeln!(out, "{} {hostile}", paint(GOOD, "ok")));
        let ok = format!("{}ok{}", GOOD.render(), GOOD.render_reset());
        assert_eq!(
            out,
            format!("{ok} \\x1b[8mhidden\\x1b]0;title\\x07\\r\\u{{9b}}2K\n")
        );
        // Inside paint too: only the codes are ours.
        let out = shown(|out| write!(out, "{}", paint(BAD, hostile)));
        assert!(out.starts_with(&BAD.render().to_string()));
        assert!(out.contains("\\x1b[8mhidden"), "{out}");
        // Raw writes and invalid UTF-8 are escaped as well.
        let out = shown(|out| out.write_all(b"a\x1bb\xff\n"));
        assert_eq!(out, "a\\x1bb\\xff\n");
    }

    #[test]
    fn json_is_exact_and_inert() {
        let text = "a\x1b[2K\t\u{7f}\u{9b}\u{202e}\u{2028}é";
        let shown = json(&serde_json::json!({ "t": text }), false);
        assert_eq!(shown, r#"{"t":"a\u001b[2K\t\u007f\u009b\u202e\u2028é"}"#);
        let back: serde_json::Value = serde_json::from_str(&shown).unwrap();
        assert_eq!(back["t"], text);
    }

    #[test]
    fn painted_text_outside_the_writer_is_plain() {
        let text = format!("{} - {:<4}|", paint(BAD, "ERROR"), paint(DIM, "x"));
        assert_eq!(text, "ERROR - x   |");
        // Formatted into a String inside a write, the codes are text, shown escaped.
        let out = shown(|out| {
            struct Nested;
            impl fmt::Display for Nested {
                fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str(&paint(BAD, "x").to_string())
                }
            }
            write!(out, "{Nested}")
        });
        assert!(!out.contains('\x1b'), "{out:?}");
    }
}
