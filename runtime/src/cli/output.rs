//! Terminal output: colour only on a terminal, and never with NO_COLOR.

use anstyle::{AnsiColor, Style};
use std::io::{IsTerminal, Write};

pub const HEADING: Style = Style::new().bold();
pub const GOOD: Style = AnsiColor::Green.on_default().bold();
pub const BAD: Style = AnsiColor::Red.on_default().bold();
pub const DIM: Style = Style::new().dimmed();

pub fn stderr_is_colored() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// `Error: <message>` on stderr, as the reference prints it.
pub fn error(message: &str) {
    let mut err = anstream::stderr();
    let _ = writeln!(err, "{BAD}Error:{BAD:#} {message}");
}

/// Wraps `text` in `style` (stripped later by anstream when colour is off).
pub fn paint(style: Style, text: &str) -> String {
    format!("{style}{text}{style:#}")
}
