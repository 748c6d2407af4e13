//! A parser for PostgreSQL's binary COPY format that appends values straight into Arrow
//! builders, with no per-row objects.
//!
//! The stream is a header (`PGCOPY\n\xff\r\n\0`, flags, extension), then tuples (an i16
//! field count, then per field an i32 length, -1 for NULL, and the value in the type's
//! binary send format), then a trailer (field count -1). The server sends one CopyData
//! message per tuple, but this parser accepts any chunking: a partial tuple is kept until
//! the rest arrives. Malformed input is an error, never a panic, and nothing is allocated
//! from a length the input claims before the bytes are actually there.
//!
//! Complete tuples are first gathered into a block of [`BLOCK_ROWS`](block::BLOCK_ROWS),
//! then decoded column by column: one loop per column over the block's values, with the
//! column's kind decided once per block rather than once per value, while the block is
//! still in cache. A value that cannot be decoded is reported by the call that completes
//! its block: a `push` that fills the block or reaches the trailer, or `take_batch`.
//!
//! This module holds the decoder's public face, [`CopyDecoder`]: what it buffers and
//! what it hands out. The work is split by concern:
//!
//! - `block`: the stream's framing (header, tuples, trailer) and the blocks of tuples
//!   decoded a column at a time.
//! - `builders`: one Arrow builder per column, by kind, and how a value or a block of
//!   values reaches it.
//! - `scalar`, `numeric`, `nested`: each type's decoding from its binary send format,
//!   one function per type; `cursor` reads a value's parts with bounds checks.

mod block;
mod builders;
mod cursor;
mod nested;
mod numeric;
mod scalar;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{Schema, SchemaRef};

use crate::types::PgKind;
use block::Width;
use builders::{Column, Scratch};

pub use super::error::{CopyError, Malformed, ValueError};

#[derive(Debug, PartialEq, Eq)]
enum State {
    Header,
    Tuples,
    Done,
    /// An error was returned: the rows decoded since the last batch were dropped (a
    /// failing value may have left part of itself in its builders) and nothing more is
    /// accepted.
    Failed,
}

/// Decodes one COPY stream into record batches of the given schema.
pub struct CopyDecoder {
    state: State,
    /// A partial tuple (or header) carried over between chunks.
    pending: Vec<u8>,
    /// Stream bytes parsed so far: the offset of `pending`'s first byte, from which
    /// errors say where in the stream they are.
    consumed: u64,
    /// Complete tuples not yet decoded: their fields back to back, without the field
    /// count.
    block: Vec<u8>,
    /// For each tuple in `block`, for each column: where the field's length word starts.
    fields: Vec<usize>,
    /// For each tuple in `block`: what to add to a place in `block` to get its offset in
    /// the stream, for errors.
    shifts: Vec<u64>,
    /// Where a block's values of one column are gathered before they go to its builder.
    scratch: Scratch,
    /// For each column, the length its values always have, if they do.
    widths: Vec<Width>,
    columns: Vec<Column>,
    /// The column names, for errors.
    names: Vec<String>,
    /// The column kinds, to rebuild the builders after an error.
    kinds: Vec<PgKind>,
    schema: SchemaRef,
    rows: usize,
    /// Bytes of the rows decoded and not yet taken: the decoded arrays take about as much.
    bytes: usize,
}

impl CopyDecoder {
    pub fn new(kinds: &[(String, PgKind)]) -> CopyDecoder {
        let fields: Vec<_> = kinds.iter().map(|(name, kind)| kind.field(name)).collect();
        let columns: Vec<Column> = kinds.iter().map(|(_, k)| Column::new(k)).collect();
        CopyDecoder {
            state: State::Header,
            pending: Vec::new(),
            consumed: 0,
            block: Vec::new(),
            fields: Vec::new(),
            shifts: Vec::new(),
            scratch: Scratch::default(),
            widths: columns.iter().map(Column::width).collect(),
            columns,
            names: kinds.iter().map(|(name, _)| name.clone()).collect(),
            kinds: kinds.iter().map(|(_, k)| k.clone()).collect(),
            schema: Arc::new(Schema::new(fields)),
            rows: 0,
            bytes: 0,
        }
    }

    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Rows decoded and not yet taken as a batch.
    pub fn buffered_rows(&self) -> usize {
        self.rows
    }

    /// An estimate of the memory the buffered rows take.
    pub fn buffered_bytes(&self) -> usize {
        self.bytes
    }

    /// Whether the trailer has been seen.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Feeds the next chunk of the stream.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), CopyError> {
        let result = self.push_inner(chunk);
        if result.is_err() {
            self.fail();
        }
        result
    }

    /// Drops what was decoded since the last batch and refuses anything more.
    fn fail(&mut self) {
        self.state = State::Failed;
        self.pending.clear();
        self.block.clear();
        self.fields.clear();
        self.shifts.clear();
        self.columns = self.kinds.iter().map(Column::new).collect();
        self.rows = 0;
        self.bytes = 0;
    }

    /// A protocol error `at` bytes into the data now being parsed.
    fn malformed(&self, at: usize, column: Option<usize>, problem: Malformed) -> CopyError {
        CopyError::Malformed {
            offset: self.consumed + at as u64,
            column: column.map(|c| self.names[c].clone()),
            problem,
        }
    }

    fn push_inner(&mut self, chunk: &[u8]) -> Result<(), CopyError> {
        if self.state == State::Failed {
            return Err(self.malformed(self.pending.len(), None, Malformed::AlreadyFailed));
        }
        if self.pending.is_empty() {
            let used = self.parse(chunk)?;
            self.consumed += used as u64;
            self.pending.extend_from_slice(&chunk[used..]);
        } else {
            let mut data = std::mem::take(&mut self.pending);
            data.extend_from_slice(chunk);
            let used = self.parse(&data)?;
            self.consumed += used as u64;
            data.drain(..used);
            self.pending = data;
        }
        Ok(())
    }

    /// Checks that the stream ended properly (trailer seen, nothing left over).
    pub fn finish(&self) -> Result<(), CopyError> {
        let problem = match self.state {
            State::Done if self.pending.is_empty() => return Ok(()),
            State::Done => Malformed::AfterTrailer,
            State::Failed => Malformed::AlreadyFailed,
            State::Header | State::Tuples => Malformed::Truncated,
        };
        Err(self.malformed(0, None, problem))
    }

    /// Takes the buffered rows as a record batch. `Err` when a value fails a check made
    /// a batch at a time (text that is not UTF-8); the decoder then accepts nothing more.
    pub fn take_batch(&mut self) -> Result<RecordBatch, CopyError> {
        if let Err(e) = self.decode_block() {
            self.fail();
            return Err(e);
        }
        let arrays = self
            .columns
            .iter_mut()
            .zip(&self.names)
            .map(|(c, name)| {
                c.finish().map_err(|problem| CopyError::Value {
                    column: name.clone(),
                    offset: None,
                    problem,
                })
            })
            .collect::<Result<Vec<ArrayRef>, _>>();
        let rows = std::mem::take(&mut self.rows);
        self.bytes = 0;
        let arrays = match arrays {
            Ok(arrays) => arrays,
            Err(e) => {
                self.fail();
                return Err(e);
            }
        };
        Ok(RecordBatch::try_new_with_options(
            self.schema.clone(),
            arrays,
            &arrow::array::RecordBatchOptions::new().with_row_count(Some(rows)),
        )
        .expect("builders match the schema by construction"))
    }
}
