//! How the service reaches PostgreSQL: `DATABASE_URL` parsed once into a [`DbTarget`] that
//! opens every connection (the read pool, the writers, the warm-up readers, migrations and
//! the commands).
//!
//! Opening one is bounded and leaves nothing behind:
//! - The hosts of the URL are tried in turn, with libpq's rules
//!   (`postgres://u@h1:p1,h2:p2/db`, `hostaddr`, `load_balance_hosts=random`, every address
//!   of a name); `target_session_attrs=read-write` passes over a server that only accepts
//!   reads (a standby), `read-only` over one that accepts writes. TLS settings apply to each.
//! - Each address gets `DB_CONNECT_TIMEOUT_MS` (the URL's `connect_timeout`, in seconds,
//!   wins) for the whole start-up: TCP, TLS, the startup message, authentication, the
//!   session set-up and the `target_session_attrs` check; a name lookup gets it too. This is
//!   libpq's rule (the timeout is per address), so a one-address URL is bounded by it.
//!   tokio-postgres' own `connect_timeout` covers the TCP connect only: a server that
//!   accepts and never answers would hold an attempt, and its socket, for ever.
//! - The socket is opened here and handed to tokio-postgres (`connect_raw`), so that a
//!   failed or abandoned attempt drops it, and so that a TCP *self-connection* is seen: a
//!   connect to a port on this host where nothing listens can get that very port as its
//!   ephemeral source port (the port is inside `ip_local_port_range`) and then "succeeds",
//!   connected to itself. Such a socket is closed and the connect tried again at once, as
//!   Go's `net.Dial` does; left open it would keep the server from binding its own port.
//! - A connection's driver task ends when the connection is dropped, closing its socket
//!   even while a statement waits for a server that stopped answering.
//!
//! tokio-postgres knows `sslmode=disable|prefer|require` only, and no `sslrootcert`; libpq's
//! TLS options are taken out of the URL here and given libpq's meaning (see [`super::tls`]):
//!
//! | `sslmode`            | TLS                      | server certificate checked          |
//! |----------------------|--------------------------|-------------------------------------|
//! | `disable`            | never                    | —                                   |
//! | `allow`, `prefer` (default) | if the server offers it | no                           |
//! | `require`            | always                   | trusted only if `sslrootcert` is given |
//! | `verify-ca`          | always                   | trusted                             |
//! | `verify-full`        | always                   | trusted, and for the host name      |
//!
//! Trusted: it leads to a certificate of `sslrootcert`, or is one of them (a self-signed
//! server certificate). `sslrootcert` is a PEM file, or `system` for the operating system's
//! store (also the default for `verify-ca`/`verify-full` without it).

use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use diesel::ConnectionResult;
use diesel::connection::{Instrumentation, InstrumentationEvent};
use diesel::result::ConnectionError;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_postgres::config::{Host, LoadBalanceHosts, SslMode, TargetSessionAttrs};
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::tls::{Roots, Verify, connector};

/// Used when neither `DB_CONNECT_TIMEOUT_MS` nor the URL's `connect_timeout` says otherwise.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects that end connected to themselves, in a row, before the attempt gives up (Go's
/// `net.Dial` tries twice; a third try costs nothing).
const SELF_CONNECT_TRIES: usize = 3;

/// Where and how to connect; cheap to clone. `Debug` and [`DbTarget::shown`] hide the password.
#[derive(Clone)]
pub struct DbTarget {
    config: tokio_postgres::Config,
    /// `None`: `sslmode=disable`.
    tls: Option<MakeRustlsConnect>,
    connect_timeout: Duration,
    /// Whether the URL set `connect_timeout` (it then wins over `DB_CONNECT_TIMEOUT_MS`).
    timeout_from_url: bool,
    shown: String,
}

/// What `sslmode` asks for (libpq's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// One host of the URL, as libpq walks them.
#[derive(Debug, Clone)]
enum Endpoint {
    /// A name (resolved at each attempt, every address tried) or an address; `hostaddr`
    /// pins the address and keeps the name for TLS.
    Tcp {
        name: String,
        addr: Option<IpAddr>,
        port: u16,
    },
    /// A directory holding the server's socket `.s.PGSQL.<port>` (no TLS there, as libpq).
    Unix { dir: std::path::PathBuf, port: u16 },
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp {
                name,
                addr: Some(addr),
                port,
            } => write!(f, "{name}:{port} ({addr})"),
            Endpoint::Tcp { name, port, .. } => write!(f, "{name}:{port}"),
            Endpoint::Unix { dir, port } => write!(f, "{}/.s.PGSQL.{port}", dir.display()),
        }
    }
}

impl DbTarget {
    /// Parses a `postgres://` URL. The error says what is wrong without the password.
    pub fn parse(url: &str) -> Result<Self, String> {
        let shown = super::redact(url);
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut mode = Mode::Prefer;
        let mut root_cert = None;
        let mut passed = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_encoding::percent_decode_str(value)
                .decode_utf8()
                .map_err(|_| format!("{key} in {shown} is not valid UTF-8"))?;
            match key {
                "sslmode" => {
                    mode = match value.as_ref() {
                        "disable" => Mode::Disable,
                        "allow" | "prefer" => Mode::Prefer,
                        "require" => Mode::Require,
                        "verify-ca" => Mode::VerifyCa,
                        "verify-full" => Mode::VerifyFull,
                        other => {
                            return Err(format!(
                                "sslmode={other:?} is not one of disable, allow, prefer, require, verify-ca, verify-full"
                            ));
                        }
                    }
                }
                "sslrootcert" => root_cert = Some(value.into_owned()),
                "sslcert" | "sslkey" | "sslpassword" | "sslcrl" | "sslcrldir" => {
                    return Err(format!(
                        "{key} is not supported (client certificates and CRLs); use a password or SCRAM"
                    ));
                }
                _ => passed.push(pair),
            }
        }
        let rest = if passed.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", passed.join("&"))
        };
        let mut config = tokio_postgres::Config::from_str(&rest)
            .map_err(|e| format!("{shown} is not a valid PostgreSQL URL: {e}"))?;
        let tls = match mode {
            Mode::Disable => {
                config.ssl_mode(SslMode::Disable);
                None
            }
            Mode::Prefer => {
                config.ssl_mode(SslMode::Prefer);
                Some(connector(Verify::Nothing)?)
            }
            Mode::Require | Mode::VerifyCa | Mode::VerifyFull => {
                config.ssl_mode(SslMode::Require);
                let roots = match (&root_cert, mode) {
                    (None, Mode::Require) => None,
                    (Some(path), _) => Some(Roots::load(path)?),
                    (None, _) => Some(Roots::load("system")?),
                };
                let verify = match (roots, mode) {
                    (None, _) => Verify::Nothing,
                    (Some(roots), Mode::VerifyFull) => Verify::TrustedForName(roots),
                    (Some(roots), _) => Verify::Trusted(roots),
                };
                Some(connector(verify)?)
            }
        };
        let timeout_from_url = config.get_connect_timeout().is_some();
        let target = Self {
            connect_timeout: config
                .get_connect_timeout()
                .copied()
                .unwrap_or(DEFAULT_CONNECT_TIMEOUT),
            timeout_from_url,
            config,
            tls,
            shown,
        };
        target.endpoints()?;
        Ok(target)
    }

    /// Sets the time limit of each connection attempt, unless the URL has its own
    /// `connect_timeout`.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        if !self.timeout_from_url {
            self.connect_timeout = timeout;
        }
        self
    }

    /// The URL with its password hidden, for logs and errors.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// The role this target logs in as.
    pub fn user(&self) -> Option<&str> {
        self.config.get_user()
    }

    /// The hosts in libpq's order; the URL's shape is checked by [`DbTarget::parse`].
    fn endpoints(&self) -> Result<Vec<Endpoint>, String> {
        let (hosts, addrs, ports) = (
            self.config.get_hosts(),
            self.config.get_hostaddrs(),
            self.config.get_ports(),
        );
        if hosts.is_empty() && addrs.is_empty() {
            return Err(format!(
                "{} names no host (postgres://USER@HOST:PORT/DATABASE)",
                self.shown
            ));
        }
        if !hosts.is_empty() && !addrs.is_empty() && hosts.len() != addrs.len() {
            return Err(format!(
                "{} has {} hosts but {} hostaddr values",
                self.shown,
                hosts.len(),
                addrs.len()
            ));
        }
        let count = hosts.len().max(addrs.len());
        if ports.len() > 1 && ports.len() != count {
            return Err(format!(
                "{} has {count} hosts but {} ports (give one port for all, or one per host)",
                self.shown,
                ports.len()
            ));
        }
        let mut endpoints: Vec<Endpoint> = (0..count)
            .map(|i| {
                let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
                let addr = addrs.get(i).copied();
                match hosts.get(i) {
                    Some(Host::Unix(dir)) if addr.is_none() => Endpoint::Unix {
                        dir: dir.clone(),
                        port,
                    },
                    Some(Host::Tcp(name)) => Endpoint::Tcp {
                        name: name.clone(),
                        addr,
                        port,
                    },
                    // `hostaddr` alone (or beside a socket directory): the address is the name.
                    _ => Endpoint::Tcp {
                        name: addr.map(|a| a.to_string()).unwrap_or_default(),
                        addr,
                        port,
                    },
                }
            })
            .collect();
        if self.config.get_load_balance_hosts() == LoadBalanceHosts::Random {
            use rand::seq::SliceRandom;
            endpoints.shuffle(&mut rand::rng());
        }
        Ok(endpoints)
    }

    /// Opens a connection to the first host that takes it (see the module doc for the
    /// bounds); its driver task runs on the current tokio runtime. The error names every
    /// host tried and why each failed.
    pub async fn connect(&self) -> ConnectionResult<AsyncPgConnection> {
        let endpoints = self.endpoints().map_err(ConnectionError::BadConnection)?;
        let several = endpoints.len() > 1;
        let mut failures = Vec::new();
        for endpoint in endpoints {
            match self.connect_endpoint(&endpoint).await {
                Ok(conn) => return Ok(conn),
                Err(e) if several => failures.push(format!("{endpoint}: {e}")),
                Err(e) => failures.push(e),
            }
        }
        Err(ConnectionError::BadConnection(failures.join("; ")))
    }

    async fn connect_endpoint(&self, endpoint: &Endpoint) -> Result<AsyncPgConnection, String> {
        let limit = self.connect_timeout;
        match endpoint {
            Endpoint::Unix { dir, port } => {
                let path = dir.join(format!(".s.PGSQL.{port}"));
                let attempt = async {
                    let stream = tokio::net::UnixStream::connect(&path)
                        .await
                        .map_err(|e| format!("cannot connect to {}: {e}", path.display()))?;
                    let mut config = self.config.clone();
                    config.ssl_mode(SslMode::Disable);
                    let (client, connection) = config
                        .connect_raw(stream, NoTls)
                        .await
                        .map_err(|e| with_causes(&e))?;
                    self.finish(client, connection).await
                };
                within(limit, &path.display().to_string(), attempt).await
            }
            Endpoint::Tcp { name, addr, port } => {
                let addrs: Vec<SocketAddr> = match addr {
                    Some(ip) => vec![SocketAddr::new(*ip, *port)],
                    None => {
                        let lookup = async {
                            tokio::net::lookup_host((name.as_str(), *port))
                                .await
                                .map(Iterator::collect)
                                .map_err(|e| format!("cannot resolve {name}: {e}"))
                        };
                        within(limit, &format!("resolving {name}"), lookup).await?
                    }
                };
                let mut last = format!("{name} has no address");
                for addr in addrs {
                    let attempt = self.start_tcp(addr, name);
                    match within(limit, &addr.to_string(), attempt).await {
                        Ok(conn) => return Ok(conn),
                        Err(e) => last = e,
                    }
                }
                Err(last)
            }
        }
    }

    /// Start-up over a socket to `addr`; `name` is the host name TLS checks.
    async fn start_tcp(&self, addr: SocketAddr, name: &str) -> Result<AsyncPgConnection, String> {
        let stream = open_tcp(addr, TcpStream::connect)
            .await
            .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        self.tune(&stream)
            .map_err(|e| format!("cannot set up the socket to {addr}: {e}"))?;
        match &self.tls {
            Some(tls) => {
                let tls = MakeTlsConnect::<TcpStream>::make_tls_connect(&mut tls.clone(), name)
                    .map_err(|e| format!("{name:?} cannot be checked as a TLS server name: {e}"))?;
                self.start_over(stream, tls).await
            }
            None => self.start_over(stream, NoTls).await,
        }
    }

    /// PostgreSQL's start-up over `stream`, with or without TLS, then the session checks.
    async fn start_over<T>(&self, stream: TcpStream, tls: T) -> Result<AsyncPgConnection, String>
    where
        T: TlsConnect<TcpStream> + Send,
        T::Stream: Send + 'static,
        T::Future: Send,
    {
        let (client, connection) = self
            .config
            .connect_raw(stream, tls)
            .await
            .map_err(|e| with_causes(&e))?;
        self.finish(client, connection).await
    }

    /// libpq's socket options: no Nagle delay, keepalives and `tcp_user_timeout` as the URL
    /// says (keepalives on by default, so a vanished server is noticed on an idle connection).
    fn tune(&self, stream: &TcpStream) -> io::Result<()> {
        stream.set_nodelay(true)?;
        let socket = socket2::SockRef::from(stream);
        if self.config.get_keepalives() {
            let mut keepalive =
                socket2::TcpKeepalive::new().with_time(self.config.get_keepalives_idle());
            if let Some(interval) = self.config.get_keepalives_interval() {
                keepalive = keepalive.with_interval(interval);
            }
            if let Some(retries) = self.config.get_keepalives_retries() {
                keepalive = keepalive.with_retries(retries);
            }
            socket.set_tcp_keepalive(&keepalive)?;
        }
        if let Some(timeout) = self.config.get_tcp_user_timeout() {
            socket.set_tcp_user_timeout(Some(*timeout))?;
        }
        Ok(())
    }

    /// After authentication: drives the connection, checks `target_session_attrs`, and
    /// makes it a diesel connection. Dropped anywhere in here (a failure, the time limit),
    /// the driver stops and the socket closes.
    async fn finish<C>(&self, client: Client, connection: C) -> Result<AsyncPgConnection, String>
    where
        C: Future<Output = Result<(), tokio_postgres::Error>> + Send + 'static,
    {
        let driver = Driver::spawn(connection);
        self.check_session(&client).await?;
        let mut conn = AsyncPgConnection::try_from(client)
            .await
            .map_err(|e| format!("setting up the session failed: {e}"))?;
        conn.set_instrumentation(driver);
        Ok(conn)
    }

    /// `target_session_attrs`: whether this server takes the session the URL asks for.
    async fn check_session(&self, client: &Client) -> Result<(), String> {
        let wanted = self.config.get_target_session_attrs();
        if wanted == TargetSessionAttrs::Any {
            return Ok(());
        }
        let answer = client
            .simple_query("SHOW transaction_read_only")
            .await
            .map_err(|e| with_causes(&e))?;
        let read_only = answer.iter().find_map(|m| match m {
            SimpleQueryMessage::Row(row) => row.get(0).map(|v| v == "on"),
            _ => None,
        });
        match (wanted, read_only) {
            (TargetSessionAttrs::ReadWrite, Some(true)) => Err(
                "the server only accepts reads (a standby?) and target_session_attrs=read-write"
                    .into(),
            ),
            (TargetSessionAttrs::ReadOnly, Some(false)) => {
                Err("the server accepts writes and target_session_attrs=read-only".into())
            }
            (_, None) => Err("SHOW transaction_read_only gave no answer".into()),
            _ => Ok(()),
        }
    }
}

/// `attempt`, dropped (and with it whatever it opened) if it takes longer than `limit`.
async fn within<T>(
    limit: Duration,
    what: &str,
    attempt: impl Future<Output = Result<T, String>>,
) -> Result<T, String> {
    match tokio::time::timeout(limit, attempt).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "{what}: no answer within {limit:?} (DB_CONNECT_TIMEOUT_MS)"
        )),
    }
}

/// Opens a TCP connection to `addr` with `dial`; a connection that ends up connected to
/// itself is closed and dialled again at once (see the module doc).
async fn open_tcp<D, F>(addr: SocketAddr, mut dial: D) -> io::Result<TcpStream>
where
    D: FnMut(SocketAddr) -> F,
    F: Future<Output = io::Result<TcpStream>>,
{
    for _ in 0..SELF_CONNECT_TRIES {
        let stream = dial(addr).await?;
        if !is_self_connection(stream.local_addr()?, stream.peer_addr()?) {
            return Ok(stream);
        }
        // Reset, not closed: a closed socket would keep the port in TIME_WAIT for a minute,
        // and a server starting on it would fail to bind ("Address already in use").
        let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
        drop(stream);
        log::warn!(
            "the connection to {addr} connected to itself (nothing listens there, and the port is inside this host's ephemeral port range); reset, connecting again"
        );
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        format!(
            "connected to itself {SELF_CONNECT_TRIES} times: nothing listens on {addr}; a server port outside the ephemeral range (net.ipv4.ip_local_port_range) avoids this"
        ),
    ))
}

/// Whether a connected socket's two ends are the same address: a TCP simultaneous open
/// with itself.
fn is_self_connection(local: SocketAddr, peer: SocketAddr) -> bool {
    local.port() == peer.port() && local.ip() == peer.ip()
}

/// An error and its causes, on one line ("error performing TLS handshake" alone does not
/// say that the certificate's issuer is unknown).
fn with_causes(e: &tokio_postgres::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// Ends a connection's driver task when the connection is dropped. diesel-async does that
/// itself only for connections it drives, which must run over a `tokio_postgres::Socket`
/// (a type only tokio-postgres' own connect can make); a connection over a socket opened
/// here is built from its client and driven here, and this, owned by the connection as
/// its (otherwise empty) instrumentation, is dropped with it.
struct Driver {
    _stop: oneshot::Sender<()>,
}

impl Driver {
    /// Spawns the task that drives `connection` until it ends or the `Driver` is dropped.
    fn spawn<C>(connection: C) -> Self
    where
        C: Future<Output = Result<(), tokio_postgres::Error>> + Send + 'static,
    {
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            tokio::select! {
                // Dropped: the socket closes with `connection`, here.
                _ = stopped => {}
                ended = connection => {
                    if let Err(e) = ended {
                        log::debug!("a database connection ended: {}", with_causes(&e));
                    }
                }
            }
        });
        Self { _stop: stop }
    }
}

impl Instrumentation for Driver {
    fn on_connection_event(&mut self, _: InstrumentationEvent<'_>) {}
}

impl fmt::Debug for DbTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbTarget")
            .field("url", &self.shown)
            .field("tls", &self.tls.is_some())
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn libpq_tls_options_are_understood_and_the_rest_passed_on() {
        let t =
            DbTarget::parse("postgres://app:pw@db:5432/orders?sslmode=disable&application_name=x")
                .expect("valid");
        assert!(t.tls.is_none());
        assert_eq!(t.user(), Some("app"));
        assert_eq!(t.config.get_application_name(), Some("x"));
        assert!(
            DbTarget::parse("postgres://db/orders")
                .expect("valid")
                .tls
                .is_some(),
            "prefer by default"
        );
        assert!(
            DbTarget::parse("postgres://db/o?sslmode=require")
                .expect("valid")
                .tls
                .is_some()
        );
    }

    #[test]
    fn a_bad_tls_option_is_named() {
        let err = DbTarget::parse("postgres://db/o?sslmode=sometimes").expect_err("bad mode");
        assert!(err.contains("sslmode"), "{err}");
        let err =
            DbTarget::parse("postgres://db/o?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem")
                .expect_err("no file");
        assert!(err.contains("sslrootcert=/nonexistent/ca.pem"), "{err}");
        let err = DbTarget::parse("postgres://db/o?sslcert=/x").expect_err("client cert");
        assert!(err.contains("sslcert"), "{err}");
    }

    #[test]
    fn the_password_never_shows() {
        for url in [
            "postgres://app:s3cret@db/orders",
            "postgres://app@db/orders?password=s3cret",
            "postgres://app:s3cret@db:notaport/orders",
            "postgres://app@db:notaport/orders?password=s3cret",
            "postgres://app:s3cret@h1,h2,h3:1,2/orders",
        ] {
            match DbTarget::parse(url) {
                Ok(t) => {
                    assert!(!format!("{t:?}").contains("s3cret"), "{url}");
                    assert!(!t.shown().contains("s3cret"), "{url}");
                }
                Err(e) => assert!(!e.contains("s3cret"), "{url}: {e}"),
            }
        }
    }

    #[test]
    fn a_url_connect_timeout_wins() {
        let t = DbTarget::parse("postgres://db/o?connect_timeout=3")
            .expect("valid")
            .with_connect_timeout(Duration::from_secs(10));
        assert_eq!(t.connect_timeout, Duration::from_secs(3));
        let t = DbTarget::parse("postgres://db/o")
            .expect("valid")
            .with_connect_timeout(Duration::from_secs(7));
        assert_eq!(t.connect_timeout, Duration::from_secs(7));
    }

    #[test]
    fn several_hosts_are_walked_in_order_with_their_ports() {
        let t = DbTarget::parse(
            "postgres://app@h1:5001,h2:5002,h3/orders?target_session_attrs=read-write",
        )
        .expect("valid");
        let shown: Vec<String> = t
            .endpoints()
            .expect("endpoints")
            .iter()
            .map(ToString::to_string)
            .collect();
        // A host without a port gets the default, as in libpq.
        assert_eq!(shown, ["h1:5001", "h2:5002", "h3:5432"]);
        assert_eq!(
            t.config.get_target_session_attrs(),
            TargetSessionAttrs::ReadWrite
        );
        let t = DbTarget::parse("postgres://app@h1,h2:5003/orders").expect("valid");
        let shown: Vec<String> = t
            .endpoints()
            .expect("endpoints")
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(shown, ["h1:5432", "h2:5003"]);
        let t = DbTarget::parse("postgres://app@name.test:5432/orders?hostaddr=127.0.0.1")
            .expect("valid");
        assert_eq!(
            t.endpoints().expect("endpoints")[0].to_string(),
            "name.test:5432 (127.0.0.1)"
        );
        let err = DbTarget::parse("postgres:///orders").expect_err("no host");
        assert!(err.contains("names no host"), "{err}");
    }

    #[test]
    fn a_self_connection_is_recognised() {
        let a: SocketAddr = "127.0.0.1:40001".parse().expect("addr");
        let b: SocketAddr = "127.0.0.1:40002".parse().expect("addr");
        assert!(is_self_connection(a, a));
        assert!(!is_self_connection(a, b));
        let v6: SocketAddr = "[::1]:40001".parse().expect("addr");
        assert!(!is_self_connection(a, v6));
    }

    /// A socket bound to a port and connected to that same port: what the kernel gives a
    /// connect whose ephemeral source port is the port it dials (TCP simultaneous open).
    async fn connected_to_itself() -> TcpStream {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind("127.0.0.1:0".parse().expect("addr"))
            .expect("bind");
        let own = socket.local_addr().expect("local address");
        socket.connect(own).await.expect("a connect to itself")
    }

    #[tokio::test]
    async fn a_socket_connected_to_itself_is_closed_and_the_connect_tried_again() {
        let looped = connected_to_itself().await;
        let own = looped.local_addr().expect("local");
        assert!(is_self_connection(own, looped.peer_addr().expect("peer")));
        // It echoes what is written to it: a client would read its own startup message as
        // the server's answer and wait for the rest of a message that never comes.
        let mut looped_probe = looped;
        looped_probe.write_all(b"ping").await.expect("write");
        let mut echo = [0u8; 4];
        looped_probe.read_exact(&mut echo).await.expect("read");
        assert_eq!(&echo, b"ping");
        let mut first = Some(looped_probe);

        let server = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("listen");
        let target = server.local_addr().expect("addr");
        let mut dials = 0;
        let stream = open_tcp(target, |addr| {
            dials += 1;
            let looped = first.take();
            async move {
                match looped {
                    Some(looped) => Ok(looped),
                    None => TcpStream::connect(addr).await,
                }
            }
        })
        .await
        .expect("connected on the second try");
        assert_eq!(dials, 2);
        assert_eq!(stream.peer_addr().expect("peer"), target);
        // The self-connected socket was closed: its port can be bound again.
        std::net::TcpListener::bind(own).expect("the looped socket's port is free again");

        // A dial that always connects to itself gives up with a clear error.
        let err = open_tcp(target, |_| async { Ok(connected_to_itself().await) })
            .await
            .expect_err("gives up");
        assert!(err.to_string().contains("connected to itself"), "{err}");
    }
}
