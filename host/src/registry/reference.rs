//! An OCI reference as a route names it: `oci://REGISTRY/REPO:TAG@sha256:DIGEST`.
//!
//! A pure module: parsing (strict, with errors that say what is wrong) and
//! the forms the rest of the host needs. The registry is always explicit
//! (no Docker Hub default: a config file says where its code comes from).
//! The digest is the *manifest's* digest, as `wkg oci push` prints it and
//! every OCI tool means `@sha256:` (the component's own digest, the one
//! `/metrics` and `GET /routes` show, is its layer's).

use std::fmt;

/// The scheme that makes a route's `component` a reference, not a file.
pub const SCHEME: &str = "oci://";

/// A component in a registry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OciRef {
    /// `host[:port]`, as the registry is reached (and listed in `registry.insecure`).
    pub registry: String,
    /// The repository within the registry, e.g. `webapp/ep-one`.
    pub repository: String,
    /// The tag; with a digest too it only documents (the digest pulls).
    pub tag: Option<String>,
    /// The manifest digest, `sha256:` and 64 lowercase hex digits.
    pub digest: Option<String>,
}

impl OciRef {
    /// Parses `text`, which must start with `oci://`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = |why: &str| {
            Err(format!(
                "`{text}` is not an OCI reference ({SCHEME}REGISTRY/REPOSITORY:TAG@sha256:DIGEST): {why}"
            ))
        };
        let Some(rest) = text.strip_prefix(SCHEME) else {
            return bad("it must start with oci://");
        };
        let (rest, digest) = match rest.split_once('@') {
            Some((rest, digest)) => (rest, Some(digest)),
            None => (rest, None),
        };
        let Some((registry, path)) = rest.split_once('/') else {
            return bad("it names no repository after the registry");
        };
        if registry.is_empty()
            || !registry
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
        {
            return bad("the registry must be a host name or address, with an optional :port");
        }
        // The tag is after the last `:` that comes after the last `/`.
        let last_part = path.rsplit('/').next().unwrap_or_default();
        let (repository, tag) = match last_part.rsplit_once(':') {
            Some((_, tag)) => (&path[..path.len() - tag.len() - 1], Some(tag)),
            None => (path, None),
        };
        if repository.is_empty()
            || repository.split('/').any(|part| {
                part.is_empty()
                    || !part.bytes().all(|b| {
                        b.is_ascii_lowercase()
                            || b.is_ascii_digit()
                            || matches!(b, b'.' | b'_' | b'-')
                    })
                    || !part.as_bytes()[0].is_ascii_alphanumeric()
            })
        {
            return bad(
                "the repository must be lowercase letters, digits and . _ - in parts separated by /",
            );
        }
        if let Some(tag) = tag
            && (tag.is_empty()
                || tag.len() > 128
                || tag.starts_with(['.', '-'])
                || !tag
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')))
        {
            return bad("a tag is up to 128 letters, digits and . _ - (not first . or -)");
        }
        if let Some(digest) = digest {
            let hex = digest.strip_prefix("sha256:").unwrap_or_default();
            if !crate::cache::is_digest(hex) {
                return bad("the digest must be sha256: and 64 lowercase hex digits");
            }
        }
        if tag.is_none() && digest.is_none() {
            return bad("name a tag, a digest (@sha256:...), or both");
        }
        Ok(Self {
            registry: registry.to_owned(),
            repository: repository.to_owned(),
            tag: tag.map(str::to_owned),
            digest: digest.map(str::to_owned),
        })
    }

    /// The reference as oci-client pulls it: by digest when there is one.
    pub fn to_client(&self) -> oci_client::Reference {
        match (&self.digest, &self.tag) {
            (Some(digest), _) => oci_client::Reference::with_digest(
                self.registry.clone(),
                self.repository.clone(),
                digest.clone(),
            ),
            (None, Some(tag)) => oci_client::Reference::with_tag(
                self.registry.clone(),
                self.repository.clone(),
                tag.clone(),
            ),
            (None, None) => unreachable!("parse requires a tag or a digest"),
        }
    }

    /// `REGISTRY/REPO:TAG`: what a tag resolution is remembered under.
    pub fn tag_key(&self) -> Option<String> {
        let tag = self.tag.as_ref()?;
        Some(format!("{}/{}:{tag}", self.registry, self.repository))
    }
}

impl fmt::Display for OciRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn parses_the_forms_a_route_may_use() {
        let r = OciRef::parse(&format!("oci://127.0.0.1:5000/webapp/ep-one:v2@{D}")).unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "webapp/ep-one");
        assert_eq!(r.tag.as_deref(), Some("v2"));
        assert_eq!(r.digest.as_deref(), Some(D));
        assert_eq!(
            r.to_string(),
            format!("oci://127.0.0.1:5000/webapp/ep-one:v2@{D}")
        );
        assert_eq!(r.to_client().digest(), Some(D));

        let tag_only = OciRef::parse("oci://ghcr.io/acme/ep_two:1.0").unwrap();
        assert_eq!(tag_only.digest, None);
        assert_eq!(tag_only.tag_key().unwrap(), "ghcr.io/acme/ep_two:1.0");
        assert_eq!(tag_only.to_client().tag(), Some("1.0"));

        let digest_only = OciRef::parse(&format!("oci://localhost:5000/ep@{D}")).unwrap();
        assert_eq!(digest_only.tag, None);
        assert_eq!(digest_only.tag_key(), None);
    }

    #[test]
    fn refuses_what_is_not_a_reference_and_says_why() {
        for (text, why) in [
            ("oci://ghcr.io/acme/ep", "name a tag"),
            ("oci://ep:v1", "no repository"),
            ("oci:///acme/ep:v1", "registry"),
            ("oci://ghcr.io/Acme/ep:v1", "lowercase"),
            ("oci://ghcr.io/acme//ep:v1", "lowercase"),
            ("oci://ghcr.io/acme/ep:-v1", "tag"),
            ("oci://ghcr.io/acme/ep:v1@sha256:abc", "64 lowercase hex"),
            ("oci://ghcr.io/acme/ep:v1@md5:0123", "64 lowercase hex"),
            ("https://ghcr.io/acme/ep:v1", "must start with oci://"),
        ] {
            let e = OciRef::parse(text).unwrap_err();
            assert!(e.contains(why) && e.contains(text), "{text}: {e}");
        }
    }
}
