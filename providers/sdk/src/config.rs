//! Reading `[mining.extra]` values the way OpenJarvis does: lenient about
//! how a value was written (`8000` or `"8000"`), strict about what it means.

use crate::types::{Error, ExtraValue, MiningConfig};

impl MiningConfig {
    pub fn extra(&self, key: &str) -> Option<&ExtraValue> {
        self.extra.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// A text value (numbers and booleans are accepted as their text);
    /// empty text counts as unset.
    pub fn extra_text(&self, key: &str) -> Option<String> {
        let text = match self.extra(key)? {
            ExtraValue::Text(text) => text.clone(),
            ExtraValue::Integer(n) => n.to_string(),
            ExtraValue::Float(x) => x.to_string(),
            ExtraValue::Boolean(b) => b.to_string(),
            ExtraValue::Texts(_) => return None,
        };
        (!text.trim().is_empty()).then(|| text.trim().to_owned())
    }

    pub fn extra_text_or(&self, key: &str, default: &str) -> String {
        self.extra_text(key).unwrap_or_else(|| default.to_owned())
    }

    /// An integer in `range`, or an `invalid` error naming the key.
    pub fn extra_integer(
        &self,
        key: &str,
        default: i64,
        range: std::ops::RangeInclusive<i64>,
    ) -> Result<i64, Error> {
        let value = match self.extra(key) {
            None => default,
            Some(ExtraValue::Integer(n)) => *n,
            Some(ExtraValue::Text(text)) => {
                text.trim().parse().map_err(|_| invalid_number(key, text))?
            }
            Some(_) => {
                return Err(Error::Invalid(format!(
                    "[mining.extra].{key} must be an integer"
                )));
            }
        };
        in_range(key, value, range)
    }

    /// A number in `range`, or an `invalid` error naming the key.
    pub fn extra_float(
        &self,
        key: &str,
        default: f64,
        range: std::ops::RangeInclusive<f64>,
    ) -> Result<f64, Error> {
        let value = match self.extra(key) {
            None => default,
            Some(ExtraValue::Float(x)) => *x,
            Some(ExtraValue::Integer(n)) => *n as f64,
            Some(ExtraValue::Text(text)) => {
                text.trim().parse().map_err(|_| invalid_number(key, text))?
            }
            Some(_) => {
                return Err(Error::Invalid(format!(
                    "[mining.extra].{key} must be a number"
                )));
            }
        };
        in_range(key, value, range)
    }
}

fn in_range<T: PartialOrd + std::fmt::Display>(
    key: &str,
    value: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, Error> {
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(Error::Invalid(format!(
            "[mining.extra].{key} = {value} is out of range ({}..={})",
            range.start(),
            range.end()
        )))
    }
}

fn invalid_number(key: &str, text: &str) -> Error {
    Error::Invalid(format!(
        "[mining.extra].{key} must be a number, got {text:?}"
    ))
}
