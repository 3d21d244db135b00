//! Parquet's RLE / bit-packing hybrid encoding, for the repetition and definition levels
//! and the dictionary indices of the column chunks the gate encodes itself (see
//! [`crate::dictionary_list_writer`]); the parquet crate keeps its own encoder private.
//!
//! A run is either repeated (a ULEB128 header `count << 1`, then the value in whole
//! bytes) or bit-packed (a header `groups << 1 | 1`, then `groups` groups of eight values,
//! each group `bit_width` bytes, least significant bit first). Only the last group of a
//! stream may be padded, with zeros: readers know how many values a page holds and stop
//! there, so a padded group anywhere else would add values.

/// Values in a bit-packed group.
pub const GROUP_VALUES: usize = 8;
/// What a repeated run costs, in bytes, when it interrupts bit-packed values: its header,
/// its value (for bit widths up to 8) and the header of the bit-packed run after it.
const REPEATED_RUN_BYTES: usize = 3;
/// Groups per bit-packed run: 63 keeps its header in one byte, as parquet-mr writes it.
const BIT_PACKED_RUN_GROUPS_MAX: usize = 63;

/// Bits needed to write every value up to `max_value`.
pub fn bit_width(max_value: u32) -> u8 {
    // At most 32, so the cast cannot truncate.
    (u32::BITS - max_value.leading_zeros()) as u8
}

/// Appends `values`, each below `1 << bit_width` (at most 32 bits), to `out`.
pub fn encode<T: Copy + PartialEq + Into<u32>>(values: &[T], bit_width: u8, out: &mut Vec<u8>) {
    debug_assert!(bit_width <= 32);
    debug_assert!(values
        .iter()
        .all(|&value| u64::from(value.into()) < 1u64 << bit_width));
    out.reserve(values.len() * usize::from(bit_width) / 8 + 16);
    // A repeat becomes a repeated run only where bit-packing it would take more bytes
    // (at the one bit per value of repetition levels: more than 24 values), and never
    // below a group, as in parquet-rs; shorter runs would only cut the bit-packed ones.
    let repeated_run_values_min =
        (REPEATED_RUN_BYTES * 8 / usize::from(bit_width.max(1)) + 1).max(GROUP_VALUES);
    // Values from `literals_start` on are not written yet; they go out bit-packed, in
    // whole groups, before the next repeated run.
    let mut literals_start = 0;
    let mut search_from = 0;
    while let Some(run_start) = next_repeat(values, search_from) {
        let rest = values.get(run_start..).unwrap_or_default();
        let Some(&value) = rest.first() else {
            break;
        };
        let repeats = rest.iter().take_while(|&&next| next == value).count();
        // The first repeats complete the last group of the values before.
        let pending = run_start - literals_start;
        let borrowed = (GROUP_VALUES - pending % GROUP_VALUES) % GROUP_VALUES;
        if repeats >= borrowed + repeated_run_values_min {
            put_literals(
                values
                    .get(literals_start..run_start + borrowed)
                    .unwrap_or_default(),
                bit_width,
                out,
            );
            put_repeated(value.into(), repeats - borrowed, bit_width, out);
            literals_start = run_start + repeats;
        }
        search_from = run_start + repeats;
    }
    put_literals(
        values.get(literals_start..).unwrap_or_default(),
        bit_width,
        out,
    );
}

/// Where, from `from` on, a value first equals the next one.
fn next_repeat<T: PartialEq>(values: &[T], from: usize) -> Option<usize> {
    let position = values
        .get(from..)?
        .windows(2)
        .position(|pair| matches!(pair, [first, second] if first == second))?;
    Some(from + position)
}

/// Bit-packed runs of `values`; all but the stream's last have whole groups.
fn put_literals<T: Copy + Into<u32>>(values: &[T], bit_width: u8, out: &mut Vec<u8>) {
    for run in values.chunks(BIT_PACKED_RUN_GROUPS_MAX * GROUP_VALUES) {
        let groups = run.len().div_ceil(GROUP_VALUES);
        put_uleb128((groups as u64) << 1 | 1, out);
        let (whole, rest) = run.as_chunks::<GROUP_VALUES>();
        for group in whole {
            put_group(group, bit_width, out);
        }
        if !rest.is_empty() {
            let mut padded = [0u32; GROUP_VALUES];
            for (slot, &value) in padded.iter_mut().zip(rest) {
                *slot = value.into();
            }
            put_group(&padded, bit_width, out);
        }
    }
}

/// Eight values in `bit_width` bytes.
#[inline]
pub fn put_group<T: Copy + Into<u32>>(group: &[T; GROUP_VALUES], bit_width: u8, out: &mut Vec<u8>) {
    let width = usize::from(bit_width);
    if width <= 8 {
        // The whole group fits in one word.
        let mut packed = 0u64;
        for (index, &value) in group.iter().enumerate() {
            packed |= u64::from(value.into()) << (index * width);
        }
        out.extend_from_slice(packed.to_le_bytes().get(..width).unwrap_or_default());
        return;
    }
    let mut pending: u64 = 0;
    let mut pending_bits = 0;
    for &value in group {
        pending |= u64::from(value.into()) << pending_bits;
        pending_bits += width;
        while pending_bits >= 8 {
            out.push(pending as u8);
            pending >>= 8;
            pending_bits -= 8;
        }
    }
    // A group is `bit_width` whole bytes, so nothing is left over.
    debug_assert_eq!(pending_bits, 0);
}

fn put_repeated(value: u32, count: usize, bit_width: u8, out: &mut Vec<u8>) {
    put_uleb128((count as u64) << 1, out);
    let bytes = usize::from(bit_width).div_ceil(8);
    out.extend(value.to_le_bytes().iter().take(bytes));
}

pub fn put_uleb128(mut value: u64, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The reader side, after the format's description: `count` values from `data`.
    fn decode(data: &[u8], bit_width: u8, count: usize) -> Vec<u32> {
        let mut values = Vec::with_capacity(count);
        let mut position = 0;
        let uleb128 = |position: &mut usize| {
            let mut value = 0u64;
            let mut shift = 0;
            loop {
                let byte = data[*position];
                *position += 1;
                value |= u64::from(byte & 0x7f) << shift;
                shift += 7;
                if byte < 0x80 {
                    return value;
                }
            }
        };
        while values.len() < count {
            let header = uleb128(&mut position);
            if header & 1 == 1 {
                let groups = (header >> 1) as usize;
                let bytes = &data[position..position + groups * usize::from(bit_width)];
                position += bytes.len();
                for index in 0..groups * GROUP_VALUES {
                    let mut value = 0u32;
                    for bit in 0..usize::from(bit_width) {
                        let at = index * usize::from(bit_width) + bit;
                        value |= u32::from((bytes[at / 8] >> (at % 8)) & 1) << bit;
                    }
                    values.push(value);
                }
            } else {
                let repeats = (header >> 1) as usize;
                let width = usize::from(bit_width).div_ceil(8);
                let mut bytes = [0u8; 4];
                bytes[..width].copy_from_slice(&data[position..position + width]);
                position += width;
                values.extend(std::iter::repeat_n(u32::from_le_bytes(bytes), repeats));
            }
        }
        assert_eq!(position, data.len(), "bytes left after the last run");
        assert!(values.len() - count < GROUP_VALUES);
        values.truncate(count);
        values
    }

    fn round_trip(values: &[u32], bit_width: u8) -> Vec<u32> {
        let mut encoded = Vec::new();
        encode(values, bit_width, &mut encoded);
        decode(&encoded, bit_width, values.len())
    }

    #[test]
    fn bit_width_covers_the_largest_value() {
        assert_eq!(bit_width(0), 0);
        assert_eq!(bit_width(1), 1);
        assert_eq!(bit_width(2), 2);
        assert_eq!(bit_width(178), 8);
        assert_eq!(bit_width(255), 8);
        assert_eq!(bit_width(256), 9);
        assert_eq!(bit_width(u32::MAX), 32);
    }

    // Proves the run boundaries: literals completed to a whole group by borrowing from
    // the repeat that follows, repeats that start or end the stream, runs split at 504.
    #[test]
    fn runs_of_every_shape_round_trip() {
        let mut values: Vec<u32> = vec![1, 2, 3];
        values.extend(std::iter::repeat_n(5, 20));
        values.extend([0, 1, 0, 1, 0, 1, 0, 1]);
        values.extend(std::iter::repeat_n(7, 8));
        values.extend((0..1200).map(|value| value % 13));
        values.extend(std::iter::repeat_n(2, 9));
        assert_eq!(round_trip(&values, 4), values);
        let repeats: Vec<u32> = std::iter::repeat_n(3, 100_000).collect();
        let mut encoded = Vec::new();
        encode(&repeats, 2, &mut encoded);
        assert_eq!(encoded.len(), 4, "one repeated run");
        assert_eq!(round_trip(&repeats, 2), repeats);
        assert_eq!(round_trip(&[], 1), Vec::<u32>::new());
        assert_eq!(round_trip(&[u32::MAX; 3], 32), vec![u32::MAX; 3]);
    }

    proptest! {
        // Proves any values round-trip through a decoder written from the format's text,
        // at every bit width; runs of repeats are likely, so both run kinds interleave.
        #[test]
        fn encoded_values_decode_to_themselves(
            bit_width in 1u8..=32,
            runs in proptest::collection::vec((any::<u32>(), 1usize..40), 0..60),
        ) {
            let mask = if bit_width == 32 { u32::MAX } else { (1u32 << bit_width) - 1 };
            let values: Vec<u32> = runs
                .iter()
                .flat_map(|&(value, count)| std::iter::repeat_n(value & mask, count))
                .collect();
            prop_assert_eq!(round_trip(&values, bit_width), values.clone());
            if bit_width <= 8 {
                // Levels come as bytes: the same encoding.
                let bytes: Vec<u8> = values.iter().map(|&value| value as u8).collect();
                let (mut from_bytes, mut from_words) = (Vec::new(), Vec::new());
                encode(&bytes, bit_width, &mut from_bytes);
                encode(&values, bit_width, &mut from_words);
                prop_assert_eq!(from_bytes, from_words);
            }
        }
    }
}
