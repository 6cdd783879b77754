//! Value types that appear in specs as strings: durations (`30s`, `5m`),
//! byte sizes (`256Mi`), int-or-percent (`1`, `25%`) and signal names.
//!
//! Each type validates in its `Deserialize` impl, so a bad value is reported
//! by the YAML parser with its line and column.

use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// Implements `Serialize`/`Deserialize`/`JsonSchema` through `Display`/`FromStr`.
macro_rules! string_value {
    ($ty:ident, $schema_name:literal, $schema:expr) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl de::Visitor<'_> for V {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str($schema_name)
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$ty, E> {
                        v.parse().map_err(E::custom)
                    }
                    fn visit_u64<E: de::Error>(self, v: u64) -> Result<$ty, E> {
                        v.to_string().parse().map_err(E::custom)
                    }
                    fn visit_i64<E: de::Error>(self, v: i64) -> Result<$ty, E> {
                        v.to_string().parse().map_err(E::custom)
                    }
                }
                d.deserialize_any(V)
            }
        }
        impl JsonSchema for $ty {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($ty).into()
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                $schema
            }
        }
    };
}

/// A duration written as a sequence of `<number><unit>` with units
/// `ms`, `s`, `m`, `h` (e.g. `500ms`, `30s`, `1m30s`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    pub const fn from_secs(s: u64) -> Self {
        Duration(std::time::Duration::from_secs(s))
    }
    pub const fn from_millis(ms: u64) -> Self {
        Duration(std::time::Duration::from_millis(ms))
    }
    pub fn std(self) -> std::time::Duration {
        self.0
    }
}

impl FromStr for Duration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!("invalid duration {s:?}: expected e.g. \"500ms\", \"30s\", \"5m\", \"1h30m\"")
        };
        if s.is_empty() || s.len() > 32 {
            return Err(bad());
        }
        if s == "0" {
            return Ok(Duration::default());
        }
        let mut total: u128 = 0;
        let mut rest = s;
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            if digits == 0 {
                return Err(bad());
            }
            let n: u128 = rest[..digits].parse().map_err(|_| bad())?;
            rest = &rest[digits..];
            let (unit_ms, len) = if rest.starts_with("ms") {
                (1, 2)
            } else if rest.starts_with('s') {
                (1_000, 1)
            } else if rest.starts_with('m') {
                (60_000, 1)
            } else if rest.starts_with('h') {
                (3_600_000, 1)
            } else {
                return Err(bad());
            };
            rest = &rest[len..];
            total = total
                .checked_add(n.checked_mul(unit_ms).ok_or_else(bad)?)
                .ok_or_else(bad)?;
        }
        // A year is far beyond any sane timeout; keep arithmetic on it safe.
        if total > 366 * 24 * 3_600_000 {
            return Err(format!("duration {s:?} is too long (at most 366 days)"));
        }
        Ok(Duration::from_millis(total as u64))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms == 0 {
            return f.write_str("0s");
        }
        let (h, m, s, rem) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
        if h > 0 {
            write!(f, "{h}h")?;
        }
        if m > 0 {
            write!(f, "{m}m")?;
        }
        if s > 0 {
            write!(f, "{s}s")?;
        }
        if rem > 0 {
            write!(f, "{rem}ms")?;
        }
        Ok(())
    }
}

string_value!(
    Duration,
    "a duration such as \"30s\"",
    schemars::json_schema!({
        "type": "string",
        "pattern": "^(0|([0-9]+(ms|s|m|h))+)$",
        "description": "A duration: 500ms, 30s, 5m, 1h30m."
    })
);

/// A size in bytes, written as a number with an optional binary (`Ki`, `Mi`,
/// `Gi`, `Ti`) or decimal (`k`, `M`, `G`, `T`) suffix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(pub u64);

const SIZE_UNITS: [(&str, u64); 8] = [
    ("Ki", 1 << 10),
    ("Mi", 1 << 20),
    ("Gi", 1 << 30),
    ("Ti", 1 << 40),
    ("k", 1_000),
    ("M", 1_000_000),
    ("G", 1_000_000_000),
    ("T", 1_000_000_000_000),
];

impl FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("invalid size {s:?}: expected e.g. \"256Mi\", \"1Gi\", \"500M\"");
        let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        if digits == 0 || s.len() > 24 {
            return Err(bad());
        }
        let n: u64 = s[..digits].parse().map_err(|_| bad())?;
        let suffix = &s[digits..];
        let mult = if suffix.is_empty() {
            1
        } else {
            SIZE_UNITS
                .iter()
                .find(|(u, _)| *u == suffix)
                .map(|(_, m)| *m)
                .ok_or_else(bad)?
        };
        n.checked_mul(mult).map(ByteSize).ok_or_else(bad)
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        // The unit giving the smallest exact quotient, so "256Mi" and "2G" round-trip.
        let best = SIZE_UNITS
            .iter()
            .filter(|(_, m)| self.0 >= *m && self.0.is_multiple_of(*m))
            .max_by_key(|(_, m)| *m);
        match best {
            Some((unit, mult)) => write!(f, "{}{unit}", self.0 / mult),
            None => write!(f, "{}", self.0),
        }
    }
}

string_value!(
    ByteSize,
    "a size such as \"256Mi\"",
    schemars::json_schema!({
        "type": ["string", "integer"],
        "pattern": "^[0-9]+(Ki|Mi|Gi|Ti|k|M|G|T)?$",
        "description": "A size in bytes: 268435456, 256Mi, 1Gi, 500M."
    })
);

/// An absolute count or a percentage of a total (`1`, `25%`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IntOrPercent {
    Int(u32),
    Percent(u32),
}

impl IntOrPercent {
    /// Resolves against `total`; percentages round up when `round_up`
    /// (Kubernetes rounds maxSurge up and maxUnavailable down).
    pub fn resolve(self, total: u32, round_up: bool) -> u32 {
        match self {
            IntOrPercent::Int(n) => n,
            IntOrPercent::Percent(p) => {
                let x = u64::from(total) * u64::from(p);
                let v = if round_up { x.div_ceil(100) } else { x / 100 };
                v.min(u64::from(u32::MAX)) as u32
            }
        }
    }
}

impl FromStr for IntOrPercent {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!("invalid value {s:?}: expected a count (e.g. 1) or a percentage (e.g. \"25%\")")
        };
        if let Some(p) = s.strip_suffix('%') {
            let p: u32 = p.parse().map_err(|_| bad())?;
            if p > 100 {
                return Err(format!("invalid percentage {s:?}: at most 100%"));
            }
            Ok(IntOrPercent::Percent(p))
        } else {
            s.parse().map(IntOrPercent::Int).map_err(|_| bad())
        }
    }
}

impl fmt::Display for IntOrPercent {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            IntOrPercent::Int(n) => write!(f, "{n}"),
            IntOrPercent::Percent(p) => write!(f, "{p}%"),
        }
    }
}

// Serialized as an integer or a "N%" string, like Kubernetes' IntOrString.
impl Serialize for IntOrPercent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            IntOrPercent::Int(n) => s.serialize_u32(*n),
            IntOrPercent::Percent(_) => s.collect_str(self),
        }
    }
}

impl<'de> Deserialize<'de> for IntOrPercent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = IntOrPercent;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a count or a percentage such as \"25%\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<IntOrPercent, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<IntOrPercent, E> {
                u32::try_from(v)
                    .map(IntOrPercent::Int)
                    .map_err(|_| E::custom("value too large"))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<IntOrPercent, E> {
                u32::try_from(v)
                    .map(IntOrPercent::Int)
                    .map_err(|_| E::custom(format!("invalid value {v}: must be 0 or more")))
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for IntOrPercent {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "IntOrPercent".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        schemars::json_schema!({
            "anyOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": "^[0-9]+%$"}
            ],
            "description": "A count (1) or a percentage of replicas (\"25%\")."
        })
    }
}

/// A POSIX signal name such as `SIGTERM` (the `SIG` prefix is optional on input).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Signal(&'static str);

/// Signals a container may be sent, with their Linux numbers.
pub const SIGNALS: [(&str, i32); 14] = [
    ("SIGHUP", 1),
    ("SIGINT", 2),
    ("SIGQUIT", 3),
    ("SIGABRT", 6),
    ("SIGKILL", 9),
    ("SIGUSR1", 10),
    ("SIGUSR2", 12),
    ("SIGPIPE", 13),
    ("SIGALRM", 14),
    ("SIGTERM", 15),
    ("SIGCONT", 18),
    ("SIGSTOP", 19),
    ("SIGWINCH", 28),
    ("SIGPWR", 30),
];

impl Signal {
    pub const TERM: Signal = Signal("SIGTERM");
    pub const KILL: Signal = Signal("SIGKILL");
    pub fn name(self) -> &'static str {
        self.0
    }
    pub fn number(self) -> i32 {
        SIGNALS
            .iter()
            .find(|(n, _)| *n == self.0)
            .map_or(15, |(_, v)| *v)
    }
}

impl FromStr for Signal {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let upper = s.to_ascii_uppercase();
        let full = if upper.starts_with("SIG") {
            upper
        } else {
            format!("SIG{upper}")
        };
        SIGNALS
            .iter()
            .find(|(n, _)| *n == full)
            .map(|(n, _)| Signal(n))
            .ok_or_else(|| {
                let known: Vec<&str> = SIGNALS.iter().map(|(n, _)| *n).collect();
                format!("unknown signal {s:?}: expected one of {}", known.join(", "))
            })
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.0)
    }
}

string_value!(
    Signal,
    "a signal name such as \"SIGTERM\"",
    schemars::json_schema!({
        "type": "string",
        "enum": SIGNALS.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        "description": "A signal name."
    })
);

#[cfg(test)]
mod tests {
    use super::*;

    fn check<T: FromStr<Err = String> + fmt::Display>(input: &str, expected: Result<&str, &str>) {
        match (input.parse::<T>(), expected) {
            (Ok(v), Ok(want)) => assert_eq!(v.to_string(), want, "input {input:?}"),
            (Err(e), Err(want)) => assert!(
                e.contains(want),
                "input {input:?}: error {e:?} lacks {want:?}"
            ),
            (got, want) => panic!(
                "input {input:?}: got {:?}, want {want:?}",
                got.map(|v| v.to_string())
            ),
        }
    }

    #[test]
    fn durations() {
        check::<Duration>("30s", Ok("30s"));
        check::<Duration>("90s", Ok("1m30s"));
        check::<Duration>("1h30m", Ok("1h30m"));
        check::<Duration>("500ms", Ok("500ms"));
        check::<Duration>("0", Ok("0s"));
        check::<Duration>("5", Err("invalid duration"));
        check::<Duration>("s", Err("invalid duration"));
        check::<Duration>("-1s", Err("invalid duration"));
        check::<Duration>("10d", Err("invalid duration"));
        check::<Duration>("99999999999999999999h", Err("duration"));
        check::<Duration>("9000h", Err("too long"));
    }

    #[test]
    fn sizes() {
        check::<ByteSize>("256Mi", Ok("256Mi"));
        check::<ByteSize>("1024", Ok("1Ki"));
        check::<ByteSize>("1000", Ok("1k"));
        check::<ByteSize>("1001", Ok("1001"));
        check::<ByteSize>("2G", Ok("2G"));
        check::<ByteSize>("2000000000", Ok("2G"));
        check::<ByteSize>("12XB", Err("invalid size"));
        check::<ByteSize>("Mi", Err("invalid size"));
        check::<ByteSize>("99999999999Ti", Err("invalid size"));
    }

    #[test]
    fn int_or_percent() {
        check::<IntOrPercent>("25%", Ok("25%"));
        check::<IntOrPercent>("3", Ok("3"));
        check::<IntOrPercent>("150%", Err("at most 100%"));
        check::<IntOrPercent>("x%", Err("invalid value"));
        assert_eq!(IntOrPercent::Percent(25).resolve(10, true), 3);
        assert_eq!(IntOrPercent::Percent(25).resolve(10, false), 2);
    }

    #[test]
    fn signals() {
        check::<Signal>("SIGQUIT", Ok("SIGQUIT"));
        check::<Signal>("term", Ok("SIGTERM"));
        check::<Signal>("SIGFOO", Err("unknown signal"));
        assert_eq!(Signal::KILL.number(), 9);
    }
}
