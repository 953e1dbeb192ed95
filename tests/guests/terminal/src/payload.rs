/// Terminal controls a hostile provider puts in its texts (shared with the
/// tests, which look for it escaped in human output and exact in JSON):
/// an OSC window title, carriage return plus CSI erase-line and a fake
/// verdict, C1 CSI and OSC, DEL, SGR conceal, bidi override and isolate,
/// backspace, NUL and a tab.
pub const PAYLOAD: &str = "\x1b]0;owned title\x07\r\x1b[2K  terminal               SUPPORTED\u{9b}2K\u{9d}0;c1 title\u{9c}\x7f\x1b[8m\u{202e}desrever\u{202c}\u{2066}isolated\u{2069}\x08\x00\ttab";
