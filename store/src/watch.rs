//! [`RegistryWatcher`]: keeps the node's copy of the registry current.
//!
//! It loads the registry once, then reloads when the store announces a
//! change ([`Notification`]) and, as a fallback, whenever the registry
//! version counter moves (polled). When the store is unreachable it keeps
//! serving the last good copy, logs the failure once, and reports it in
//! [`SyncStatus`] for the node's metrics and readiness.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use peering_policy::Registry;
use tokio::sync::{broadcast, watch};

use crate::{Notification, Result, Store};

/// The watcher's health, for logs, metrics and `/ready`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncStatus {
    /// Registry version of the copy in use.
    pub version: i64,
    /// The last reload or poll succeeded and the change listener is up.
    pub healthy: bool,
    /// When the copy in use was loaded.
    pub loaded_at: SystemTime,
    /// Reloads since start.
    pub reloads: u64,
    /// Failed store calls since start.
    pub failures: u64,
    /// The last failure, as displayed.
    pub last_error: Option<String>,
}

/// Keeps an `Arc<Registry>` current; stops when dropped.
#[derive(Debug)]
pub struct RegistryWatcher {
    current: watch::Receiver<Arc<Registry>>,
    status: Arc<Mutex<SyncStatus>>,
    task: tokio::task::AbortHandle,
}

impl Drop for RegistryWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RegistryWatcher {
    /// Loads the registry (this first load must succeed) and starts
    /// watching; `poll` is the fallback version-poll interval (e.g. 2 s).
    pub async fn start(store: Arc<dyn Store>, poll: Duration) -> Result<Self> {
        let events = store.subscribe();
        let snapshot = store.load_snapshot().await?;
        let status = Arc::new(Mutex::new(SyncStatus {
            version: snapshot.version,
            healthy: true,
            loaded_at: SystemTime::now(),
            reloads: 0,
            failures: 0,
            last_error: None,
        }));
        let (tx, rx) = watch::channel(Arc::new(Registry::new(snapshot)));
        let task = tokio::spawn(run(store, events, tx, Arc::clone(&status), poll));
        Ok(Self {
            current: rx,
            status,
            task: task.abort_handle(),
        })
    }

    /// The registry in use.
    pub fn current(&self) -> Arc<Registry> {
        Arc::clone(&self.current.borrow())
    }

    /// A receiver that sees every new registry.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Registry>> {
        self.current.clone()
    }

    /// The watcher's health.
    pub fn status(&self) -> SyncStatus {
        self.status
            .lock()
            .map_or_else(|p| p.into_inner().clone(), |s| s.clone())
    }
}

fn update(status: &Mutex<SyncStatus>, f: impl FnOnce(&mut SyncStatus)) {
    match status.lock() {
        Ok(mut s) => f(&mut s),
        Err(p) => f(&mut p.into_inner()),
    }
}

fn failed(status: &Mutex<SyncStatus>, error: &crate::Error) {
    let mut was_healthy = false;
    update(status, |s| {
        was_healthy = s.healthy;
        s.healthy = false;
        s.failures += 1;
        s.last_error = Some(error.to_string());
    });
    if was_healthy {
        tracing::warn!(%error, "registry store unreachable; serving the cached registry");
    }
}

async fn reload(
    store: &dyn Store,
    tx: &watch::Sender<Arc<Registry>>,
    status: &Mutex<SyncStatus>,
    healthy: bool,
) {
    match store.load_snapshot().await {
        Ok(snapshot) => {
            let version = snapshot.version;
            tx.send_replace(Arc::new(Registry::new(snapshot)));
            let mut recovered = false;
            update(status, |s| {
                recovered = !s.healthy && healthy;
                s.version = version;
                s.healthy = healthy;
                s.loaded_at = SystemTime::now();
                s.reloads += 1;
                if healthy {
                    s.last_error = None;
                }
            });
            if recovered {
                tracing::info!(version, "registry store reachable again");
            }
            tracing::debug!(version, "registry reloaded");
        }
        Err(error) => failed(status, &error),
    }
}

async fn run(
    store: Arc<dyn Store>,
    mut events: broadcast::Receiver<Notification>,
    tx: watch::Sender<Arc<Registry>>,
    status: Arc<Mutex<SyncStatus>>,
    poll: Duration,
) {
    let mut ticker = tokio::time::interval(poll);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut listener_up = true;
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(Notification::Changed { .. }) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    reload(&*store, &tx, &status, listener_up).await;
                }
                Ok(Notification::Connected) => {
                    listener_up = true;
                    reload(&*store, &tx, &status, true).await;
                }
                Ok(Notification::Disconnected) => {
                    listener_up = false;
                    update(&status, |s| s.healthy = false);
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = ticker.tick() => {
                let have = tx.borrow().version();
                match store.registry_version().await {
                    Ok(v) if v != have => reload(&*store, &tx, &status, listener_up).await,
                    Ok(_) => {
                        let mut recovered = false;
                        update(&status, |s| {
                            recovered = !s.healthy && listener_up;
                            s.healthy = listener_up;
                        });
                        if recovered {
                            tracing::info!("registry store reachable again");
                        }
                    }
                    Err(error) => failed(&status, &error),
                }
            }
        }
    }
}
