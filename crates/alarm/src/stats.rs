//! Per-period aggregates of metric samples and the statistics CloudWatch
//! answers from them.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::definition::StandardUnit;
use crate::error::{ErrorCode, ValidationError};

/// How many distinct values an aggregate keeps exactly before it folds
/// them into buckets (see [`MetricAggregate`]).
pub const MAX_EXACT_VALUES: usize = 10_000;

/// Relative width of a bucket once an aggregate has folded its values:
/// a folded value is off by at most about half of this (0.5 %).
const BUCKET_GAMMA: f64 = 1.01;

/// One of the five plain statistics (`Statistic` in the API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Statistic {
    /// The number of samples.
    SampleCount,
    /// `Sum / SampleCount`.
    Average,
    /// The sum of the samples.
    Sum,
    /// The lowest sample.
    Minimum,
    /// The highest sample.
    Maximum,
}

impl Statistic {
    /// All five, in the API's order.
    pub const ALL: [Statistic; 5] = [
        Statistic::SampleCount,
        Statistic::Average,
        Statistic::Sum,
        Statistic::Minimum,
        Statistic::Maximum,
    ];

    /// The API name (`SampleCount`, `Average`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Statistic::SampleCount => "SampleCount",
            Statistic::Average => "Average",
            Statistic::Sum => "Sum",
            Statistic::Minimum => "Minimum",
            Statistic::Maximum => "Maximum",
        }
    }

    /// The name in an alarm notification's `Trigger.Statistic`: CloudWatch
    /// prints its Java enum constant (`AVERAGE`, `SUM`, `SAMPLE_COUNT`).
    pub fn notification_name(self) -> &'static str {
        match self {
            Statistic::SampleCount => "SAMPLE_COUNT",
            Statistic::Average => "AVERAGE",
            Statistic::Sum => "SUM",
            Statistic::Minimum => "MINIMUM",
            Statistic::Maximum => "MAXIMUM",
        }
    }
}

impl fmt::Display for Statistic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Statistic {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Statistic::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or(())
    }
}

/// `StatisticValues` of `PutMetricData`: a pre-aggregated set.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StatisticSet {
    /// The number of samples summarised.
    pub sample_count: f64,
    /// Their sum.
    pub sum: f64,
    /// The lowest of them.
    pub minimum: f64,
    /// The highest of them.
    pub maximum: f64,
}

/// One bound of a trimmed range: a percentile (`10%`) or a metric value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Bound {
    /// A percentile, 0 to 100.
    Percent(f64),
    /// A metric value.
    Value(f64),
}

/// What an extended statistic computes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum ExtendedKind {
    /// `pNN`: the percentile.
    Percentile(f64),
    /// `tmNN`, `TM(a:b)`, `IQM`: the mean of the values within the range.
    TrimmedMean(Option<Bound>, Option<Bound>),
    /// `wmNN`, `WM(a:b)`: the mean with values outside the range clamped to it.
    WinsorizedMean(Option<Bound>, Option<Bound>),
    /// `tcNN`, `TC(a:b)`: how many values are within the range.
    TrimmedCount(Option<Bound>, Option<Bound>),
    /// `tsNN`, `TS(a:b)`: the sum of the values within the range.
    TrimmedSum(Option<Bound>, Option<Bound>),
    /// `PR(n:m)`: the percentage of values `v` with `n < v <= m`.
    PercentileRank(Option<f64>, Option<f64>),
}

/// A parsed `ExtendedStatistic` name (`p99`, `p99.9`, `tm90`, `TM(10%:90%)`,
/// `IQM`, `PR(:300)`, ...), keeping the name as the caller spelled it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ExtendedStatistic {
    name: String,
    kind: ExtendedKind,
}

impl ExtendedStatistic {
    /// Parses and checks a name with AWS's rules: percentiles `p0`–`p100`
    /// with at most two decimals; the shorthand `tmNN`/`wmNN`/`tcNN`/`tsNN`
    /// with the same number rules; `TM`/`WM`/`TC`/`TS` over `(a%:b%)` (either
    /// side may be empty, `a < b`) or over metric values `(n:m)`; `IQM`;
    /// `PR(n:m)`. Refused names give `InvalidParameterValue`.
    pub fn parse(name: &str) -> Result<Self, ValidationError> {
        let bad = || {
            ValidationError::new(
                ErrorCode::InvalidParameterValue,
                format!("The value {name} for parameter ExtendedStatistic is not supported."),
            )
        };
        let kind = parse_extended(name).ok_or_else(bad)?;
        Ok(ExtendedStatistic {
            name: name.to_owned(),
            kind,
        })
    }

    /// The name as given.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What it computes.
    pub fn kind(&self) -> ExtendedKind {
        self.kind
    }

    /// The percentile when this is a `pNN` statistic.
    pub fn percentile(&self) -> Option<f64> {
        match self.kind {
            ExtendedKind::Percentile(p) => Some(p),
            _ => None,
        }
    }
}

impl fmt::Display for ExtendedStatistic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl TryFrom<String> for ExtendedStatistic {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, ValidationError> {
        ExtendedStatistic::parse(&s)
    }
}

impl From<ExtendedStatistic> for String {
    fn from(e: ExtendedStatistic) -> String {
        e.name
    }
}

/// A percentile number: 0 to 100, digits with at most two decimals.
fn parse_percent_number(s: &str) -> Option<f64> {
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s, None),
    };
    if int.is_empty() || int.len() > 3 || !int.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if let Some(f) = frac
        && (f.is_empty() || f.len() > 2 || !f.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let v: f64 = s.parse().ok()?;
    (0.0..=100.0).contains(&v).then_some(v)
}

fn parse_value_number(s: &str) -> Option<f64> {
    let v: f64 = s.trim().parse().ok()?;
    v.is_finite().then_some(v)
}

fn parse_bound(s: &str) -> Option<Option<Bound>> {
    let s = s.trim();
    if s.is_empty() {
        return Some(None);
    }
    if let Some(p) = s.strip_suffix('%') {
        return parse_percent_number(p).map(|v| Some(Bound::Percent(v)));
    }
    parse_value_number(s).map(|v| Some(Bound::Value(v)))
}

fn parse_extended(name: &str) -> Option<ExtendedKind> {
    if name == "IQM" {
        return Some(ExtendedKind::TrimmedMean(
            Some(Bound::Percent(25.0)),
            Some(Bound::Percent(75.0)),
        ));
    }
    if let Some(rest) = name.strip_prefix('p') {
        return parse_percent_number(rest).map(ExtendedKind::Percentile);
    }
    // `tm90` is `TM(:90%)`: the top 10 % trimmed.
    for (prefix, make) in SHORTHANDS {
        if let Some(rest) = name.strip_prefix(prefix)
            && !rest.starts_with('(')
        {
            let p = parse_percent_number(rest)?;
            return Some(make(None, Some(Bound::Percent(p))));
        }
    }
    let open = name.find('(')?;
    let inner = name[open..].strip_prefix('(')?.strip_suffix(')')?;
    let (lo, hi) = inner.split_once(':')?;
    let func = &name[..open];
    if func == "PR" {
        let lo = (!lo.trim().is_empty())
            .then(|| parse_value_number(lo))
            .map_or(Some(None), |v| v.map(Some))?;
        let hi = (!hi.trim().is_empty())
            .then(|| parse_value_number(hi))
            .map_or(Some(None), |v| v.map(Some))?;
        if lo.is_none() && hi.is_none() {
            return None;
        }
        if let (Some(a), Some(b)) = (lo, hi)
            && a >= b
        {
            return None;
        }
        return Some(ExtendedKind::PercentileRank(lo, hi));
    }
    let make = SHORTHANDS
        .iter()
        .find(|(p, _)| p.eq_ignore_ascii_case(func))?
        .1;
    let (lo, hi) = (parse_bound(lo)?, parse_bound(hi)?);
    match (lo, hi) {
        (None, None) => return None,
        // Both bounds of one range speak the same language.
        (Some(Bound::Percent(_)), Some(Bound::Value(_)))
        | (Some(Bound::Value(_)), Some(Bound::Percent(_))) => return None,
        (Some(Bound::Percent(a)), Some(Bound::Percent(b)))
        | (Some(Bound::Value(a)), Some(Bound::Value(b)))
            if a >= b =>
        {
            return None;
        }
        _ => {}
    }
    Some(make(lo, hi))
}

type RangeMaker = fn(Option<Bound>, Option<Bound>) -> ExtendedKind;
const SHORTHANDS: [(&str, RangeMaker); 4] = [
    ("tm", ExtendedKind::TrimmedMean),
    ("wm", ExtendedKind::WinsorizedMean),
    ("tc", ExtendedKind::TrimmedCount),
    ("ts", ExtendedKind::TrimmedSum),
];

/// Doubles persisted as their shortest round-trip text: serde_json's
/// default number parser may be off by one unit in the last place, and a
/// stored aggregate must read back exactly.
mod exact {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(D::Error::custom)
    }
}

/// `(value, count)` pairs as `["value", "count"]`, exactly (see [`exact`]).
mod exact_pairs {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct Pair(
        #[serde(with = "super::exact")] f64,
        #[serde(with = "super::exact")] f64,
    );

    pub fn serialize<S: Serializer>(v: &[(f64, f64)], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|&(a, b)| Pair(a, b)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(f64, f64)>, D::Error> {
        let pairs = Vec::<Pair>::deserialize(d)?;
        Ok(pairs.into_iter().map(|Pair(a, b)| (a, b)).collect())
    }
}

/// The samples of one metric in one period.
///
/// It absorbs single values ([`add_value`](Self::add_value)), value/count
/// arrays ([`add_values`](Self::add_values)) and statistic sets
/// ([`add_statistic_set`](Self::add_statistic_set)), merges with another
/// aggregate ([`merge`](Self::merge)), and answers the five statistics and
/// the extended ones.
///
/// # Memory and precision
///
/// The distribution is kept as value → count, exactly, up to
/// [`MAX_EXACT_VALUES`] distinct values. Past that the values are folded
/// into logarithmic buckets 1 % wide (each represented by its geometric
/// centre, so a percentile is off by at most about 0.5 % of its value) and
/// stay folded; a folded aggregate holds at most a few thousand buckets
/// whatever the range of its values. `SampleCount`, `Sum`, `Minimum` and
/// `Maximum` are always exact.
///
/// Serialized (for storage), its doubles are written as text in their
/// shortest round-trip form, so any serde format reads them back exactly.
///
/// # Statistic sets
///
/// As on CloudWatch, a statistic set carries no distribution: one whose
/// `SampleCount` is 1 or whose `Minimum` equals its `Maximum` is absorbed
/// as values (it describes them exactly); any other makes the percentiles
/// and trimmed statistics of the whole period unavailable (`None`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricAggregate {
    #[serde(with = "exact")]
    sample_count: f64,
    #[serde(with = "exact")]
    sum: f64,
    #[serde(with = "exact")]
    minimum: f64,
    #[serde(with = "exact")]
    maximum: f64,
    /// `(value, count)`, sorted by value, values distinct.
    #[serde(with = "exact_pairs")]
    values: Vec<(f64, f64)>,
    /// False once the values were folded into buckets.
    exact: bool,
    /// False once a statistic set without distribution was absorbed.
    has_distribution: bool,
}

impl Default for MetricAggregate {
    fn default() -> Self {
        MetricAggregate {
            sample_count: 0.0,
            sum: 0.0,
            // Meaningless while empty; kept finite so that JSON (which has
            // no infinity) round-trips an empty aggregate.
            minimum: 0.0,
            maximum: 0.0,
            values: Vec::new(),
            exact: true,
            has_distribution: true,
        }
    }
}

impl MetricAggregate {
    /// An empty aggregate.
    pub fn new() -> Self {
        Self::default()
    }

    /// An aggregate of one value.
    pub fn of_value(value: f64) -> Self {
        let mut a = Self::new();
        a.add_value(value);
        a
    }

    /// Absorbs one sample (`Value`, or one metric-filter match). Values
    /// that are not finite or lie beyond ±2^360 are ignored: the API
    /// refuses them before they get here.
    pub fn add_value(&mut self, value: f64) {
        self.add_weighted(value, 1.0);
    }

    /// Absorbs `Values` with their `Counts` (a missing count is 1, as on
    /// AWS). Pairs with a value or count beyond ±2^360 (or not finite), or
    /// a count that is not positive, are skipped.
    pub fn add_values(&mut self, values: &[f64], counts: &[f64]) {
        for (i, &v) in values.iter().enumerate() {
            let c = counts.get(i).copied().unwrap_or(1.0);
            self.add_weighted(v, c);
        }
    }

    /// Absorbs a `StatisticValues` set.
    pub fn add_statistic_set(&mut self, set: &StatisticSet) {
        if !positive(set.sample_count)
            || ![set.sample_count, set.sum, set.minimum, set.maximum]
                .into_iter()
                .all(in_range)
            || set.minimum > set.maximum
        {
            return;
        }
        if set.sample_count == 1.0 || set.minimum == set.maximum {
            // The set pins down its values: `count` copies of `minimum`
            // (the sum is taken as given, not recomputed).
            self.widen(set.minimum, set.maximum);
            self.sample_count += set.sample_count;
            self.sum += set.sum;
            self.insert(set.minimum, set.sample_count);
            return;
        }
        self.widen(set.minimum, set.maximum);
        self.sample_count += set.sample_count;
        self.sum += set.sum;
        self.has_distribution = false;
    }

    /// Extends `[minimum, maximum]` to `[low, high]`; call before counting
    /// the new samples (an empty aggregate takes the bounds as they are).
    fn widen(&mut self, low: f64, high: f64) {
        if self.is_empty() {
            self.minimum = low;
            self.maximum = high;
        } else {
            self.minimum = self.minimum.min(low);
            self.maximum = self.maximum.max(high);
        }
    }

    fn add_weighted(&mut self, value: f64, count: f64) {
        if !in_range(value) || !positive(count) || !in_range(count) {
            return;
        }
        // One key for zero: -0.0 + 0.0 is 0.0.
        let value = value + 0.0;
        self.widen(value, value);
        self.sample_count += count;
        self.sum += value * count;
        self.insert(value, count);
    }

    fn insert(&mut self, value: f64, count: f64) {
        let value = if self.exact { value } else { bucket(value) };
        match self.values.binary_search_by(|(v, _)| v.total_cmp(&value)) {
            Ok(i) => self.values[i].1 += count,
            Err(i) => self.values.insert(i, (value, count)),
        }
        if self.exact && self.values.len() > MAX_EXACT_VALUES {
            self.fold();
        }
    }

    /// Folds the exact values into buckets, for good.
    fn fold(&mut self) {
        let mut folded: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
        for &(v, c) in &self.values {
            let b = bucket(v);
            folded.entry(order_key(b)).or_insert((b, 0.0)).1 += c;
        }
        self.values = folded.into_values().collect();
        self.exact = false;
    }

    /// Adds `other`'s samples to these (rolling periods up).
    pub fn merge(&mut self, other: &MetricAggregate) {
        if other.sample_count == 0.0 {
            return;
        }
        self.widen(other.minimum, other.maximum);
        self.sample_count += other.sample_count;
        self.sum += other.sum;
        self.has_distribution &= other.has_distribution;
        if !other.exact && self.exact {
            self.fold();
        }
        for &(v, c) in &other.values {
            self.insert(v, c);
        }
    }

    /// True when nothing was absorbed.
    pub fn is_empty(&self) -> bool {
        self.sample_count == 0.0
    }

    /// True while the values are kept exactly (not folded).
    pub fn is_exact(&self) -> bool {
        self.exact
    }

    /// True when percentiles and trimmed statistics can be answered.
    pub fn has_distribution(&self) -> bool {
        self.has_distribution
    }

    /// How many distinct values (or buckets) are held.
    pub fn distinct_values(&self) -> usize {
        self.values.len()
    }

    /// `SampleCount`.
    pub fn sample_count(&self) -> f64 {
        self.sample_count
    }

    /// A plain statistic; `None` for an empty aggregate.
    pub fn statistic(&self, statistic: Statistic) -> Option<f64> {
        if self.is_empty() {
            return None;
        }
        Some(match statistic {
            Statistic::SampleCount => self.sample_count,
            Statistic::Sum => self.sum,
            Statistic::Average => self.sum / self.sample_count,
            Statistic::Minimum => self.minimum,
            Statistic::Maximum => self.maximum,
        })
    }

    /// An extended statistic; `None` for an empty aggregate, one without a
    /// distribution, one holding a negative value (as on AWS), or a trimmed
    /// mean over a range holding no value.
    pub fn extended(&self, statistic: &ExtendedStatistic) -> Option<f64> {
        // AWS: "Percentile statistics are not available for metrics when
        // any of the metric values are negative numbers."
        if self.is_empty() || !self.has_distribution || self.values.is_empty() || self.minimum < 0.0
        {
            return None;
        }
        match statistic.kind {
            ExtendedKind::Percentile(p) => Some(self.percentile(p)),
            ExtendedKind::TrimmedMean(lo, hi) => {
                let (count, sum) = self.within(lo, hi);
                (count > 0.0).then(|| sum / count)
            }
            ExtendedKind::TrimmedCount(lo, hi) => Some(self.within(lo, hi).0),
            ExtendedKind::TrimmedSum(lo, hi) => Some(self.within(lo, hi).1),
            ExtendedKind::WinsorizedMean(lo, hi) => {
                let low = lo.map(|b| self.resolve(b));
                let high = hi.map(|b| self.resolve(b));
                let mut sum = 0.0;
                let mut count = 0.0;
                for &(v, c) in &self.values {
                    let mut x = v;
                    if let Some(l) = low {
                        x = x.max(l);
                    }
                    if let Some(h) = high {
                        x = x.min(h);
                    }
                    sum += x * c;
                    count += c;
                }
                (count > 0.0).then(|| sum / count)
            }
            ExtendedKind::PercentileRank(lo, hi) => {
                let total: f64 = self.values.iter().map(|(_, c)| c).sum();
                let inside: f64 = self
                    .values
                    .iter()
                    .filter(|(v, _)| lo.is_none_or(|l| *v > l) && hi.is_none_or(|h| *v <= h))
                    .map(|(_, c)| c)
                    .sum();
                Some(100.0 * inside / total)
            }
        }
    }

    /// The nearest-rank percentile: the lowest held value `v` such that at
    /// least `p` % of the samples are `<= v` (`p0` is the minimum).
    fn percentile(&self, p: f64) -> f64 {
        let total: f64 = self.values.iter().map(|(_, c)| c).sum();
        let rank = p / 100.0 * total;
        let mut seen = 0.0;
        for &(v, c) in &self.values {
            seen += c;
            // A relative tolerance keeps `p50` of two samples on the first
            // one despite `0.5 * 2.0` rounding.
            if seen >= rank * (1.0 - 1e-12) {
                return v.clamp(self.minimum, self.maximum);
            }
        }
        self.maximum
    }

    fn resolve(&self, bound: Bound) -> f64 {
        match bound {
            Bound::Percent(p) => self.percentile(p),
            Bound::Value(v) => v,
        }
    }

    /// `(count, sum)` of the values `v` with `low < v <= high`; a lower
    /// bound of `0%` (or none) keeps the minimum.
    fn within(&self, lo: Option<Bound>, hi: Option<Bound>) -> (f64, f64) {
        let low = match lo {
            None | Some(Bound::Percent(0.0)) => None,
            Some(b) => Some(self.resolve(b)),
        };
        let high = hi.map(|b| self.resolve(b));
        let mut count = 0.0;
        let mut sum = 0.0;
        for &(v, c) in &self.values {
            if low.is_none_or(|l| v > l) && high.is_none_or(|h| v <= h) {
                count += c;
                sum += v * c;
            }
        }
        (count, sum)
    }

    /// The `Datapoint` of `GetMetricStatistics` for this period.
    pub fn datapoint(
        &self,
        timestamp: DateTime<Utc>,
        statistics: &[Statistic],
        extended: &[ExtendedStatistic],
        unit: Option<StandardUnit>,
    ) -> Datapoint {
        let pick = |s: Statistic| statistics.contains(&s).then(|| self.statistic(s)).flatten();
        let extended_statistics: BTreeMap<String, f64> = extended
            .iter()
            .filter_map(|e| self.extended(e).map(|v| (e.name().to_owned(), v)))
            .collect();
        Datapoint {
            timestamp,
            sample_count: pick(Statistic::SampleCount),
            average: pick(Statistic::Average),
            sum: pick(Statistic::Sum),
            minimum: pick(Statistic::Minimum),
            maximum: pick(Statistic::Maximum),
            unit,
            extended_statistics: (!extended_statistics.is_empty()).then_some(extended_statistics),
        }
    }
}

/// Within ±2^360, the range CloudWatch accepts for values (and, here, for
/// counts): it keeps every sum of an aggregate finite.
fn in_range(x: f64) -> bool {
    x.is_finite() && x.abs() <= 2f64.powi(360)
}

/// A finite count above zero.
fn positive(x: f64) -> bool {
    x.is_finite() && x > 0.0
}

/// The bucket representative of `v`: the geometric centre of its 1 % bucket.
fn bucket(v: f64) -> f64 {
    if v == 0.0 {
        return 0.0;
    }
    let i = (v.abs().ln() / BUCKET_GAMMA.ln()).floor();
    let centre = BUCKET_GAMMA.powf(i + 0.5);
    centre.copysign(v)
}

/// A `u64` ordered like the `f64` (for finite values).
fn order_key(v: f64) -> u64 {
    let bits = v.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

/// `Datapoint` of `GetMetricStatistics`: the statistics asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Datapoint {
    /// The start of the period.
    pub timestamp: DateTime<Utc>,
    /// `SampleCount`, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample_count: Option<f64>,
    /// `Average`, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub average: Option<f64>,
    /// `Sum`, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sum: Option<f64>,
    /// `Minimum`, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minimum: Option<f64>,
    /// `Maximum`, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maximum: Option<f64>,
    /// The unit of the samples, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<StandardUnit>,
    /// The extended statistics asked for that could be answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extended_statistics: Option<BTreeMap<String, f64>>,
}

/// The start of the `period`-second period holding `t`, periods being
/// aligned on the Unix epoch (as CloudWatch aligns them). `period` 0 is
/// taken as 1.
pub fn period_start(t: DateTime<Utc>, period: u32) -> DateTime<Utc> {
    let p = i64::from(period.max(1));
    let secs = t.timestamp().div_euclid(p) * p;
    DateTime::from_timestamp(secs, 0).unwrap_or(t)
}

/// Rolls aggregates keyed by period start up into longer periods of
/// `period` seconds (for `GetMetricStatistics` with a longer `Period`).
pub fn roll_up(
    aggregates: &BTreeMap<DateTime<Utc>, MetricAggregate>,
    period: u32,
) -> BTreeMap<DateTime<Utc>, MetricAggregate> {
    let mut out: BTreeMap<DateTime<Utc>, MetricAggregate> = BTreeMap::new();
    for (t, a) in aggregates {
        out.entry(period_start(*t, period)).or_default().merge(a);
    }
    out
}
