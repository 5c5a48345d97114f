//! Kubernetes storage quantities (`10Gi`, `500M`, `1.5Ti`, `1e9`) as byte counts, so a target PVC can be
//! checked to be at least as large as its source.

/// Parses a quantity into bytes; `None` when it is not a valid storage quantity.
pub fn bytes(quantity: &str) -> Option<u128> {
    let quantity = quantity.trim();
    let split = quantity
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(quantity.len());
    let (number, suffix) = quantity.split_at(split);
    let multiplier: u128 = match suffix {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "Pi" => 1 << 50,
        "Ei" => 1 << 60,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "P" => 1_000_000_000_000_000,
        "E" => 1_000_000_000_000_000_000,
        exp if exp.starts_with(['e', 'E']) => 10u128.checked_pow(exp[1..].parse().ok()?)?,
        _ => return None,
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let whole: u128 = if whole.is_empty() { 0 } else { whole.parse().ok()? };
    let mut total = whole.checked_mul(multiplier)?;
    if !fraction.is_empty() {
        let digits: u128 = fraction.parse().ok()?;
        let scale = 10u128.checked_pow(u32::try_from(fraction.len()).ok()?)?;
        // Round up: a fractional byte still needs a byte of room.
        total = total.checked_add((digits * multiplier).div_ceil(scale))?;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::bytes;

    #[test]
    fn binary_decimal_and_exponent_suffixes() {
        assert_eq!(bytes("1Gi"), Some(1 << 30));
        assert_eq!(bytes("500M"), Some(500_000_000));
        assert_eq!(bytes("1.5Gi"), Some(3 << 29));
        assert_eq!(bytes("1e3"), Some(1000));
        assert_eq!(bytes("2048"), Some(2048));
        assert_eq!(bytes(".5Ki"), Some(512));
    }

    #[test]
    fn garbage_is_rejected() {
        for bad in ["", "Gi", "1Gb", "one", "1..2Gi", "-1Gi"] {
            assert_eq!(bytes(bad), None, "{bad}");
        }
    }

    #[test]
    fn mixed_units_compare_by_bytes() {
        assert!(bytes("1Gi") > bytes("1G"));
        assert!(bytes("1024Mi") == bytes("1Gi"));
    }
}
