//! The error every query parameter's parser returns, and the macro that
//! declares a closed set of wire names (presets, columns, operators, …) with
//! a parser whose error names the parameter and lists what is accepted.

/// A query parameter a client got wrong: which one, what was wrong and what
/// is accepted, in words a client can act on (the server answers `400`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid `{param}`: {message}")]
pub struct ParseQueryError {
    /// The query parameter at fault, e.g. `filter` or `tz`.
    pub param: String,
    /// What was wrong and what is accepted.
    pub message: String,
}

impl ParseQueryError {
    pub(super) fn new(param: &str, message: impl Into<String>) -> Self {
        ParseQueryError {
            param: param.to_owned(),
            message: message.into(),
        }
    }
}

/// Quotes client input for an error message, shortened so that a huge
/// parameter cannot turn into a huge error response.
pub(super) fn quoted(s: &str) -> String {
    const MAX_CHARS: usize = 64;
    match s.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("`{}…`", &s[..cut]),
        None => format!("`{s}`"),
    }
}

/// Declares a closed set of wire names: the enum, `ALL`, `as_str`, `Display`
/// and a `FromStr` whose error names the parameter and lists what is accepted.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident (param = $param:literal, what = $what:literal) {
            $($(#[$vmeta:meta])* $variant:ident => $wire:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in the order the documentation lists them.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The wire name, as accepted in a URL.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire,)+
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::query::error::ParseQueryError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($wire => Ok($name::$variant),)+
                    _ => {
                        let accepted: Vec<&str> = $name::ALL.iter().map(|v| v.as_str()).collect();
                        Err($crate::query::error::ParseQueryError::new(
                            $param,
                            format!(
                                "unknown {} {}; accepted: {}",
                                $what,
                                $crate::query::error::quoted(s),
                                accepted.join(", ")
                            ),
                        ))
                    }
                }
            }
        }
    };
}

pub(super) use wire_enum;
