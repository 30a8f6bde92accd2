//! Kubernetes resource quantities (`100m`, `1.5Gi`, `2e3`) as exact integers in milli-units.

use thiserror::Error;

/// A quantity that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "invalid resource quantity {0:?}: expected a number with an optional suffix (m, k, Mi, Gi, e3, ...)"
)]
pub struct QuantityError(pub String);

/// Parses a quantity into milli-units, rounding sub-milli fractions up like the API server
/// (`0.1m` becomes `1m`). `1` → `1000`, `100m` → `100`, `1Ki` → `1_024_000`.
pub fn parse_milli(s: &str) -> Result<i128, QuantityError> {
    let err = || QuantityError(s.to_owned());
    let t = s.trim();
    let (neg, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let num_end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, suffix) = t.split_at(num_end);
    if num.is_empty() || num == "." || num.matches('.').count() > 1 {
        return Err(err());
    }
    let (int_part, frac_part) = num.split_once('.').unwrap_or((num, ""));
    let digits = format!("{int_part}{frac_part}");
    if digits.len() > 30 {
        return Err(err());
    }
    let mantissa: i128 = digits.parse().map_err(|_| err())?;
    // value = mantissa * 10^(-frac) * base^exp ; we want value * 1000.
    let mut pow10: i32 = 3 - i32::try_from(frac_part.len()).map_err(|_| err())?;
    let mut mul: i128 = 1;
    match suffix {
        "" => {}
        "n" => pow10 -= 9,
        "u" => pow10 -= 6,
        "m" => pow10 -= 3,
        "k" => pow10 += 3,
        "M" => pow10 += 6,
        "G" => pow10 += 9,
        "T" => pow10 += 12,
        "P" => pow10 += 15,
        "E" => pow10 += 18,
        "Ki" => mul = 1 << 10,
        "Mi" => mul = 1 << 20,
        "Gi" => mul = 1 << 30,
        "Ti" => mul = 1 << 40,
        "Pi" => mul = 1 << 50,
        "Ei" => mul = 1 << 60,
        e if e.starts_with(['e', 'E']) => {
            let exp: i32 = e[1..].parse().map_err(|_| err())?;
            if exp.abs() > 30 {
                return Err(err());
            }
            pow10 += exp;
        }
        _ => return Err(err()),
    }
    let mut v = mantissa.checked_mul(mul).ok_or_else(err)?;
    if pow10 >= 0 {
        let p = 10i128.checked_pow(pow10.unsigned_abs()).ok_or_else(err)?;
        v = v.checked_mul(p).ok_or_else(err)?;
    } else {
        let p = 10i128.checked_pow(pow10.unsigned_abs()).ok_or_else(err)?;
        // Round up, as the API server does for precision below 1m.
        v = (v + p - 1) / p;
    }
    Ok(if neg { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        for (s, want) in [
            ("1", 1000),
            ("100m", 100),
            ("0.5", 500),
            ("1.5Gi", 1_610_612_736_000),
            ("1Ki", 1_024_000),
            ("2k", 2_000_000),
            ("1e3", 1_000_000),
            ("1E-3", 1),
            ("0.1m", 1),
            ("1n", 1),
            ("250M", 250_000_000_000),
            ("-1", -1000),
            ("110", 110_000),
        ] {
            assert_eq!(parse_milli(s), Ok(want), "{s}");
        }
        for bad in ["", "m", "1.2.3", "1Qi", "abc", "1e", "."] {
            assert!(parse_milli(bad).is_err(), "{bad}");
        }
    }
}
