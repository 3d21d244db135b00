//! Parquet's `DELTA_BINARY_PACKED` encoding of 32-bit integers, for the string lengths of
//! the `DELTA_LENGTH_BYTE_ARRAY` pages the gate encodes itself (see
//! [`crate::delta_length_string_writer`]); the parquet crate keeps its encoder private
//! (public only under a feature that brings the whole `arrow` crate and a regex engine).
//!
//! A header (ULEB128: values per block, miniblocks per block, the value count; zigzag
//! ULEB128: the first value), then blocks of the differences between consecutive values:
//! each block's smallest difference (zigzag ULEB128), one byte per miniblock with its bit
//! width, and each miniblock's differences minus that smallest one, bit-packed least
//! significant bit first as in the RLE / bit-packing hybrid. As parquet-rs writes INT32:
//! 128 values per block in four miniblocks of 32, differences taken wrapping in 32 bits,
//! the last miniblock padded with zeros, and the widths of the last block's unused
//! miniblocks written as zero with no bytes after them.

use crate::rle_hybrid::{bit_width, put_groups, put_uleb128, GROUP_VALUES};

const BLOCK_VALUES: usize = 128;
const MINIBLOCKS: usize = 4;
const MINIBLOCK_VALUES: usize = BLOCK_VALUES / MINIBLOCKS;

/// The most bytes `values` values can take encoded: a header of four ULEB128 numbers
/// (at most 25 bytes), and per block a smallest difference (at most 5 bytes), the four
/// widths and 32 bits per difference.
pub fn max_encoded_len(values: usize) -> usize {
    const HEADER_BYTES: usize = 25;
    const BLOCK_BYTES: usize = 5 + MINIBLOCKS + BLOCK_VALUES * 4;
    HEADER_BYTES + values.div_ceil(BLOCK_VALUES) * BLOCK_BYTES
}

/// Appends `values`, encoded, to `out`.
pub fn encode(values: &[i32], out: &mut Vec<u8>) {
    put_uleb128(BLOCK_VALUES as u64, out);
    put_uleb128(MINIBLOCKS as u64, out);
    put_uleb128(values.len() as u64, out);
    put_zigzag(values.first().copied().unwrap_or(0), out);
    let mut deltas = [0i32; BLOCK_VALUES];
    // Each block covers the differences from `values[start]` to `values[end - 1]`.
    let mut start = 0;
    while start + 1 < values.len() {
        let end = values.len().min(start + 1 + BLOCK_VALUES);
        let block = values.get(start..end).unwrap_or_default();
        let deltas = deltas.get_mut(..end - start - 1).unwrap_or_default();
        for (delta, pair) in deltas.iter_mut().zip(block.windows(2)) {
            if let [previous, next] = pair {
                *delta = next.wrapping_sub(*previous);
            }
        }
        put_block(deltas, out);
        start = end - 1;
    }
}

/// One block of differences (at most [`BLOCK_VALUES`]).
fn put_block(deltas: &[i32], out: &mut Vec<u8>) {
    let min_delta = deltas.iter().copied().min().unwrap_or(0);
    put_zigzag(min_delta, out);
    // Each difference above the smallest fits in 32 bits, wrapping as the reader does.
    let mut relative = [[0u32; MINIBLOCK_VALUES]; MINIBLOCKS];
    let mut widths = [0u8; MINIBLOCKS];
    for ((miniblock, deltas), width) in relative
        .iter_mut()
        .zip(deltas.chunks(MINIBLOCK_VALUES))
        .zip(widths.iter_mut())
    {
        for (slot, &delta) in miniblock.iter_mut().zip(deltas) {
            *slot = delta.wrapping_sub(min_delta) as u32;
        }
        *width = bit_width(miniblock.iter().copied().max().unwrap_or(0));
    }
    out.extend_from_slice(&widths);
    let used = deltas.len().div_ceil(MINIBLOCK_VALUES);
    for (miniblock, &width) in relative.iter().zip(&widths).take(used) {
        let (groups, _) = miniblock.as_chunks::<GROUP_VALUES>();
        put_groups(groups, width, out);
    }
}

fn put_zigzag(value: i32, out: &mut Vec<u8>) {
    let value = i64::from(value);
    put_uleb128(((value << 1) ^ (value >> 63)) as u64, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Reads the encoded stream front to back.
    struct Reader<'a> {
        data: &'a [u8],
        position: usize,
    }

    impl Reader<'_> {
        fn uleb128(&mut self) -> u64 {
            let mut value = 0u64;
            let mut shift = 0;
            loop {
                let byte = self.data[self.position];
                self.position += 1;
                value |= u64::from(byte & 0x7f) << shift;
                shift += 7;
                if byte < 0x80 {
                    return value;
                }
            }
        }

        fn zigzag(&mut self) -> i64 {
            let value = self.uleb128();
            ((value >> 1) as i64) ^ -((value & 1) as i64)
        }

        /// Bit `index` (least significant first) from the current position on.
        fn bit(&self, index: usize) -> u64 {
            u64::from((self.data[self.position + index / 8] >> (index % 8)) & 1)
        }
    }

    /// The reader side, after the format's description.
    fn decode(data: &[u8]) -> Vec<i32> {
        let mut reader = Reader { data, position: 0 };
        let block_values = reader.uleb128() as usize;
        let miniblocks = reader.uleb128() as usize;
        let count = reader.uleb128() as usize;
        let mut previous = reader.zigzag() as i32;
        let mut values = Vec::with_capacity(count);
        if count == 0 {
            return values;
        }
        values.push(previous);
        let miniblock_values = block_values / miniblocks;
        while values.len() < count {
            let min_delta = reader.zigzag() as i32;
            let widths = data[reader.position..reader.position + miniblocks].to_vec();
            reader.position += miniblocks;
            for width in widths.into_iter().map(usize::from) {
                if values.len() == count {
                    break;
                }
                for value in 0..miniblock_values {
                    let relative = (0..width)
                        .map(|bit| reader.bit(value * width + bit) << bit)
                        .sum::<u64>();
                    if values.len() < count {
                        previous = previous
                            .wrapping_add(min_delta)
                            .wrapping_add(relative as u32 as i32);
                        values.push(previous);
                    }
                }
                reader.position += miniblock_values * width / 8;
            }
        }
        assert_eq!(reader.position, data.len(), "bytes left after the values");
        values
    }

    #[test]
    fn empty_and_single_values() {
        for values in [vec![], vec![7], vec![-3], vec![i32::MAX]] {
            let mut out = Vec::new();
            encode(&values, &mut out);
            assert_eq!(decode(&out), values);
        }
    }

    // Proves a run of equal lengths packs at width 0: header and one block, no body.
    #[test]
    fn equal_values_take_no_bits() {
        let mut out = Vec::new();
        encode(&[40; 129], &mut out);
        // Header (128, 4, 129, zigzag 40 = 80), min delta 0, four widths of 0.
        assert_eq!(out, [0x80, 0x01, 4, 0x81, 0x01, 80, 0, 0, 0, 0, 0]);
    }

    proptest! {
        // Proves any values, wrapping differences included, decode to themselves, for
        // counts on both sides of the miniblock and block sizes.
        #[test]
        fn values_decode_to_themselves(
            values in prop_oneof![
                prop::collection::vec(any::<i32>(), 0..600),
                prop::collection::vec(0i32..400, 0..600),
                prop::collection::vec(prop_oneof![Just(i32::MIN), Just(i32::MAX), Just(0)], 0..300),
            ],
        ) {
            let mut out = Vec::new();
            encode(&values, &mut out);
            prop_assert!(out.len() <= max_encoded_len(values.len()));
            prop_assert_eq!(decode(&out), values);
        }
    }
}
