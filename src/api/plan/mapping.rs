//! `src` / `src:dest` name mappings, used for namespaces and PVC renames. Parsing is pure so the
//! controller can report every malformed entry at once; the CRD schema rejects most of them earlier.

/// The pattern the CRD schema enforces on a mapping: a DNS label, optionally `:` and another one.
pub const NAME_MAPPING_PATTERN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(:[a-z0-9]([-a-z0-9]*[a-z0-9])?)?$";

/// A parsed `src[:dest]` mapping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameMapping {
    /// Name in the source cluster.
    pub source: String,
    /// Name in the target cluster (equal to `source` when not renamed).
    pub target: String,
}

impl NameMapping {
    /// Parses `src` or `src:dest`; each part must be a DNS-1123 label (63 characters at most).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = text.split(':');
        let source = parts.next().unwrap_or_default();
        let target = parts.next();
        if parts.next().is_some() {
            return Err(format!("{text:?} has more than one ':'; use src or src:dest"));
        }
        check_label(source).map_err(|why| format!("{text:?}: source name {why}"))?;
        if let Some(target) = target {
            check_label(target).map_err(|why| format!("{text:?}: target name {why}"))?;
        }
        Ok(Self {
            source: source.to_string(),
            target: target.unwrap_or(source).to_string(),
        })
    }
}

/// Checks a DNS-1123 label: lower-case alphanumerics and '-', starting and ending alphanumeric.
pub(crate) fn check_label(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("is empty".into());
    }
    if name.len() > 63 {
        return Err(format!(
            "is {} characters long, at most 63 are allowed",
            name.len()
        ));
    }
    let valid_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    if !name.chars().all(valid_char) {
        return Err(format!(
            "{name:?} may contain only lower-case letters, digits and '-'"
        ));
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Err(format!("{name:?} must start and end with a letter or digit"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_renamed_mappings_parse() {
        assert_eq!(NameMapping::parse("app").unwrap().target, "app");
        let renamed = NameMapping::parse("app:app-v2").unwrap();
        assert_eq!(
            (renamed.source.as_str(), renamed.target.as_str()),
            ("app", "app-v2")
        );
    }

    #[test]
    fn malformed_mappings_say_why() {
        assert!(NameMapping::parse("a:b:c").unwrap_err().contains("more than one"));
        assert!(NameMapping::parse("App").unwrap_err().contains("lower-case"));
        assert!(
            NameMapping::parse("app:")
                .unwrap_err()
                .contains("target name is empty")
        );
        assert!(NameMapping::parse("-app").unwrap_err().contains("start and end"));
        assert!(
            NameMapping::parse(&"a".repeat(64))
                .unwrap_err()
                .contains("at most 63")
        );
    }
}
