//! One problem in a configuration, named by its field: shared by the
//! configuration's validation and the policies that parse their own part of
//! it (freeze periods), so neither depends on the other.

use std::fmt;

/// One validation problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted path of the field, e.g. `environments.prod.schedule`.
    pub path: String,
    pub message: String,
    /// What to write instead.
    pub hint: Option<String>,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, " ({hint})")?;
        }
        Ok(())
    }
}
