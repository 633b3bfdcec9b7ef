//! The expiry of the certificate the front door serves, read from its DER
//! (`tbsCertificate.validity.notAfter`), for `/metrics`: an operator is
//! warned before clients start refusing the server.

use std::path::Path;

use chrono::{NaiveDate, NaiveDateTime};
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::CertificateDer;

/// `notAfter` of the first (leaf) certificate of a PEM chain file, as
/// Unix seconds; None when the file cannot be read or parsed.
pub fn leaf_not_after(chain: &Path) -> Option<i64> {
    let leaf = CertificateDer::pem_file_iter(chain).ok()?.next()?.ok()?;
    not_after_unix(&leaf)
}

/// `notAfter` of a DER X.509 certificate as Unix seconds, or None when the
/// bytes are not a certificate this walk understands.
pub fn not_after_unix(der: &[u8]) -> Option<i64> {
    let (tag, cert, _) = tlv(der)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, tbs, _) = tlv(cert)?;
    if tag != SEQUENCE {
        return None;
    }
    let mut rest = tbs;
    let (tag, _, after) = tlv(rest)?;
    // [0] EXPLICIT version, absent for v1 certificates.
    if tag == 0xA0 {
        rest = after;
    }
    // serialNumber, signature, issuer.
    for want in [INTEGER, SEQUENCE, SEQUENCE] {
        let (tag, _, after) = tlv(rest)?;
        if tag != want {
            return None;
        }
        rest = after;
    }
    let (tag, validity, _) = tlv(rest)?;
    if tag != SEQUENCE {
        return None;
    }
    let (_, _, after) = tlv(validity)?;
    let (tag, not_after, _) = tlv(after)?;
    parse_time(tag, not_after)
}

const INTEGER: u8 = 0x02;
const SEQUENCE: u8 = 0x30;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// One DER tag-length-value: (tag, content, what follows).
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// UTCTime (`YYMMDDHHMMSSZ`, years 1950–2049) or GeneralizedTime
/// (`YYYYMMDDHHMMSSZ`), as RFC 5280 requires them: UTC, seconds, no
/// fraction.
fn parse_time(tag: u8, text: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(text).ok()?.strip_suffix('Z')?;
    let full = match tag {
        UTC_TIME if text.len() == 12 => {
            let yy: u32 = text[..2].parse().ok()?;
            let century = if yy >= 50 { "19" } else { "20" };
            format!("{century}{text}")
        }
        GENERALIZED_TIME if text.len() == 14 => text.to_string(),
        _ => return None,
    };
    if !full.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let num = |r: std::ops::Range<usize>| full[r].parse::<u32>().ok();
    let date = NaiveDate::from_ymd_opt(num(0..4)? as i32, num(4..6)?, num(6..8)?)?;
    let at: NaiveDateTime = date.and_hms_opt(num(8..10)?, num(10..12)?, num(12..14)?)?;
    Some(at.and_utc().timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_until(year: i32, month: u8, day: u8) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(year, month, day);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn reads_not_after_in_both_time_forms() {
        // Before 2050 RFC 5280 writes UTCTime, from 2050 GeneralizedTime.
        let utc = cert_until(2031, 6, 30);
        assert_eq!(not_after_unix(&utc), Some(1_940_544_000));
        let generalized = cert_until(2051, 1, 2);
        assert_eq!(not_after_unix(&generalized), Some(2_556_230_400));
    }

    #[test]
    fn the_leaf_of_a_pem_chain_is_read() {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.not_after = rcgen::date_time_ymd(2031, 6, 30);
        let key = rcgen::KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        let path = std::env::temp_dir().join(format!("adit-cert-{}.pem", std::process::id()));
        std::fs::write(&path, pem).unwrap();
        assert_eq!(leaf_not_after(&path), Some(1_940_544_000));
        std::fs::remove_file(&path).unwrap();
        assert_eq!(leaf_not_after(&path), None);
    }

    #[test]
    fn what_is_not_a_certificate_gives_none() {
        assert_eq!(not_after_unix(b""), None);
        assert_eq!(not_after_unix(b"\x30\x03\x02\x01\x01"), None);
        let mut cut = cert_until(2031, 6, 30);
        cut.truncate(40);
        assert_eq!(not_after_unix(&cut), None);
        assert_eq!(parse_time(UTC_TIME, b"3106301200Z"), None);
        assert_eq!(parse_time(UTC_TIME, b"31063012000aZ"), None);
        assert_eq!(parse_time(UTC_TIME, b"310630120000Z"), Some(1_940_587_200));
        assert_eq!(parse_time(UTC_TIME, b"990101000000Z"), Some(915_148_800));
    }
}
