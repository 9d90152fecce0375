//! `min` and `max` of strings per group, each group's value in one slot.
//!
//! DataFusion 55's grouped `min`/`max` over strings finds each row's group
//! in a `HashMap` keyed by group index (SipHash) before it compares the
//! row's string with `memcmp`: 6.5 % of the guide's "access key usage per
//! principal" query, for its `min(eventTime)` and `max(eventTime)`. Here a
//! batch's best row of each group is kept in a vector indexed by group, and
//! two strings are compared by their first 16 bytes as one number before
//! their whole bytes. Every other use of `min` and `max` is DataFusion's
//! own, and so are the results.

use std::mem::size_of;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayAccessor, ArrayRef, AsArray, BooleanArray};
use datafusion::arrow::compute::kernels::boolean::not;
use datafusion::arrow::compute::{nullif, prep_null_mask_filter};
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{Result, exec_err};
use datafusion::functions_aggregate::min_max::{Max, Min};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator,
};

use crate::count_distinct::{is_string, strings_of_type};

/// DataFusion's `min`, with a grouped accumulator of its own for strings.
pub fn min_udaf() -> AggregateUDF {
    AggregateUDF::new_from_impl(StringMinMax {
        inner: Min::new(),
        keeps: Keeps::Least,
    })
}

/// DataFusion's `max`, with a grouped accumulator of its own for strings.
pub fn max_udaf() -> AggregateUDF {
    AggregateUDF::new_from_impl(StringMinMax {
        inner: Max::new(),
        keeps: Keeps::Greatest,
    })
}

/// Which value of a group is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Keeps {
    Least,
    Greatest,
}

impl Keeps {
    /// Whether `new` replaces `kept`.
    fn replaces(self, new: &[u8], kept: &[u8]) -> bool {
        // Strings of one format (timestamps, ARNs) mostly differ within their
        // first 16 bytes: compared as one big-endian number, without a call.
        let order = match (new.first_chunk::<16>(), kept.first_chunk::<16>()) {
            (Some(a), Some(b)) if a != b => u128::from_be_bytes(*a).cmp(&u128::from_be_bytes(*b)),
            _ => new.cmp(kept),
        };
        match self {
            Keeps::Least => order.is_lt(),
            Keeps::Greatest => order.is_gt(),
        }
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct StringMinMax<F> {
    inner: F,
    keeps: Keeps,
}

impl<F: AggregateUDFImpl + PartialEq + Eq + std::hash::Hash> AggregateUDFImpl for StringMinMax<F> {
    pass_aggregate_to_inner!();

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        self.inner.state_fields(args)
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        self.inner.accumulator(args)
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        self.inner.groups_accumulator_supported(args)
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        let data_type = args.return_field.data_type();
        if is_string(data_type) {
            return Ok(Box::new(StringMinMaxGroups::new(
                data_type.clone(),
                self.keeps,
            )));
        }
        self.inner.create_groups_accumulator(args)
    }
}

/// No row of this batch holds the group's value.
const NO_ROW: u32 = u32::MAX;

/// The least or greatest string of each group.
#[derive(Debug)]
struct StringMinMaxGroups {
    data_type: DataType,
    keeps: Keeps,
    /// Each group's value so far; `None` before its first.
    values: Vec<Option<Vec<u8>>>,
    /// The bytes held in `values`.
    value_bytes: usize,
    /// While a batch is read: the row holding each group's best value of the
    /// batch, if it beats the group's value so far; [`NO_ROW`] otherwise.
    best_rows: Vec<u32>,
    /// The groups whose `best_rows` entry is set.
    touched: Vec<usize>,
}

impl StringMinMaxGroups {
    fn new(data_type: DataType, keeps: Keeps) -> Self {
        Self {
            data_type,
            keeps,
            values: Vec::new(),
            value_bytes: 0,
            best_rows: Vec::new(),
            touched: Vec::new(),
        }
    }

    fn update<'a, A>(
        &mut self,
        array: A,
        group_indices: &[usize],
        filter: Option<&BooleanArray>,
    ) -> Result<()>
    where
        A: ArrayAccessor<Item = &'a str> + Array,
    {
        if array.len() != group_indices.len() || array.len() >= NO_ROW as usize {
            return exec_err!(
                "min/max: {} values for {} groups",
                array.len(),
                group_indices.len()
            );
        }
        for (row, &group) in group_indices.iter().enumerate() {
            if array.is_null(row) || filter.is_some_and(|f| !f.is_valid(row) || !f.value(row)) {
                continue;
            }
            let new = array.value(row).as_bytes();
            let best = self.best_rows[group];
            let replaces = if best != NO_ROW {
                self.keeps
                    .replaces(new, array.value(best as usize).as_bytes())
            } else {
                match &self.values[group] {
                    Some(kept) => self.keeps.replaces(new, kept),
                    None => true,
                }
            };
            if replaces {
                if best == NO_ROW {
                    self.touched.push(group);
                }
                // Bounded above: `row` < NO_ROW.
                self.best_rows[group] = row as u32;
            }
        }
        for group in self.touched.drain(..) {
            let row = std::mem::replace(&mut self.best_rows[group], NO_ROW) as usize;
            let new = array.value(row).as_bytes();
            let slot = self.values[group].get_or_insert_with(Vec::new);
            self.value_bytes = self.value_bytes - slot.len() + new.len();
            slot.clear();
            slot.extend_from_slice(new);
        }
        Ok(())
    }

    /// The first `emit_to` groups' values as an array, taken out.
    fn take(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let taken = emit_to.take_needed(&mut self.values);
        self.best_rows.truncate(self.values.len());
        let mut texts = Vec::with_capacity(taken.len());
        for value in &taken {
            let text = match value {
                Some(bytes) => {
                    self.value_bytes -= bytes.len();
                    match std::str::from_utf8(bytes) {
                        Ok(text) => Some(text),
                        Err(e) => return exec_err!("min/max kept a value that is not UTF-8: {e}"),
                    }
                }
                None => None,
            };
            texts.push(text);
        }
        Ok(strings_of_type(&self.data_type, texts))
    }
}

impl GroupsAccumulator for StringMinMaxGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        let [array] = values else {
            return exec_err!("min/max takes one argument");
        };
        self.values.resize(total_num_groups, None);
        self.best_rows.resize(total_num_groups, NO_ROW);
        match array.data_type() {
            DataType::Utf8 => self.update(array.as_string::<i32>(), group_indices, opt_filter),
            DataType::LargeUtf8 => self.update(array.as_string::<i64>(), group_indices, opt_filter),
            DataType::Utf8View => self.update(array.as_string_view(), group_indices, opt_filter),
            other => exec_err!("min/max of strings given {other}"),
        }
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        self.take(emit_to)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(vec![self.take(emit_to)?])
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        // A partial state is the values themselves.
        self.update_batch(values, group_indices, None, total_num_groups)
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let [array] = values else {
            return exec_err!("min/max takes one argument");
        };
        // Each row is its own group: its value, null where it is filtered out.
        let Some(filter) = opt_filter else {
            return Ok(vec![Arc::clone(array)]);
        };
        let kept = prep_null_mask_filter(filter);
        Ok(vec![nullif(array, &not(&kept)?)?])
    }

    fn size(&self) -> usize {
        size_of::<Self>()
            + self.values.capacity() * size_of::<Option<Vec<u8>>>()
            + self.value_bytes
            + self.best_rows.capacity() * size_of::<u32>()
            + self.touched.capacity() * size_of::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use datafusion::arrow::array::{LargeStringArray, StringArray, StringViewArray};

    use super::*;

    /// A generator of strings alike in their first bytes, as timestamps are,
    /// some shorter than 16 bytes.
    fn strings(seed: u64, n: usize) -> Vec<Option<String>> {
        let mut numbers = crate::tests::numbers(seed);
        (0..n)
            .map(|_| {
                let r = numbers() >> 33;
                match r % 11 {
                    0 => None,
                    1 => Some(format!("2026-11-{:02}", r % 30)),
                    2 => Some(String::new()),
                    _ => Some(format!(
                        "2026-11-{:02}T{:02}:{:02}:{:02}Zé",
                        (r >> 4) % 30,
                        (r >> 9) % 24,
                        (r >> 14) % 60,
                        (r >> 20) % 60
                    )),
                }
            })
            .collect()
    }

    fn run(keeps: Keeps, data_type: &DataType) {
        let mut groups = StringMinMaxGroups::new(data_type.clone(), keeps);
        let mut oracle: BTreeMap<usize, String> = BTreeMap::new();
        for batch in 0..5u64 {
            let values = strings(batch + 1, 700);
            let group_indices: Vec<usize> = (0..values.len())
                .map(|i| (i * 7 + batch as usize) % 23)
                .collect();
            let filter: BooleanArray = (0..values.len())
                .map(|i| (i % 13 != 0).then_some(i % 5 != 0))
                .collect();
            let array: ArrayRef = match data_type {
                DataType::Utf8View => Arc::new(
                    values
                        .iter()
                        .map(|v| v.as_deref())
                        .collect::<StringViewArray>(),
                ),
                DataType::LargeUtf8 => Arc::new(
                    values
                        .iter()
                        .map(|v| v.as_deref())
                        .collect::<LargeStringArray>(),
                ),
                _ => Arc::new(values.iter().map(|v| v.as_deref()).collect::<StringArray>()),
            };
            let with_filter = batch % 2 == 0;
            groups
                .update_batch(&[array], &group_indices, with_filter.then_some(&filter), 23)
                .unwrap();
            for (row, value) in values.iter().enumerate() {
                let passes = !with_filter || (filter.is_valid(row) && filter.value(row));
                if let (Some(value), true) = (value, passes) {
                    let kept = oracle
                        .entry(group_indices[row])
                        .or_insert_with(|| value.clone());
                    let better = match keeps {
                        Keeps::Least => value < kept,
                        Keeps::Greatest => value > kept,
                    };
                    if better {
                        *kept = value.clone();
                    }
                }
            }
        }
        // The first groups as a partial state, merged into a second accumulator.
        let state = groups.state(EmitTo::First(10)).unwrap();
        let mut merged = StringMinMaxGroups::new(data_type.clone(), keeps);
        merged
            .merge_batch(&state, &(0..10).collect::<Vec<_>>(), 10)
            .unwrap();
        let first = merged.evaluate(EmitTo::All).unwrap();
        let rest = groups.evaluate(EmitTo::All).unwrap();
        assert_eq!(first.data_type(), data_type);
        assert_eq!((first.len(), rest.len()), (10, 13));
        let text = |array: &ArrayRef, i: usize| -> Option<String> {
            let cast = datafusion::arrow::compute::cast(array, &DataType::Utf8).unwrap();
            let strings = cast.as_string::<i32>();
            strings.is_valid(i).then(|| strings.value(i).to_owned())
        };
        for group in 0..23 {
            let got = if group < 10 {
                text(&first, group)
            } else {
                text(&rest, group - 10)
            };
            assert_eq!(
                got,
                oracle.get(&group).cloned(),
                "group {group} of {keeps:?} {data_type}"
            );
        }
        assert_eq!(groups.value_bytes, 0);
    }

    #[test]
    fn least_and_greatest_strings_per_group_as_a_plain_reading_finds_them() {
        for data_type in [DataType::Utf8, DataType::LargeUtf8, DataType::Utf8View] {
            run(Keeps::Least, &data_type);
            run(Keeps::Greatest, &data_type);
        }
    }

    #[test]
    fn strings_compare_as_their_bytes() {
        let cases: [(&str, &str); 6] = [
            ("2026-11-05T03:51:21Z", "2026-11-05T03:51:22Z"),
            ("2026-11-05T03:51", "2026-11-05T03:51:00Z"),
            ("a", "b"),
            ("", "a"),
            (
                "arn:aws:iam::123456789012:user/a",
                "arn:aws:iam::123456789012:user/b",
            ),
            ("zzzzzzzzzzzzzzzzz", "é"),
        ];
        for (a, b) in cases {
            assert!(
                Keeps::Least.replaces(a.as_bytes(), b.as_bytes()),
                "{a} < {b}"
            );
            assert!(!Keeps::Least.replaces(b.as_bytes(), a.as_bytes()));
            assert!(Keeps::Greatest.replaces(b.as_bytes(), a.as_bytes()));
            assert!(!Keeps::Greatest.replaces(a.as_bytes(), a.as_bytes()));
        }
    }
}
