//! `count(DISTINCT s)` per group over strings, fed a batch at a time.
//!
//! DataFusion 55 counts distinct strings per group behind an adapter that
//! splits every batch by group, copies each group's rows out and calls that
//! group's own accumulator with them. The guide's "access key usage per
//! principal" query (`count(DISTINCT sourceIPAddress)` and
//! `count(DISTINCT eventName)` by `userIdentity.arn`) spent most of its time
//! there. [`count_udaf`] is DataFusion's `count` with one change: a distinct
//! count over a string column is a grouped accumulator fed whole batches, as
//! DataFusion already has for integers, that keeps (group, value) pairs (see
//! [`StringDistinctCountGroups`] for how). Values that are IPv4 addresses
//! are kept apart, packed with their group in a `u64` ([`AddressPairs`]),
//! and rows repeating a (group, value) their batch already had are passed
//! over without hashing their strings ([`row_keys`]). A partial aggregate
//! hands the addresses to the final one as numbers too
//! ([`address_state_field`]). Every other use of `count` is DataFusion's
//! own, and so are the results.

use std::hash::BuildHasher;
use std::mem::size_of;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayAccessor, ArrayRef, AsArray, BooleanArray, Int64Array, LargeStringArray, ListArray,
    OffsetSizeTrait, StringArray, StringViewArray, UInt32Array,
};
use datafusion::arrow::buffer::{OffsetBuffer, ScalarBuffer};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, UInt32Type};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::functions_aggregate::count::Count;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator,
};

/// DataFusion's `count`, with a grouped accumulator for distinct strings.
pub fn count_udaf() -> AggregateUDF {
    AggregateUDF::new_from_impl(CountWithDistinctStrings::default())
}

/// Whether `aggregate` is a distinct count over strings that this module
/// keeps, whose partial states carry addresses as numbers (see
/// [`address_state_field`]).
pub(crate) fn keeps_compact_state(
    aggregate: &datafusion::physical_expr::aggregate::AggregateFunctionExpr,
    input: &datafusion::arrow::datatypes::Schema,
) -> bool {
    let function: &dyn std::any::Any = aggregate.fun().inner().as_ref();
    aggregate.is_distinct()
        && function.is::<CountWithDistinctStrings>()
        && matches!(
            aggregate.expressions().as_slice(),
            [argument] if argument.data_type(input).is_ok_and(|t| is_string(&t))
        )
}

/// `texts` as an array of `data_type`, one of the string types (`Utf8` for
/// any other).
pub(crate) fn strings_of_type<S: AsRef<str>>(
    data_type: &DataType,
    texts: impl IntoIterator<Item = Option<S>>,
) -> ArrayRef {
    match data_type {
        DataType::Utf8View => Arc::new(texts.into_iter().collect::<StringViewArray>()),
        DataType::LargeUtf8 => Arc::new(texts.into_iter().collect::<LargeStringArray>()),
        _ => Arc::new(texts.into_iter().collect::<StringArray>()),
    }
}

/// Whether `data_type` is one of the string types: a distinct count over
/// one is this module's (and a `min` or `max` over one, `min_max`'s).
pub(crate) fn is_string(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

#[derive(Debug, Default, PartialEq, Eq, Hash)]
struct CountWithDistinctStrings {
    inner: Count,
}

impl AggregateUDFImpl for CountWithDistinctStrings {
    pass_aggregate_to_inner!();

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let with_addresses = args.is_distinct
            && args.input_fields.len() == 1
            && is_string(args.input_fields[0].data_type());
        let name = args.name.to_owned();
        let mut fields = self.inner.state_fields(args)?;
        if with_addresses {
            fields.push(address_state_field(&name));
        }
        Ok(fields)
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let with_addresses =
            args.is_distinct && args.exprs.len() == 1 && is_string(args.expr_fields[0].data_type());
        let data_type = args.expr_fields.first().map(|f| f.data_type().clone());
        let inner = self.inner.accumulator(args)?;
        Ok(match data_type {
            Some(data_type) if with_addresses => Box::new(AddressesInState { inner, data_type }),
            _ => inner,
        })
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        if args.is_distinct && args.exprs.len() == 1 && is_string(args.expr_fields[0].data_type()) {
            return true;
        }
        self.inner.groups_accumulator_supported(args)
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        if args.is_distinct && args.exprs.len() == 1 {
            let data_type = args.expr_fields[0].data_type();
            if is_string(data_type) {
                return Ok(Box::new(StringDistinctCountGroups::new(data_type.clone())));
            }
        }
        self.inner.create_groups_accumulator(args)
    }
}

/// The second state column of a distinct count over strings: each group's
/// distinct values that are IPv4 addresses, as numbers in ascending order,
/// each once (a list that is not so is still read, one address at a time).
///
/// Why: a partial aggregate hands its distinct values to the final one. Most
/// values of `count(DISTINCT sourceIPAddress)` are addresses and nearly
/// every (principal, address) pair is distinct, so as strings they were
/// written out, copied and read back again: most of the partial aggregate's
/// time. As numbers they move as they are kept ([`AddressPairs`]); sorted,
/// the final aggregate counts a group's by walking its lists together.
fn address_state_field(name: &str) -> FieldRef {
    Arc::new(Field::new_list(
        format_state_name(name, "count distinct addresses"),
        address_field(),
        false,
    ))
}

/// The items of [`address_state_field`]'s lists.
fn address_field() -> Field {
    Field::new_list_field(DataType::UInt32, true)
}

/// A column of [`address_state_field`]: lists of `addresses` at `offsets`.
fn address_lists(offsets: OffsetBuffer<i32>, addresses: Vec<u32>) -> Result<ListArray> {
    Ok(ListArray::try_new(
        Arc::new(address_field()),
        offsets,
        Arc::new(UInt32Array::from(addresses)),
        None,
    )?)
}

/// DataFusion's distinct count for an aggregate without groups, with the
/// state columns of [`address_state_field`]: it keeps its addresses as
/// strings, so its own states carry none, and a state that does is merged
/// with its addresses written as strings.
#[derive(Debug)]
struct AddressesInState {
    inner: Box<dyn Accumulator>,
    data_type: DataType,
}

impl Accumulator for AddressesInState {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.inner.update_batch(values)
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        self.inner.evaluate()
    }

    fn size(&self) -> usize {
        size_of::<Self>() + self.inner.size()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let mut state = self.inner.state()?;
        state.push(ScalarValue::List(ScalarValue::new_list_nullable(
            &[],
            &DataType::UInt32,
        )));
        Ok(state)
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let [strings, addresses] = states else {
            return exec_err!("count(DISTINCT) merges two state columns");
        };
        self.inner.merge_batch(std::slice::from_ref(strings))?;
        let lists = addresses.as_list::<i32>();
        let numbers = lists.values().as_primitive::<UInt32Type>();
        let mut written = Vec::new();
        let mut texts = Vec::with_capacity(numbers.len());
        for number in numbers.iter() {
            texts.push(number.map(|address| {
                written.clear();
                write_ipv4(address, &mut written);
                String::from_utf8_lossy(&written).into_owned()
            }));
        }
        let values = strings_of_type(&self.data_type, texts);
        let as_strings = ListArray::try_new(
            Arc::new(Field::new_list_field(self.data_type.clone(), true)),
            lists.offsets().clone(),
            values,
            lists.nulls().cloned(),
        )?;
        self.inner.merge_batch(&[Arc::new(as_strings)])
    }
}

/// Strings this long or shorter are kept inline in an entry (IPv4
/// addresses, account IDs and most event names are); longer ones in an arena.
const INLINE: usize = 15;

/// The first byte of an entry whose value is in the arena.
const IN_ARENA: u8 = u8::MAX;

/// One (group, value) pair as it was seen: the pair's hash, the group, and
/// the value inline (its length, then its bytes, zero-padded) or, after
/// [`IN_ARENA`], its length and offset in the arena.
#[derive(Clone, Copy, Debug, Default)]
struct Entry {
    hash: u32,
    group: u32,
    value: [u8; INLINE + 1],
}

impl Entry {
    fn is_inline(&self) -> bool {
        self.value[0] != IN_ARENA
    }

    /// The value's bytes, from `arena` when they are not inline.
    fn bytes<'a>(&'a self, arena: &'a [u8]) -> &'a [u8] {
        if self.is_inline() {
            &self.value[1..=usize::from(self.value[0])]
        } else {
            let (len, offset) = self.arena_place();
            &arena[offset..offset + len]
        }
    }

    fn arena_place(&self) -> (usize, usize) {
        let mut len = [0u8; 4];
        len.copy_from_slice(&self.value[4..8]);
        let mut offset = [0u8; 8];
        offset.copy_from_slice(&self.value[8..16]);
        (
            u32::from_le_bytes(len) as usize,
            u64::from_le_bytes(offset) as usize,
        )
    }

    fn set_arena_place(&mut self, len: usize, offset: usize) {
        self.value[0] = IN_ARENA;
        self.value[4..8].copy_from_slice(&(len as u32).to_le_bytes());
        self.value[8..16].copy_from_slice(&(offset as u64).to_le_bytes());
    }

    /// The 64-bit hash a table of entries uses, spread from the stored 32
    /// bits (hashbrown takes its tag from the top bits and its bucket from
    /// the low ones).
    fn table_hash(&self) -> u64 {
        u64::from(self.hash).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
}

/// How many entries a partition holds when deduplicated, about: its table
/// of indexes (4 bytes and a control byte each, at most 7/8 full) and the
/// entries themselves stay in a core's cache.
const PARTITION_ENTRIES: usize = 8 * 1024;

/// Whether `kept` (its long value in `arena`) is the pair `entry`, whose
/// value is `bytes`.
fn same(kept: &Entry, arena: &[u8], entry: &Entry, bytes: &[u8]) -> bool {
    kept.hash == entry.hash
        && kept.group == entry.group
        && if kept.is_inline() && entry.is_inline() {
            // One 16-byte comparison, not a call to memcmp.
            u128::from_ne_bytes(kept.value) == u128::from_ne_bytes(entry.value)
        } else {
            kept.bytes(arena) == bytes
        }
}

/// How many distinct pairs are looked up as they arrive (about 0.8 MB of
/// entries and their table) before deferring to batched deduplication.
const DIRECT_LIMIT: usize = 1 << 15;

/// The hash of a (group, value) pair, folded to 32 bits so that an entry
/// stays 24 bytes; equal hashes of different pairs only cost a comparison.
fn pair_hash(hasher: &foldhash::fast::FixedState, group: u32, value: &[u8]) -> u32 {
    let wide = hasher.hash_one((group, value));
    (wide ^ (wide >> 32)) as u32
}

/// Deduplication is deferred until the entries have grown by this many
/// since the last one (or they are counted), so that it runs over large
/// batches.
const DEDUPLICATE_AFTER: usize = 1 << 20;

/// The address `value` spells, when it is an IPv4 address written as
/// CloudTrail writes `sourceIPAddress`: four decimal numbers up to 255
/// without leading zeros, joined by dots. Only that spelling: `010.0.0.1`
/// is another string than `10.0.0.1`, so it is not an address here and is
/// counted apart from it.
///
/// This runs on every value counted, and the lengths of an address's numbers
/// vary from one row to the next, so a loop deciding byte by byte mispredicts
/// its branches on most rows. The bytes are instead read as two words and
/// classified eight at a time ([`dots_and_digits`]), and each number is read
/// from its place, whatever its length, without a branch.
fn ipv4(value: &[u8]) -> Option<u32> {
    let len = value.len();
    // Seven bytes (`1.2.3.4`) are too few for two overlapping words: rare.
    if len == 7 {
        return ipv4_bytewise(value);
    }
    if !(8..=15).contains(&len) {
        return None;
    }
    // Bytes 0..8, and bytes 8..len moved down to lanes 0..len-8, the lanes
    // above them zero (a word's lane i is its byte i).
    let low = u64::from_le_bytes(value[..8].try_into().ok()?);
    let high = u64::from_le_bytes(value[len - 8..].try_into().ok()?)
        .checked_shr(8 * (16 - len as u32))
        .unwrap_or(0);
    let (low_dots, low_digits) = dots_and_digits(low);
    let (high_dots, high_digits) = dots_and_digits(high);
    let dots = low_dots | (high_dots << 8);
    let digits = low_digits | (high_digits << 8);
    let lanes = (1u32 << len) - 1;
    if (dots | digits) & lanes != lanes || dots.count_ones() != 3 {
        return None;
    }
    // Each lane's digit (a digit's low four bits), and zeros past the end for
    // a number's three reads.
    const LOW_NIBBLES: u64 = 0x0f0f_0f0f_0f0f_0f0f;
    let digit_values = u128::from(low & LOW_NIBBLES) | (u128::from(high & LOW_NIBBLES) << 64);
    let first = dots.trailing_zeros();
    let rest = dots & (dots - 1);
    let second = rest.trailing_zeros();
    let third = (rest & (rest - 1)).trailing_zeros();
    // Each number's weight of its first, second and third digit, by its
    // length (0 for none, 1 to 3).
    const FIRST: [u32; 4] = [0, 1, 10, 100];
    const SECOND: [u32; 4] = [0, 0, 1, 10];
    const THIRD: [u32; 4] = [0, 0, 0, 1];
    let mut address = 0u32;
    let mut valid = true;
    for (start, end) in [
        (0, first),
        (first + 1, second),
        (second + 1, third),
        (third + 1, len as u32),
    ] {
        let digits = end.wrapping_sub(start);
        let at = (digit_values >> (8 * start)) as u32;
        let (a, b, c) = (at & 0xff, (at >> 8) & 0xff, (at >> 16) & 0xff);
        let length = (digits & 3) as usize;
        let number = a * FIRST[length] + b * SECOND[length] + c * THIRD[length];
        // One to three digits, no leading zero, at most 255.
        valid &= (digits.wrapping_sub(1) < 3) & ((digits == 1) | (a != 0)) & (number <= 255);
        address = (address << 8) | (number & 0xff);
    }
    valid.then_some(address)
}

/// The lanes of `word` holding a dot and those holding an ASCII digit, as
/// bits 0 to 7. Each lane is computed on its own: no carry or borrow crosses
/// from one byte to the next (the bytes' high bits are set aside first).
fn dots_and_digits(word: u64) -> (u32, u32) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const LOW7: u64 = ONES * 0x7f;
    const HIGH: u64 = ONES * 0x80;
    let low7 = word & LOW7;
    // A lane is zero after the XOR exactly where it held a dot.
    let dotless = word ^ (ONES * u64::from(b'.'));
    let dots = !(((dotless & LOW7) + LOW7) | dotless | LOW7);
    // Below b'9' + 1, at or above b'0', and no high bit.
    let digits = (ONES * (0x7f + u64::from(b'9') + 1)).wrapping_sub(low7)
        & (low7 + ONES * (0x7f - u64::from(b'0') + 1))
        & !word
        & HIGH;
    (lane_bits(dots & HIGH), lane_bits(digits))
}

/// Lane i's high bit as bit i.
fn lane_bits(high_bits: u64) -> u32 {
    ((high_bits >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56) as u32
}

/// [`ipv4`] a byte at a time.
fn ipv4_bytewise(value: &[u8]) -> Option<u32> {
    if !(7..=15).contains(&value.len()) {
        return None;
    }
    let (mut address, mut octet, mut digits, mut dots) = (0u32, 0u32, 0u32, 0u32);
    for &byte in value {
        if byte == b'.' {
            if digits == 0 {
                return None;
            }
            address = (address << 8) | octet;
            (octet, digits) = (0, 0);
            dots += 1;
        } else {
            let digit = byte.wrapping_sub(b'0');
            // Not a digit, or one after a leading zero.
            if digit > 9 || (digits == 1 && octet == 0) {
                return None;
            }
            octet = octet * 10 + u32::from(digit);
            digits += 1;
            if octet > 255 {
                return None;
            }
        }
    }
    (dots == 3 && digits > 0).then_some((address << 8) | octet)
}

/// Writes `address` as [`ipv4`] reads it.
fn write_ipv4(address: u32, out: &mut Vec<u8>) {
    use std::io::Write;
    let [a, b, c, d] = address.to_be_bytes();
    // Writing to a Vec cannot fail.
    let _ = write!(out, "{a}.{b}.{c}.{d}");
}

/// When a batched deduplication is due: after enough new items have been
/// appended to the distinct ones the last left.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    /// How many items the last deduplication left (all distinct).
    distinct: usize,
    /// How many may be appended to twice those before the next.
    after: usize,
    /// Whether the last deduplication found most items distinct.
    mostly_distinct: bool,
}

impl Schedule {
    fn new() -> Self {
        Self {
            distinct: 0,
            after: DEDUPLICATE_AFTER,
            mostly_distinct: false,
        }
    }

    /// Whether entries handed on to a final aggregate, which deduplicates
    /// what it merges anyway, are deduplicated first. Not when the last
    /// deduplication found most of them distinct: another would go over
    /// them for a few duplicates. (Addresses are deduplicated as they are
    /// sorted to be handed on: [`AddressPairs::take`].)
    fn deduplicate_before_handing_on(&self) -> bool {
        !self.mostly_distinct
    }

    fn due(&self, len: usize) -> bool {
        len >= self.distinct.saturating_mul(2) + self.after
    }

    /// Notes a deduplication from `before` items down to `distinct`.
    fn done(&mut self, before: usize, distinct: usize) {
        self.distinct = distinct;
        self.mostly_distinct = distinct > before / 2;
        // When most items were distinct, deduplicating again soon would only
        // go over them again: wait for four times as many.
        if self.mostly_distinct {
            self.after = self.after.saturating_mul(4);
        }
    }
}

/// `items` grouped into partitions by `partition_of` (one of `partitions`,
/// a power of two), and where each partition starts (one more start than
/// partitions, the last the length).
fn scatter<T: Copy + Default>(
    items: &[T],
    partitions: usize,
    partition_of: impl Fn(&T) -> usize,
) -> (Vec<T>, Vec<usize>) {
    let mut starts = vec![0usize; partitions + 1];
    for item in items {
        starts[partition_of(item) + 1] += 1;
    }
    for p in 0..partitions {
        starts[p + 1] += starts[p];
    }
    let mut cursor = starts.clone();
    let mut scattered = vec![T::default(); items.len()];
    for item in items {
        let slot = &mut cursor[partition_of(item)];
        scattered[*slot] = *item;
        *slot += 1;
    }
    (scattered, starts)
}

/// How many partitions `len` items are deduplicated in, so that each holds
/// about `per_partition`.
fn partitions_for(len: usize, per_partition: usize) -> usize {
    (len / per_partition).next_power_of_two().clamp(1, 1 << 16)
}

/// The partition of an item whose hash is `hash`, of `1 << bits`: the top
/// `bits` bits (0 when there is one partition).
fn partition_of_hash(hash: u64, bits: u32) -> usize {
    hash.checked_shr(64 - bits).unwrap_or(0) as usize
}

/// How many packed pairs a partition holds when deduplicated, about: the
/// pairs and their table stay in a core's cache.
const PARTITION_PAIRS: usize = 16 * 1024;

/// (group, IPv4 address) pairs, each packed in a `u64` (the group above the
/// address), appended as rows arrive and deduplicated in large batches as
/// [`StringDistinctCountGroups`] does its entries.
///
/// Why apart from the entries: `count(DISTINCT sourceIPAddress)` is the
/// distinct count investigations ask for most, most of its values are IPv4
/// addresses and nearly every (principal, address) pair is distinct. Packed,
/// a pair is a third of an entry's size and its hash one multiplication, so
/// appending, partitioning and deduplicating move a third of the bytes.
#[derive(Debug)]
struct AddressPairs {
    pairs: Vec<u64>,
    schedule: Schedule,
    partition_pairs: usize,
    /// Addresses merged from partial states, as they came: a group's
    /// addresses in ascending order, each once (see
    /// [`address_state_field`]), kept in the state's buffer rather than
    /// copied into `pairs`.
    ///
    /// Why: a final aggregate merges one such list per group from each
    /// partial, so it counts a group's distinct addresses by walking its
    /// lists side by side, with no hashing and no copy. Copied into pairs and
    /// deduplicated like rows, the merged addresses of the guide's
    /// access-keys query were about a tenth of its CPU.
    runs: Vec<(u32, ScalarBuffer<u32>)>,
}

impl AddressPairs {
    fn new() -> Self {
        Self {
            pairs: Vec::new(),
            schedule: Schedule::new(),
            partition_pairs: PARTITION_PAIRS,
            runs: Vec::new(),
        }
    }

    /// Adds `run`, a group's addresses from a partial state: kept as a run
    /// if they ascend strictly, as the states Cairn writes do, and added as
    /// pairs otherwise.
    fn add_run(&mut self, group: u32, run: ScalarBuffer<u32>) {
        if run.windows(2).all(|w| w[0] < w[1]) {
            self.runs.push((group, run));
        } else {
            for &address in run.iter() {
                self.push(group, address);
            }
        }
    }

    fn pack(group: u32, address: u32) -> u64 {
        (u64::from(group) << 32) | u64::from(address)
    }

    fn group(pair: u64) -> u32 {
        (pair >> 32) as u32
    }

    /// A pair's hash: its top bits choose the partition.
    fn hash(pair: u64) -> u64 {
        (pair ^ (pair >> 29)).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    /// The hash a partition's table uses: hashbrown takes its tag from the
    /// top bits, which every pair of a partition shares in [`Self::hash`].
    fn table_hash(pair: u64) -> u64 {
        Self::hash(pair).wrapping_mul(0xD6E8_FEB8_6659_FD93)
    }

    fn push(&mut self, group: u32, address: u32) {
        self.pairs.push(Self::pack(group, address));
    }

    fn maybe_deduplicate(&mut self) {
        if self.schedule.due(self.pairs.len()) {
            let before = self.pairs.len();
            self.deduplicate();
            self.schedule.done(before, self.pairs.len());
        }
    }

    fn deduplicate(&mut self) {
        if self.pairs.len() == self.schedule.distinct {
            return;
        }
        let partitions = partitions_for(self.pairs.len(), self.partition_pairs);
        let bits = partitions.trailing_zeros();
        let (scattered, starts) = scatter(&self.pairs, partitions, |&pair| {
            partition_of_hash(Self::hash(pair), bits)
        });
        self.pairs.clear();
        let mut table = hashbrown::HashTable::<u64>::new();
        for p in 0..partitions {
            let partition = &scattered[starts[p]..starts[p + 1]];
            table.clear();
            table.reserve(partition.len(), |_| 0);
            for &pair in partition {
                let hash = Self::table_hash(pair);
                if table.find(hash, |&kept| kept == pair).is_none() {
                    table.insert_unique(hash, pair, |&kept| Self::table_hash(kept));
                    self.pairs.push(pair);
                }
            }
        }
        self.schedule.distinct = self.pairs.len();
    }

    /// Counts the first `n` groups' distinct addresses into `counts`, takes
    /// them out and renumbers the rest from 0. Handed on (`hand_on`, to a
    /// final aggregate), the addresses are also returned, each group's in
    /// ascending order, each once, group after group.
    fn take(&mut self, n: usize, counts: &mut [i64], hand_on: bool) -> Vec<u32> {
        let n32 = u32::try_from(n).unwrap_or(u32::MAX);
        let mut runs = Vec::new();
        self.runs.retain_mut(|(group, run)| {
            if *group < n32 {
                runs.push((*group, run.clone()));
                return false;
            }
            *group -= n32;
            true
        });
        if runs.is_empty() && !hand_on {
            // Only rows' addresses: counted by deduplicating them in place.
            self.deduplicate();
            for &pair in &self.pairs {
                let group = Self::group(pair);
                if group < n32 {
                    counts[group as usize] += 1;
                }
            }
            self.retain_groups_from(n32);
            return Vec::new();
        }
        // The rows' addresses sorted into a run per group, then each group's
        // runs walked together.
        let (sorted, starts) = self.take_sorted(n32);
        if runs.is_empty() {
            // The rows' addresses alone (a partial aggregate's): as sorted.
            for (count, window) in counts.iter_mut().zip(starts.windows(2)) {
                *count = (window[1] - window[0]) as i64;
            }
            return sorted;
        }
        runs.sort_by_key(|(group, _)| *group);
        let mut merged = Vec::new();
        let mut next_run = 0;
        let mut group_runs: Vec<&[u32]> = Vec::new();
        for (group, count) in counts.iter_mut().enumerate() {
            group_runs.clear();
            if starts[group] < starts[group + 1] {
                group_runs.push(&sorted[starts[group]..starts[group + 1]]);
            }
            while next_run < runs.len() && runs[next_run].0 as usize == group {
                group_runs.push(&runs[next_run].1);
                next_run += 1;
            }
            let mut distinct = 0i64;
            merge_runs(&group_runs, |address| {
                distinct += 1;
                if hand_on {
                    merged.push(address);
                }
            });
            *count = distinct;
        }
        merged
    }

    /// Takes the pairs of the groups below `n32` out, as their addresses
    /// sorted and deduplicated group by group, with where each group's start
    /// (one more start than groups); the rest are renumbered.
    fn take_sorted(&mut self, n32: u32) -> (Vec<u32>, Vec<usize>) {
        let groups = n32 as usize;
        let mut starts = vec![0usize; groups + 1];
        for &pair in &self.pairs {
            let group = Self::group(pair);
            if group < n32 {
                starts[group as usize + 1] += 1;
            }
        }
        for g in 0..groups {
            starts[g + 1] += starts[g];
        }
        let mut next = starts.clone();
        let mut sorted = vec![0u32; starts[groups]];
        for &pair in &self.pairs {
            let group = Self::group(pair);
            if group < n32 {
                let slot = &mut next[group as usize];
                sorted[*slot] = pair as u32;
                *slot += 1;
            }
        }
        self.retain_groups_from(n32);
        // Each group's addresses sorted and their repeats dropped, moved
        // down over the room the repeats leave.
        let mut kept = 0;
        let mut scratch = Vec::new();
        for g in 0..groups {
            let (start, end) = (starts[g], starts[g + 1]);
            radix_sort(&mut sorted[start..end], &mut scratch);
            starts[g] = kept;
            for i in start..end {
                if i == start || sorted[i] != sorted[i - 1] {
                    sorted[kept] = sorted[i];
                    kept += 1;
                }
            }
        }
        starts[groups] = kept;
        sorted.truncate(kept);
        (sorted, starts)
    }

    /// Drops the pairs of the groups below `n32` and renumbers the rest from
    /// 0.
    fn retain_groups_from(&mut self, n32: u32) {
        let deduplicated = self.pairs.len() == self.schedule.distinct;
        self.pairs.retain_mut(|pair| {
            let group = Self::group(*pair);
            if group < n32 {
                return false;
            }
            *pair = Self::pack(group - n32, *pair as u32);
            true
        });
        // What is left holds duplicates if it was not deduplicated.
        self.schedule.distinct = if deduplicated { self.pairs.len() } else { 0 };
    }

    fn size(&self) -> usize {
        self.pairs.capacity() * size_of::<u64>()
            + self.runs.capacity() * size_of::<(u32, ScalarBuffer<u32>)>()
            + self.runs.iter().map(|(_, run)| run.len()).sum::<usize>() * size_of::<u32>()
    }
}

/// Sorts `values` in ascending order, [`RADIX_BITS`] bits at a time from
/// the lowest (least significant digit first), moving them through
/// `scratch`.
///
/// Why not `sort_unstable`: a partial aggregate sorts millions of addresses
/// (each group's, a few thousand at a time, in the core's cache) before it
/// hands them on, and comparison sorting them was a twentieth of the
/// access-keys query; three counting passes take a fraction of that.
fn radix_sort(values: &mut [u32], scratch: &mut Vec<u32>) {
    if values.len() < 64 {
        values.sort_unstable();
        return;
    }
    const DIGITS: usize = 1 << RADIX_BITS;
    const PASSES: usize = 32_usize.div_ceil(RADIX_BITS as usize);
    let digit =
        |value: u32, pass: usize| ((value >> (RADIX_BITS as usize * pass)) as usize) & (DIGITS - 1);
    let mut counts = vec![[0usize; DIGITS]; PASSES];
    for &value in values.iter() {
        for (pass, count) in counts.iter_mut().enumerate() {
            count[digit(value, pass)] += 1;
        }
    }
    scratch.clear();
    scratch.resize(values.len(), 0);
    let (mut from, mut to) = (values, scratch.as_mut_slice());
    let mut in_scratch = false;
    for (pass, count) in counts.iter_mut().enumerate() {
        // Every value has the same digit here: the order stands.
        if count.contains(&from.len()) {
            continue;
        }
        // Each digit's count becomes where its values start.
        let mut total = 0;
        for slot in count.iter_mut() {
            (*slot, total) = (total, total + *slot);
        }
        for &value in from.iter() {
            let slot = &mut count[digit(value, pass)];
            to[*slot] = value;
            *slot += 1;
        }
        std::mem::swap(&mut from, &mut to);
        in_scratch = !in_scratch;
    }
    if in_scratch {
        // `from` is the scratch now, `to` the values.
        to.copy_from_slice(from);
    }
}

/// The bits of an address [`radix_sort`] places at a time: three passes,
/// their counts (3 × 16 KiB) in the core's first cache.
const RADIX_BITS: u32 = 11;

/// Calls `f` with each address of `runs` once, in ascending order; each run
/// ascends strictly.
fn merge_runs(runs: &[&[u32]], mut f: impl FnMut(u32)) {
    match runs {
        [] => {}
        [run] => run.iter().for_each(|&address| f(address)),
        [a, b] => {
            let (mut i, mut j) = (0, 0);
            while i < a.len() && j < b.len() {
                let (x, y) = (a[i], b[j]);
                f(x.min(y));
                i += usize::from(x <= y);
                j += usize::from(y <= x);
            }
            a[i..].iter().chain(&b[j..]).for_each(|&address| f(address));
        }
        // More than two partial states for a group: rare (a partial that
        // emitted early).
        _ => {
            let mut all = runs.concat();
            all.sort_unstable();
            all.dedup();
            all.into_iter().for_each(f);
        }
    }
}

/// Each group's distinct values, as (group, value) entries appended as rows
/// arrive and deduplicated in large batches.
///
/// Why not one hash set per group, as DataFusion's own accumulator keeps:
/// with as many distinct values as rows (source addresses per principal)
/// every insert lands in a cold part of a large table and waits on memory.
/// Appending is sequential; deduplication first scatters the entries into
/// partitions by hash, small enough that each partition's table stays in
/// the core's cache while it is built.
#[derive(Debug)]
struct StringDistinctCountGroups {
    data_type: DataType,
    entries: Vec<Entry>,
    /// The bytes of the values longer than [`INLINE`].
    arena: Vec<u8>,
    /// When the entries are next deduplicated; its `distinct` counts the
    /// entries the last deduplication left, and those the direct table
    /// admitted since.
    schedule: Schedule,
    /// How many groups the aggregation has given this accumulator.
    num_groups: usize,
    hasher: foldhash::fast::FixedState,
    /// [`PARTITION_ENTRIES`], smaller in tests.
    partition_entries: usize,
    /// While the distinct pairs are few, a table of all of them (`entries`
    /// holds nothing else) that each row is looked up in as it arrives: it
    /// stays in the cache, and appending rows only to deduplicate them later
    /// would cost more. Dropped once it holds more than `direct_limit`.
    direct: Option<hashbrown::HashTable<u32>>,
    direct_limit: usize,
    /// The values that are IPv4 addresses, kept apart from `entries`.
    addresses: AddressPairs,
    /// The (group, row key) pairs of the batch being added: see
    /// [`row_keys`]. Cleared for every batch.
    seen_in_batch: hashbrown::HashSet<(usize, u128), foldhash::fast::FixedState>,
    /// The run of rows holding one value that the last batch ended with.
    run: Run,
    /// How many batches to add without following runs, because the last
    /// batch's runs were too short.
    skip_runs_for: u32,
    /// How many batches to add without `seen_in_batch`, because it let too
    /// few rows through unlooked at when last tried.
    skip_seen_for: u32,
}

impl StringDistinctCountGroups {
    fn new(data_type: DataType) -> Self {
        Self {
            data_type,
            entries: Vec::new(),
            arena: Vec::new(),
            schedule: Schedule::new(),
            num_groups: 0,
            hasher: foldhash::fast::FixedState::with_seed(0x00ca_1125),
            partition_entries: PARTITION_ENTRIES,
            direct: Some(hashbrown::HashTable::new()),
            direct_limit: DIRECT_LIMIT,
            addresses: AddressPairs::new(),
            seen_in_batch: hashbrown::HashSet::with_hasher(Default::default()),
            skip_seen_for: 0,
            run: Run::default(),
            skip_runs_for: 0,
        }
    }

    fn note_groups(&mut self, total_num_groups: usize) {
        self.num_groups = self.num_groups.max(total_num_groups);
    }

    fn total_groups(&self, emit_to: EmitTo) -> usize {
        match emit_to {
            EmitTo::All => self.num_groups,
            EmitTo::First(n) => n,
        }
    }

    fn push(&mut self, group: usize, value: &[u8]) -> Result<()> {
        let Ok(group) = u32::try_from(group) else {
            return exec_err!("count(DISTINCT) over more than 2^32 groups");
        };
        if let Some(address) = ipv4(value) {
            self.addresses.push(group, address);
            return Ok(());
        }
        let mut entry = Entry {
            hash: pair_hash(&self.hasher, group, value),
            group,
            value: [0; INLINE + 1],
        };
        if value.len() <= INLINE {
            entry.value[0] = value.len() as u8;
            entry.value[1..=value.len()].copy_from_slice(value);
        } else {
            entry.value[0] = IN_ARENA;
        }
        if let Some(table) = &mut self.direct {
            let (entries, arena) = (&self.entries, &self.arena);
            let hash = entry.table_hash();
            if table
                .find(hash, |&i| same(&entries[i as usize], arena, &entry, value))
                .is_some()
            {
                return Ok(());
            }
            // Fewer than `direct_limit` entries: the index fits.
            table.insert_unique(hash, entries.len() as u32, |&i| {
                entries[i as usize].table_hash()
            });
            self.schedule.distinct += 1;
            if table.len() > self.direct_limit {
                self.direct = None;
            }
        }
        if !entry.is_inline() {
            entry.set_arena_place(value.len(), self.arena.len());
            self.arena.extend_from_slice(value);
        }
        self.entries.push(entry);
        Ok(())
    }

    /// Adds a batch whose rows come in runs of one value (the copy's row
    /// groups are ordered by service and action, so `eventName` does): a
    /// row is pushed only if its group has not had the run's value since
    /// the run began, a bit per group, with no hashing. A run goes on into
    /// the next batch while the value is the same. Rows are compared with
    /// the run by their keys (see [`row_keys`]) and, where those differ,
    /// by their bytes.
    fn add_by_runs(
        &mut self,
        values: &ArrayRef,
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        result: &mut Result<()>,
    ) -> Result<()> {
        let keys = row_keys(values)?;
        let mut run = std::mem::take(&mut self.run);
        // Keys name places in this batch's buffers only.
        run.key = None;
        let words = self.num_groups.div_ceil(64);
        if run.pushed.len() < words {
            run.pushed.resize(words, 0);
        }
        let (mut rows, mut runs) = (0usize, 0usize);
        for_each_string(values, opt_filter, |row, value| {
            rows += 1;
            let key = keys[row];
            if run.key != Some(key) {
                if run.value != value {
                    runs += 1;
                    run.begin(value);
                }
                run.key = Some(key);
            }
            let group = group_indices[row];
            let (word, bit) = (group / 64, 1u64 << (group % 64));
            if run.pushed[word] & bit == 0 {
                run.pushed[word] |= bit;
                run.groups.push(group);
                if result.is_ok() {
                    *result = self.push(group, value);
                }
            }
        })?;
        self.run = run;
        if runs.saturating_mul(RUN_ROWS) > rows {
            self.skip_runs_for = SKIP_RUN_BATCHES;
            self.run = Run::default();
        }
        Ok(())
    }

    /// Deduplicates when enough entries have arrived since the last time.
    fn maybe_deduplicate(&mut self) {
        self.addresses.maybe_deduplicate();
        if self.schedule.due(self.entries.len()) {
            let before = self.entries.len();
            self.deduplicate();
            self.schedule.done(before, self.entries.len());
        }
    }

    /// Leaves one entry per distinct (group, value) pair, and the arena
    /// holding only their long values.
    fn deduplicate(&mut self) {
        if self.entries.len() == self.schedule.distinct {
            return;
        }
        let partitions = partitions_for(self.entries.len(), self.partition_entries);
        let bits = partitions.trailing_zeros();
        // The partition comes from the hash's top bits; the tables use the
        // spread hash, whose bucket bits come from the low ones.
        let (scattered, starts) = scatter(&self.entries, partitions, |entry| {
            partition_of_hash(u64::from(entry.hash) << 32, bits)
        });
        let old_arena = std::mem::take(&mut self.arena);
        let entries = &mut self.entries;
        entries.clear();
        let arena = &mut self.arena;
        let mut table = hashbrown::HashTable::<u32>::new();
        for p in 0..partitions {
            let partition = &scattered[starts[p]..starts[p + 1]];
            let first = entries.len();
            table.clear();
            table.reserve(partition.len(), |_| 0);
            for entry in partition {
                let hash = entry.table_hash();
                let bytes = entry.bytes(&old_arena);
                let seen = table
                    .find(hash, |&i| {
                        same(&entries[first + i as usize], arena, entry, bytes)
                    })
                    .is_some();
                if seen {
                    continue;
                }
                let mut kept = *entry;
                if !entry.is_inline() {
                    kept.set_arena_place(bytes.len(), arena.len());
                    arena.extend_from_slice(bytes);
                }
                // A partition holds fewer than 2^32 entries: `partitions`
                // grows with the entries.
                table.insert_unique(hash, (entries.len() - first) as u32, |&i| {
                    entries[first + i as usize].table_hash()
                });
                entries.push(kept);
            }
        }
        self.schedule.distinct = self.entries.len();
    }

    /// Takes the first `n` groups (all of them for `EmitTo::All`) out and
    /// renumbers the rest from 0. Returns their distinct values as entries
    /// and as addresses: how many of each every group has and, if handed
    /// on (`hand_on`, to a final aggregate), the entries and the addresses,
    /// in group order. Counted, the values are deduplicated first; handed
    /// on, as [`Schedule::deduplicate_before_handing_on`] says.
    fn take(&mut self, emit_to: EmitTo, hand_on: bool) -> Taken {
        if !hand_on || self.schedule.deduplicate_before_handing_on() {
            self.deduplicate();
        }
        let deduplicated = self.entries.len() == self.schedule.distinct;
        let n = self.total_groups(emit_to);
        // The groups are renumbered: the run's bits would name others.
        self.run = Run::default();
        let mut address_counts = vec![0i64; n];
        let addresses = self.addresses.take(n, &mut address_counts, hand_on);
        let mut counts = vec![0i64; n];
        let mut taken = Vec::new();
        let n32 = u32::try_from(n).unwrap_or(u32::MAX);
        let (hasher, arena) = (&self.hasher, &self.arena);
        self.entries.retain_mut(|entry| {
            if entry.group < n32 {
                counts[entry.group as usize] += 1;
                if hand_on {
                    taken.push(*entry);
                }
                false
            } else {
                // Hashed again: the values the renumbered group is given
                // next are hashed with its new number.
                entry.group -= n32;
                entry.hash = pair_hash(hasher, entry.group, entry.bytes(arena));
                true
            }
        });
        // What is left holds duplicates if it was not deduplicated (never
        // while the direct table is kept: every entry is distinct then).
        self.schedule.distinct = if deduplicated { self.entries.len() } else { 0 };
        self.num_groups = self.num_groups.saturating_sub(n);
        if let Some(table) = &mut self.direct {
            let entries = &self.entries;
            table.clear();
            for (i, entry) in entries.iter().enumerate() {
                table.insert_unique(entry.table_hash(), i as u32, |&j| {
                    entries[j as usize].table_hash()
                });
            }
        }
        taken.sort_unstable_by_key(|entry| entry.group);
        Taken {
            entry_counts: counts,
            address_counts,
            entries: taken,
            addresses,
        }
    }
}

/// Groups taken out of a [`StringDistinctCountGroups`].
struct Taken {
    /// How many distinct values each group has that are not addresses.
    entry_counts: Vec<i64>,
    /// How many distinct addresses each group has.
    address_counts: Vec<i64>,
    /// The entries, in group order (when kept).
    entries: Vec<Entry>,
    /// The addresses, each group's together, in group order (when kept).
    addresses: Vec<u32>,
}

impl Taken {
    /// Each group's distinct count.
    fn counts(&self) -> Vec<i64> {
        self.entry_counts
            .iter()
            .zip(&self.address_counts)
            .map(|(entries, addresses)| entries + addresses)
            .collect()
    }
}

/// List offsets for rows of `counts` values each.
fn list_offsets(counts: &[i64]) -> Result<OffsetBuffer<i32>> {
    let mut offsets = Vec::with_capacity(counts.len() + 1);
    offsets.push(0i32);
    let mut total = 0i32;
    for count in counts {
        total = i32::try_from(*count)
            .ok()
            .and_then(|c| total.checked_add(c))
            .ok_or_else(|| {
                datafusion::error::DataFusionError::ResourcesExhausted(
                    "count(DISTINCT) holds more values than one state array can".into(),
                )
            })?;
        offsets.push(total);
    }
    Ok(OffsetBuffer::new(offsets.into()))
}

/// Rows holding one value, one after another, and the groups pushed with
/// it since they began (see [`StringDistinctCountGroups::add_by_runs`]).
#[derive(Debug, Default)]
struct Run {
    /// The run's value.
    value: Vec<u8>,
    /// The key of the run's last row in the batch being added.
    key: Option<u128>,
    /// A bit per group: set when the group has been pushed with `value`.
    pushed: Vec<u64>,
    /// The groups whose bits are set, to clear when the run ends.
    groups: Vec<usize>,
}

impl Run {
    fn size(&self) -> usize {
        self.value.capacity()
            + self.pushed.capacity() * size_of::<u64>()
            + self.groups.capacity() * size_of::<usize>()
    }

    /// Ends the run and begins one of `value`.
    fn begin(&mut self, value: &[u8]) {
        for group in self.groups.drain(..) {
            self.pushed[group / 64] = 0;
        }
        self.value.clear();
        self.value.extend_from_slice(value);
    }
}

/// Runs are followed only while a batch's are this many rows long on
/// average, or longer.
const RUN_ROWS: usize = 8;

/// How many batches are added otherwise after a batch's runs were short.
const SKIP_RUN_BATCHES: u32 = 64;

/// Runs are followed only while there are at most this many groups: a bit
/// each (128 KiB).
const RUN_GROUPS: usize = 1 << 20;

/// How many batches are added the plain way after the batch-wide lookup of
/// repeated rows let more than three quarters of its rows through.
const SKIP_SEEN_BATCHES: u32 = 64;

/// A key per row of `values` that is the same for two rows holding the same
/// string in the same place: its view (length, prefix, buffer and offset),
/// or its offsets. Rows decoded from one dictionary page share their keys.
/// Different keys may still hold equal strings.
fn row_keys(values: &ArrayRef) -> Result<std::borrow::Cow<'_, [u128]>> {
    use std::borrow::Cow;
    Ok(match values.data_type() {
        DataType::Utf8View => Cow::Borrowed(values.as_string_view().views().as_ref()),
        DataType::Utf8 => Cow::Owned(spans(values.as_string::<i32>().value_offsets())),
        DataType::LargeUtf8 => Cow::Owned(spans(values.as_string::<i64>().value_offsets())),
        other => return exec_err!("count(DISTINCT) of strings was given {other}"),
    })
}

/// Each row's (start, end) offsets, as one key.
fn spans<O: OffsetSizeTrait>(offsets: &[O]) -> Vec<u128> {
    offsets
        .windows(2)
        .map(|w| ((w[0].as_usize() as u128) << 64) | w[1].as_usize() as u128)
        .collect()
}

/// Calls `f` with the rows of `strings` that are `included` (one loop for
/// each of the three string layouts).
fn each_included<'a>(
    strings: impl ArrayAccessor<Item = &'a str>,
    included: impl Fn(usize) -> bool,
    f: &mut impl FnMut(usize, &[u8]),
) {
    for row in (0..strings.len()).filter(|row| included(*row)) {
        f(row, strings.value(row).as_bytes());
    }
}

/// Calls `f` with each row's value that is neither null nor filtered out.
fn for_each_string(
    values: &ArrayRef,
    filter: Option<&BooleanArray>,
    mut f: impl FnMut(usize, &[u8]),
) -> Result<()> {
    let nulls = values.logical_nulls();
    let included = |row: usize| {
        nulls.as_ref().is_none_or(|n| n.is_valid(row))
            && filter.is_none_or(|m| m.is_valid(row) && m.value(row))
    };
    match values.data_type() {
        DataType::Utf8 => each_included(values.as_string::<i32>(), included, &mut f),
        DataType::LargeUtf8 => each_included(values.as_string::<i64>(), included, &mut f),
        DataType::Utf8View => each_included(values.as_string_view(), included, &mut f),
        other => return exec_err!("count(DISTINCT) of strings was given {other}"),
    }
    Ok(())
}

impl GroupsAccumulator for StringDistinctCountGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.note_groups(total_num_groups);
        let [values] = values else {
            return exec_err!("count(DISTINCT) takes one argument");
        };
        self.entries.reserve(values.len());
        let mut result = Ok(());
        if self.skip_runs_for == 0 && total_num_groups <= RUN_GROUPS {
            self.add_by_runs(values, group_indices, opt_filter, &mut result)?;
        } else if self.direct.is_some() && self.skip_seen_for == 0 {
            self.skip_runs_for = self.skip_runs_for.saturating_sub(1);
            // Few distinct pairs, so most rows repeat one already seen, and
            // often in the same batch: a row whose (group, key) the batch
            // has had is passed over without hashing or comparing its
            // string (event names read from a dictionary share keys).
            let keys = row_keys(values)?;
            let mut seen = std::mem::take(&mut self.seen_in_batch);
            seen.clear();
            let (mut rows, mut new) = (0usize, 0usize);
            for_each_string(values, opt_filter, |row, value| {
                rows += 1;
                let group = group_indices[row];
                if result.is_ok() && seen.insert((group, keys[row])) {
                    new += 1;
                    result = self.push(group, value);
                }
            })?;
            self.seen_in_batch = seen;
            if new.saturating_mul(4) > rows.saturating_mul(3) {
                self.skip_seen_for = SKIP_SEEN_BATCHES;
            }
        } else {
            self.skip_runs_for = self.skip_runs_for.saturating_sub(1);
            self.skip_seen_for = self.skip_seen_for.saturating_sub(1);
            for_each_string(values, opt_filter, |row, value| {
                if result.is_ok() {
                    result = self.push(group_indices[row], value);
                }
            })?;
        }
        result?;
        self.maybe_deduplicate();
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let taken = self.take(emit_to, false);
        Ok(Arc::new(Int64Array::from(taken.counts())))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let taken = self.take(emit_to, true);
        // Two lists per group: its values that are not addresses, as
        // strings, and its addresses, as numbers (see `address_state_field`).
        let arena = &self.arena;
        let strings = taken
            .entries
            .iter()
            .map(|entry| std::str::from_utf8(entry.bytes(arena)).map_err(to_error))
            .collect::<Result<Vec<_>>>()?;
        let strings = ListArray::try_new(
            Arc::new(Field::new_list_field(self.data_type.clone(), true)),
            list_offsets(&taken.entry_counts)?,
            strings_of_type(&self.data_type, strings.into_iter().map(Some)),
            None,
        )?;
        let addresses = address_lists(list_offsets(&taken.address_counts)?, taken.addresses)?;
        Ok(vec![Arc::new(strings), Arc::new(addresses)])
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.note_groups(total_num_groups);
        let [lists, addresses] = values else {
            return exec_err!("count(DISTINCT) merges two state columns");
        };
        let addresses = addresses.as_list::<i32>();
        let numbers = addresses.values().as_primitive::<UInt32Type>();
        if numbers.null_count() > 0 {
            return exec_err!("count(DISTINCT) state holds a null address");
        }
        let offsets = addresses.value_offsets();
        for (row, group) in group_indices.iter().enumerate() {
            let Ok(group) = u32::try_from(*group) else {
                return exec_err!("count(DISTINCT) over more than 2^32 groups");
            };
            let (Ok(start), Ok(end)) = (
                usize::try_from(offsets[row]),
                usize::try_from(offsets[row + 1]),
            ) else {
                return exec_err!("count(DISTINCT) state with a negative offset");
            };
            if start < end {
                self.addresses
                    .add_run(group, numbers.values().slice(start, end - start));
            }
        }
        let lists = lists.as_list::<i32>();
        let offsets = lists.value_offsets();
        let mut row_groups = Vec::with_capacity(lists.values().len());
        for (row, group) in group_indices.iter().enumerate() {
            let len = usize::try_from(offsets[row + 1] - offsets[row]).unwrap_or(0);
            row_groups.extend(std::iter::repeat_n(*group, len));
        }
        let start = usize::try_from(offsets[0]).unwrap_or(0);
        let inner = lists.values().slice(start, row_groups.len());
        let mut result = Ok(());
        for_each_string(&inner, None, |row, value| {
            if result.is_ok() {
                result = self.push(row_groups[row], value);
            }
        })?;
        result?;
        self.maybe_deduplicate();
        Ok(())
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let [values] = values else {
            return exec_err!("count(DISTINCT) takes one argument");
        };
        // One list per row: the row's value, or nothing when it is null or
        // filtered out.
        let mut offsets = Vec::with_capacity(values.len() + 1);
        let mut keep = Vec::with_capacity(values.len());
        offsets.push(0i32);
        let mut total = 0i32;
        for row in 0..values.len() {
            let included =
                values.is_valid(row) && opt_filter.is_none_or(|m| m.is_valid(row) && m.value(row));
            if included {
                total += 1;
                keep.push(row as u32);
            }
            offsets.push(total);
        }
        let kept =
            datafusion::arrow::compute::take(values.as_ref(), &UInt32Array::from(keep), None)?;
        let list = ListArray::try_new(
            Arc::new(Field::new_list_field(self.data_type.clone(), true)),
            OffsetBuffer::new(offsets.into()),
            kept,
            None,
        )?;
        // Every value as a string: the merge finds the addresses among them.
        let no_addresses = address_lists(OffsetBuffer::new_zeroed(values.len()), Vec::new())?;
        Ok(vec![Arc::new(list), Arc::new(no_addresses)])
    }

    fn size(&self) -> usize {
        size_of::<Self>()
            + self.entries.capacity() * size_of::<Entry>()
            + self.arena.capacity()
            + self.addresses.size()
            + self.run.size()
            + self
                .direct
                .as_ref()
                .map_or(0, |table| table.capacity() * (size_of::<u32>() + 1))
    }
}

fn to_error(e: std::str::Utf8Error) -> datafusion::error::DataFusionError {
    datafusion::error::DataFusionError::Execution(format!("count(DISTINCT) state: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{StringArray, StringViewArray};
    use std::collections::{BTreeMap, BTreeSet};

    /// Rows of (group, value): short and long strings, empty ones, nulls and
    /// repeats, from a fixed seed.
    fn rows(n: usize, groups: usize, seed: u64) -> Vec<(usize, Option<String>)> {
        let mut numbers = crate::tests::numbers(seed);
        let mut next = move || (numbers() >> 33) as usize;
        (0..n)
            .map(|_| {
                let group = next() % groups;
                let value = match next() % 13 {
                    0 => None,
                    1 => Some(String::new()),
                    // Spellings that are not addresses beside those that
                    // are: a leading zero, an octet over 255, three parts.
                    10 => Some(format!("010.{}.{}.{}", next() % 3, next() % 9, next() % 60)),
                    11 => Some(format!(
                        "10.{}.{}.{}",
                        next() % 3,
                        next() % 9,
                        250 + next() % 9
                    )),
                    12 => Some(format!("10.{}.{}", next() % 3, next() % 9)),
                    2 => Some(format!(
                        "{}.amazonaws.com.example-{}",
                        next() % 7,
                        next() % 5
                    )),
                    _ => Some(format!("10.{}.{}.{}", next() % 3, next() % 9, next() % 60)),
                };
                (group, value)
            })
            .collect()
    }

    fn expected(rows: &[(usize, Option<String>)], groups: usize) -> Vec<i64> {
        let mut sets: BTreeMap<usize, BTreeSet<&str>> = BTreeMap::new();
        for (group, value) in rows {
            if let Some(v) = value {
                sets.entry(*group).or_default().insert(v);
            }
        }
        (0..groups)
            .map(|g| sets.get(&g).map_or(0, |s| s.len() as i64))
            .collect()
    }

    fn array(rows: &[(usize, Option<String>)], view: bool) -> ArrayRef {
        let values = rows.iter().map(|(_, v)| v.as_deref());
        if view {
            Arc::new(values.collect::<StringViewArray>())
        } else {
            Arc::new(values.collect::<StringArray>())
        }
    }

    /// An accumulator that deduplicates every few hundred rows, into
    /// partitions of a few dozen entries.
    fn small(data_type: DataType) -> StringDistinctCountGroups {
        let mut acc = StringDistinctCountGroups::new(data_type);
        acc.partition_entries = 32;
        acc.schedule.after = 300;
        acc.direct_limit = 50;
        acc.addresses.partition_pairs = 32;
        acc.addresses.schedule.after = 300;
        acc
    }

    fn counts(array: ArrayRef) -> Vec<i64> {
        array
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
            .values()
            .to_vec()
    }

    #[test]
    fn counts_each_groups_distinct_values() {
        for view in [false, true] {
            let data_type = if view {
                DataType::Utf8View
            } else {
                DataType::Utf8
            };
            let rows = rows(5_000, 13, 7);
            let mut acc = StringDistinctCountGroups::new(data_type);
            // In three batches, the way an aggregation feeds it.
            for chunk in rows.chunks(2_000) {
                let groups: Vec<usize> = chunk.iter().map(|(g, _)| *g).collect();
                acc.update_batch(&[array(chunk, view)], &groups, None, 13)
                    .unwrap();
            }
            assert_eq!(
                counts(acc.evaluate(EmitTo::All).unwrap()),
                expected(&rows, 13)
            );
        }
    }

    #[test]
    fn a_filter_leaves_rows_out() {
        let rows = rows(1_000, 4, 3);
        let filter: BooleanArray = (0..rows.len())
            .map(|i| if i % 5 == 0 { None } else { Some(i % 2 == 0) })
            .collect();
        let kept: Vec<_> = rows
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 5 != 0 && i % 2 == 0)
            .map(|(_, r)| r.clone())
            .collect();
        let groups: Vec<usize> = rows.iter().map(|(g, _)| *g).collect();
        let mut acc = StringDistinctCountGroups::new(DataType::Utf8);
        acc.update_batch(&[array(&rows, false)], &groups, Some(&filter), 4)
            .unwrap();
        assert_eq!(
            counts(acc.evaluate(EmitTo::All).unwrap()),
            expected(&kept, 4)
        );
    }

    #[test]
    fn partial_states_merge_to_the_same_counts() {
        for view in [false, true] {
            let data_type = if view {
                DataType::Utf8View
            } else {
                DataType::Utf8
            };
            let rows = rows(6_000, 9, 11);
            let (left, right) = rows.split_at(2_500);
            let mut merged = StringDistinctCountGroups::new(data_type.clone());
            for half in [left, right] {
                let groups: Vec<usize> = half.iter().map(|(g, _)| *g).collect();
                let mut partial = StringDistinctCountGroups::new(data_type.clone());
                partial
                    .update_batch(&[array(half, view)], &groups, None, 9)
                    .unwrap();
                let state = partial.state(EmitTo::All).unwrap();
                merged
                    .merge_batch(&state, &(0..9).collect::<Vec<_>>(), 9)
                    .unwrap();
            }
            assert_eq!(
                counts(merged.evaluate(EmitTo::All).unwrap()),
                expected(&rows, 9)
            );
        }
    }

    #[test]
    fn radix_sort_sorts_as_a_comparison_sort_does() {
        let mut numbers = crate::tests::numbers(7u64);
        let mut next = move || (numbers() >> 32) as u32;
        let mut scratch = Vec::new();
        // Short and long, random, with repeats, with digits every value
        // shares (passes skipped: one, two or three passes made).
        for (len, mask) in [
            (0, !0),
            (10, !0),
            (1_000, !0),
            (5_000, 0xff),
            (3_000, 0x003f_ffff),
            (4_000, 0xffff_ff00),
        ] {
            let mut values: Vec<u32> = (0..len).map(|_| next() & mask).collect();
            let mut want = values.clone();
            want.sort_unstable();
            radix_sort(&mut values, &mut scratch);
            assert_eq!(values, want, "{len} {mask:x}");
        }
    }

    #[test]
    fn merged_address_lists_are_walked_together_however_they_arrive() {
        let rows = rows(9_000, 7, 29);
        let groups_of = |rows: &[(usize, Option<String>)]| -> Vec<usize> {
            rows.iter().map(|(g, _)| *g).collect()
        };
        // Three partials, so some groups have three lists to walk.
        let mut merged = StringDistinctCountGroups::new(DataType::Utf8);
        for part in rows[..6_000].chunks(2_000) {
            let mut partial = StringDistinctCountGroups::new(DataType::Utf8);
            partial
                .update_batch(&[array(part, false)], &groups_of(part), None, 7)
                .unwrap();
            let state = partial.state(EmitTo::All).unwrap();
            merged
                .merge_batch(&state, &(0..7).collect::<Vec<_>>(), 7)
                .unwrap();
        }
        // Rows added to a final aggregate beside the lists it merged.
        let later = &rows[6_000..];
        merged
            .update_batch(&[array(later, false)], &groups_of(later), None, 7)
            .unwrap();
        // A list that does not ascend, as no Cairn state holds: its
        // addresses are added one by one.
        let unsorted = ["10.0.0.9", "10.0.0.1", "10.0.0.9", "10.0.0.250"];
        let strings = ListArray::try_new(
            Arc::new(Field::new_list_field(DataType::Utf8, true)),
            OffsetBuffer::new_zeroed(1),
            strings_of_type(&DataType::Utf8, Vec::<Option<&str>>::new()),
            None,
        )
        .unwrap();
        let addresses = address_lists(
            OffsetBuffer::from_lengths([unsorted.len()]),
            unsorted.iter().filter_map(|a| ipv4(a.as_bytes())).collect(),
        )
        .unwrap();
        merged
            .merge_batch(&[Arc::new(strings), Arc::new(addresses)], &[6], 7)
            .unwrap();
        let mut all = rows.clone();
        all.extend(unsorted.iter().map(|a| (6, Some(a.to_string()))));
        let want = expected(&all, 7);
        // Handed on again (a final that spilled), then counted: the first
        // groups, then the rest renumbered.
        let state = merged.state(EmitTo::All).unwrap();
        let mut again = StringDistinctCountGroups::new(DataType::Utf8);
        again
            .merge_batch(&state, &(0..7).collect::<Vec<_>>(), 7)
            .unwrap();
        assert_eq!(counts(again.evaluate(EmitTo::First(3)).unwrap()), want[..3]);
        assert_eq!(counts(again.evaluate(EmitTo::All).unwrap()), want[3..]);
    }

    #[test]
    fn rows_converted_to_state_merge_to_the_same_counts() {
        let rows = rows(3_000, 5, 5);
        let groups: Vec<usize> = rows.iter().map(|(g, _)| *g).collect();
        let acc = StringDistinctCountGroups::new(DataType::Utf8View);
        let state = acc.convert_to_state(&[array(&rows, true)], None).unwrap();
        let mut merged = StringDistinctCountGroups::new(DataType::Utf8View);
        // A slice of the state too: the merge reads the list's offsets.
        let slice =
            |offset, len| -> Vec<ArrayRef> { state.iter().map(|s| s.slice(offset, len)).collect() };
        merged
            .merge_batch(&slice(0, 1_000), &groups[..1_000], 5)
            .unwrap();
        merged
            .merge_batch(&slice(1_000, 2_000), &groups[1_000..], 5)
            .unwrap();
        assert_eq!(
            counts(merged.evaluate(EmitTo::All).unwrap()),
            expected(&rows, 5)
        );
    }

    #[test]
    fn emitting_the_first_groups_keeps_the_rest() {
        let rows = rows(4_000, 10, 13);
        let groups: Vec<usize> = rows.iter().map(|(g, _)| *g).collect();
        let mut acc = StringDistinctCountGroups::new(DataType::Utf8);
        acc.update_batch(&[array(&rows, false)], &groups, None, 10)
            .unwrap();
        let all = expected(&rows, 10);
        let state = acc.state(EmitTo::First(4)).unwrap();
        let mut first = StringDistinctCountGroups::new(DataType::Utf8);
        first.merge_batch(&state, &[0, 1, 2, 3], 4).unwrap();
        assert_eq!(counts(first.evaluate(EmitTo::All).unwrap()), all[..4]);
        assert_eq!(counts(acc.evaluate(EmitTo::First(3)).unwrap()), all[4..7]);
        assert_eq!(counts(acc.evaluate(EmitTo::All).unwrap()), all[7..]);
    }

    #[test]
    fn deduplicating_in_many_small_partitions_counts_the_same() {
        for view in [false, true] {
            let data_type = if view {
                DataType::Utf8View
            } else {
                DataType::Utf8
            };
            let rows = rows(20_000, 37, 17);
            let mut acc = small(data_type);
            for chunk in rows.chunks(1_000) {
                let groups: Vec<usize> = chunk.iter().map(|(g, _)| *g).collect();
                acc.update_batch(&[array(chunk, view)], &groups, None, 37)
                    .unwrap();
            }
            assert!(acc.schedule.distinct > 0, "deduplicated on the way");
            assert!(
                acc.addresses.schedule.distinct > 0,
                "addresses deduplicated on the way"
            );
            assert_eq!(
                counts(acc.evaluate(EmitTo::All).unwrap()),
                expected(&rows, 37)
            );
        }
    }

    #[test]
    fn partial_states_hand_on_addresses_sorted_and_strings_as_they_came() {
        // Per group, distinct addresses and strings, then some of them again.
        // The partial's last deduplication of its strings found them all
        // distinct, so it hands the repeated strings on as they came; its
        // addresses it hands on sorted, each once. The final aggregate counts
        // every value once.
        let value = |i: usize| {
            if i.is_multiple_of(3) {
                Some(format!("host-{i}.example"))
            } else {
                Some(format!("10.{}.{}.{}", i / 65_536, (i / 256) % 256, i % 256))
            }
        };
        let fresh: Vec<_> = (0..1_500).map(|i| (i % 6, value(i))).collect();
        let again: Vec<_> = (0..400).map(|i| ((i * 2) % 6, value(i * 2))).collect();
        let all: Vec<_> = fresh.iter().chain(&again).cloned().collect();
        let mut partial = small(DataType::Utf8View);
        for batch in [&fresh, &again] {
            let groups: Vec<usize> = batch.iter().map(|(g, _)| *g).collect();
            partial
                .update_batch(&[array(batch, true)], &groups, None, 6)
                .unwrap();
        }
        assert!(partial.schedule.mostly_distinct);
        let first = partial.state(EmitTo::First(2)).unwrap();
        let rest = partial.state(EmitTo::All).unwrap();
        let strings_handed_on: usize = [&first, &rest]
            .iter()
            .map(|state| state[0].as_list::<i32>().values().len())
            .sum();
        let distinct_strings = all
            .iter()
            .filter(|(_, v)| v.as_deref().is_some_and(|v| v.starts_with("host-")))
            .collect::<BTreeSet<_>>()
            .len();
        assert!(strings_handed_on > distinct_strings, "repeats handed on");
        for state in [&first, &rest] {
            let lists = state[1].as_list::<i32>();
            for row in 0..lists.len() {
                let list = lists.value(row);
                let addresses = list.as_primitive::<UInt32Type>().values();
                assert!(addresses.windows(2).all(|w| w[0] < w[1]), "row {row}");
            }
        }
        let mut merged = StringDistinctCountGroups::new(DataType::Utf8View);
        merged.merge_batch(&first, &[0, 1], 2).unwrap();
        merged.merge_batch(&rest, &[2, 3, 4, 5], 6).unwrap();
        assert_eq!(
            counts(merged.evaluate(EmitTo::All).unwrap()),
            expected(&all, 6)
        );
        // Counted rather than handed on, the same values are deduplicated.
        let mut counted = small(DataType::Utf8View);
        for batch in [&fresh, &again] {
            let groups: Vec<usize> = batch.iter().map(|(g, _)| *g).collect();
            counted
                .update_batch(&[array(batch, true)], &groups, None, 6)
                .unwrap();
        }
        assert_eq!(
            counts(counted.evaluate(EmitTo::First(2)).unwrap()),
            expected(&all, 6)[..2]
        );
        assert_eq!(
            counts(counted.evaluate(EmitTo::All).unwrap()),
            expected(&all, 6)[2..]
        );
    }

    #[test]
    fn groups_renumbered_by_an_early_emit_keep_their_values() {
        // After the first groups are emitted the others are renumbered; a
        // value seen again under a group's new number is not counted twice.
        let rows = rows(6_000, 12, 19);
        let (before, after) = rows.split_at(3_000);
        let mut acc = small(DataType::Utf8);
        let groups: Vec<usize> = before.iter().map(|(g, _)| *g).collect();
        acc.update_batch(&[array(before, false)], &groups, None, 12)
            .unwrap();
        let first = counts(acc.evaluate(EmitTo::First(5)).unwrap());
        assert_eq!(first, expected(before, 12)[..5]);
        let rest: Vec<_> = rows
            .iter()
            .filter(|(g, _)| *g >= 5)
            .map(|(g, v)| (g - 5, v.clone()))
            .collect();
        let later: Vec<_> = after
            .iter()
            .filter(|(g, _)| *g >= 5)
            .map(|(g, v)| (g - 5, v.clone()))
            .collect();
        let groups: Vec<usize> = later.iter().map(|(g, _)| *g).collect();
        acc.update_batch(&[array(&later, false)], &groups, None, 7)
            .unwrap();
        assert_eq!(
            counts(acc.evaluate(EmitTo::All).unwrap()),
            expected(&rest, 7)
        );
    }

    #[test]
    fn rows_sharing_a_view_are_counted_as_their_strings() {
        use datafusion::arrow::array::StringViewBuilder;
        // Long and short strings, each repeated; the builder stores a
        // repeated string once, so its rows share a view as rows decoded
        // from one dictionary page do.
        let rows: Vec<(usize, Option<String>)> = rows(9_000, 11, 23)
            .into_iter()
            .enumerate()
            .map(|(i, (g, v))| {
                let name = [
                    "GetObject",
                    "DescribeInstances",
                    "AssumeRoleWithWebIdentity",
                ][i % 3];
                (g, v.map(|v| format!("{name}{}", v.len() % 4)))
            })
            .collect();
        let mut builder = StringViewBuilder::new().with_deduplicate_strings();
        for (_, value) in &rows {
            builder.append_option(value.as_deref());
        }
        let values: ArrayRef = Arc::new(builder.finish());
        let groups: Vec<usize> = rows.iter().map(|(g, _)| *g).collect();
        let mut acc = StringDistinctCountGroups::new(DataType::Utf8View);
        // A slice too: its views are the array's from an offset.
        acc.update_batch(&[values.slice(0, 4_000)], &groups[..4_000], None, 11)
            .unwrap();
        acc.update_batch(&[values.slice(4_000, 5_000)], &groups[4_000..], None, 11)
            .unwrap();
        assert_eq!(acc.skip_seen_for, 0, "repeated rows were passed over");
        assert_eq!(
            counts(acc.evaluate(EmitTo::All).unwrap()),
            expected(&rows, 11)
        );
        // Offsets of a Utf8 array are its keys: equal strings at different
        // offsets are still counted once.
        let mut acc = StringDistinctCountGroups::new(DataType::Utf8);
        acc.update_batch(&[array(&rows, false)], &groups, None, 11)
            .unwrap();
        assert_eq!(
            counts(acc.evaluate(EmitTo::All).unwrap()),
            expected(&rows, 11)
        );
    }

    #[test]
    fn rows_in_runs_of_one_value_are_counted_once_per_group() {
        // Values in runs, as the copy's row groups hold event names: each
        // run's rows spread over the groups, some nulls and filtered rows,
        // a run going on from one batch into the next, and a value coming
        // back in a later run.
        let names = [
            "GetObject",
            "DescribeInstances",
            "AssumeRoleWithWebIdentity",
            "",
        ];
        let rows: Vec<(usize, Option<String>)> = (0..6_000)
            .map(|i| {
                let value = (i % 97 != 0).then(|| names[(i / 700) % names.len()].to_string());
                ((i * 7 + i / 13) % 29, value)
            })
            .collect();
        let filter: BooleanArray = (0..rows.len()).map(|i| Some(i % 11 != 0)).collect();
        let kept: Vec<_> = rows
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 11 != 0)
            .map(|(_, row)| row.clone())
            .collect();
        for view in [false, true] {
            let data_type = if view {
                DataType::Utf8View
            } else {
                DataType::Utf8
            };
            let mut acc = StringDistinctCountGroups::new(data_type);
            for start in (0..rows.len()).step_by(1_000) {
                let batch = &rows[start..start + 1_000];
                let groups: Vec<usize> = batch.iter().map(|(g, _)| *g).collect();
                let filter = filter.slice(start, 1_000);
                acc.update_batch(&[array(batch, view)], &groups, Some(&filter), 29)
                    .unwrap();
                assert_eq!(acc.skip_runs_for, 0, "runs followed");
            }
            assert_eq!(
                counts(acc.evaluate(EmitTo::All).unwrap()),
                expected(&kept, 29)
            );
        }
    }

    #[test]
    fn batches_of_distinct_rows_are_not_looked_up_twice() {
        let rows: Vec<(usize, Option<String>)> = (0..2_000)
            .map(|i| (i % 3, Some(format!("principal-{i}"))))
            .collect();
        let groups: Vec<usize> = rows.iter().map(|(g, _)| *g).collect();
        let mut acc = StringDistinctCountGroups::new(DataType::Utf8View);
        // Each row a run of its own: runs are not followed for a while...
        acc.update_batch(&[array(&rows, true)], &groups, None, 3)
            .unwrap();
        assert_eq!(acc.skip_runs_for, SKIP_RUN_BATCHES);
        // ...nor is the batch-wide lookup, once it let every row through.
        acc.update_batch(&[array(&rows, true)], &groups, None, 3)
            .unwrap();
        assert_eq!(acc.skip_seen_for, SKIP_SEEN_BATCHES);
        acc.update_batch(&[array(&rows, true)], &groups, None, 3)
            .unwrap();
        assert_eq!(acc.skip_seen_for, SKIP_SEEN_BATCHES - 1);
        assert_eq!(acc.skip_runs_for, SKIP_RUN_BATCHES - 2);
        assert_eq!(
            counts(acc.evaluate(EmitTo::All).unwrap()),
            expected(&rows, 3)
        );
    }

    #[test]
    fn only_addresses_as_cloudtrail_writes_them_are_packed() {
        for (text, address) in [
            ("10.0.0.1", Some(0x0a00_0001)),
            ("255.255.255.255", Some(u32::MAX)),
            ("0.0.0.0", Some(0)),
            ("198.51.100.7", Some(0xc633_6407)),
        ] {
            assert_eq!(ipv4(text.as_bytes()), address, "{text}");
            let mut written = Vec::new();
            write_ipv4(address.unwrap(), &mut written);
            assert_eq!(written, text.as_bytes());
        }
        for text in [
            "010.0.0.1",
            "10.0.0.01",
            "256.0.0.1",
            "1.2.3",
            "1.2.3.4.5",
            "1..2.3",
            "1.2.3.",
            "1.2.3.4 ",
            "+1.2.3.4",
            "::1",
            "2001:db8::1",
            "1234.1.1.1",
            "AWS Internal",
            "s3.amazonaws.com",
        ] {
            assert_eq!(ipv4(text.as_bytes()), None, "{text}");
        }
    }

    #[test]
    fn addresses_read_a_word_at_a_time_as_a_byte_at_a_time() {
        // Every spelling of up to 16 bytes drawn from digits, dots and a few
        // other bytes (a high one too), against the byte-at-a-time reading.
        let alphabet = b"0123456789...x \xc3";
        let mut numbers = crate::tests::numbers(0x5eed_u64);
        let mut next = move || (numbers() >> 33) as usize;
        let mut addresses = 0;
        for i in 0..400_000 {
            let value: Vec<u8> = if i % 2 == 0 {
                (0..next() % 17)
                    .map(|_| alphabet[next() % alphabet.len()])
                    .collect()
            } else {
                // Four numbers, some with leading zeros or over 255.
                let number = |n: usize| match n % 9 {
                    0 => format!("0{}", n % 10),
                    1 => format!("{}", 250 + n % 10),
                    _ => format!("{}", n % 256),
                };
                format!(
                    "{}.{}.{}.{}",
                    number(next()),
                    number(next()),
                    number(next()),
                    number(next())
                )
                .into_bytes()
            };
            let expected = ipv4_bytewise(&value);
            addresses += usize::from(expected.is_some());
            assert_eq!(
                ipv4(&value),
                expected,
                "{:?}",
                String::from_utf8_lossy(&value)
            );
        }
        assert!(
            addresses > 100_000,
            "{addresses} addresses among the values"
        );
    }

    #[test]
    fn groups_with_no_values_count_zero() {
        let mut acc = StringDistinctCountGroups::new(DataType::Utf8);
        let values: ArrayRef = Arc::new(StringArray::from(vec![None, Some("a"), None]));
        acc.update_batch(&[values], &[0, 2, 4], None, 6).unwrap();
        assert_eq!(
            counts(acc.evaluate(EmitTo::All).unwrap()),
            vec![0, 0, 1, 0, 0, 0]
        );
    }
}
