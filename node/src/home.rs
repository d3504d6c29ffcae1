//! A town's home folder: its identity (the signing key), its `config.toml` and its store.
//!
//! ```text
//! <home>/identity.key   the 32-byte ed25519 seed, hex, readable by its owner only: the town's
//!                       key on a node, a practitioner's personal key on their own machine
//! <home>/federation.key the federation's key, only in the coordinator's home (same format)
//! <home>/config.toml    the town's settings (documented in the file itself)
//! <home>/store/         the sled store
//! ```

use crate::store::{Store, StoreError};
use cailloux_protocol::SigningKey;
use cailloux_protocol::id::{decode_hex, encode_hex};
use cailloux_protocol::record::AuthorKey;
use cailloux_protocol::trust::Mode;
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
    #[error(
        "no federation key in {home}: `cailloux federation create --name <name>` makes one (only \
         the federation's coordinator holds it)"
    )]
    NoFederationKey { home: PathBuf },
    #[error("{path} already holds a federation key; refusing to overwrite it")]
    FederationKeyExists { path: PathBuf },
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

/// Writes a file readable by its owner only.
fn write_private(path: &Path, text: &str) -> Result<(), HomeError> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(io(path))?;
    file.write_all(format!("{text}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io(path))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> HomeError + '_ {
    move |source| HomeError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The blob cache's default quota, in MiB.
pub const DEFAULT_BLOB_CACHE_MB: u64 = 1024;

/// A town's settings, from `config.toml`. Every field is optional; each says what its absence
/// means. Each has a command-line twin on `cailloux node`, and the flag wins.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The town this node publishes for: the default `town:` of its publications. Absent: every
    /// publication must name its town.
    pub town: Option<String>,
    /// libp2p listen addresses (`--listen`). Absent: TCP and QUIC on port 4747, all IPv4
    /// interfaces.
    pub listen: Option<Vec<String>>,
    /// The local HTTP API's address (`--api`). Absent: 127.0.0.1:4748. Port 0 picks a free port.
    pub api: Option<String>,
    /// Serve the corpus browser and the read API (nothing that writes) on this address too, for
    /// the public (`--public-api`). Absent: not served beyond the local API.
    pub public_api: Option<String>,
    /// The address visitors reach the public address at, as a URL without a trailing `/`
    /// (`https://cailloux.example-town.fr`, behind a reverse proxy): what the open-data
    /// catalogue's links start with (`--public-url`). Absent: the visitor's own `Host`.
    pub public_url: Option<String>,
    /// Peers to connect to at start (`--bootstrap`), as multiaddrs ending in `/p2p/<peer id>`.
    /// Absent: none (mDNS and Kademlia find the rest).
    pub bootstrap: Option<Vec<String>>,
    /// Discover peers on the local network with mDNS (`--no-mdns` turns it off). Absent: true.
    pub mdns: Option<bool>,
    /// `text` or `json` (`--log-format`). Absent: text.
    pub log_format: Option<String>,
    /// Seconds between reconciliations with a random peer (`--sync-interval`). Absent: 60.
    pub sync_interval_secs: Option<u64>,
    /// The most peers kept connected, inbound included (`--max-peers`). Absent: 24.
    pub max_peers: Option<usize>,
    /// sled's page cache in MiB (`--store-cache-mb`). Absent: 16.
    pub store_cache_mb: Option<u64>,
    /// Disk for other towns' attached files, fetched when asked for, in MiB
    /// (`--blob-cache-mb`); the least recently used go first. The town's own files are kept
    /// whatever this says. Absent: `DEFAULT_BLOB_CACHE_MB` (1024).
    pub blob_cache_mb: Option<u64>,
    /// Serve relay circuits for nodes behind NAT (`--relay`). Absent: false.
    pub relay: Option<bool>,
    /// The federation this node belongs to: its key, 64 hex characters (`cailloux join` writes
    /// it). Absent: open mode, any valid signature is accepted.
    pub federation: Option<String>,
}

/// The documented file `init` writes.
fn config_template(town: &str) -> String {
    format!(
        r#"# Cailloux node configuration. Every setting is optional; command-line flags win over it.

# The town this node publishes for. Publications that do not name a `town:` get this one.
town = {town}

# Where the node listens for other towns (libp2p multiaddrs). Open these ports (TCP and UDP).
# listen = ["/ip4/0.0.0.0/tcp/4747", "/ip4/0.0.0.0/udp/4747/quic-v1"]

# The local HTTP API, used by the `cailloux` command while the node runs, and /metrics.
# api = "127.0.0.1:4748"

# The corpus browser and the read API for the public (no writes), e.g. behind a reverse proxy.
# public_api = "0.0.0.0:8080"

# The URL the public reaches that address at (behind a reverse proxy, with TLS): the links of
# the open-data catalogue (/api/v1/catalog.jsonld) start with it.
# public_url = "https://cailloux.example-town.fr"

# Towns to connect to at start: multiaddrs ending in /p2p/<peer id> (see `cailloux status`).
# bootstrap = ["/dns4/node.example-town.fr/tcp/4747/p2p/12D3KooW..."]

# Find other nodes on the local network (mDNS).
# mdns = true

# Log format: "text" or "json" (for log shippers). Verbosity: the RUST_LOG variable.
# log_format = "text"

# Seconds between catch-up rounds with a random peer (besides one on every new connection).
# sync_interval_secs = 60

# The most other nodes kept connected at once, inbound included (bootstrap peers always stay).
# max_peers = 24

# Memory for the store's page cache, in MiB (a small VM needs little; reads come from the OS
# page cache too).
# store_cache_mb = 16

# Disk for other towns' attached files (reports, photos), fetched when someone asks for them,
# in MiB; the least recently used go first. This town's own files are always kept.
# blob_cache_mb = 1024

# Relay connections for towns behind NAT (on a node that others can reach: the federation's
# coordinator, an intercommunal IT service). A circuit lasts up to 1 hour and carries up to
# 64 MiB; half of max_peers can hold a reservation. See the README's "Behind a NAT".
# relay = false

# The federation this node belongs to (its key, from the coordinator). Only records whose
# author chains to it are accepted. Absent: open mode. `cailloux join KEY` sets it.
# federation = "<64 hex characters>"
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
    /// The 32-byte seed: the record-signing key, and the libp2p key of the node.
    pub fn seed(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

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

    pub fn federation_key_path(&self) -> PathBuf {
        self.root.join("federation.key")
    }

    pub fn config_path(&self) -> PathBuf {
        self.root.join("config.toml")
    }

    pub fn store_path(&self) -> PathBuf {
        self.root.join("store")
    }

    /// The full-text search index, derived from the store.
    /// Attached files (`blobs/kept`, `blobs/cache`, `blobs/tmp`).
    pub fn blobs_path(&self) -> PathBuf {
        self.root.join("blobs")
    }

    /// The blob folder, with the configured cache quota.
    pub fn open_blobs(&self, cache_mb: Option<u64>) -> Result<crate::blobs::Blobs, HomeError> {
        let mb = cache_mb.unwrap_or(DEFAULT_BLOB_CACHE_MB);
        let path = self.blobs_path();
        crate::blobs::Blobs::open(&path, mb.saturating_mul(1024 * 1024)).map_err(|e| match e {
            crate::blobs::BlobError::Io { path, source } => HomeError::Io { path, source },
            other => HomeError::Io {
                path,
                source: std::io::Error::other(other.to_string()),
            },
        })
    }

    pub fn search_path(&self) -> PathBuf {
        self.root.join("index")
    }

    /// Where a running node writes the API address it bound; removed when it stops.
    pub fn api_addr_path(&self) -> PathBuf {
        self.root.join("api.addr")
    }

    /// The bearer token that the API's write endpoints require.
    pub fn api_token_path(&self) -> PathBuf {
        self.root.join("api.token")
    }

    /// The API token, created (readable by the owner only) if there is none yet.
    pub fn api_token(&self) -> Result<String, HomeError> {
        let path = self.api_token_path();
        if let Ok(token) = std::fs::read_to_string(&path) {
            return Ok(token.trim().to_owned());
        }
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| HomeError::Io {
            path: path.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let token = encode_hex(&bytes);
        write_private(&path, &token)?;
        Ok(token)
    }

    /// The API address of the node running for this home, if one wrote it.
    pub fn running_api(&self) -> Option<String> {
        std::fs::read_to_string(self.api_addr_path())
            .ok()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    }

    /// Creates the town's identity and its `config.toml`. Refuses to touch an existing identity.
    pub fn init(&self, town: &str) -> Result<Identity, HomeError> {
        let town = town.trim();
        if town.is_empty() {
            return Err(HomeError::EmptyTown);
        }
        self.create_identity(Some(town))
    }

    /// Creates an identity, and a `config.toml` naming `town` (or leaving it unnamed).
    pub fn create_identity(&self, town: Option<&str>) -> Result<Identity, HomeError> {
        let seed = self.create_key_file(&self.identity_path(), |path| {
            HomeError::IdentityExists { path }
        })?;
        let config = self.config_path();
        if !config.exists() {
            let mut text = config_template(town.unwrap_or(""));
            if town.is_none() {
                text = text.replace("\ntown = \"\"", "\n# town = \"Ma-Commune\"");
            }
            std::fs::write(&config, text).map_err(io(&config))?;
        }
        Ok(Identity {
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// Creates the federation's key in this home (the coordinator's).
    pub fn create_federation_key(&self) -> Result<SigningKey, HomeError> {
        let seed = self.create_key_file(&self.federation_key_path(), |path| {
            HomeError::FederationKeyExists { path }
        })?;
        Ok(SigningKey::from_bytes(&seed))
    }

    pub fn load_federation_key(&self) -> Result<SigningKey, HomeError> {
        let path = self.federation_key_path();
        if !path.exists() {
            return Err(HomeError::NoFederationKey {
                home: self.root.clone(),
            });
        }
        Ok(SigningKey::from_bytes(&read_seed(&path)?))
    }

    /// This node's mode: the federation named in `config.toml`, or open.
    pub fn mode(&self) -> Result<Mode, HomeError> {
        let config = self.load_config()?;
        match config.federation.as_deref().map(str::trim) {
            None | Some("") => Ok(Mode::Open),
            Some(hex) => parse_key(hex).map(Mode::Federation).ok_or_else(|| {
                HomeError::BadConfig {
                    path: self.config_path(),
                    message: format!(
                        "federation = \"{hex}\" is not a key: it should be 64 hexadecimal characters, as `cailloux federation create` printed"
                    ),
                }
            }),
        }
    }

    /// Sets `key = value` (a TOML value) in `config.toml`, replacing the line that sets it or
    /// appending one; the rest of the file, comments included, is kept.
    pub fn set_config(&self, key: &str, value: &str) -> Result<(), HomeError> {
        std::fs::create_dir_all(&self.root).map_err(io(&self.root))?;
        let path = self.config_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(HomeError::Io { path, source: e }),
        };
        let line = format!("{key} = {value}");
        let mut found = false;
        let mut lines: Vec<String> = text
            .lines()
            .map(|l| {
                let set_here = l
                    .split_once('=')
                    .is_some_and(|(k, _)| k.trim() == key && !l.trim_start().starts_with('#'));
                if set_here && !found {
                    found = true;
                    line.clone()
                } else {
                    l.to_owned()
                }
            })
            .collect();
        if !found {
            lines.push(line);
        }
        let new = lines.join("\n") + "\n";
        toml::from_str::<Config>(&new).map_err(|e| HomeError::BadConfig {
            path: path.clone(),
            message: e.to_string(),
        })?;
        std::fs::write(&path, new).map_err(io(&path))
    }

    /// Writes a new random key whole beside `path`, then links it into place: a crash never
    /// leaves a half-written key, and linking fails if another process created one meanwhile.
    fn create_key_file(
        &self,
        path: &Path,
        exists: impl Fn(PathBuf) -> HomeError,
    ) -> Result<[u8; 32], HomeError> {
        std::fs::create_dir_all(&self.root).map_err(io(&self.root))?;
        let path = path.to_owned();
        if path.exists() {
            return Err(exists(path));
        }
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| HomeError::Io {
            path: path.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        // Written whole beside its place, then linked into it: a crash never leaves a
        // half-written identity, and linking fails if another process created one meanwhile.
        let tmp = path.with_extension(format!("key.{}.tmp", std::process::id()));
        write_private(&tmp, &encode_hex(&seed))?;
        let linked = std::fs::hard_link(&tmp, &path);
        let _ = std::fs::remove_file(&tmp);
        linked.map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => exists(path.clone()),
            _ => HomeError::Io {
                path: path.clone(),
                source: e,
            },
        })?;
        Ok(seed)
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

    /// Opens the store, creating the home and the store if needed, in this home's mode, with
    /// the default page cache (the CLI's short-lived opens).
    pub fn open_store(&self) -> Result<Store, HomeError> {
        self.open_store_cached(crate::daemon::DEFAULT_STORE_CACHE_MB)
    }

    /// `open_store` with a page cache of `cache_mb` MiB (the node's `store_cache_mb`).
    pub fn open_store_cached(&self, cache_mb: u64) -> Result<Store, HomeError> {
        let mode = self.mode()?;
        std::fs::create_dir_all(&self.root).map_err(io(&self.root))?;
        Ok(Store::open(&self.store_path(), mode, cache_mb)?)
    }

    /// Opens the store only if this home has one.
    pub fn open_existing_store(&self) -> Result<Option<Store>, HomeError> {
        if self.store_path().exists() {
            Ok(Some(Store::open(
                &self.store_path(),
                self.mode()?,
                crate::daemon::DEFAULT_STORE_CACHE_MB,
            )?))
        } else {
            Ok(None)
        }
    }
}

/// A public key as people write it: 64 hex characters.
pub fn parse_key(hex: &str) -> Option<AuthorKey> {
    decode_hex(hex.trim())
        .and_then(|b| b.try_into().ok())
        .map(AuthorKey)
}

fn read_seed(path: &Path) -> Result<[u8; 32], HomeError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    decode_hex(text.trim())
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| HomeError::BadIdentity {
            path: path.to_owned(),
        })
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
