//! Physical plan rewrites for CloudTrail's query shapes.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::Statistics;
use datafusion::common::config::ConfigOptions;
use datafusion::common::pruning::{PrunableStatistics, PruningStatistics};
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode, TreeNodeRecursion};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::{
    FileGroup, FileScanConfig, FileScanConfigBuilder, FileSource, ParquetSource,
};
use datafusion::datasource::source::DataSourceExec;
use datafusion::logical_expr::Operator;
use datafusion::physical_expr::expressions::{
    BinaryExpr, DynamicFilterPhysicalExpr, IsNullExpr, NotExpr, lit,
};
use datafusion::physical_expr::utils::collect_columns;
use datafusion::physical_expr::{
    PhysicalExpr, PhysicalExprSimplifier, conjunction, split_conjunction,
};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_optimizer::pruning::{PruningPredicate, PruningPredicateBuilder};
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::union::UnionExec;
use datafusion::physical_plan::{ExecutionPlan, Partitioning};

/// Aggregates in one pass over rows hash-partitioned by their group, instead
/// of a partial aggregate per input partition merged by a final one, when an
/// aggregate has a distinct argument (`count(DISTINCT x)`).
///
/// Why: a partial `count(DISTINCT x)` keeps every distinct value of each
/// group, emits them all as its state and the final phase inserts them
/// again; with as many distinct values as rows (source addresses per
/// principal) that doubles the work and the memory. Routing each row to the
/// partition that owns its group lets one aggregate see every row of its
/// groups once. The price: a distinct count over few values, which partial
/// aggregates would have shrunk before moving, moves every row.
///
/// Not for an aggregate whose distinct arguments are all strings counted by
/// [`crate::count_distinct`]: its partial states hand addresses over as
/// numbers, so the partial and final phases cost less than moving every row
/// (the guide's access keys per principal 5 % less; a distinct count over
/// few values a third less).
#[derive(Debug, Default)]
pub struct RepartitionBeforeDistinct;

impl PhysicalOptimizerRule for RepartitionBeforeDistinct {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
        plan.transform_down(|plan| {
            let Some(last) = plan.downcast_ref::<AggregateExec>() else {
                return Ok(Transformed::no(plan));
            };
            if *last.mode() != AggregateMode::FinalPartitioned {
                return Ok(Transformed::no(plan));
            }
            let Some(repartition) = last.input().downcast_ref::<RepartitionExec>() else {
                return Ok(Transformed::no(plan));
            };
            let Partitioning::Hash(_, partitions) = repartition.partitioning() else {
                return Ok(Transformed::no(plan));
            };
            let Some(partial) = repartition.input().downcast_ref::<AggregateExec>() else {
                return Ok(Transformed::no(plan));
            };
            if *partial.mode() != AggregateMode::Partial
                || partial.group_expr().has_grouping_set()
                || partial.group_expr().expr().is_empty()
                || !partial.aggr_expr().iter().any(|a| {
                    a.is_distinct()
                        && !crate::count_distinct::keeps_compact_state(a, &partial.input_schema())
                })
                // Repartitioning would undo the order such an aggregate
                // asked its input for.
                || partial.aggr_expr().iter().any(|a| !a.order_bys().is_empty())
            {
                return Ok(Transformed::no(plan));
            }
            let keys = partial
                .group_expr()
                .expr()
                .iter()
                .map(|(e, _)| Arc::clone(e))
                .collect();
            let rows = RepartitionExec::try_new(
                Arc::clone(partial.input()),
                Partitioning::Hash(keys, *partitions),
            )?;
            let single = AggregateExec::try_new(
                AggregateMode::SinglePartitioned,
                partial.group_expr().clone(),
                partial.aggr_expr().to_vec(),
                partial.filter_expr().to_vec(),
                Arc::new(rows),
                partial.input_schema(),
            )?
            .with_limit_options(last.limit_options());
            Ok(Transformed::yes(Arc::new(single) as Arc<dyn ExecutionPlan>))
        })
        .data()
    }

    fn name(&self) -> &str {
        "RepartitionBeforeDistinct"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Leaves out of a Parquet scan the files its filter's statistics rule out,
/// and, for each remaining file, each part of the filter (a conjunct) that
/// the file's statistics prove true for all of its rows.
///
/// Why: CloudTrail queries bound `eventTime` from a day
/// (`date_add('day', -7, current_date)`), and both a table copy and an event
/// data store keep a file per day, so each file the bound does not rule out
/// holds only rows it keeps. DataFusion 55 still evaluates the bound on every
/// row of such files (it marks row groups fully matched but filters them
/// anyway), decoding `eventTime` for a query that may not otherwise read it.
///
/// The proof is DataFusion's own for fully matched row groups, over files:
/// a file is fully matched by a conjunct when the statistics prune the
/// conjunct's negation, or any of its columns being null. Only exact
/// statistics take part; a file without them keeps every conjunct. Dynamic
/// filters (a top-k's bound, filled in while the query runs) are kept as
/// they are.
#[derive(Debug, Default)]
pub struct DropFiltersProvenByStatistics;

impl PhysicalOptimizerRule for DropFiltersProvenByStatistics {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|plan| {
            let Some(scan) = plan.downcast_ref::<DataSourceExec>() else {
                return Ok(Transformed::no(plan));
            };
            match without_proven_filters(scan)? {
                Some(scan) => Ok(Transformed::yes(scan)),
                None => Ok(Transformed::no(plan)),
            }
        })
        .data()
    }

    fn name(&self) -> &str {
        "DropFiltersProvenByStatistics"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Files with this many different sets of proven conjuncts or more are read
/// with the conjuncts all of them prove left out, not as one scan per set.
const MAX_SCANS: usize = 4;

/// `scan` without the files its static conjuncts rule out and without the
/// conjuncts the remaining files fully match; `None` if nothing changes.
///
/// Files that fully match different conjuncts (the day a time bound cuts
/// through, beside the days after it) become one scan each, under a union,
/// when the scan is read in several partitions and promises no order, limit
/// or partitioning.
fn without_proven_filters(
    scan: &DataSourceExec,
) -> datafusion::common::Result<Option<Arc<dyn ExecutionPlan>>> {
    let Some(config) = scan.data_source().downcast_ref::<FileScanConfig>() else {
        return Ok(None);
    };
    let Some(source) = config.file_source().downcast_ref::<ParquetSource>() else {
        return Ok(None);
    };
    let Some(predicate) = source.filter() else {
        return Ok(None);
    };
    let schema = Arc::clone(source.table_schema().table_schema());
    let files: Vec<&PartitionedFile> = config.file_groups.iter().flat_map(|g| g.iter()).collect();
    if files.is_empty() {
        return Ok(None);
    }
    let statistics = PrunableStatistics::new(
        files
            .iter()
            .map(|f| {
                f.statistics
                    .clone()
                    .unwrap_or_else(|| Arc::new(Statistics::new_unknown(&schema)))
            })
            .collect(),
        Arc::clone(&schema),
    );
    let conjuncts: Vec<Arc<dyn PhysicalExpr>> = split_conjunction(&predicate)
        .into_iter()
        .map(Arc::clone)
        .collect();
    // Dynamic filters change while the query runs: nothing is proven of them.
    let provable: Vec<bool> = conjuncts.iter().map(|c| !holds_dynamic_filter(c)).collect();

    // Files that some static conjunct rules out: none of their rows is kept.
    let mut kept = vec![true; files.len()];
    for (conjunct, _) in conjuncts.iter().zip(&provable).filter(|(_, p)| **p) {
        let Ok(pruning) = pruning_predicate(Arc::clone(conjunct), &schema) else {
            continue;
        };
        if let Ok(may_match) = pruning.prune(&statistics) {
            for (keep, may) in kept.iter_mut().zip(may_match) {
                *keep &= may;
            }
        }
    }
    // For each file, the conjuncts it matches on every row (a bit each).
    let mut proven = vec![0u64; files.len()];
    for (bit, conjunct) in conjuncts.iter().enumerate().take(64) {
        if !provable[bit] {
            continue;
        }
        for (file, matched) in fully_matched(conjunct, &schema, &statistics)
            .into_iter()
            .enumerate()
        {
            if matched {
                proven[file] |= 1 << bit;
            }
        }
    }
    let mut sets: Vec<u64> = (0..files.len())
        .filter(|f| kept[*f])
        .map(|f| proven[f])
        .collect();
    sets.sort_unstable();
    sets.dedup();
    // A union hands its parents one partition per child partition: only a
    // scan already read in several partitions has parents (repartitions,
    // partial aggregates, sorts that keep partitions) that take any number.
    // Over one partition they are single-partition operators (a `Single`
    // aggregate, a sort, a join's collected side) that read partition 0 only.
    let splittable = config.file_groups.len() > 1
        && config.output_ordering.is_empty()
        && !config.preserve_order
        && config.limit.is_none()
        && config.output_partitioning.is_none();
    if sets.len() >= MAX_SCANS || (sets.len() > 1 && !splittable) {
        // One scan: only what every kept file proves is left out.
        let common = sets.iter().fold(u64::MAX, |all, set| all & set);
        for (file, set) in proven.iter_mut().enumerate() {
            if kept[file] {
                *set = common;
            }
        }
        sets = vec![common];
    }
    if sets.iter().all(|set| *set == 0) && kept.iter().all(|k| *k) {
        return Ok(None);
    }
    let mut scans: Vec<Arc<dyn ExecutionPlan>> = Vec::new();
    for set in sets {
        let chosen = |f: usize| kept[f] && proven[f] == set;
        let groups = if splittable {
            let files = files.iter().enumerate().filter(|(f, _)| chosen(*f));
            balanced_groups(
                files.map(|(_, file)| (*file).clone()),
                config.file_groups.len(),
            )
        } else {
            // Each group as it was, in its order (the scan promises one).
            let mut index = 0;
            config
                .file_groups
                .iter()
                .map(|group| {
                    group
                        .iter()
                        .filter(|_| {
                            index += 1;
                            chosen(index - 1)
                        })
                        .cloned()
                        .collect()
                })
                .collect()
        };
        let remaining: Vec<Arc<dyn PhysicalExpr>> = conjuncts
            .iter()
            .enumerate()
            .filter(|(bit, _)| *bit >= 64 || set & (1 << bit) == 0)
            .map(|(_, c)| Arc::clone(c))
            .collect();
        let source = if remaining.is_empty() {
            // Nothing left to evaluate: no row filter either (one of a
            // literal `true` would still be run over every batch).
            source
                .with_predicate(lit(true))
                .with_pushdown_filters(false)
        } else {
            source.with_predicate(conjunction(remaining))
        };
        let config = FileScanConfigBuilder::from(config.clone())
            .with_source(Arc::new(source))
            .with_file_groups(groups)
            .build();
        scans.push(DataSourceExec::from_data_source(config));
    }
    if scans.is_empty() {
        // Every file ruled out: the scan reads none, in as many partitions.
        let empty = vec![FileGroup::new(Vec::new()); config.file_groups.len().max(1)];
        let config = FileScanConfigBuilder::from(config.clone())
            .with_file_groups(empty)
            .build();
        return Ok(Some(DataSourceExec::from_data_source(config)));
    }
    UnionExec::try_new(scans).map(Some)
}

/// `files` in `count` groups of about as many bytes each (at most as many
/// groups as files): a scan reads its groups in parallel, and the files of
/// one scan's share of a split may all have been in one of its groups.
fn balanced_groups(files: impl Iterator<Item = PartitionedFile>, count: usize) -> Vec<FileGroup> {
    let bytes = |file: &PartitionedFile| {
        file.range
            .as_ref()
            .map_or(file.object_meta.size, |r| (r.end - r.start).unsigned_abs())
    };
    let mut files: Vec<PartitionedFile> = files.collect();
    files.sort_by_key(|f| std::cmp::Reverse(bytes(f)));
    let mut groups: Vec<(u64, Vec<PartitionedFile>)> =
        vec![(0, Vec::new()); count.clamp(1, files.len().max(1))];
    for file in files {
        if let Some(lightest) = groups.iter_mut().min_by_key(|(total, _)| *total) {
            lightest.0 += bytes(&file);
            lightest.1.push(file);
        }
    }
    groups
        .into_iter()
        .map(|(_, files)| FileGroup::new(files))
        .collect()
}

/// For each file, whether `conjunct` holds on every one of its rows, by its
/// exact statistics: they rule out its negation, and its columns being null.
fn fully_matched(
    conjunct: &Arc<dyn PhysicalExpr>,
    schema: &SchemaRef,
    statistics: &PrunableStatistics,
) -> Vec<bool> {
    let unproven = || vec![false; statistics.num_containers()];
    // A row where the conjunct is null is not kept either.
    let mut negation: Arc<dyn PhysicalExpr> = Arc::new(NotExpr::new(Arc::clone(conjunct)));
    let mut columns: Vec<_> = collect_columns(conjunct).into_iter().collect();
    columns.sort_by_key(|c| c.index());
    for column in columns {
        if schema
            .field_with_name(column.name())
            .map_or(true, |f| f.is_nullable())
        {
            negation = Arc::new(BinaryExpr::new(
                negation,
                Operator::Or,
                Arc::new(IsNullExpr::new(Arc::new(column))),
            ));
        }
    }
    let Ok(negation) = PhysicalExprSimplifier::new(schema).simplify(negation) else {
        return unproven();
    };
    let Ok(pruning) = pruning_predicate(negation, schema) else {
        return unproven();
    };
    match pruning.prune(statistics) {
        Ok(may_fail) => may_fail.into_iter().map(|fail| !fail).collect(),
        Err(_) => unproven(),
    }
}

/// Whether `expr` holds a dynamic filter (filled in while the query runs).
fn holds_dynamic_filter(expr: &Arc<dyn PhysicalExpr>) -> bool {
    let mut found = false;
    let _ = expr.apply(|e| {
        found = e.downcast_ref::<DynamicFilterPhysicalExpr>().is_some();
        Ok(if found {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    found
}

fn pruning_predicate(
    expr: Arc<dyn PhysicalExpr>,
    schema: &SchemaRef,
) -> datafusion::common::Result<PruningPredicate> {
    PruningPredicateBuilder::new()
        .with_file_schema(Arc::clone(schema))
        .try_build(expr)
}
