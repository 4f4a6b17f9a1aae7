//! What a route's `component` declares: a file on this machine (or a
//! pattern of files, `component_file.rs`), or a component in an OCI
//! registry (`registry/`). A pure module: parsing and the forms shown.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::registry::{OciRef, SCHEME};

/// Where a route's versions come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComponentSource {
    /// A file or glob pattern, resolved against the config file's folder.
    File(PathBuf),
    /// A registry reference (`oci://...`).
    Oci(OciRef),
}

impl ComponentSource {
    /// The source `text` names; a relative file is taken from `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Self, String> {
        if text.starts_with(SCHEME) {
            return OciRef::parse(text).map(Self::Oci);
        }
        if let Some((scheme, _)) = text.split_once("://")
            && !scheme.is_empty()
            && scheme.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(format!(
                "`{text}`: components come from files or from `{SCHEME}` references, not `{scheme}://`"
            ));
        }
        Ok(Self::File(base.join(text)))
    }

    /// The file or pattern, for a file source.
    pub fn file(&self) -> Option<&Path> {
        match self {
            Self::File(path) => Some(path),
            Self::Oci(_) => None,
        }
    }

    /// What makes two declarations the same (holds are per declaration):
    /// the file or pattern; a reference's registry, repository and digest
    /// (its tag then only documents, and editing it changes nothing), or
    /// its tag when it has no digest.
    pub fn identity(&self) -> String {
        match self {
            Self::Oci(reference) if reference.digest.is_some() => OciRef {
                tag: None,
                ..reference.clone()
            }
            .to_string(),
            other => other.to_string(),
        }
    }

    /// The reference, for a registry source.
    pub fn oci(&self) -> Option<&OciRef> {
        match self {
            Self::Oci(reference) => Some(reference),
            Self::File(_) => None,
        }
    }
}

impl fmt::Display for ComponentSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => write!(f, "{}", path.display()),
            Self::Oci(reference) => write!(f, "{reference}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_taken_from_the_config_folder_and_references_are_parsed() {
        let base = Path::new("conf");
        assert_eq!(
            ComponentSource::parse("c/ep.wasm", base).unwrap(),
            ComponentSource::File("conf/c/ep.wasm".into())
        );
        assert_eq!(
            ComponentSource::parse("/abs/ep.wasm", base).unwrap().file(),
            Some(Path::new("/abs/ep.wasm"))
        );
        let oci = ComponentSource::parse("oci://127.0.0.1:5000/ep:v1", base).unwrap();
        assert_eq!(oci.to_string(), "oci://127.0.0.1:5000/ep:v1");
        assert!(oci.file().is_none());
        let d = "@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let (v1, v2) = (
            ComponentSource::parse(&format!("oci://r/ep:v1{d}"), base).unwrap(),
            ComponentSource::parse(&format!("oci://r/ep:v2{d}"), base).unwrap(),
        );
        assert_eq!(
            v1.identity(),
            v2.identity(),
            "a tag beside a digest only documents"
        );
        assert_ne!(oci.identity(), v1.identity());
        let e = ComponentSource::parse("https://example.com/ep.wasm", base).unwrap_err();
        assert!(e.contains("not `https://`"), "{e}");
        let e = ComponentSource::parse("oci://x/Ep:v1", base).unwrap_err();
        assert!(e.contains("lowercase"), "{e}");
    }
}
