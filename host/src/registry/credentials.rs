//! Registry credentials from a docker config file: `~/.docker/config.json`,
//! or a Kubernetes `kubernetes.io/dockerconfigjson` Secret mounted as a
//! file (its `.dockerconfigjson` key has the same form).
//!
//! Only the `auths` map is read (`auth`, base64 of `user:password`, or
//! `username` and `password`); credential helpers (`credsStore`) run
//! programs and are not used. The file is read at each pull, so a rotated
//! Secret applies without a restart.

use std::collections::HashMap;
use std::path::Path;

use base64::Engine as _;
use oci_client::secrets::RegistryAuth;
use serde::Deserialize;

/// The largest credentials file read.
const MAX_BYTES: u64 = 1 << 20;

#[derive(Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: HashMap<String, Entry>,
}

#[derive(Deserialize)]
struct Entry {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

/// The credentials `file` holds for `registry` (`host[:port]`);
/// anonymous when the file has none for it, or does not exist (an
/// optional Secret not created: the pull's error says so). An unreadable
/// or malformed file is an error naming it: a pull with credentials
/// silently missing would fail later with a registry's vaguer
/// "unauthorized".
pub fn for_registry(file: &Path, registry: &str) -> Result<RegistryAuth, String> {
    if !file.exists() {
        return Ok(RegistryAuth::Anonymous);
    }
    let bytes = crate::component_file::read_bounded(file, MAX_BYTES, "a docker config file")?;
    from_json(&bytes, registry).map_err(|e| format!("{}: {e}", file.display()))
}

fn from_json(bytes: &[u8], registry: &str) -> Result<RegistryAuth, String> {
    let config: DockerConfig =
        serde_json::from_slice(bytes).map_err(|e| format!("not a docker config file: {e}"))?;
    // Keys may be written as URLs (`https://host/v1/`), as `docker login` does.
    let entry = config.auths.iter().find_map(|(key, entry)| {
        let host = key
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or_default();
        (host == registry).then_some(entry)
    });
    let Some(entry) = entry else {
        return Ok(RegistryAuth::Anonymous);
    };
    match (&entry.auth, &entry.username, &entry.password) {
        (_, Some(user), Some(password)) => Ok(RegistryAuth::Basic(user.clone(), password.clone())),
        (Some(auth), _, _) if !auth.is_empty() => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .map_err(|e| format!("the `auth` of {registry} is not base64: {e}"))?;
            let text = String::from_utf8(decoded)
                .map_err(|_| format!("the `auth` of {registry} is not text"))?;
            let (user, password) = text
                .split_once(':')
                .ok_or_else(|| format!("the `auth` of {registry} is not user:password"))?;
            Ok(RegistryAuth::Basic(user.to_owned(), password.to_owned()))
        }
        // Docker Desktop with a credential helper (`credsStore`) writes
        // empty entries: the helper holds the secret, which is not run.
        _ => {
            tracing::debug!(
                "the docker config's entry for {registry} holds no credentials (a credential \
                 helper's?): pulling anonymously"
            );
            Ok(RegistryAuth::Anonymous)
        }
    }
}

/// Where docker keeps its config: `$DOCKER_CONFIG/config.json`, else
/// `~/.docker/config.json`; `None` when neither exists.
pub fn default_file() -> Option<std::path::PathBuf> {
    let dir = std::env::var_os("DOCKER_CONFIG")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".docker")))?;
    Some(dir.join("config.json")).filter(|f| f.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(auth: RegistryAuth) -> (String, String) {
        match auth {
            RegistryAuth::Basic(u, p) => (u, p),
            other => panic!("expected basic credentials, got {other:?}"),
        }
    }

    #[test]
    fn reads_both_forms_docker_writes() {
        let json = br#"{"auths": {
            "https://reg.example:5000/v1/": {"auth": "YWxpY2U6czNjcjN0"},
            "other.example": {"username": "bob", "password": "pw"}
        }, "credsStore": "desktop"}"#;
        assert_eq!(
            basic(from_json(json, "reg.example:5000").unwrap()),
            ("alice".into(), "s3cr3t".into())
        );
        assert_eq!(
            basic(from_json(json, "other.example").unwrap()),
            ("bob".into(), "pw".into())
        );
        assert!(matches!(
            from_json(json, "third.example").unwrap(),
            RegistryAuth::Anonymous
        ));
    }

    #[test]
    fn a_damaged_entry_is_an_error_and_an_empty_one_anonymous() {
        let e = from_json(br#"{"auths": {"r": {"auth": "%%%"}}}"#, "r").unwrap_err();
        assert!(e.contains("not base64"), "{e}");
        // An entry a credential helper holds the secret of: anonymous.
        let helper = from_json(br#"{"auths": {"r": {}}, "credsStore": "desktop"}"#, "r");
        assert!(matches!(helper.unwrap(), RegistryAuth::Anonymous));
        assert!(
            from_json(b"[1]", "r")
                .unwrap_err()
                .contains("not a docker config")
        );
    }
}
