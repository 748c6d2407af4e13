//! Bounds-checked reads of one value's bytes, for the decoders of every type: a value's
//! parts through [`Cursor`], a fixed-size value through [`fixed`], text through [`utf8`].
//! Malformed input comes out as a [`ValueError`], never a panic.

use super::ValueError;

/// Reads a value's parts; every read is bounds-checked, so malformed input is an error.
pub(super) struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(super) fn new(data: &'a [u8]) -> Cursor<'a> {
        Cursor { data, pos: 0 }
    }

    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], ValueError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.data.len())
            .ok_or(ValueError::Short { wanted: n })?;
        let out = &self.data[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    pub(super) fn i32(&mut self) -> Result<i32, ValueError> {
        Ok(i32::from_be_bytes(fixed(self.take(4)?)?))
    }

    pub(super) fn u16(&mut self) -> Result<u16, ValueError> {
        Ok(u16::from_be_bytes(fixed(self.take(2)?)?))
    }

    pub(super) fn u8(&mut self) -> Result<u8, ValueError> {
        Ok(self.take(1)?[0])
    }

    pub(super) fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    /// A length-prefixed value: `None` for length -1 (NULL).
    pub(super) fn field(&mut self) -> Result<Option<&'a [u8]>, ValueError> {
        match self.i32()? {
            -1 => Ok(None),
            n if n < 0 => Err(ValueError::NegativeLength(n)),
            n => self.take(n as usize).map(Some),
        }
    }

    pub(super) fn end(&self) -> Result<(), ValueError> {
        if self.pos == self.data.len() {
            Ok(())
        } else {
            Err(ValueError::Trailing(self.data.len() - self.pos))
        }
    }
}

pub(super) fn fixed<const N: usize>(v: &[u8]) -> Result<[u8; N], ValueError> {
    v.try_into().map_err(|_| ValueError::Size {
        expected: N,
        got: v.len(),
    })
}

pub(super) fn utf8(v: &[u8]) -> Result<&str, ValueError> {
    std::str::from_utf8(v).map_err(ValueError::Utf8)
}
