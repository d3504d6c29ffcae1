//! A town's home folder: its identity (the signing key), its `config.toml` and its store.
//!
//! ```text
//! <home>/identity.key   the 32-byte ed25519 seed, hex, readable by its owner only
//! <home>/config.toml    the town's settings (documented in the file itself)
//! <home>/store/         the sled store
//! ```

use crate::store::{Store, StoreError};
use cailloux_protocol::SigningKey;
use cailloux_protocol::id::{decode_hex, encode_hex};
use cailloux_protocol::record::AuthorKey;
use serde::Deserialize;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

/// What went wrong with a home folder.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HomeError {
    #[error(
        "{path} already holds an identity; refusing to overwrite it (a town keeps its key for life: \
             move the file away first if you really mean to start again)"
    )]
    IdentityExists { path: PathBuf },
    #[error(
        "no identity in {home}: create one with `cailloux init --town <name>` (or pick another home with --home)"
    )]
    NoIdentity { home: PathBuf },
    #[error("{path} is not a valid identity file: it should hold 64 hexadecimal characters")]
    BadIdentity { path: PathBuf },
    #[error("{path}: {message}")]
    BadConfig { path: PathBuf, message: String },
    #[error("the town name is empty: give one with --town, such as --town Loos-en-Gohelle")]
    EmptyTown,
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> HomeError + '_ {
    move |source| HomeError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A town's settings, from `config.toml`. Every field is optional; each says what its absence
/// means.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The town this node publishes for: the default `town:` of its publications. Absent: every
    /// publication must name its town.
    pub town: Option<String>,
}

/// The documented file `init` writes.
fn config_template(town: &str) -> String {
    format!(
        r#"# Cailloux node configuration. Every setting is optional; command-line flags win over it.

# The town this node publishes for. Publications that do not name a `town:` get this one.
town = {town}
"#,
        town = toml_string(town)
    )
}

fn toml_string(s: &str) -> String {
    let escaped: String = s
        .chars()
        .flat_map(|c| match c {
            '"' => vec!['\\', '"'],
            '\\' => vec!['\\', '\\'],
            c if c.is_control() => format!("\\u{:04X}", c as u32).chars().collect(),
            c => vec![c],
        })
        .collect();
    format!("\"{escaped}\"")
}

/// The signing key of a town (or, later, of a practitioner).
pub struct Identity {
    key: SigningKey,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identity({})", self.public_key())
    }
}

impl Identity {
    pub fn signing_key(&self) -> &SigningKey {
        &self.key
    }

    pub fn public_key(&self) -> AuthorKey {
        AuthorKey(self.key.verifying_key().to_bytes())
    }
}

/// A home folder.
#[derive(Clone, Debug)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    pub fn new(root: impl Into<PathBuf>) -> Home {
        Home { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn identity_path(&self) -> PathBuf {
        self.root.join("identity.key")
    }

    pub fn config_path(&self) -> PathBuf {
        self.root.join("config.toml")
    }

    pub fn store_path(&self) -> PathBuf {
        self.root.join("store")
    }

    /// Creates the town's identity and its `config.toml`. Refuses to touch an existing identity.
    pub fn init(&self, town: &str) -> Result<Identity, HomeError> {
        let town = town.trim();
        if town.is_empty() {
            return Err(HomeError::EmptyTown);
        }
        std::fs::create_dir_all(&self.root).map_err(io(&self.root))?;
        let path = self.identity_path();
        if path.exists() {
            return Err(HomeError::IdentityExists { path });
        }
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| HomeError::Io {
            path: path.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => HomeError::IdentityExists { path: path.clone() },
            _ => HomeError::Io {
                path: path.clone(),
                source: e,
            },
        })?;
        file.write_all(format!("{}\n", encode_hex(&seed)).as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(io(&path))?;
        let config = self.config_path();
        if !config.exists() {
            std::fs::write(&config, config_template(town)).map_err(io(&config))?;
        }
        Ok(Identity {
            key: SigningKey::from_bytes(&seed),
        })
    }

    pub fn has_identity(&self) -> bool {
        self.identity_path().exists()
    }

    pub fn load_identity(&self) -> Result<Identity, HomeError> {
        let path = self.identity_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(HomeError::NoIdentity {
                    home: self.root.clone(),
                });
            }
            Err(e) => return Err(HomeError::Io { path, source: e }),
        };
        let seed: [u8; 32] = decode_hex(text.trim())
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| HomeError::BadIdentity { path: path.clone() })?;
        Ok(Identity {
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// The configuration; an absent file is the default configuration.
    pub fn load_config(&self) -> Result<Config, HomeError> {
        let path = self.config_path();
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).map_err(|e| HomeError::BadConfig {
                path,
                message: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(e) => Err(HomeError::Io { path, source: e }),
        }
    }

    /// Opens the store, creating the home and the store if needed.
    pub fn open_store(&self) -> Result<Store, HomeError> {
        std::fs::create_dir_all(&self.root).map_err(io(&self.root))?;
        Ok(Store::open(&self.store_path())?)
    }

    /// Opens the store only if this home has one.
    pub fn open_existing_store(&self) -> Result<Option<Store>, HomeError> {
        if self.store_path().exists() {
            Ok(Some(Store::open(&self.store_path())?))
        } else {
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_template_is_valid_toml() {
        let c: Config =
            toml::from_str(&config_template("Saint-\"Quote\"\\")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.town.as_deref(), Some("Saint-\"Quote\"\\"));
    }
}
