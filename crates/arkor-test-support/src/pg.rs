//! PostgreSQL for tests: a fresh database per test on the server `ARKOR_TEST_PG_URL` names.
//!
//! `.ci/run` starts a throwaway PostgreSQL 15 cluster on loopback and sets the variable to
//! its maintenance database (`postgres://postgres@127.0.0.1:55432/postgres`); a developer
//! points it at any server where that user may `CREATE DATABASE`. Each test gets
//! `test_<pid>_<n>_<nanos>`, so tests run in parallel without seeing each other's rows. Unset,
//! the PostgreSQL variants of the store and HTTP tests skip with a message, except under
//! `CI`, where they fail.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio_postgres::NoTls;

/// The server to create test databases on, `None` (after saying why) to skip outside CI; a
/// panic in CI.
#[allow(clippy::disallowed_methods)] // Test configuration: the one place tests read variables.
pub fn server_url() -> Option<String> {
    let url = std::env::var("ARKOR_TEST_PG_URL").ok().filter(|u| !u.is_empty());
    if url.is_none() {
        let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false");
        assert!(!ci, "ARKOR_TEST_PG_URL must name a PostgreSQL server in CI (.ci/run starts one)");
        eprintln!(
            "skipping: set ARKOR_TEST_PG_URL=postgres://USER@HOST:PORT/postgres to run this test"
        );
    }
    url
}

/// A database created for one test; [`PgDatabase::drop_database`] removes it.
pub struct PgDatabase {
    /// The connection URL of the new database.
    pub url: String,
    server: String,
    name: String,
}

/// Creates a fresh database on the [`server_url`] server; `None` to skip (outside CI).
pub async fn database() -> Option<PgDatabase> {
    let server = server_url()?;
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let name =
        format!("test_{}_{}_{nanos:08x}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
    let admin = connect(&server).await;
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap_or_else(|e| panic!("CREATE DATABASE {name} on ARKOR_TEST_PG_URL: {e}"));
    let url = with_database(&server, &name);
    Some(PgDatabase { url, server, name })
}

impl PgDatabase {
    /// Drops the database, closing whatever connections still use it.
    pub async fn drop_database(self) {
        let admin = connect(&self.server).await;
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name))
            .await
            .unwrap_or_else(|e| panic!("DROP DATABASE {}: {e}", self.name));
    }
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to ARKOR_TEST_PG_URL ({url}): {e}"));
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// `url` with its database (the path) replaced by `name`; query parameters are kept.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let (scheme, rest) = base.split_once("://").expect("ARKOR_TEST_PG_URL is a postgres:// URL");
    let authority = rest.split_once('/').map_or(rest, |(a, _)| a);
    let query = query.map(|q| format!("?{q}")).unwrap_or_default();
    format!("{scheme}://{authority}/{name}{query}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_database_is_swapped_and_the_rest_kept() {
        let w = super::with_database;
        assert_eq!(w("postgres://u@h:5/postgres", "t"), "postgres://u@h:5/t");
        assert_eq!(
            w("postgres://u:p@h/postgres?sslmode=disable", "t"),
            "postgres://u:p@h/t?sslmode=disable"
        );
        assert_eq!(w("postgresql://u@h", "t"), "postgresql://u@h/t");
    }
}
