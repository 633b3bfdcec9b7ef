//! What adit's tests share and repeat: gzip bodies, sample rows as JSON, a
//! fresh database per test on the private PostgreSQL cluster (dropped when
//! the fixture goes), and uploads over HTTP to a server on loopback.
//!
//! It knows adit only from the outside (the upload endpoint, its headers,
//! the sample contract), so it depends on no adit crate.

pub mod db;
pub mod http;
pub mod rows;

pub use db::{admin_url, connect, fresh_database, fresh_database_on, with_database, TestDb};
pub use http::{free_port, get, request, upload, upload_rows, wait_healthy, Response};
pub use rows::{array, gzip, gzip_best, json, rows};
