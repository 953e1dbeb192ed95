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

/// Standard output as the commands write to it (colour stripped off a terminal).
pub type Stdout = anstream::AutoStream<std::io::StdoutLock<'static>>;

/// Prints a command's result: pretty JSON with `--json`, else `text` writes
/// the human form.
pub fn print<T: serde::Serialize>(
    json: bool,
    value: &T,
    text: impl FnOnce(&mut Stdout, &T) -> std::io::Result<()>,
) -> Result<(), super::CliError> {
    let mut out = anstream::stdout().lock();
    let written = if json {
        let json = serde_json::to_string_pretty(value).expect("command results serialize");
        writeln!(out, "{json}")
    } else {
        text(&mut out, value)
    };
    written.map_err(super::output_error)
}
