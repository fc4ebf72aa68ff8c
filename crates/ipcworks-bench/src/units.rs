//! Message sizes as people write and read them: `64`, `4K`, `1 MiB`.

/// Parses a size like `64`, `1K`, `4KiB`, `1M`, `1MiB`.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let (num, mult) = if let Some(n) = lower.strip_suffix("kib").or(lower.strip_suffix('k')) {
        (n.to_string(), 1024)
    } else if let Some(n) = lower.strip_suffix("mib").or(lower.strip_suffix('m')) {
        (n.to_string(), 1 << 20)
    } else {
        (lower.strip_suffix('b').unwrap_or(&lower).to_string(), 1)
    };
    let n: usize = num
        .trim()
        .parse()
        .map_err(|_| format!("size {t:?}: expected a number like 64, 4K or 1M"))?;
    let v = n
        .checked_mul(mult)
        .ok_or_else(|| format!("size {t:?} is too large"))?;
    if !(8..=(64 << 20)).contains(&v) {
        return Err(format!("size {t:?}: must be between 8 bytes and 64 MiB"));
    }
    Ok(v)
}

/// A size for people: `64 B`, `4 KiB`, `1 MiB`.
pub fn human_size(n: u64) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else if n >= 1024 && n.is_multiple_of(1024) {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("64"), Ok(64));
        assert_eq!(parse_size("64B"), Ok(64));
        assert_eq!(parse_size("1K"), Ok(1024));
        assert_eq!(parse_size("4KiB"), Ok(4096));
        assert_eq!(parse_size("1m"), Ok(1 << 20));
        assert!(parse_size("4").is_err());
        assert!(parse_size("65M").is_err());
        assert!(parse_size("lots").is_err());
        assert!(parse_size("99999999999999999999K").is_err());
        assert_eq!(human_size(65536), "64 KiB");
        assert_eq!(human_size(1000), "1000 B");
    }
}
