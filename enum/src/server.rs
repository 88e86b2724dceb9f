//! The node's authoritative DNS server for its ENUM zones (hickory-server),
//! over UDP and TCP on one address.
//!
//! Every query first checks the [`ZoneSource`]'s version; when it changed,
//! the zones are rebuilt from the new snapshot before answering, so changes
//! made through the store show up without a restart.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_server::Server;
use hickory_server::net::runtime::{Time, TokioRuntimeProvider};
use hickory_server::proto::rr::LowerName;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneType};
use parking_lot::Mutex;
use tokio::net::{TcpListener, UdpSocket};

use crate::dns;
use crate::error::Result;
use crate::zone::{EnumZone, ZoneSnapshot, ZoneSource};

/// Builds the hickory catalog for one snapshot. Zones that fail to build
/// are left out (and logged), so one bad zone does not take down the rest.
fn catalog(snapshot: &ZoneSnapshot) -> Catalog {
    let mut catalog = Catalog::new();
    for zone in &snapshot.zones {
        match zone_handler(zone) {
            Ok(handler) => {
                catalog.upsert(LowerName::new(&handler.0), vec![Arc::new(handler.1)]);
            }
            Err(error) => {
                tracing::warn!(origin = %zone.origin, %error, "ENUM zone not served");
            }
        }
    }
    catalog
}

type Built = (
    hickory_server::proto::rr::Name,
    InMemoryZoneHandler<TokioRuntimeProvider>,
);

fn zone_handler(zone: &EnumZone) -> Result<Built> {
    let origin = dns::name(&zone.origin)?;
    let mut handler = InMemoryZoneHandler::<TokioRuntimeProvider>::empty(
        origin.clone(),
        ZoneType::Primary,
        AxfrPolicy::Deny,
    );
    let serial = zone.soa.serial;
    for r in zone.records()? {
        handler.upsert_mut(dns::record(&r)?, serial);
    }
    Ok((origin, handler))
}

struct Handler {
    source: Arc<dyn ZoneSource>,
    current: Mutex<(u64, Arc<Catalog>)>,
}

impl Handler {
    fn catalog(&self) -> Arc<Catalog> {
        let version = self.source.version();
        let mut current = self.current.lock();
        if current.0 != version {
            let snapshot = self.source.snapshot();
            *current = (snapshot.version, Arc::new(catalog(&snapshot)));
        }
        current.1.clone()
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        response_handle: R,
    ) -> ResponseInfo {
        let catalog = self.catalog();
        catalog
            .handle_request::<R, T>(request, response_handle)
            .await
    }
}

/// A running authoritative server. Dropping it stops it.
pub struct ZoneServer {
    addr: SocketAddr,
    server: Server<Handler>,
}

impl std::fmt::Debug for ZoneServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZoneServer")
            .field("addr", &self.addr)
            .finish()
    }
}

impl ZoneServer {
    /// Serves `source` on `addr` over UDP and TCP. Port 0 picks a free port
    /// (the same for both, see [`local_addr`](Self::local_addr)).
    pub async fn bind(addr: SocketAddr, source: Arc<dyn ZoneSource>) -> Result<Self> {
        let (udp, tcp) = bind_pair(addr).await?;
        let addr = udp.local_addr()?;
        let snapshot = source.snapshot();
        let handler = Handler {
            current: Mutex::new((snapshot.version, Arc::new(catalog(&snapshot)))),
            source,
        };
        let mut server = Server::new(handler);
        server.register_socket(udp);
        server.register_listener(tcp, Duration::from_secs(10), 64);
        Ok(Self { addr, server })
    }

    /// The address served (UDP and TCP).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving and waits for the tasks to end.
    pub async fn shutdown(mut self) -> Result<()> {
        self.server
            .shutdown_gracefully()
            .await
            .map_err(|e| crate::Error::Io {
                source: std::io::Error::other(e),
            })
    }
}

/// Binds UDP and TCP on the same port; with port 0, retries until a port is
/// free for both.
async fn bind_pair(addr: SocketAddr) -> Result<(UdpSocket, TcpListener)> {
    let mut last = None;
    for _ in 0..20 {
        let udp = UdpSocket::bind(addr).await?;
        let port = udp.local_addr()?.port();
        match TcpListener::bind(SocketAddr::new(addr.ip(), port)).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if addr.port() == 0 => last = Some(e),
            Err(e) => return Err(e.into()),
        }
    }
    Err(last
        .unwrap_or_else(|| std::io::Error::from(std::io::ErrorKind::AddrInUse))
        .into())
}
