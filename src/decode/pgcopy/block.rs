//! The stream's framing: the header, the tuples and the trailer, and the blocks in which
//! complete tuples wait to be decoded a column at a time. A tuple is walked (its fields'
//! places noted, every length checked) before any of it is kept, so that a partial one
//! appends nothing.

use super::{CopyDecoder, CopyError, Malformed, State};

/// The signature a binary COPY stream starts with.
pub(super) const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

/// PostgreSQL's largest field value (1 GiB).
const MAX_FIELD_BYTES: i32 = 1 << 30;
/// Tuples decoded together, column by column. A block of the benchmark's 15-column rows
/// takes about 14 KiB, which stays in the core's first-level cache between the column
/// passes. The decode benchmark gave 91, 89, 90, 95 and 93 ns/row for blocks of 32, 64,
/// 128, 256 and 1024 rows.
pub(super) const BLOCK_ROWS: usize = 64;
/// A block of wide tuples is decoded once it holds this many bytes, fewer than
/// [`BLOCK_ROWS`] tuples: the block is a copy, kept small.
const BLOCK_BYTES: usize = 256 << 10;

/// The header's flags word: bit 16 says every tuple carries an OID; bits 16-31 are all
/// critical (a reader must abort on one it does not know); bits 0-15 are for
/// backwards-compatible format issues, which a reader may ignore.
const FLAG_OIDS: u32 = 1 << 16;
const CRITICAL_FLAGS: u32 = 0xffff_0000;
/// The longest header extension accepted: PostgreSQL sends none, and the extension is
/// buffered whole before the first tuple.
pub(super) const MAX_HEADER_EXTENSION: u32 = 1 << 20;

/// The length a column's values always have in the send format, which lets the tuple walk
/// find the next field without waiting for this one's length word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Width {
    Fixed(i32),
    /// The length varies (text, numeric, arrays, ...): read it from the length word.
    Varies,
}

impl CopyDecoder {
    /// Parses what it can of `data`; returns the bytes consumed.
    pub(super) fn parse(&mut self, data: &[u8]) -> Result<usize, CopyError> {
        let mut pos = 0;
        if self.state == State::Header {
            match header_len(data).map_err(|(at, problem)| self.malformed(at, None, problem))? {
                Some(n) => {
                    pos = n;
                    self.state = State::Tuples;
                }
                None => return Ok(0),
            }
        }
        while self.state == State::Tuples {
            let rest = &data[pos..];
            if rest.len() < 2 {
                break;
            }
            let count = i16::from_be_bytes([rest[0], rest[1]]);
            if count == -1 {
                self.state = State::Done;
                pos += 2;
                break;
            }
            if count < 0 || count as usize != self.columns.len() {
                let problem = Malformed::FieldCount {
                    found: count,
                    expected: self.columns.len(),
                };
                return Err(self.malformed(pos, None, problem));
            }
            // First find the whole tuple, so that a partial one appends nothing.
            let Some(len) = self
                .stage(rest, self.consumed + pos as u64)
                .map_err(|(at, column, problem)| self.malformed(pos + at, Some(column), problem))?
            else {
                break;
            };
            self.rows += 1;
            self.bytes += len + 8 * self.columns.len();
            pos += len;
            if self.fields.len() >= BLOCK_ROWS * self.columns.len()
                || self.block.len() >= BLOCK_BYTES
            {
                self.decode_block()?;
            }
        }
        if self.state == State::Done {
            self.decode_block()?;
        }
        if self.state == State::Done && pos < data.len() {
            return Err(self.malformed(pos, None, Malformed::AfterTrailer));
        }
        Ok(pos)
    }

    /// Adds the tuple at the start of `data` (field count included), which starts at byte
    /// `offset` of the stream, to the block if it is complete, and returns its length.
    fn stage(&mut self, data: &[u8], offset: u64) -> Result<Option<usize>, BadField> {
        let mark = self.fields.len();
        self.fields.resize(mark + self.widths.len(), 0);
        let base = self.block.len();
        let found = walk(data, &self.widths, &mut self.fields[mark..], base);
        match found {
            Ok(Some(len)) => {
                self.block.extend_from_slice(&data[2..len]);
                // Block place `base` holds the stream's byte `offset + 2`.
                self.shifts.push(offset + 2 - base as u64);
            }
            _ => self.fields.truncate(mark),
        }
        found
    }

    /// Decodes the block's tuples into the builders, a column at a time.
    pub(super) fn decode_block(&mut self) -> Result<(), CopyError> {
        if self.fields.is_empty() {
            return Ok(());
        }
        let stride = self.columns.len();
        for (i, column) in self.columns.iter_mut().enumerate() {
            let block = &self.block[..];
            // The row whose value was handed out last: the failing one when a column
            // returns an error, since each value is converted as it is taken.
            let last = std::cell::Cell::new(0);
            let values = self
                .fields
                .chunks_exact(stride)
                .enumerate()
                .map(|(row, fields)| {
                    last.set(row);
                    let at = fields[i];
                    let n = i32::from_be_bytes(block[at..at + 4].try_into().expect("4 bytes"));
                    // `stage` checked every length against the tuple's bytes.
                    usize::try_from(n).ok().map(|n| &block[at + 4..at + 4 + n])
                });
            if let Err(problem) = column.append_values(values, &mut self.scratch) {
                let row = last.get();
                return Err(CopyError::Value {
                    column: self.names[i].clone(),
                    offset: Some(self.shifts[row] + self.fields[row * stride + i] as u64),
                    problem,
                });
            }
        }
        self.block.clear();
        self.fields.clear();
        self.shifts.clear();
        Ok(())
    }
}

/// The header's length if it is complete; `Err` holds where in it the problem is.
fn header_len(data: &[u8]) -> Result<Option<usize>, (usize, Malformed)> {
    let n = data.len().min(SIGNATURE.len());
    if data[..n] != SIGNATURE[..n] {
        return Err((0, Malformed::Signature));
    }
    if data.len() < 19 {
        return Ok(None);
    }
    let flags = u32::from_be_bytes(data[11..15].try_into().expect("4 bytes"));
    if flags & FLAG_OIDS != 0 {
        return Err((11, Malformed::Oids));
    }
    if flags & CRITICAL_FLAGS != 0 {
        return Err((11, Malformed::CriticalFlags(flags & CRITICAL_FLAGS)));
    }
    let ext = u32::from_be_bytes(data[15..19].try_into().expect("4 bytes"));
    if ext > MAX_HEADER_EXTENSION {
        return Err((15, Malformed::ExtensionTooLong(ext)));
    }
    // The extension's contents are skipped, as PostgreSQL's docs ask of a reader.
    let len = 19 + ext as usize;
    Ok((data.len() >= len).then_some(len))
}

/// A bad field length: where in the tuple its length word is, its column, and why.
type BadField = (usize, usize, Malformed);

/// Walks the fields of the tuple at the start of `data` (field count included), noting
/// in `slots` where each length word will be once the tuple, without its field count, is
/// appended to a block at `base`; returns the tuple's length if it is complete.
#[inline]
fn walk(
    data: &[u8],
    widths: &[Width],
    slots: &mut [usize],
    base: usize,
) -> Result<Option<usize>, BadField> {
    let mut at = 2;
    for (column, (slot, &width)) in slots.iter_mut().zip(widths).enumerate() {
        let Some(len) = data.get(at..at + 4) else {
            return Ok(None);
        };
        let n = i32::from_be_bytes(len.try_into().expect("4 bytes"));
        *slot = base + at - 2;
        match width {
            // The size the column's kind always has. The branch is predicted, so the
            // next field's place follows from the kind without waiting for this length
            // to be loaded: the walk is not one long chain of dependent loads.
            Width::Fixed(w) if n == w => at += 4 + w as usize,
            _ => match field_bytes(n) {
                Ok(bytes) => at += 4 + bytes,
                Err(problem) => return Err((at, column, problem)),
            },
        }
        if at > data.len() {
            return Ok(None);
        }
    }
    Ok(Some(at))
}

/// The bytes a field of length word `n` takes after it.
#[inline]
fn field_bytes(n: i32) -> Result<usize, Malformed> {
    if (0..=MAX_FIELD_BYTES).contains(&n) {
        Ok(n as usize)
    } else if n == -1 {
        Ok(0)
    } else {
        Err(bad_length(n))
    }
}

#[cold]
fn bad_length(n: i32) -> Malformed {
    if n < 0 {
        Malformed::NegativeLength(n)
    } else {
        Malformed::TooLong(n)
    }
}
