//! A job's identity: what makes two runs the same run. Two runs share it when they send
//! the same SQL to the same shards with the same parameter values and write the same
//! output the same way; how fast they go (concurrency, pools, timeouts, retries) does not
//! count.

use sha2::{Digest, Sha256};

use crate::config::{Combine, JobConfig};

/// The SHA-256 (hex) of what defines `config`'s result. A slice of a run split across
/// machines (`--slice I/N`) is a run of its own, whose identity names the slice.
pub fn identity(config: &JobConfig) -> String {
    digest(config, true)
}

/// The identity of the whole run a slice belongs to: the same for each of its slices
/// (and for the run unsliced).
pub fn run_identity(config: &JobConfig) -> String {
    digest(config, false)
}

fn digest(config: &JobConfig, with_slice: bool) -> String {
    let o = &config.options;
    let combine = match &config.combine {
        Combine::Off => serde_json::json!("off"),
        Combine::Split { .. } => serde_json::json!("split"),
        Combine::Merge(sql) => serde_json::json!({ "merge": sql }),
    };
    let mut input = serde_json::json!({
        "job": config.name,
        "query": config.query_text,
        "params": config
            .params
            .iter()
            .map(|(name, value)| (name.clone(), serde_json::Value::String(value.to_string())))
            .collect::<serde_json::Map<_, _>>(),
        "shards": shards_json(config),
        "output": match &config.remote {
            Some(remote) => serde_json::json!(remote.display()),
            None => serde_json::json!(absolute(&config.output)),
        },
        "combine": combine,
        "shard_column": o.shard_column,
        "compression": format!("{:?}", o.compression),
        "row_group_size": o.row_group_size,
        "allow_partial": o.allow_partial,
        "partition": format!("{:?}", o.partition),
        "consistent": o.consistent,
        "types": format!("{:?}", o.types),
        "dictionary": o.dictionary,
        "delta": o.delta,
        "statistics": format!("{:?}", o.statistics),
        "page_index": o.page_index,
        "split": format!("{:?}", o.split),
    });
    // Present only for a dataset, so that the identities of other jobs stay as they were.
    if let Some(dataset) = &o.dataset {
        input["dataset"] = serde_json::json!({
            "partition_by": dataset.columns,
            "keep_columns": dataset.keep_columns,
        });
    }
    // Likewise for a table: its mode and partition columns.
    if let Some(table) = &o.table {
        input["table"] = serde_json::json!({
            "format": "delta",
            "mode": table.mode,
            "partition_by": table.layout.columns,
        });
    }
    if let (true, Some(slicing)) = (with_slice, o.slicing)
        && let Some(index) = slicing.index
    {
        input["slice"] = serde_json::json!([index, slicing.count]);
    }
    let digest = Sha256::digest(input.to_string().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The shards by name, each with its URL without secrets.
pub fn shards_json(config: &JobConfig) -> serde_json::Value {
    config
        .shards
        .iter()
        .map(|s| {
            (
                s.name.clone(),
                serde_json::Value::String(s.source.display()),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// `path` made absolute against the working directory, so that runs started from
/// different directories agree on it.
fn absolute(path: &std::path::Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_owned())
        .display()
        .to_string()
}
