//! The values a setting takes, read from the text (or the TOML value) that gives them:
//! sizes, durations, compression codecs, one-of choices and query parameters. Each
//! failure is a [`SettingError`]; the caller puts in front of it where the value came
//! from.

use std::time::Duration;

use parquet::basic::{Compression, ZstdLevel};

use crate::sql::ParamValue;

/// zstd's level when none is given: zstd's fastest regular level, as the parquet crate and
/// Arrow C++ default to. With text columns in DELTA_LENGTH_BYTE_ARRAY (see `sink`) it
/// writes the lineitem benchmark smaller than pg2parquet does at level 3, for about 15%
/// less CPU than level 3 (docs/performance.md).
pub const DEFAULT_ZSTD_LEVEL: i32 = 1;

/// Why a setting's value could not be read.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SettingError {
    #[error("invalid size `{0}`; try 512MB or 1GiB")]
    Size(String),
    /// A size of zero bytes, or one past `u64`.
    #[error("invalid size `{0}`")]
    SizeOutOfRange(String),
    /// The parser's reason is part of the message, as the job file's users read it.
    #[error("invalid duration `{value}` ({reason}); try 30s, 5m or 1h")]
    Duration {
        value: String,
        reason: humantime::DurationError,
    },
    #[error("invalid compression level in `{0}`")]
    CompressionLevel(String),
    #[error("zstd level must be from 1 to 22, not {0}")]
    ZstdLevel(i32),
    #[error("unknown compression `{0}`: use zstd, zstd:LEVEL, snappy, lz4 or none")]
    Compression(String),
    #[error("{key}: `{value}` is not one of {}", options.join(", "))]
    NotOneOf {
        key: &'static str,
        value: String,
        options: Vec<&'static str>,
    },
    /// A parameter given in the job file as a TOML array or table.
    #[error("must be a string, number, boolean or date")]
    ParamValue,
}

/// A size in bytes: `1048576`, `512MB`, `512MiB`, `2G`, `2GiB` (KB/MB/GB are powers of 1000).
pub fn parse_size(s: &str) -> Result<u64, SettingError> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| SettingError::Size(s.to_string()))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        _ => return Err(SettingError::Size(s.to_string())),
    };
    number
        .checked_mul(factor)
        .filter(|n| *n > 0)
        .ok_or_else(|| SettingError::SizeOutOfRange(s.to_string()))
}

/// A human duration: `30s`, `5m`, `1h30m`, `250ms`.
pub fn parse_duration(s: &str) -> Result<Duration, SettingError> {
    humantime::parse_duration(s.trim()).map_err(|reason| SettingError::Duration {
        value: s.to_string(),
        reason,
    })
}

/// The codec when the job names none: zstd at [`DEFAULT_ZSTD_LEVEL`].
pub fn default_compression() -> Compression {
    Compression::ZSTD(ZstdLevel::try_new(DEFAULT_ZSTD_LEVEL).expect("a valid zstd level"))
}

/// `zstd`, `zstd:9`, `snappy`, `lz4`, `none`.
pub fn parse_compression(s: &str) -> Result<Compression, SettingError> {
    let lower = s.trim().to_ascii_lowercase();
    let (name, level) = match lower.split_once([':', '(']) {
        Some((n, l)) => (n, Some(l.trim_end_matches(')'))),
        None => (lower.as_str(), None),
    };
    let level: Option<i32> = level
        .map(|l| {
            l.parse()
                .map_err(|_| SettingError::CompressionLevel(s.to_string()))
        })
        .transpose()?;
    match (name, level) {
        ("zstd", None) => Ok(default_compression()),
        ("zstd", Some(l)) => ZstdLevel::try_new(l)
            .map(Compression::ZSTD)
            .map_err(|_| SettingError::ZstdLevel(l)),
        ("snappy", None) => Ok(Compression::SNAPPY),
        ("lz4", None) => Ok(Compression::LZ4_RAW),
        ("none" | "uncompressed", None) => Ok(Compression::UNCOMPRESSED),
        _ => Err(SettingError::Compression(s.to_string())),
    }
}

/// The value of setting `key` that names one of `options` (case-insensitive); the first
/// option when the setting is absent.
pub fn choice<T: Copy>(
    key: &'static str,
    value: Option<&String>,
    options: &[(&'static str, T)],
) -> Result<T, SettingError> {
    let Some(value) = value else {
        return Ok(options[0].1);
    };
    let wanted = value.trim().to_ascii_lowercase();
    options
        .iter()
        .find(|(name, _)| *name == wanted)
        .map(|(_, v)| *v)
        .ok_or_else(|| SettingError::NotOneOf {
            key,
            value: value.clone(),
            options: options.iter().map(|(name, _)| *name).collect(),
        })
}

/// A parameter's value as the job file's `[params]` table gives it (a date as its text).
pub fn toml_param(value: &toml::Value) -> Result<ParamValue, SettingError> {
    Ok(match value {
        toml::Value::String(s) => ParamValue::Text(s.clone()),
        toml::Value::Integer(i) => ParamValue::Int(*i),
        toml::Value::Float(f) => ParamValue::Float(*f),
        toml::Value::Boolean(b) => ParamValue::Bool(*b),
        toml::Value::Datetime(d) => ParamValue::Text(d.to_string()),
        _ => return Err(SettingError::ParamValue),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_names() {
        assert_eq!(
            parse_compression("zstd:9").unwrap(),
            Compression::ZSTD(ZstdLevel::try_new(9).unwrap())
        );
        assert_eq!(
            parse_compression("ZSTD(3)").unwrap(),
            Compression::ZSTD(ZstdLevel::try_new(3).unwrap())
        );
        assert_eq!(
            parse_compression("none").unwrap(),
            Compression::UNCOMPRESSED
        );
        assert!(parse_compression("zstd:99").is_err());
        assert!(parse_compression("gzip").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512MB").unwrap(), 512_000_000);
        assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("0").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert!(
            parse_duration("soon")
                .unwrap_err()
                .to_string()
                .contains("soon")
        );
    }
}
