//! How one setting's text becomes its value: clap value parsers whose errors are
//! [`ConfigError`]s naming the variable and what it accepts, the same whether the value came
//! from the environment, `.env` or a flag. A value is trimmed; an empty number or switch
//! means the setting's default, as if it were unset (`.env` lists every variable, some
//! empty).

use std::ffi::OsStr;
use std::fmt;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::str::FromStr;

use clap::builder::TypedValueParser;
use clap::{Arg, Command};

use super::ConfigError;

/// A secret (a password, a token, a URL with a password): never shown by `Debug`. Its
/// settings also hide their values in `--help` (`hide_env_values`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `None` for an empty value: unset.
    pub fn non_empty(secret: Option<Self>) -> Option<Self> {
        secret.filter(|s| !s.0.is_empty())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The variable a setting is read from (its id, upper-cased, once the variable is cleared).
fn name_of(arg: Option<&Arg>) -> String {
    arg.and_then(|a| a.get_env())
        .map(|env| env.to_string_lossy().into_owned())
        .or_else(|| arg.map(|a| a.get_id().as_str().to_ascii_uppercase()))
        .unwrap_or_else(|| "setting".into())
}

fn invalid(arg: Option<&Arg>, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        name: name_of(arg),
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// Hands `outcome` to clap as a value parser's result, so that clap keeps the
/// [`ConfigError`] as the error's source (see [`from_clap`]).
fn settle<T: Clone + Send + Sync + 'static>(
    outcome: Result<T, ConfigError>,
    cmd: &Command,
    arg: Option<&Arg>,
    value: &OsStr,
) -> Result<T, clap::Error> {
    let once = move |_: &str| outcome.clone();
    once.parse_ref(cmd, arg, value)
}

/// The value as trimmed UTF-8 text; an empty one is replaced by the setting's default when
/// `empty_is_default` (numbers and switches).
fn text_of(
    arg: Option<&Arg>,
    value: &OsStr,
    empty_is_default: bool,
) -> Result<String, ConfigError> {
    let text = value
        .to_str()
        .ok_or_else(|| invalid(arg, &value.to_string_lossy(), "must be UTF-8 text"))?
        .trim();
    if text.is_empty()
        && empty_is_default
        && let Some(default) = arg.and_then(|a| a.get_default_values().first())
    {
        return Ok(default.to_string_lossy().trim().to_string());
    }
    Ok(text.to_string())
}

/// A whole number within a range; empty means the default.
#[derive(Clone)]
pub struct Number<T>(RangeInclusive<T>);

pub fn number<T>(range: RangeInclusive<T>) -> Number<T> {
    Number(range)
}

impl<T> TypedValueParser for Number<T>
where
    T: FromStr + PartialOrd + fmt::Display + Copy + Send + Sync + 'static,
{
    type Value = T;

    fn parse_ref(&self, cmd: &Command, arg: Option<&Arg>, value: &OsStr) -> Result<T, clap::Error> {
        let outcome = text_of(arg, value, true).and_then(|text| {
            let parsed: T = text
                .parse()
                .map_err(|_| invalid(arg, &text, "must be a whole number"))?;
            if self.0.contains(&parsed) {
                Ok(parsed)
            } else {
                Err(invalid(
                    arg,
                    &text,
                    format!("must be between {} and {}", self.0.start(), self.0.end()),
                ))
            }
        });
        settle(outcome, cmd, arg, value)
    }
}

/// A switch: `true|false|1|0|yes|no|on|off` (any case); empty means the default.
#[derive(Clone)]
pub struct Switch;

pub fn switch() -> Switch {
    Switch
}

impl TypedValueParser for Switch {
    type Value = bool;

    fn parse_ref(
        &self,
        cmd: &Command,
        arg: Option<&Arg>,
        value: &OsStr,
    ) -> Result<bool, clap::Error> {
        let outcome =
            text_of(arg, value, true).and_then(|text| match text.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Ok(true),
                "false" | "0" | "no" | "off" => Ok(false),
                _ => Err(invalid(arg, &text, "must be true or false")),
            });
        settle(outcome, cmd, arg, value)
    }
}

/// A value whose text is checked (and turned into `T`) by a plain function; `Err` is the
/// reason. The function sees the trimmed text, empty included.
#[derive(Clone)]
pub struct Checked<T>(fn(&str) -> Result<T, String>);

pub fn checked<T>(check: fn(&str) -> Result<T, String>) -> Checked<T> {
    Checked(check)
}

impl<T: Clone + Send + Sync + 'static> TypedValueParser for Checked<T> {
    type Value = T;

    fn parse_ref(&self, cmd: &Command, arg: Option<&Arg>, value: &OsStr) -> Result<T, clap::Error> {
        let outcome = text_of(arg, value, false)
            .and_then(|text| (self.0)(&text).map_err(|reason| invalid(arg, &text, reason)));
        settle(outcome, cmd, arg, value)
    }
}

/// Trimmed text, empty included (what empty means is the setting's own business).
pub fn text() -> Checked<String> {
    checked(|text| Ok(text.to_string()))
}

/// Trimmed text that must not be empty.
pub fn non_empty() -> Checked<String> {
    checked(|text| {
        if text.is_empty() {
            Err("must not be empty".into())
        } else {
            Ok(text.to_string())
        }
    })
}

/// A secret, trimmed; empty means unset ([`Secret::non_empty`]). Its errors never show it.
pub fn secret() -> Checked<Secret> {
    checked(|text| Ok(Secret(text.to_string())))
}

/// A listen address: a numeric IP and a port.
pub fn socket_addr() -> Checked<SocketAddr> {
    checked(|text| {
        text.parse()
            .map_err(|_| "must be host:port with a numeric IP, e.g. 127.0.0.1:8081".into())
    })
}

/// The [`ConfigError`] a value parser above gave, when that is what clap refused.
pub fn setting_error(error: &clap::Error) -> Option<&ConfigError> {
    std::error::Error::source(error).and_then(|s| s.downcast_ref::<ConfigError>())
}

/// What went wrong in clap's parsing, as the [`ConfigError`] a value parser above gave, or
/// (any other error, such as an unknown flag) as clap's own message.
pub fn from_clap(error: clap::Error) -> ConfigError {
    match setting_error(&error) {
        Some(config) => config.clone(),
        None => ConfigError::Arguments(error.to_string().trim().to_string()),
    }
}

/// Parses the settings `A` declares from `vars` alone, as if they were the whole
/// environment: the process environment is not read (tests need not touch it).
pub fn from_vars<A: clap::Args + clap::FromArgMatches>(
    vars: &[(String, String)],
) -> Result<A, ConfigError> {
    let declared = A::augment_args(Command::new("settings"));
    let mut argv = vec!["settings".to_string()];
    for arg in declared.get_arguments() {
        let (Some(env), Some(long)) = (arg.get_env(), arg.get_long()) else {
            continue;
        };
        if let Some((_, value)) = vars.iter().find(|(name, _)| env == name.as_str()) {
            argv.push(format!("--{long}={value}"));
        }
    }
    // The parsers still name the variables: each setting's id is its variable's name in
    // lower case (see `name_of`).
    let command = declared.mut_args(|arg| arg.env(None::<&str>));
    let matches = command.try_get_matches_from(argv).map_err(from_clap)?;
    A::from_arg_matches(&matches).map_err(from_clap)
}
