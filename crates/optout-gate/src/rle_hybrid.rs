//! Parquet's RLE / bit-packing hybrid encoding, for the repetition and definition levels
//! and the dictionary indices of the column chunks the gate encodes itself (see
//! [`crate::dictionary_list_writer`]) and of the pages it reads itself (see
//! [`crate::text_pages`]); the parquet crate keeps its own encoder and decoder private.
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
    let next_run = if repeated_run_values_min >= 2 * PROBE_LONG - 1 {
        next_long_run::<T, PROBE_LONG>
    } else {
        next_long_run::<T, PROBE_SHORT>
    };
    while let Some((run_start, repeats, value)) = next_run(values, search_from) {
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

/// Values per block [`next_long_run`] probes. A repeated run is never shorter than a
/// group, and a run of `2 * P - 1` equal values or more covers a whole block of `P` values
/// whatever its start: blocks of `PROBE_SHORT` find every run that can become a repeated
/// one, and blocks of `PROBE_LONG` do where the shortest such run is `2 * PROBE_LONG - 1`
/// values or more (one-bit values: 25).
const PROBE_SHORT: usize = 4;
const PROBE_LONG: usize = 8;
const _: () = assert!(2 * PROBE_SHORT - 1 <= GROUP_VALUES);

/// The next run of equal values at or after `from` that covers a whole block of `P`
/// values (every run of `2 * P - 1` or more does), as its start, length and value. Runs are
/// maximal: `from` is 0 or the end of the run found before, where the value changes.
/// Probing blocks instead of every pair of neighbours is what makes this fast: repetition
/// levels hold a run of a few values for every list, and none of them matters.
fn next_long_run<T: Copy + PartialEq, const P: usize>(
    values: &[T],
    from: usize,
) -> Option<(usize, usize, T)> {
    let first_block = from.div_ceil(P);
    let (blocks, _) = values.get(first_block * P..)?.as_chunks::<P>();
    let block = blocks.iter().position(|block| match block.split_first() {
        Some((first, rest)) => rest.iter().all(|value| value == first),
        None => false,
    })?;
    let block_start = (first_block + block) * P;
    let &value = values.get(block_start)?;
    let before = values
        .get(from..block_start)?
        .iter()
        .rev()
        .take_while(|&&earlier| earlier == value)
        .count();
    let start = block_start - before;
    let length = values
        .get(start..)?
        .iter()
        .take_while(|&&next| next == value)
        .count();
    Some((start, length, value))
}

/// Bit-packed runs of `values`; all but the stream's last have whole groups.
fn put_literals<T: Copy + Into<u32>>(values: &[T], bit_width: u8, out: &mut Vec<u8>) {
    for run in values.chunks(BIT_PACKED_RUN_GROUPS_MAX * GROUP_VALUES) {
        let groups = run.len().div_ceil(GROUP_VALUES);
        put_uleb128((groups as u64) << 1 | 1, out);
        let (whole, rest) = run.as_chunks::<GROUP_VALUES>();
        put_groups(whole, bit_width, out);
        if !rest.is_empty() {
            let mut padded = [0u32; GROUP_VALUES];
            for (slot, &value) in padded.iter_mut().zip(rest) {
                *slot = value.into();
            }
            put_group(&padded, bit_width, out);
        }
    }
}

/// Groups of eight values, each in `bit_width` bytes.
pub fn put_groups<T: Copy + Into<u32>>(
    groups: &[[T; GROUP_VALUES]],
    bit_width: u8,
    out: &mut Vec<u8>,
) {
    if (9..=16).contains(&bit_width) {
        put_narrow_groups(groups, bit_width, out);
    } else {
        for group in groups {
            put_group(group, bit_width, out);
        }
    }
}

/// Bytes one store of [`put_narrow_groups`] writes: a group of values of up to 16 bits.
const NARROW_GROUP_BYTES: usize = 16;

/// Groups of values of 9 to 16 bits (the dictionary indices of lists), each packed into
/// one word and stored whole: the next group's store overwrites the zero bytes past this
/// group's `bit_width`, so a group costs one store instead of a push per byte. (At 8 bits
/// or fewer [`put_group`] already writes a group at once.)
fn put_narrow_groups<T: Copy + Into<u32>>(
    groups: &[[T; GROUP_VALUES]],
    bit_width: u8,
    out: &mut Vec<u8>,
) {
    let width = usize::from(bit_width);
    debug_assert!(width * GROUP_VALUES <= NARROW_GROUP_BYTES * 8);
    let start = out.len();
    let end = start + groups.len() * width;
    out.resize(end + NARROW_GROUP_BYTES, 0);
    let mut at = start;
    for group in groups {
        let mut packed = 0u128;
        for (index, &value) in group.iter().enumerate() {
            packed |= u128::from(value.into()) << (index * width);
        }
        if let Some(slot) = out.get_mut(at..at + NARROW_GROUP_BYTES) {
            slot.copy_from_slice(&packed.to_le_bytes());
        }
        at += width;
    }
    out.truncate(end);
}

/// Eight values in `bit_width` bytes.
#[inline]
fn put_group<T: Copy + Into<u32>>(group: &[T; GROUP_VALUES], bit_width: u8, out: &mut Vec<u8>) {
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

/// What [`Decoder::read_into`] appends: bytes (levels, at most 8 bits) or words.
pub trait Unpacked: Copy {
    /// The widest value it holds.
    const BITS: u8;
    /// `value`, known to fit the decoder's bit width.
    fn from_bits(value: u32) -> Self;
}

impl Unpacked for u8 {
    const BITS: u8 = 8;
    #[inline(always)]
    fn from_bits(value: u32) -> u8 {
        // Levels are decoded as bytes only at bit widths up to 8.
        value as u8
    }
}

impl Unpacked for u32 {
    const BITS: u8 = 32;
    #[inline(always)]
    fn from_bits(value: u32) -> u32 {
        value
    }
}

/// Reads values back, one at a time, from one stream of runs (a page's levels or
/// dictionary indices). Bit-packed values are unpacked a group of eight at a time.
pub struct Decoder {
    data: bytes::Bytes,
    /// Where the next run's header is.
    position: usize,
    bit_width: u8,
    /// Values left in the current repeated run, and its value.
    repeated_left: usize,
    repeated_value: u32,
    /// Values left in the current bit-packed run (beyond those unpacked), and the bit
    /// where the next one starts.
    packed_left: usize,
    packed_bit: usize,
    /// Values unpacked from the current group, and how many of them were read.
    group: [u32; GROUP_VALUES],
    group_len: usize,
    group_read: usize,
}

impl Decoder {
    /// A decoder of `data` at `bit_width` bits a value (at most 32).
    pub fn new(data: bytes::Bytes, bit_width: u8) -> Result<Decoder, String> {
        if bit_width > 32 {
            return Err(format!("a bit width of {bit_width}, above 32"));
        }
        Ok(Decoder {
            data,
            position: 0,
            bit_width,
            repeated_left: 0,
            repeated_value: 0,
            packed_left: 0,
            packed_bit: 0,
            group: [0; GROUP_VALUES],
            group_len: 0,
            group_read: 0,
        })
    }

    /// The next value; an error when the runs end first.
    #[inline]
    pub fn next_value(&mut self) -> Result<u32, String> {
        if self.group_read < self.group_len {
            if let Some(&value) = self.group.get(self.group_read) {
                self.group_read += 1;
                return Ok(value);
            }
        }
        self.next_value_slow()
    }

    fn next_value_slow(&mut self) -> Result<u32, String> {
        loop {
            if self.repeated_left > 0 {
                self.repeated_left -= 1;
                return Ok(self.repeated_value);
            }
            if self.packed_left > 0 {
                self.unpack_group();
                self.group_read = 1;
                return Ok(self.group.first().copied().unwrap_or(0));
            }
            self.next_run()?;
        }
    }

    /// When the next values come from a repeated run, takes up to `max` of them: their
    /// value and how many were taken. `None` when the next value is bit-packed (read it
    /// with [`Decoder::next_value`]); an error when the runs end.
    #[inline]
    pub fn next_repeated(&mut self, max: usize) -> Result<Option<(u32, usize)>, String> {
        if self.group_read < self.group_len || self.packed_left > 0 {
            return Ok(None);
        }
        if self.repeated_left == 0 {
            self.next_run()?;
            if self.repeated_left == 0 {
                return Ok(None);
            }
        }
        let take = self.repeated_left.min(max);
        self.repeated_left -= take;
        Ok(Some((self.repeated_value, take)))
    }

    /// Appends the next `count` values to `out`; an error when the runs end first (with
    /// the values read until then appended). Repeated runs are appended whole and
    /// bit-packed groups unpacked straight into `out`, so a page's levels or indices
    /// cost a few instructions each rather than a call each. `T` must hold `bit_width`
    /// bits (levels read as bytes have at most 8).
    pub fn read_into<T: Unpacked>(
        &mut self,
        mut count: usize,
        out: &mut Vec<T>,
    ) -> Result<(), String> {
        if self.bit_width > T::BITS {
            return Err(format!(
                "{}-bit values read into {}-bit slots",
                self.bit_width,
                T::BITS
            ));
        }
        out.reserve(count);
        while count > 0 {
            if self.group_read < self.group_len {
                let take = (self.group_len - self.group_read).min(count);
                let group = self.group.get(self.group_read..self.group_read + take);
                out.extend(
                    group
                        .unwrap_or_default()
                        .iter()
                        .map(|&value| T::from_bits(value)),
                );
                self.group_read += take;
                count -= take;
                continue;
            }
            if self.repeated_left > 0 {
                let take = self.repeated_left.min(count);
                out.extend(std::iter::repeat_n(T::from_bits(self.repeated_value), take));
                self.repeated_left -= take;
                count -= take;
                continue;
            }
            if self.packed_left > 0 {
                let width = usize::from(self.bit_width);
                // Whole groups start on a byte: eight values of up to 8 bits are one load.
                while count >= GROUP_VALUES && self.packed_left >= GROUP_VALUES && width <= 8 {
                    let start = self.packed_bit / 8;
                    let Some(bytes) = self.data.get(start..start + 8) else {
                        break;
                    };
                    let word = u64::from_le_bytes(<[u8; 8]>::try_from(bytes).unwrap_or_default());
                    let mask = (1u64 << width) - 1;
                    out.extend((0..GROUP_VALUES).map(|index| {
                        // Below 2^8, so the cast keeps the value.
                        T::from_bits(((word >> (index * width)) & mask) as u32)
                    }));
                    self.packed_left -= GROUP_VALUES;
                    self.packed_bit += GROUP_VALUES * width;
                    count -= GROUP_VALUES;
                }
                if count > 0 && self.packed_left > 0 {
                    self.unpack_group();
                    self.group_read = 0;
                }
                continue;
            }
            self.next_run()?;
        }
        Ok(())
    }

    /// How many of the next `count` values are 0, for a decoder of one-bit values (a
    /// list's repetition levels, where each 0 starts a row); the values are passed over.
    /// Bit-packed bytes are counted whole, by their bits set.
    pub fn count_zeros(&mut self, mut count: usize) -> Result<usize, String> {
        if self.bit_width != 1 {
            return Err(format!(
                "zeros counted at a bit width of {}",
                self.bit_width
            ));
        }
        let mut zeros = 0;
        while count > 0 {
            if self.group_read < self.group_len {
                let take = (self.group_len - self.group_read).min(count);
                let group = self.group.get(self.group_read..self.group_read + take);
                zeros += group
                    .unwrap_or_default()
                    .iter()
                    .filter(|&&value| value == 0)
                    .count();
                self.group_read += take;
                count -= take;
                continue;
            }
            if self.repeated_left > 0 {
                let take = self.repeated_left.min(count);
                if self.repeated_value == 0 {
                    zeros += take;
                }
                self.repeated_left -= take;
                count -= take;
                continue;
            }
            if self.packed_left > 0 {
                // Whole bytes of eight values; a group is one byte at this width.
                let bytes = (self.packed_left.min(count) / GROUP_VALUES)
                    .min(self.data.len().saturating_sub(self.packed_bit / 8));
                let start = self.packed_bit / 8;
                let ones: u32 = self
                    .data
                    .get(start..start + bytes)
                    .unwrap_or_default()
                    .iter()
                    .map(|byte| byte.count_ones())
                    .sum();
                let values = bytes * GROUP_VALUES;
                zeros += values - ones as usize;
                self.packed_left -= values;
                self.packed_bit += values;
                count -= values;
                if count > 0 && self.packed_left > 0 && values == 0 {
                    self.unpack_group();
                    self.group_read = 0;
                }
                continue;
            }
            self.next_run()?;
        }
        Ok(zeros)
    }

    /// Unpacks the next group (up to eight values) of the current bit-packed run.
    fn unpack_group(&mut self) {
        let count = self.packed_left.min(GROUP_VALUES);
        let width = usize::from(self.bit_width);
        for (index, slot) in self.group.iter_mut().take(count).enumerate() {
            *slot = bits_at(&self.data, self.packed_bit + index * width, self.bit_width);
        }
        self.group_len = count;
        self.packed_left -= count;
        self.packed_bit += count * width;
    }

    fn next_run(&mut self) -> Result<(), String> {
        self.group_len = 0;
        self.group_read = 0;
        if self.position >= self.data.len() {
            return Err("fewer values than the page holds".into());
        }
        let header = self.uleb128()?;
        let count = usize::try_from(header >> 1).map_err(|_| "a run too long".to_string())?;
        let width = usize::from(self.bit_width);
        if header & 1 == 1 {
            let bytes = count
                .checked_mul(width)
                .ok_or_else(|| "a run too long".to_string())?;
            let available = self.data.len() - self.position;
            // A last run cut short (some writers drop its trailing padding) keeps the
            // values its bytes hold.
            let bytes = bytes.min(available);
            self.packed_bit = self.position * 8;
            self.packed_left = match width {
                0 => count.saturating_mul(GROUP_VALUES),
                _ => (count.saturating_mul(GROUP_VALUES)).min(bytes * 8 / width),
            };
            self.position += bytes;
        } else {
            let bytes = width.div_ceil(8);
            let value = self
                .data
                .get(self.position..self.position + bytes)
                .ok_or_else(|| "a repeated run cut short".to_string())?;
            let mut word = [0u8; 4];
            if let Some(into) = word.get_mut(..bytes) {
                into.copy_from_slice(value);
            }
            self.repeated_value = u32::from_le_bytes(word);
            if width < 32 && self.repeated_value >> width != 0 {
                return Err(format!(
                    "a repeated value {} wider than {width} bits",
                    self.repeated_value
                ));
            }
            self.repeated_left = count;
            self.position += bytes;
        }
        Ok(())
    }

    fn uleb128(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self
                .data
                .get(self.position)
                .ok_or_else(|| "a run header cut short".to_string())?;
            self.position += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err("a run header longer than 64 bits".into())
    }
}

/// The `bit_width` bits from bit `bit` of `data`, least significant first (bits past its
/// end read as zeros).
#[inline]
fn bits_at(data: &[u8], bit: usize, bit_width: u8) -> u32 {
    let start = bit / 8;
    let word = match data.get(start..start + 8) {
        Some(bytes) => <[u8; 8]>::try_from(bytes).unwrap_or_default(),
        None => {
            let mut word = [0u8; 8];
            let available = data.get(start..).unwrap_or_default();
            for (into, from) in word.iter_mut().zip(available) {
                *into = *from;
            }
            word
        }
    };
    let mask = (1u64 << bit_width) - 1;
    // At most 7 + 32 bits of the 64, so the shift keeps every bit of the value.
    ((u64::from_le_bytes(word) >> (bit % 8)) & mask) as u32
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

    /// The encoder as first written, the model for the fast one: it looks at every run
    /// of two or more equal neighbours, left to right, and makes a repeated run of those
    /// long enough.
    fn encode_model(values: &[u32], bit_width: u8) -> Vec<u8> {
        let mut out = Vec::new();
        let repeated_run_values_min =
            (REPEATED_RUN_BYTES * 8 / usize::from(bit_width.max(1)) + 1).max(GROUP_VALUES);
        let mut literals_start = 0;
        let mut search_from = 0;
        while let Some(pair) = values[search_from.min(values.len())..]
            .windows(2)
            .position(|pair| pair[0] == pair[1])
        {
            let run_start = search_from + pair;
            let value = values[run_start];
            let repeats = values[run_start..]
                .iter()
                .take_while(|&&next| next == value)
                .count();
            let pending = run_start - literals_start;
            let borrowed = (GROUP_VALUES - pending % GROUP_VALUES) % GROUP_VALUES;
            if repeats >= borrowed + repeated_run_values_min {
                put_literals(
                    &values[literals_start..run_start + borrowed],
                    bit_width,
                    &mut out,
                );
                put_repeated(value, repeats - borrowed, bit_width, &mut out);
                literals_start = run_start + repeats;
            }
            search_from = run_start + repeats;
        }
        put_literals(&values[literals_start..], bit_width, &mut out);
        out
    }

    /// The values of `runs` (value, count), each value cut to `mask`.
    fn values_of(runs: &[(u32, usize)], mask: u32) -> Vec<u32> {
        runs.iter()
            .flat_map(|&(value, count)| std::iter::repeat_n(value & mask, count))
            .collect()
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
        // Proves the block probe finds every run the model makes a repeated run of: runs
        // of every length around the thresholds (7 to 9 values for a group, 12 to 14 at
        // two bits, 24 to 26 at one), at every offset from the probe's blocks.
        #[test]
        fn runs_near_the_thresholds_encode_as_the_model_does(
            bit_width in 1u8..=12,
            runs in proptest::collection::vec((0u32..3, 1usize..30), 0..80),
        ) {
            let mask = (1u32 << bit_width) - 1;
            let values = values_of(&runs, mask);
            let mut encoded = Vec::new();
            encode(&values, bit_width, &mut encoded);
            prop_assert_eq!(&encoded, &encode_model(&values, bit_width));
            prop_assert_eq!(decode(&encoded, bit_width, values.len()), values);
        }

        // Proves any values round-trip through a decoder written from the format's text,
        // at every bit width; runs of repeats are likely, so both run kinds interleave.
        #[test]
        fn encoded_values_decode_to_themselves(
            bit_width in 1u8..=32,
            runs in proptest::collection::vec((any::<u32>(), 1usize..40), 0..60),
        ) {
            let mask = if bit_width == 32 { u32::MAX } else { (1u32 << bit_width) - 1 };
            let values = values_of(&runs, mask);
            prop_assert_eq!(round_trip(&values, bit_width), values.clone());
            let mut encoded = Vec::new();
            encode(&values, bit_width, &mut encoded);
            prop_assert_eq!(&encoded, &encode_model(&values, bit_width));
            // The decoder reads back what the model reader reads, then runs out.
            let mut decoder = Decoder::new(bytes::Bytes::from(encoded), bit_width).unwrap();
            let decoded: Vec<u32> =
                (0..values.len()).map(|_| decoder.next_value().unwrap()).collect();
            prop_assert_eq!(&decoded, &values);
            // At most the zeros padding the last group.
            let mut padding = 0;
            while let Ok(value) = decoder.next_value() {
                prop_assert_eq!(value, 0);
                padding += 1;
            }
            prop_assert!(padding < GROUP_VALUES);
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

    proptest! {
        // Whatever the bytes, the decoder returns values or an error, never panics, and
        // each value fits the bit width.
        #[test]
        fn any_bytes_decode_without_panic(
            bit_width in 0u8..=33,
            data in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            match Decoder::new(bytes::Bytes::from(data), bit_width) {
                Err(_) => prop_assert!(bit_width > 32),
                Ok(mut decoder) => {
                    for _ in 0..600 {
                        match decoder.next_value() {
                            Ok(value) => prop_assert!(
                                bit_width == 32 || u64::from(value) < 1u64 << bit_width
                            ),
                            Err(_) => break,
                        }
                    }
                }
            }
        }
    }

    proptest! {
        // Whatever the bytes, reading in bulk, in steps of any size, gives the values
        // one-at-a-time reading gives, and fails where it fails.
        #[test]
        fn bulk_reads_give_the_values_single_reads_give(
            bit_width in 0u8..=32,
            runs in proptest::collection::vec((any::<u32>(), 1usize..40), 0..30),
            noise in proptest::collection::vec(any::<u8>(), 0..48),
            steps in proptest::collection::vec(1usize..30, 1..40),
        ) {
            let mask = if bit_width == 32 { u32::MAX } else { (1u32 << bit_width) - 1 };
            let values = values_of(&runs, mask);
            let mut encoded = Vec::new();
            encode(&values, bit_width, &mut encoded);
            // Arbitrary bytes can hold runs of 2^60 values: both readers stop at LIMIT.
            const LIMIT: usize = 1000;
            for data in [encoded, noise.clone()] {
                let data = bytes::Bytes::from(data);
                let mut single = Decoder::new(data.clone(), bit_width).unwrap();
                let mut expected = Vec::new();
                let mut single_failed = false;
                while expected.len() < LIMIT {
                    match single.next_value() {
                        Ok(value) => expected.push(value),
                        Err(_) => {
                            single_failed = true;
                            break;
                        }
                    }
                }
                let mut bulk = Decoder::new(data.clone(), bit_width).unwrap();
                let mut words: Vec<u32> = Vec::new();
                let mut bulk_failed = false;
                for &step in steps.iter().cycle() {
                    if words.len() >= LIMIT {
                        break;
                    }
                    if bulk.read_into(step, &mut words).is_err() {
                        bulk_failed = true;
                        break;
                    }
                }
                if single_failed {
                    prop_assert!(bulk_failed);
                    prop_assert_eq!(&words, &expected);
                } else {
                    prop_assert!(words.len() >= LIMIT);
                    prop_assert_eq!(&words[..LIMIT], &expected[..]);
                }
                let mut bytes_out: Vec<u8> = Vec::new();
                let mut narrow = Decoder::new(data, bit_width).unwrap();
                let read = narrow.read_into(expected.len(), &mut bytes_out);
                if bit_width <= 8 {
                    prop_assert!(read.is_ok());
                    let widened: Vec<u32> = bytes_out.iter().map(|&value| u32::from(value)).collect();
                    prop_assert_eq!(widened, expected);
                } else {
                    prop_assert!(read.is_err());
                }
            }
        }
    }

    proptest! {
        // Proves counting zeros gives what reading the values and counting gives, from
        // any point of the stream on, also on arbitrary bytes (where both fail alike).
        #[test]
        fn zeros_counted_are_the_zeros_read(
            runs in proptest::collection::vec((0u32..2, 1usize..40), 0..30),
            noise in proptest::collection::vec(any::<u8>(), 0..48),
            first in 0usize..50,
            count in 0usize..400,
        ) {
            let values = values_of(&runs, u32::MAX);
            let mut encoded = Vec::new();
            encode(&values, 1, &mut encoded);
            for data in [encoded, noise.clone()] {
                let data = bytes::Bytes::from(data);
                let mut reading = Decoder::new(data.clone(), 1).unwrap();
                let mut counting = Decoder::new(data, 1).unwrap();
                let mut read: Vec<u8> = Vec::new();
                let started = reading.read_into(first, &mut read).is_ok();
                prop_assert_eq!(counting.read_into(first, &mut Vec::<u8>::new()).is_ok(), started);
                if !started {
                    continue;
                }
                read.clear();
                match reading.read_into(count, &mut read) {
                    Ok(()) => prop_assert_eq!(
                        counting.count_zeros(count).unwrap(),
                        read.iter().filter(|&&value| value == 0).count()
                    ),
                    Err(_) => prop_assert!(counting.count_zeros(count).is_err()),
                }
            }
        }
    }

    proptest! {
        // Proves values taken a repeated run at a time where there is one, and one by one
        // elsewhere, are the values one-at-a-time reading gives, in the same order.
        #[test]
        fn runs_taken_whole_give_the_values_single_reads_give(
            bit_width in 1u8..=8,
            runs in proptest::collection::vec((any::<u32>(), 1usize..40), 0..30),
            steps in proptest::collection::vec(1usize..30, 1..20),
        ) {
            let mask = (1u32 << bit_width) - 1;
            let values = values_of(&runs, mask);
            let mut encoded = Vec::new();
            encode(&values, bit_width, &mut encoded);
            let mut decoder = Decoder::new(bytes::Bytes::from(encoded), bit_width).unwrap();
            let mut read = Vec::new();
            let mut steps = steps.iter().cycle();
            while read.len() < values.len() {
                let step = (*steps.next().unwrap()).min(values.len() - read.len());
                match decoder.next_repeated(step).unwrap() {
                    Some((value, count)) => {
                        prop_assert!(count >= 1 && count <= step);
                        read.extend(std::iter::repeat_n(value, count));
                    }
                    None => read.push(decoder.next_value().unwrap()),
                }
            }
            prop_assert_eq!(read, values);
        }
    }

    #[test]
    fn a_bit_packed_run_cut_short_keeps_the_values_its_bytes_hold() {
        // One run of 2 groups (16 values) at 4 bits, but only 3 bytes: 6 values.
        let data = vec![(2 << 1) | 1, 0x21, 0x43, 0x65];
        let mut decoder = Decoder::new(bytes::Bytes::from(data), 4).unwrap();
        let values: Vec<u32> = (0..6).map(|_| decoder.next_value().unwrap()).collect();
        assert_eq!(values, vec![1, 2, 3, 4, 5, 6]);
        assert!(decoder.next_value().is_err());
    }
}
