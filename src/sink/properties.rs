//! The Parquet writer properties of the output: what the job asks for (compression,
//! statistics, page index), the dictionary limit, and the delta encodings.

use arrow::datatypes::{DataType, Schema};
use parquet::arrow::ArrowSchemaConverter;
use parquet::basic::{Encoding, Type as PhysicalType};
use parquet::file::properties::{BloomFilterPosition, EnabledStatistics, WriterProperties};

use super::dictionary::DICTIONARY_PAGE_LIMIT;
use crate::config::RunOptions;

/// Writer properties for the output: compression, dictionary encoding, statistics and
/// the page index as the job asks.
pub fn writer_properties(options: &RunOptions) -> WriterProperties {
    let statistics = match (options.statistics, options.page_index) {
        // Page statistics live in the column index, which is part of the page index.
        (EnabledStatistics::Page, false) => EnabledStatistics::Chunk,
        (level, _) => level,
    };
    WriterProperties::builder()
        .set_compression(options.compression)
        .set_dictionary_enabled(options.dictionary)
        .set_dictionary_page_size_limit(DICTIONARY_PAGE_LIMIT)
        .set_statistics_enabled(statistics)
        .set_offset_index_disabled(!options.page_index)
        // Bloom filters (none are enabled today) then lie beside their row group, inside
        // the bytes a commit keeps, rather than after the last group, where a commit that
        // leaves groups out writes the footer again.
        .set_bloom_filter_position(BloomFilterPosition::AfterRowGroup)
        .set_created_by(format!("tributary version {}", env!("CARGO_PKG_VERSION")))
        .build()
}

/// The writer properties for a file of `schema`: `props`, and with `delta` every column
/// that leaves its dictionary, or has none, continues in a delta encoding where Parquet
/// has one for its type:
/// - byte arrays (text, JSON, binary) in DELTA_LENGTH_BYTE_ARRAY: the lengths
///   delta-packed apart from the bytes, which lie back to back. Under zstd that is 7%
///   smaller than plain's length-prefixed values on the benchmark table;
/// - 32- and 64-bit integers (and the dates, times, timestamps and decimals stored as
///   them) in DELTA_BINARY_PACKED: differences from the previous value, bit-packed per
///   block. Under zstd, ids in insertion order come out 5-6x smaller than plain,
///   timestamps in insertion order about 30% smaller, and random values mostly a little
///   smaller, as the packing drops the bits no value in a block uses; full-range random
///   64-bit values come out 4% larger (docs/performance.md).
///
/// The integer encoding also costs less CPU than plain (5% fewer instructions for the
/// benchmark export), as zstd has fewer bytes to compress; the text encoding costs no
/// measurable CPU.
pub fn file_properties(
    props: &WriterProperties,
    schema: &Schema,
    delta: bool,
) -> parquet::errors::Result<WriterProperties> {
    if !delta {
        return Ok(props.clone());
    }
    let descr = ArrowSchemaConverter::new()
        .with_coerce_types(props.coerce_types())
        .convert(schema)?;
    // pyarrow cannot decode delta-encoded pages into an Arrow dictionary column ("DecodeArrow
    // of DictAccumulator for DeltaLengthByteArrayDecoder" in pyarrow 26): those columns
    // keep PLAIN.
    let dictionary_typed: Vec<&str> = schema
        .fields()
        .iter()
        .filter(|f| has_dictionary(f.data_type()))
        .map(|f| f.name().as_str())
        .collect();
    let mut builder = props.clone().into_builder();
    for column in descr.columns() {
        let top = column.path().parts().first().map(String::as_str);
        if top.is_some_and(|name| dictionary_typed.contains(&name)) {
            continue;
        }
        let encoding = match column.physical_type() {
            PhysicalType::BYTE_ARRAY => Encoding::DELTA_LENGTH_BYTE_ARRAY,
            PhysicalType::INT32 | PhysicalType::INT64 => Encoding::DELTA_BINARY_PACKED,
            _ => continue,
        };
        builder = builder.set_column_encoding(column.path().clone(), encoding);
    }
    Ok(builder.build())
}

/// Whether `t` is, or holds, an Arrow dictionary.
fn has_dictionary(t: &DataType) -> bool {
    match t {
        DataType::Dictionary(..) => true,
        DataType::List(f)
        | DataType::LargeList(f)
        | DataType::FixedSizeList(f, _)
        | DataType::Map(f, _) => has_dictionary(f.data_type()),
        DataType::Struct(fields) => fields.iter().any(|f| has_dictionary(f.data_type())),
        _ => false,
    }
}
