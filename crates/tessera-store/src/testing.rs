//! Throwaway databases for tests, on either backend (feature `testing`).
//!
//! Every suite that touches a database runs each test twice, once per [`Backend`], through
//! [`on_each_backend!`](crate::on_each_backend). SQLite always runs. PostgreSQL runs when
//! [`POSTGRES_URL_VAR`] names a server (for example
//! `postgres://postgres@127.0.0.1:5432/postgres`): each test creates a database of its own
//! there and drops it afterwards. Without the variable the PostgreSQL half of each test is
//! skipped, and the test binary says so once on standard error; with it, an unreachable
//! server fails the tests.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Once};

use sqlx::{Connection, Executor, PgConnection};

use crate::Store;

/// The environment variable holding the URL of a PostgreSQL server the tests may create
/// and drop databases on.
pub const POSTGRES_URL_VAR: &str = "TESSERA_TEST_POSTGRES_URL";

/// Which adapter a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file in a temporary directory.
    Sqlite,
    /// A fresh database on the server named by [`POSTGRES_URL_VAR`].
    Postgres,
}

impl Backend {
    /// Whether PostgreSQL tests run: [`POSTGRES_URL_VAR`] is set. Prints, once per test
    /// binary and past the test harness's output capture, that they are skipped when not.
    pub fn postgres_enabled() -> bool {
        static SKIPPED: Once = Once::new();
        if postgres_admin_url().is_some() {
            return true;
        }
        SKIPPED.call_once(|| {
            let _ = writeln!(
                std::io::stderr().lock(),
                "note: PostgreSQL tests skipped: set {POSTGRES_URL_VAR} \
                 (e.g. postgres://postgres@127.0.0.1:5432/postgres) to run them"
            );
        });
        false
    }
}

fn postgres_admin_url() -> Option<String> {
    std::env::var(POSTGRES_URL_VAR)
        .ok()
        .filter(|v| !v.trim().is_empty())
}

/// A database that exists for one test: a SQLite file in a temporary directory, or a
/// PostgreSQL database named `tessera_test_<uuid>`, dropped (with any connections still
/// open to it) when this value is dropped.
#[derive(Debug)]
pub struct TestDatabase {
    backend: Backend,
    url: String,
    dir: tempfile::TempDir,
    postgres: Option<PgDatabase>,
}

#[derive(Debug)]
struct PgDatabase {
    admin_url: String,
    name: String,
}

impl TestDatabase {
    /// Creates an empty database on `backend`.
    ///
    /// # Panics
    /// When it cannot be created, and for [`Backend::Postgres`] when [`POSTGRES_URL_VAR`]
    /// is unset or its server is unreachable: a test must fail rather than pass untested.
    pub fn new(backend: Backend) -> TestDatabase {
        let dir = match tempfile::tempdir() {
            Ok(dir) => dir,
            Err(e) => panic!("cannot create a temporary directory: {e}"),
        };
        match backend {
            Backend::Sqlite => TestDatabase {
                backend,
                url: format!("sqlite://{}", dir.path().join("tessera.db").display()),
                dir,
                postgres: None,
            },
            Backend::Postgres => {
                let Some(admin_url) = postgres_admin_url() else {
                    panic!("{POSTGRES_URL_VAR} is not set");
                };
                let name = format!("tessera_test_{}", uuid::Uuid::new_v4().simple());
                let sql = format!("CREATE DATABASE \"{name}\"");
                if let Err(e) = admin(&admin_url, sql) {
                    panic!(
                        "cannot create a test database on {} ({POSTGRES_URL_VAR}): {e}",
                        crate::redact_url(&admin_url)
                    );
                }
                let url = database_url(&admin_url, &name);
                TestDatabase {
                    backend,
                    url,
                    dir,
                    postgres: Some(PgDatabase { admin_url, name }),
                }
            }
        }
    }

    /// The backend it is on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Its URL, for `--database-url` or [`crate::open`].
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A scratch directory that lives as long as the database (for both backends).
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }

    /// Opens and migrates it.
    ///
    /// # Panics
    /// When that fails.
    pub async fn open(&self) -> Arc<dyn Store> {
        match crate::open(&self.url).await {
            Ok(store) => store,
            Err(e) => panic!("cannot open {}: {e:?}", crate::redact_url(&self.url)),
        }
    }
}

impl TestDatabase {
    /// Every byte the database holds, for asserting that a secret is not stored in clear:
    /// the SQLite files (with the write-ahead log), or every row of every PostgreSQL table
    /// in its text form.
    ///
    /// # Panics
    /// When the database cannot be read.
    pub fn contents(&self) -> Vec<u8> {
        match &self.postgres {
            None => {
                let mut bytes = Vec::new();
                for file in ["tessera.db", "tessera.db-wal"] {
                    if let Ok(file) = std::fs::read(self.dir.path().join(file)) {
                        bytes.extend(file);
                    }
                }
                bytes
            }
            Some(_) => {
                let url = self.url.clone();
                let rows = on_own_thread(async move {
                    let mut conn = PgConnection::connect(&url).await?;
                    let tables: Vec<String> = sqlx::query_scalar(
                        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'",
                    )
                    .fetch_all(&mut conn)
                    .await?;
                    let mut rows = Vec::new();
                    for table in tables {
                        let sql = format!("SELECT t::text FROM \"{table}\" t");
                        let text: Vec<String> =
                            sqlx::query_scalar(&sql).fetch_all(&mut conn).await?;
                        rows.extend(text);
                    }
                    let _ = conn.close().await;
                    Ok(rows)
                });
                match rows {
                    Ok(rows) => rows.join("\n").into_bytes(),
                    Err(e) => panic!("cannot read the test database: {e}"),
                }
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some(pg) = &self.postgres {
            let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", pg.name);
            if let Err(e) = admin(&pg.admin_url, sql) {
                let _ = writeln!(
                    std::io::stderr().lock(),
                    "warning: cannot drop test database {}: {e}",
                    pg.name
                );
            }
        }
    }
}

/// The URL of database `name` on the server of `admin_url`.
fn database_url(admin_url: &str, name: &str) -> String {
    match url_path_start(admin_url) {
        Some((base, query)) => format!("{base}/{name}{query}"),
        None => format!("{admin_url}/{name}"),
    }
}

/// Splits `postgres://auth@host:port/db?query` into `postgres://auth@host:port` and `?query`.
fn url_path_start(url: &str) -> Option<(&str, &str)> {
    let after_scheme = url.find("://")? + 3;
    let rest = &url[after_scheme..];
    let path = rest.find('/').map(|i| after_scheme + i);
    let query = url.find('?');
    match (path, query) {
        (Some(p), Some(q)) if p < q => Some((&url[..p], &url[q..])),
        (Some(p), None) => Some((&url[..p], "")),
        (_, Some(q)) => Some((&url[..q], &url[q..])),
        (None, None) => Some((url, "")),
    }
}

/// Runs one administrative statement on its own thread and runtime, so that it works from
/// synchronous tests, asynchronous tests and `Drop` alike.
fn admin(admin_url: &str, sql: String) -> Result<(), String> {
    let admin_url = admin_url.to_owned();
    on_own_thread(async move {
        let mut conn = PgConnection::connect(&admin_url).await?;
        conn.execute(sql.as_str()).await?;
        let _ = conn.close().await;
        Ok(())
    })
}

fn on_own_thread<T: Send + 'static>(
    job: impl std::future::Future<Output = Result<T, sqlx::Error>> + Send + 'static,
) -> Result<T, String> {
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(job).map_err(|e| e.to_string())
    });
    thread
        .join()
        .unwrap_or_else(|_| Err("the database thread panicked".into()))
}

/// Defines each named test twice, as `NAME::sqlite` and `NAME::postgres`. Each `NAME` is a
/// function taking a [`Backend`]: `async fn NAME(backend: Backend)` by default, or a plain
/// `fn` after `blocking:`. The PostgreSQL twin returns at once, with a note on standard
/// error, when [`POSTGRES_URL_VAR`] is unset.
#[macro_export]
macro_rules! on_each_backend {
    (blocking: $($test:ident),+ $(,)?) => {$(
        mod $test {
            #[test]
            fn sqlite() {
                super::$test($crate::testing::Backend::Sqlite)
            }
            #[test]
            fn postgres() {
                if $crate::testing::Backend::postgres_enabled() {
                    super::$test($crate::testing::Backend::Postgres)
                }
            }
        }
    )+};
    ($($test:ident),+ $(,)?) => {$(
        mod $test {
            #[tokio::test]
            async fn sqlite() {
                super::$test($crate::testing::Backend::Sqlite).await
            }
            #[tokio::test]
            async fn postgres() {
                if $crate::testing::Backend::postgres_enabled() {
                    super::$test($crate::testing::Backend::Postgres).await
                }
            }
        }
    )+};
}

/// A TCP proxy in front of a database server, to take the database away from running
/// servers and give it back. It runs on a thread of its own, so that it keeps forwarding
/// while a test blocks.
#[derive(Debug)]
pub struct TcpProxy {
    addr: std::net::SocketAddr,
    target: std::net::SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
    tasks: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl TcpProxy {
    /// Starts forwarding a free loopback port to `target`.
    ///
    /// # Panics
    /// When no port or thread can be had.
    pub fn start(target: std::net::SocketAddr) -> TcpProxy {
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(e) => panic!("cannot start the proxy's runtime: {e}"),
        };
        let listener = match std::net::TcpListener::bind("127.0.0.1:0") {
            Ok(listener) => listener,
            Err(e) => panic!("cannot bind the proxy: {e}"),
        };
        let addr = match listener.local_addr() {
            Ok(addr) => addr,
            Err(e) => panic!("the proxy has no address: {e}"),
        };
        let proxy = TcpProxy {
            addr,
            target,
            runtime: Some(runtime),
            tasks: Arc::default(),
        };
        proxy.serve(listener);
        proxy
    }

    /// The address to connect to instead of the target.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// The database goes away: open connections are cut and new ones refused. Returns once
    /// every forwarding task and the listener are gone.
    pub fn cut(&self) {
        // A connection accepted while the listener is being stopped is caught on the next
        // round.
        loop {
            let tasks: Vec<_> = self
                .tasks
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .drain(..)
                .collect();
            if tasks.is_empty() {
                return;
            }
            for task in &tasks {
                task.abort();
            }
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while tasks.iter().any(|t| !t.is_finished()) {
                if std::time::Instant::now() >= deadline {
                    panic!("the proxy's connections did not close within five seconds");
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
    }

    /// The database comes back on the same address.
    ///
    /// # Panics
    /// When the address cannot be bound again within five seconds.
    pub fn restore(&self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match std::net::TcpListener::bind(self.addr) {
                Ok(listener) => return self.serve(listener),
                Err(e) if std::time::Instant::now() >= deadline => {
                    panic!("cannot bind the proxy again on {}: {e}", self.addr)
                }
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
            }
        }
    }

    fn serve(&self, listener: std::net::TcpListener) {
        let Some(runtime) = &self.runtime else { return };
        if let Err(e) = listener.set_nonblocking(true) {
            panic!("cannot configure the proxy: {e}");
        }
        let target = self.target;
        let tasks = self.tasks.clone();
        let handle = runtime.handle().clone();
        let accept = runtime.spawn(async move {
            let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                return;
            };
            while let Ok((mut inbound, _)) = listener.accept().await {
                let conn = handle.spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tasks.lock().unwrap_or_else(|e| e.into_inner()).push(conn);
            }
        });
        self.tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(accept);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.cut();
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The address of the PostgreSQL server named by [`POSTGRES_URL_VAR`], for a [`TcpProxy`]
/// to forward to.
///
/// # Panics
/// When the variable is unset or its host does not resolve.
pub fn postgres_server_addr() -> std::net::SocketAddr {
    use std::net::ToSocketAddrs;
    let Some(admin_url) = postgres_admin_url() else {
        panic!("{POSTGRES_URL_VAR} is not set");
    };
    let options: sqlx::postgres::PgConnectOptions = match admin_url.parse() {
        Ok(options) => options,
        Err(e) => panic!("{POSTGRES_URL_VAR} is not a PostgreSQL URL: {e}"),
    };
    match (options.get_host(), options.get_port()).to_socket_addrs() {
        Ok(mut addrs) => match addrs.next() {
            Some(addr) => addr,
            None => panic!("{} resolves to nothing", options.get_host()),
        },
        Err(e) => panic!("cannot resolve {}: {e}", options.get_host()),
    }
}

impl TestDatabase {
    /// This database's URL with the server address replaced by `addr` (a [`TcpProxy`]).
    ///
    /// # Panics
    /// For a SQLite database, which has no server.
    pub fn url_via(&self, addr: std::net::SocketAddr) -> String {
        let Some(pg) = &self.postgres else {
            panic!("a SQLite database has no server to reach through a proxy");
        };
        let Some((base, query)) = url_path_start(&pg.admin_url) else {
            panic!("{POSTGRES_URL_VAR} is not a URL");
        };
        let after_scheme = base.find("://").map_or(0, |i| i + 3);
        let userinfo = base[after_scheme..]
            .rsplit_once('@')
            .map(|(user, _)| format!("{user}@"))
            .unwrap_or_default();
        format!(
            "{}{userinfo}{addr}/{}{query}",
            &base[..after_scheme],
            pg.name
        )
    }
}
