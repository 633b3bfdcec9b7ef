//! `numeric(p,s)` values: a JSON number literal read exactly (no float in
//! between) into a 128-bit integer of `s` decimal places, rounded half away
//! from zero past the scale as PostgreSQL does, refused past the precision;
//! and that integer written in PostgreSQL's binary `numeric` form.

use bytes::{BufMut, BytesMut};

/// Reads the JSON number `literal` as a `numeric(precision, scale)`: the
/// value times 10^scale.
pub fn parse_decimal(literal: &str, precision: u8, scale: u8) -> Result<i128, String> {
    let not_number = || "expected a number".to_string();
    let (negative, s) = match literal.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, literal),
    };
    let (mantissa, exp) = match s.find(['e', 'E']) {
        Some(at) => {
            let e: i64 = s[at + 1..].parse().map_err(|_| not_number())?;
            (&s[..at], e)
        }
        None => (s, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return Err(not_number());
    }
    // The value is digits × 10^shift (digits without leading zeros).
    let digits: Vec<u8> = int
        .bytes()
        .chain(frac.bytes())
        .skip_while(|&b| b == b'0')
        .map(|b| b - b'0')
        .collect();
    let overflow = || {
        format!(
            "does not fit numeric({precision},{scale}): at most {} digits before the decimal point",
            precision - scale
        )
    };
    if digits.is_empty() {
        return Ok(0);
    }
    let shift = exp
        .checked_sub(frac.len() as i64)
        .and_then(|e| e.checked_add(i64::from(scale)))
        .ok_or_else(overflow)?;
    let mut value: i128 = 0;
    if shift >= 0 {
        if digits.len() as i64 + shift > i64::from(precision) {
            return Err(overflow());
        }
        for &d in &digits {
            value = value * 10 + i128::from(d);
        }
        for _ in 0..shift {
            value *= 10;
        }
    } else {
        let cut = shift.unsigned_abs();
        if cut > digits.len() as u64 {
            return Ok(0); // below half a unit of the last place
        }
        let keep = digits.len() - cut as usize;
        if keep > usize::from(precision) {
            return Err(overflow());
        }
        for &d in &digits[..keep] {
            value = value * 10 + i128::from(d);
        }
        if digits[keep] >= 5 {
            value += 1;
        }
        if value >= 10i128.pow(u32::from(precision)) {
            return Err(overflow());
        }
    }
    Ok(if negative { -value } else { value })
}

/// The value of `unscaled` × 10^-scale as a float (for bounds and checks).
pub fn to_f64(unscaled: i128, scale: u8) -> f64 {
    unscaled as f64 / 10f64.powi(i32::from(scale))
}

/// Appends `unscaled` × 10^-scale as one binary COPY field of type
/// `numeric`: length, then ndigits, weight, sign, dscale and base-10000
/// digits, most significant first.
pub fn put_numeric(buf: &mut BytesMut, unscaled: i128, scale: u8) {
    const POSITIVE: u16 = 0x0000;
    const NEGATIVE: u16 = 0x4000;
    let sign = if unscaled < 0 { NEGATIVE } else { POSITIVE };
    let mut magnitude = unscaled.unsigned_abs();
    // Decimal digits, least significant first, padded so that the decimal
    // point falls on a base-10000 group boundary.
    let scale = usize::from(scale);
    let pad = (4 - scale % 4) % 4;
    let mut dec = [0u8; 48];
    let mut n = pad;
    while magnitude > 0 {
        dec[n] = (magnitude % 10) as u8;
        magnitude /= 10;
        n += 1;
    }
    let frac_groups = (scale + pad) / 4;
    let total_groups = n.max(scale + pad).div_ceil(4).max(frac_groups);
    let group = |g: usize| -> i16 {
        let at = g * 4;
        (0..4)
            .rev()
            .fold(0i16, |acc, k| acc * 10 + i16::from(dec[at + k]))
    };
    // Groups from the most significant, zeros at both ends stripped.
    let mut groups: Vec<i16> = (0..total_groups).rev().map(group).collect();
    let mut weight = total_groups as i16 - frac_groups as i16 - 1;
    let lead = groups.iter().take_while(|&&g| g == 0).count();
    groups.drain(..lead);
    weight -= lead as i16;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    buf.put_i32(8 + 2 * groups.len() as i32);
    buf.put_i16(groups.len() as i16);
    buf.put_i16(weight);
    buf.put_u16(if groups.is_empty() { POSITIVE } else { sign });
    buf.put_u16(scale as u16);
    for g in groups {
        buf.put_i16(g);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_read_exactly_and_rounded_like_postgres() {
        let p = |s: &str| parse_decimal(s, 20, 2);
        assert_eq!(p("2.5"), Ok(250));
        assert_eq!(p("-0.005"), Ok(-1));
        assert_eq!(p("0.004"), Ok(0));
        assert_eq!(p("120.505"), Ok(12051));
        assert_eq!(p("1e2"), Ok(10000));
        assert_eq!(p("1.5E-1"), Ok(15));
        assert_eq!(p("0"), Ok(0));
        assert_eq!(p("0.00000000000000000001"), Ok(0));
        assert_eq!(p("999999999999999999.99"), Ok(99_999_999_999_999_999_999));
        assert!(p("1000000000000000000").unwrap_err().contains("18 digits"));
        assert!(
            p("999999999999999999.995").is_err(),
            "rounds up past precision"
        );
        assert!(p("1e400").is_err());
        assert!(p("\"1\"").is_err());
        assert_eq!(parse_decimal("0.02", 5, 4), Ok(200));
        assert!(parse_decimal("10", 5, 4).is_err());
        assert_eq!(parse_decimal("12345.678", 38, 0), Ok(12346));
    }

    fn encoded(unscaled: i128, scale: u8) -> (i16, i16, u16, u16, Vec<i16>) {
        let mut b = BytesMut::new();
        put_numeric(&mut b, unscaled, scale);
        let r = |i: usize| i16::from_be_bytes([b[i], b[i + 1]]);
        let n = r(4);
        assert_eq!(
            i32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            8 + 2 * i32::from(n)
        );
        let digits = (0..n as usize).map(|k| r(12 + 2 * k)).collect();
        (n, r(6), r(8) as u16, r(10) as u16, digits)
    }

    #[test]
    fn binary_form_matches_postgres() {
        // What PostgreSQL's numeric_send gives for the same values.
        assert_eq!(encoded(12050, 2), (2, 0, 0, 2, vec![120, 5000]));
        assert_eq!(encoded(200, 4), (1, -1, 0, 4, vec![200]));
        assert_eq!(
            encoded(-123_456_789, 2),
            (3, 1, 0x4000, 2, vec![123, 4567, 8900])
        );
        assert_eq!(encoded(0, 2), (0, 0, 0, 2, vec![]));
        assert_eq!(encoded(100_000_000, 0), (1, 2, 0, 0, vec![1]));
        assert_eq!(encoded(1, 8), (1, -2, 0, 8, vec![1]));
        assert_eq!(encoded(i128::MAX / 10, 0).4.len(), 10);
    }
}
