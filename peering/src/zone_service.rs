//! The federation's ENUM zone as the node serves it: entries provisioned in
//! the store become an [`EnumZone`], served by the built-in authoritative
//! server, exported as a zone file, and pushed to an external primary with
//! RFC 2136 dynamic update signed with TSIG. Changes made through the store
//! reach the answers within about a second, without a restart.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use base64::Engine as _;
use peering_enum::naptr::NaptrRecord;
use peering_enum::push::{Hmac, TsigKey, UpdateClient};
use peering_enum::server::ZoneServer;
use peering_enum::zone::{EnumZone, MemoryZoneSource, ZoneEntry, ZoneSource};
use peering_store::{EnumEntry, Store};
use serde::Deserialize;
use tokio::task::JoinHandle;
use tracing::{info, warn};

/// `[enum_zone]`: the federation's ENUM zone, served from the store.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneSection {
    /// The zone's origin, e.g. `e164.federation.example.` or `e164.arpa.`.
    #[serde(default = "default_origin")]
    pub origin: String,
    /// The primary name server written in SOA and NS.
    #[serde(default)]
    pub ns: Option<String>,
    /// TTL of every record, in seconds.
    #[serde(default = "default_ttl")]
    pub ttl: u32,
    /// Serve the zone with the built-in authoritative server on this
    /// address (UDP and TCP). Leave it out to only export and push.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// How often to look for changes in the store, in milliseconds.
    #[serde(default = "default_poll_ms")]
    pub poll_ms: u64,
    /// Push every change to an external primary (RFC 2136 + TSIG).
    #[serde(default)]
    pub push: Option<PushSection>,
}

/// `[enum_zone.push]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushSection {
    /// The primary's address, `IP:port`.
    pub primary: SocketAddr,
    /// The TSIG key name, as configured on the primary.
    pub key_name: String,
    /// The TSIG secret, base64 (as in a `tsig-keygen` or `keymgr` output).
    pub key_secret: String,
    /// `hmac-sha256` (default), `hmac-sha384` or `hmac-sha512`.
    #[serde(default = "default_algorithm")]
    pub algorithm: String,
    /// Milliseconds to wait for the primary's answer.
    #[serde(default = "default_push_timeout")]
    pub timeout_ms: u64,
}

impl Default for ZoneSection {
    fn default() -> Self {
        Self {
            origin: default_origin(),
            ns: None,
            ttl: default_ttl(),
            listen: None,
            poll_ms: default_poll_ms(),
            push: None,
        }
    }
}

fn default_origin() -> String {
    "e164.arpa.".to_owned()
}
fn default_ttl() -> u32 {
    300
}
fn default_poll_ms() -> u64 {
    1000
}
fn default_algorithm() -> String {
    "hmac-sha256".to_owned()
}
fn default_push_timeout() -> u64 {
    3000
}

impl ZoneSection {
    fn ns(&self) -> String {
        self.ns
            .clone()
            .unwrap_or_else(|| format!("ns.{}", self.origin.trim_end_matches('.')))
    }

    /// The TSIG update client, when pushing is configured.
    pub fn update_client(&self) -> anyhow::Result<Option<UpdateClient>> {
        let Some(push) = &self.push else {
            return Ok(None);
        };
        let algorithm = match push.algorithm.to_ascii_lowercase().as_str() {
            "hmac-sha256" => Hmac::Sha256,
            "hmac-sha384" => Hmac::Sha384,
            "hmac-sha512" => Hmac::Sha512,
            other => anyhow::bail!("enum_zone.push.algorithm: unknown TSIG algorithm `{other}`"),
        };
        let secret = base64::engine::general_purpose::STANDARD
            .decode(push.key_secret.trim())
            .context("enum_zone.push.key_secret is not base64")?;
        Ok(Some(UpdateClient::new(
            push.primary,
            TsigKey {
                name: push.key_name.clone(),
                algorithm,
                secret,
            },
            Duration::from_millis(push.timeout_ms),
        )))
    }
}

/// Builds the zone from the store's entries: one zone entry per number or
/// range, with its NAPTR records in order.
pub fn zone_from_entries(section: &ZoneSection, serial: u32, entries: &[EnumEntry]) -> EnumZone {
    let mut zone = EnumZone::new(&section.origin, &section.ns(), serial);
    zone.ttl = section.ttl;
    let mut grouped: BTreeMap<(String, bool), (String, Vec<NaptrRecord>)> = BTreeMap::new();
    for e in entries {
        let slot = grouped
            .entry((e.prefix.clone(), e.is_range))
            .or_insert_with(|| (e.member.clone(), Vec::new()));
        slot.1.push(NaptrRecord::new(
            e.order,
            e.preference,
            &e.flags,
            &e.services,
            &e.regexp,
            &e.replacement,
        ));
    }
    zone.entries = grouped
        .into_iter()
        .map(|((digits, range), (owner, naptrs))| {
            if range {
                ZoneEntry::range(&digits, &owner, naptrs)
            } else {
                ZoneEntry::number(&digits, &owner, naptrs)
            }
        })
        .collect();
    zone
}

/// A serial that grows with every change: the registry version, kept in
/// the SOA's 32 bits.
fn serial_of(version: i64) -> u32 {
    (version.max(1) % i64::from(u32::MAX)) as u32
}

/// Loads the current zone from the store.
pub async fn load_zone(section: &ZoneSection, store: &dyn Store) -> anyhow::Result<EnumZone> {
    let version = store
        .registry_version()
        .await
        .context("reading the registry version")?;
    let entries = store
        .enum_entries()
        .await
        .context("reading the ENUM entries")?;
    let zone = zone_from_entries(section, serial_of(version), &entries);
    zone.validate()
        .context("the ENUM entries in the store do not form a valid zone")?;
    Ok(zone)
}

/// The running zone service.
#[derive(Debug)]
pub struct ZoneService {
    /// Where the built-in server answers, if it runs.
    pub server_addr: Option<SocketAddr>,
    source: Arc<MemoryZoneSource>,
    task: JoinHandle<()>,
    server: Option<ZoneServer>,
}

impl ZoneService {
    /// Loads the zone, starts the server if configured, pushes the zone to
    /// the primary if configured, and follows the store for changes.
    pub async fn start(section: ZoneSection, store: Arc<dyn Store>) -> anyhow::Result<Self> {
        let zone = load_zone(&section, store.as_ref()).await?;
        let source = Arc::new(MemoryZoneSource::new(vec![zone.clone()]));
        let server = match section.listen {
            Some(addr) => Some(
                ZoneServer::bind(addr, source.clone() as Arc<dyn ZoneSource>)
                    .await
                    .with_context(|| format!("binding the ENUM zone server on {addr}"))?,
            ),
            None => None,
        };
        let server_addr = server.as_ref().map(ZoneServer::local_addr);
        if let Some(addr) = server_addr {
            info!(%addr, origin = %section.origin, "ENUM zone server ready");
        }
        let updater = section.update_client()?;
        let mut pushed = None;
        if let Some(client) = &updater
            && push(client, None, &zone).await
        {
            pushed = Some(zone.clone());
        }
        let task = tokio::spawn(follow(
            section,
            store,
            source.clone(),
            zone,
            updater,
            pushed,
        ));
        Ok(Self {
            server_addr,
            source,
            task,
            server,
        })
    }

    /// The zone as currently served.
    pub fn current(&self) -> Vec<EnumZone> {
        self.source.snapshot().zones.clone()
    }

    /// Stops following the store and the server.
    pub async fn shutdown(self) {
        self.task.abort();
        if let Some(server) = self.server {
            let _ = server.shutdown().await;
        }
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Pushes the difference between what the primary has and `new`; true
/// when the primary accepted it.
async fn push(client: &UpdateClient, old: Option<&EnumZone>, new: &EnumZone) -> bool {
    match client.push(old, new, unix_now()).await {
        Ok(report) => {
            info!(
                deleted = report.deleted,
                added = report.added,
                "ENUM zone pushed to the primary"
            );
            true
        }
        Err(error) => {
            warn!(%error, "ENUM zone push failed; will retry");
            false
        }
    }
}

/// Polls the registry version (cheap) and reloads the zone when it moved;
/// pushes until the primary has what is served.
async fn follow(
    section: ZoneSection,
    store: Arc<dyn Store>,
    source: Arc<MemoryZoneSource>,
    mut current: EnumZone,
    updater: Option<UpdateClient>,
    mut pushed: Option<EnumZone>,
) {
    let mut interval = tokio::time::interval(Duration::from_millis(section.poll_ms.max(50)));
    let mut seen = store.registry_version().await.ok();
    loop {
        interval.tick().await;
        match store.registry_version().await {
            Ok(version) if seen != Some(version) => {
                match load_zone(&section, store.as_ref()).await {
                    Ok(zone) => {
                        seen = Some(version);
                        if zone.entries != current.entries {
                            source.replace(vec![zone.clone()]);
                            info!(
                                entries = zone.entries.len(),
                                serial = zone.soa.serial,
                                "ENUM zone reloaded"
                            );
                            current = zone;
                        }
                    }
                    Err(error) => {
                        warn!(error = %format!("{error:#}"), "ENUM zone not reloaded");
                        seen = Some(version);
                    }
                }
            }
            Ok(_) => {}
            Err(error) => {
                warn!(%error, "ENUM zone: store unreachable, serving the last zone");
            }
        }
        if let Some(client) = &updater
            && pushed.as_ref().is_none_or(|p| p.entries != current.entries)
            && push(client, pushed.as_ref(), &current).await
        {
            pushed = Some(current.clone());
        }
    }
}
