//! Positions in text files, for errors that say `file:line:column`.

/// 1-based line and column (in characters) of a byte offset. Offsets past the
/// end or inside a multi-byte character are clamped, never a panic.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, column)
}

/// Where a parser's error span starts, or the file's start when it has
/// none (toml's and toml_edit's errors both carry an optional span).
pub fn span_start(text: &str, span: Option<std::ops::Range<usize>>) -> (usize, usize) {
    span.map_or((1, 1), |span| line_column(text, span.start))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_characters_and_clamps() {
        assert_eq!(line_column("a\nbé\nc", 5), (2, 3));
        assert_eq!(line_column("a\nbé\nc", 6), (3, 1));
        assert_eq!(line_column("é", 1), (1, 1));
        assert_eq!(line_column("ab", 99), (1, 3));
    }
}
