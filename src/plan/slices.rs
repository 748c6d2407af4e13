//! A plan split into slices, one for each machine of a run split across machines
//! (`--slice I/N`): which tasks each slice runs. Every slice plans the whole run and
//! keeps its share, so every machine must compute the same assignment, for every task to
//! run in exactly one slice.
//!
//! - When `tributary snapshot export` was given the run's arguments and `--slices N`, it
//!   planned the run in its snapshots and dealt the tasks by PostgreSQL's row estimates
//!   ([`assign_by_rows`]), and recorded the assignment in the snapshots file: the slices
//!   take it from there ([`of`]).
//! - Otherwise the assignment depends on the plan alone, never on estimates, which change
//!   between the moments two machines plan ([`assign`]): the tasks are taken partition
//!   by partition across the shards (every shard's first task, then every shard's
//!   second, ...), each dealt to the slice holding the fewest tasks, then the fewest of
//!   its shard's, so the slices' task counts differ by one at most and a shard's tasks
//!   spread over the slices.

use std::collections::HashMap;
use std::fmt::Write as _;

use super::{Plan, Task};
use crate::config::Snapshots;
use crate::config::slices::{AssignedTask, SliceAssignment};

/// The slice (from 0) of each task of `tasks`, in their order.
pub fn assign(tasks: &[Task], count: usize) -> Vec<usize> {
    let mut rank_in_shard = HashMap::new();
    let mut order: Vec<(usize, usize, usize)> = tasks
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let rank = rank_in_shard.entry(t.shard).or_insert(0usize);
            *rank += 1;
            (*rank, t.shard, i)
        })
        .collect();
    order.sort_unstable();
    // Each task goes to the slice with the fewest tasks, then the fewest of its shard's;
    // of those, the first counting from a slice that differs from shard to shard, so
    // that shards' first tasks start in different slices.
    let mut sizes = vec![0usize; count];
    let mut of_shard: HashMap<usize, Vec<usize>> = HashMap::new();
    let mut slices = vec![0; tasks.len()];
    for &(_, shard, task) in &order {
        let mine = of_shard.entry(shard).or_insert_with(|| vec![0; count]);
        let slice = (0..count)
            .min_by_key(|&s| (sizes[s], mine[s], (s + count - shard % count) % count))
            .expect("at least one slice");
        sizes[slice] += 1;
        mine[slice] += 1;
        slices[task] = slice;
    }
    slices
}

/// The slice of each task, largest estimates first, each to the slice with the fewest
/// estimated rows (then the fewest tasks, then the first): balanced by what the tasks
/// read. Without an estimate for every task, by task count ([`assign`]).
pub fn assign_by_rows(tasks: &[Task], count: usize, rows: &[Option<f64>]) -> Vec<usize> {
    let Some(rows): Option<Vec<f64>> = tasks
        .iter()
        .map(|t| rows.get(t.id).copied().flatten())
        .collect()
    else {
        return assign(tasks, count);
    };
    let mut order: Vec<usize> = (0..tasks.len()).collect();
    order.sort_by(|&a, &b| rows[b].total_cmp(&rows[a]).then(a.cmp(&b)));
    let mut load = vec![(0f64, 0usize); count];
    let mut slices = vec![0; tasks.len()];
    for task in order {
        let slice = (0..count)
            .min_by(|&a, &b| {
                load[a]
                    .0
                    .total_cmp(&load[b].0)
                    .then(load[a].1.cmp(&load[b].1))
                    .then(a.cmp(&b))
            })
            .expect("at least one slice");
        load[slice].0 += rows[task].max(1.0);
        load[slice].1 += 1;
        slices[task] = slice;
    }
    slices
}

/// The assignment the snapshots file records: `plan`'s tasks with their slices and
/// estimates.
pub fn record(
    plan: &Plan,
    count: usize,
    slices: &[usize],
    rows: &[Option<f64>],
) -> SliceAssignment {
    SliceAssignment {
        count,
        tasks: plan
            .tasks
            .iter()
            .zip(slices)
            .map(|(t, &slice)| AssignedTask {
                shard: t.shard_name.clone(),
                partition: t.partition.clone(),
                slice,
                rows: rows.get(t.id).copied().flatten(),
            })
            .collect(),
    }
}

/// The slice of each of `plan`'s tasks when split in `count`: as the snapshots file
/// records them when it has slices (which must be `count` of this very plan), else by
/// task count.
pub fn of(plan: &Plan, count: usize, snapshots: Option<&Snapshots>) -> Result<Vec<usize>, String> {
    let Some((file, recorded)) = snapshots.and_then(|s| Some((&s.path, s.slices.as_ref()?))) else {
        return Ok(assign(&plan.tasks, count));
    };
    if recorded.count != count {
        return Err(format!(
            "{}: the snapshots were exported for {} slices, and this run is in {count}",
            file.display(),
            recorded.count
        ));
    }
    let by_task: HashMap<(&str, Option<&str>), usize> = recorded
        .tasks
        .iter()
        .map(|t| ((t.shard.as_str(), t.partition.as_deref()), t.slice))
        .collect();
    let slices = plan
        .tasks
        .iter()
        .map(|t| {
            by_task
                .get(&(t.shard_name.as_str(), t.partition.as_deref()))
                .copied()
                .ok_or_else(|| {
                    format!(
                        "{}: shard {}'s task {} is not in the plan the snapshots were exported \
                         with: give `snapshot export` the run's own arguments",
                        file.display(),
                        t.shard_name,
                        t.partition.as_deref().unwrap_or("(unpartitioned)")
                    )
                })
        })
        .collect::<Result<Vec<usize>, String>>()?;
    if slices.len() != recorded.tasks.len() {
        return Err(format!(
            "{}: the snapshots were exported with a plan of {} tasks, and this run's has {}: \
             give `snapshot export` the run's own arguments",
            file.display(),
            recorded.tasks.len(),
            slices.len()
        ));
    }
    Ok(slices)
}

/// Refuses a split into more slices than the plan has tasks: a slice without a task
/// would commit nothing, and the run would never be complete.
pub fn check_count(tasks: usize, count: usize) -> Result<(), String> {
    if tasks < count {
        return Err(format!(
            "the run's plan has {tasks} tasks, fewer than its {count} slices: split it into \
             at most {tasks} slices, or partition the shards into more tasks"
        ));
    }
    Ok(())
}

/// Keeps the tasks of slice `index` (`slices` holding each task's), renumbered from 0
/// in their order.
pub fn keep(plan: &mut Plan, index: usize, slices: &[usize]) {
    let tasks = std::mem::take(&mut plan.tasks);
    plan.tasks = tasks
        .into_iter()
        .zip(slices)
        .filter(|(_, slice)| **slice == index)
        .enumerate()
        .map(|(id, (mut task, _))| {
            task.id = id;
            task
        })
        .collect();
}

/// The slices as `tributary plan --slices N` shows them (dealt as a run would deal them,
/// see [`of`]): each slice's tasks, the rows PostgreSQL estimates they read where it
/// estimates them all, and a note when some slice has no task.
pub fn describe(
    plan: &Plan,
    count: usize,
    snapshots: Option<&Snapshots>,
    estimates: Option<&[Option<f64>]>,
) -> Result<String, String> {
    let slices = of(plan, count, snapshots)?;
    let mut out = String::new();
    for slice in 0..count {
        let tasks: Vec<&Task> = plan
            .tasks
            .iter()
            .zip(&slices)
            .filter(|(_, s)| **s == slice)
            .map(|(t, _)| t)
            .collect();
        if tasks.is_empty() {
            let _ = writeln!(out, "slice {slice}/{count}: no task");
            continue;
        }
        let _ = write!(out, "slice {slice}/{count}: {} tasks", tasks.len());
        let rows: Option<f64> = tasks
            .iter()
            .map(|t| estimates.and_then(|e| e.get(t.id).copied().flatten()))
            .sum();
        if let Some(rows) = rows {
            let _ = write!(out, ", estimated {rows:.0} rows");
        }
        let names: Vec<String> = tasks
            .iter()
            .map(|t| match &t.partition {
                Some(p) => format!("task {} ({} {p})", t.id, t.shard_name),
                None => format!("task {} ({})", t.id, t.shard_name),
            })
            .collect();
        if names.is_empty() {
            let _ = writeln!(out);
        } else {
            let _ = writeln!(out, ": {}", names.join(", "));
        }
    }
    if let Err(e) = check_count(plan.tasks.len(), count) {
        let _ = writeln!(out, "-- {e}");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::TaskQuery;

    fn task(id: usize, shard: usize, partition: Option<&str>) -> Task {
        Task {
            id,
            shard,
            shard_name: format!("s{shard}"),
            partition: partition.map(str::to_owned),
            query: TaskQuery::Postgres {
                sql: "SELECT 1".into(),
            },
            snapshot: None,
        }
    }

    #[test]
    fn every_task_is_in_one_slice_and_the_slices_are_balanced() {
        // 3 shards: 4, 1 and 2 partitions.
        let mut tasks = Vec::new();
        for (shard, parts) in [(0, 4), (1, 1), (2, 2)] {
            for p in 0..parts {
                tasks.push(task(tasks.len(), shard, Some(&format!("p{p}"))));
            }
        }
        let slices = assign(&tasks, 3);
        assert_eq!(slices, assign(&tasks, 3), "deterministic");
        let counts: Vec<usize> = (0..3)
            .map(|s| slices.iter().filter(|x| **x == s).count())
            .collect();
        assert_eq!(counts, [3, 2, 2]);
        // Each shard's first partitions go to different slices, and shard 0's spread.
        assert_eq!([slices[0], slices[4], slices[5]], [0, 1, 2]);
        assert_eq!(&slices[..4], [0, 1, 2, 0]);
        // As many shards as slices, of 3 tasks each: each slice reads every shard once.
        let square: Vec<Task> = (0..9).map(|i| task(i, i / 3, Some("p"))).collect();
        let slices = assign(&square, 3);
        for slice in 0..3 {
            let mut shards: Vec<usize> = (0..9)
                .filter(|&i| slices[i] == slice)
                .map(|i| square[i].shard)
                .collect();
            shards.sort_unstable();
            assert_eq!(shards, [0, 1, 2], "{slices:?}");
        }
        // One slice: everything.
        assert!(assign(&tasks, 1).iter().all(|s| *s == 0));
        // More slices than tasks: some slices have none.
        let many = assign(&tasks, 10);
        let mut seen = many.clone();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 7);
    }

    #[test]
    fn estimates_deal_the_biggest_tasks_first_to_the_lightest_slice() {
        let tasks: Vec<Task> = (0..5)
            .map(|i| task(i, i % 2, Some(&format!("p{i}"))))
            .collect();
        let rows = [Some(100.0), Some(10.0), Some(60.0), Some(50.0), Some(0.0)];
        let slices = assign_by_rows(&tasks, 2, &rows);
        // 100 | 60, 50 -> 110 | 110 with 10; 0 to the first of equal slices.
        assert_eq!(slices, [0, 0, 1, 1, 0]);
        // One estimate missing: by task count.
        let mut partial = rows;
        partial[3] = None;
        assert_eq!(assign_by_rows(&tasks, 2, &partial), assign(&tasks, 2));
    }

    #[test]
    fn a_recorded_assignment_is_taken_for_its_own_plan_only() {
        let tasks: Vec<Task> = (0..4)
            .map(|i| task(i, i / 2, Some(&format!("p{i}"))))
            .collect();
        let plan = Plan {
            tasks,
            failed: Vec::new(),
            snapshots: Default::default(),
            deferred: Vec::new(),
            final_step: None,
            windows: Default::default(),
        };
        let slices = [1, 0, 0, 1];
        let mut snapshots = Snapshots {
            path: "snaps.json".into(),
            holder: String::new(),
            ids: Default::default(),
            slices: Some(record(&plan, 2, &slices, &[None; 4])),
        };
        assert_eq!(of(&plan, 2, Some(&snapshots)).unwrap(), slices);
        assert!(
            of(&plan, 3, Some(&snapshots))
                .unwrap_err()
                .contains("exported for 2 slices")
        );
        snapshots.slices.as_mut().unwrap().tasks[2].partition = Some("other".into());
        assert!(
            of(&plan, 2, Some(&snapshots))
                .unwrap_err()
                .contains("not in the plan")
        );
        let mut kept = plan;
        keep(&mut kept, 1, &slices);
        let kept: Vec<(usize, Option<String>)> = kept
            .tasks
            .iter()
            .map(|t| (t.id, t.partition.clone()))
            .collect();
        assert_eq!(kept, [(0, Some("p0".into())), (1, Some("p3".into()))]);
    }
}
