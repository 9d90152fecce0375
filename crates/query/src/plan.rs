//! Physical plan rewrites for CloudTrail's query shapes.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::repartition::RepartitionExec;
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
                || !partial.aggr_expr().iter().any(|a| a.is_distinct())
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
