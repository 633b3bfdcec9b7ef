//! Byte sizes on the command line and in the environment: `8MiB`,
//! `512KiB`, `1GiB`, `64KB`, or a plain number of bytes (`8388608`).
//! Binary units (KiB, MiB, GiB; also K, M, G as systemd reads them) are
//! powers of 1024, decimal ones (KB, MB, GB) powers of 1000; case does not
//! matter and a space may separate number and unit.

use std::fmt;
use std::str::FromStr;

/// A size in bytes, parsed from and printed with units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub usize);

const UNITS: &[(&str, u64)] = &[
    ("", 1),
    ("b", 1),
    ("k", 1 << 10),
    ("kib", 1 << 10),
    ("kb", 1_000),
    ("m", 1 << 20),
    ("mib", 1 << 20),
    ("mb", 1_000_000),
    ("g", 1 << 30),
    ("gib", 1 << 30),
    ("gb", 1_000_000_000),
];

impl FromStr for ByteSize {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let what = || {
            format!(
                "{s:?} is not a byte size: give a whole number with an optional unit \
                 (B, KiB, MiB, GiB, or KB, MB, GB), such as 8MiB, 512KiB or 1048576"
            )
        };
        let t = s.trim();
        let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (number, unit) = t.split_at(digits);
        let number: u64 = number.parse().map_err(|_| what())?;
        let unit = unit.trim().to_ascii_lowercase();
        let scale = UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, scale)| *scale)
            .ok_or_else(what)?;
        number
            .checked_mul(scale)
            .and_then(|n| usize::try_from(n).ok())
            .map(ByteSize)
            .ok_or_else(|| format!("{s:?} is too large"))
    }
}

impl fmt::Display for ByteSize {
    /// The largest binary unit that states the size exactly.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0 as u64;
        for (unit, scale) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
            if n >= scale && n.is_multiple_of(scale) {
                return write!(f, "{}{unit}", n / scale);
            }
        }
        write!(f, "{n}B")
    }
}

impl From<ByteSize> for usize {
    fn from(b: ByteSize) -> usize {
        b.0
    }
}

#[cfg(test)]
mod tests {
    use super::ByteSize;

    fn parse(s: &str) -> Result<usize, String> {
        s.parse::<ByteSize>().map(|b| b.0)
    }

    #[test]
    fn units_parse() {
        assert_eq!(parse("8388608"), Ok(8 << 20));
        assert_eq!(parse("8MiB"), Ok(8 << 20));
        assert_eq!(parse("8 mib"), Ok(8 << 20));
        assert_eq!(parse("8M"), Ok(8 << 20));
        assert_eq!(parse("64KiB"), Ok(64 << 10));
        assert_eq!(parse("64KB"), Ok(64_000));
        assert_eq!(parse("2GB"), Ok(2_000_000_000));
        assert_eq!(parse("1GiB"), Ok(1 << 30));
        assert_eq!(parse("512B"), Ok(512));
    }

    #[test]
    fn nonsense_is_refused_with_an_example() {
        for bad in ["", "MiB", "8 parsecs", "-1", "1.5MiB", "8MiBs"] {
            let e = parse(bad).expect_err(bad);
            assert!(e.contains("such as 8MiB"), "{bad}: {e}");
        }
        assert!(parse("99999999999GiB").unwrap_err().contains("too large"));
    }

    #[test]
    fn prints_the_largest_exact_unit() {
        assert_eq!(ByteSize(8 << 20).to_string(), "8MiB");
        assert_eq!(ByteSize(192 << 20).to_string(), "192MiB");
        assert_eq!(ByteSize(64 << 10).to_string(), "64KiB");
        assert_eq!(ByteSize(1 << 30).to_string(), "1GiB");
        assert_eq!(ByteSize(1_000).to_string(), "1000B");
        for n in [1usize, 1000, 1536, 8 << 20, 3 << 30] {
            assert_eq!(parse(&ByteSize(n).to_string()), Ok(n));
        }
    }
}
