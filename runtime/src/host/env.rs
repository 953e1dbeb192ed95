//! Environment variables a provider gives a container or a process:
//! literals and secret references, checked as text before the policy is
//! asked; secret values are read only after the policy's permit.

use crate::bindings::openjarvis::mining::types::{EnvValue, Error};

/// A provider's variables, checked.
pub struct Env {
    /// Names and values; a secret's value is empty until [`Env::resolve`].
    pub vars: Vec<(String, String)>,
    /// `(index into vars, host variable, required)`.
    secrets: Vec<(usize, String, bool)>,
}

/// `[A-Za-z_][A-Za-z0-9_]*`, at most 255 bytes.
pub fn valid_name(name: &str) -> bool {
    name.len() <= 255
        && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Env {
    /// Checks each variable: `check_name` says why a name is refused, a
    /// literal is at most `max_value` bytes without NUL, and a secret names
    /// a valid host variable.
    pub fn parse(
        env: Vec<(String, EnvValue)>,
        max_value: usize,
        check_name: impl Fn(&str) -> Result<(), Error>,
    ) -> Result<Env, Error> {
        let mut vars = Vec::with_capacity(env.len());
        let mut secrets = Vec::new();
        for (name, value) in env {
            check_name(&name)?;
            let value = match value {
                EnvValue::Text(text) if text.len() <= max_value && !text.contains('\0') => text,
                EnvValue::Text(_) => {
                    return Err(Error::Invalid(format!(
                        "the value of {name} is longer than {max_value} bytes or holds a NUL"
                    )));
                }
                EnvValue::Secret(var) | EnvValue::OptionalSecret(var) if !valid_name(&var) => {
                    return Err(Error::Invalid(format!(
                        "the secret variable name of {name} is not valid"
                    )));
                }
                EnvValue::Secret(var) => {
                    secrets.push((vars.len(), var, true));
                    String::new()
                }
                EnvValue::OptionalSecret(var) => {
                    secrets.push((vars.len(), var, false));
                    String::new()
                }
            };
            vars.push((name, value));
        }
        Ok(Env { vars, secrets })
    }

    pub fn names(&self) -> Vec<String> {
        self.vars.iter().map(|(name, _)| name.clone()).collect()
    }

    /// The host variables referenced as secrets.
    pub fn secrets(&self) -> Vec<String> {
        self.secrets.iter().map(|(_, var, _)| var.clone()).collect()
    }

    /// Reads the referenced secrets (call only once the policy granted
    /// them); an unset required one is `missing(variable)`.
    pub fn resolve(
        mut self,
        missing: impl Fn(&str) -> Error,
    ) -> Result<Vec<(String, String)>, Error> {
        for (index, var, required) in &self.secrets {
            self.vars[*index].1 = match std::env::var(var) {
                Ok(value) => value,
                Err(_) if !required => String::new(),
                Err(_) => return Err(missing(var)),
            };
        }
        Ok(self.vars)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn any_name(_: &str) -> Result<(), Error> {
        Ok(())
    }

    #[test]
    fn literals_and_references_are_checked_and_secrets_stay_empty_until_resolved() {
        let env = Env::parse(
            vec![
                ("A".into(), EnvValue::Text("1".into())),
                ("B".into(), EnvValue::Secret("HOME".into())),
                (
                    "C".into(),
                    EnvValue::OptionalSecret("JARVIS_TEST_SURELY_UNSET".into()),
                ),
            ],
            16,
            any_name,
        )
        .unwrap();
        assert_eq!(env.names(), ["A", "B", "C"]);
        assert_eq!(env.secrets(), ["HOME", "JARVIS_TEST_SURELY_UNSET"]);
        assert_eq!(env.vars[1].1, "");
        let vars = env.resolve(|_| Error::Failed("missing".into())).unwrap();
        assert_eq!(vars[1].1, std::env::var("HOME").unwrap());
        assert_eq!(vars[2].1, "");
    }

    #[test]
    fn bad_values_and_references_are_invalid() {
        for value in [
            EnvValue::Text("x".repeat(17)),
            EnvValue::Text("a\0b".into()),
            EnvValue::Secret("NOT A NAME".into()),
            EnvValue::OptionalSecret("".into()),
        ] {
            let parsed = Env::parse(vec![("A".into(), value)], 16, any_name);
            assert!(matches!(parsed, Err(Error::Invalid(_))));
        }
        let required = Env::parse(
            vec![(
                "A".into(),
                EnvValue::Secret("JARVIS_TEST_SURELY_UNSET".into()),
            )],
            16,
            any_name,
        )
        .unwrap();
        assert!(matches!(
            required.resolve(|var| Error::Unavailable(var.into())),
            Err(Error::Unavailable(v)) if v == "JARVIS_TEST_SURELY_UNSET"
        ));
    }
}
