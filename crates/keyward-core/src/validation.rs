//! Input that failed validation: every invalid field, named as the API spells it, so an HTTP
//! layer can answer 422 naming it.

use std::fmt;

/// One invalid field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field's name as the API spells it, e.g. `name` or `allowed_ips`.
    pub field: &'static str,
    /// What is wrong, safe to show to the caller.
    pub message: String,
}

/// Input that failed validation: every invalid field with a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationError {
    errors: Vec<FieldError>,
}

impl ValidationError {
    /// An error about a single field.
    #[must_use]
    pub fn field(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            errors: vec![FieldError {
                field,
                message: message.into(),
            }],
        }
    }

    /// Every invalid field, in the order checked.
    #[must_use]
    pub fn errors(&self) -> &[FieldError] {
        &self.errors
    }

    /// The first invalid field.
    #[must_use]
    pub fn first_field(&self) -> &'static str {
        self.errors.first().map_or("", |e| e.field)
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", e.field, e.message)?;
        }
        Ok(())
    }
}

#[derive(Default)]
pub(crate) struct Errors(Vec<FieldError>);

impl Errors {
    pub(crate) fn push(&mut self, field: &'static str, message: impl Into<String>) {
        self.0.push(FieldError {
            field,
            message: message.into(),
        });
    }

    pub(crate) fn finish<T>(self, value: impl FnOnce() -> T) -> Result<T, ValidationError> {
        if self.0.is_empty() {
            Ok(value())
        } else {
            Err(ValidationError { errors: self.0 })
        }
    }
}
