//! Integration tests against real servers: the PostgreSQL and the MariaDB on this machine
//! (several databases act as shards) and SQLite files. Each test writes a job, runs it, and reads
//! the Parquet back to compare with what the database itself returns.

mod backfill;
mod check;
mod cli;
mod combine;
mod dataset;
mod dates;
mod delta;
mod demo;
mod environment;
mod faults;
mod harness;
mod incremental;
mod ledger;
mod libpq;
mod manual;
mod metrics;
mod mysql;
mod mysql_combine;
mod output;
mod params;
mod partitions;
mod postgres;
mod profiles;
mod progress;
mod proxy;
mod python;
mod readers;
mod readonly;
mod slices;
mod sqlite;
mod storage;
mod tls;
mod types;
