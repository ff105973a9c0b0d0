//! Coin selection: branch-and-bound for a change-free match, largest-first as the fallback.
//!
//! Values are *effective values*: the coin's value minus the fee its input costs at the target
//! fee rate. Branch-and-bound (as Bitcoin Core's, depth-first over coins sorted by descending
//! effective value, at most [`BNB_MAX_TRIES`] steps) looks for a subset whose effective value
//! lies in `[target, target + cost_of_change]`, so no change output is needed and the excess
//! (less than what a change output would cost) goes to the fee. If none exists, largest-first
//! adds coins in descending order until the outputs, the fee and a change output above dust are
//! covered (or, failing that, until the target alone is covered without change).

/// Step limit of the branch-and-bound search.
pub const BNB_MAX_TRIES: usize = 100_000;

/// The result of a selection: indices of the chosen candidates and whether to add change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// Chosen candidate indices.
    pub chosen: Vec<usize>,
    /// Whether a change output should be added.
    pub change: bool,
}

/// Selects among `effective` (effective values, may be ≤ 0) to cover `target` (outputs plus the
/// fee of the transaction's fixed part). `cost_of_change` is the fee of a change output plus the
/// dust limit; `change_need` is what must remain above the target for a change output.
pub fn select_coins(
    effective: &[i64],
    target: i64,
    cost_of_change: i64,
    change_need: i64,
) -> Option<Selection> {
    if let Some(chosen) = branch_and_bound(effective, target, cost_of_change) {
        return Some(Selection { chosen, change: false });
    }
    largest_first(effective, target, change_need)
}

fn sorted_positive(effective: &[i64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..effective.len()).filter(|&i| effective[i] > 0).collect();
    order.sort_by(|&a, &b| effective[b].cmp(&effective[a]).then(a.cmp(&b)));
    order
}

/// Depth-first search for a subset with sum in `[target, target + window]`.
pub fn branch_and_bound(effective: &[i64], target: i64, window: i64) -> Option<Vec<usize>> {
    let order = sorted_positive(effective);
    let values: Vec<i64> = order.iter().map(|&i| effective[i]).collect();
    let mut remaining: i64 = values.iter().sum();
    if remaining < target {
        return None;
    }
    let upper = target.saturating_add(window);
    let mut selected: Vec<bool> = vec![false; values.len()];
    let mut best: Option<(i64, Vec<bool>)> = None;
    let mut sum = 0i64;
    let mut depth = 0usize;
    let mut tries = 0usize;
    loop {
        tries += 1;
        if tries > BNB_MAX_TRIES {
            break;
        }
        let mut backtrack = false;
        if sum + remaining < target || sum > upper {
            backtrack = true;
        } else if sum >= target {
            let waste = sum - target;
            if best.as_ref().is_none_or(|(w, _)| waste < *w) {
                best = Some((waste, selected.clone()));
                if waste == 0 {
                    break;
                }
            }
            backtrack = true;
        }
        if backtrack || depth == values.len() {
            // Walk back to the last included coin and exclude it instead.
            loop {
                if depth == 0 {
                    return best.map(|(_, s)| pick(&order, &s));
                }
                depth -= 1;
                if selected[depth] {
                    selected[depth] = false;
                    sum -= values[depth];
                    depth += 1;
                    break;
                }
                remaining += values[depth];
            }
            continue;
        }
        // Include the coin at `depth`.
        remaining -= values[depth];
        selected[depth] = true;
        sum += values[depth];
        depth += 1;
    }
    best.map(|(_, s)| pick(&order, &s))
}

fn pick(order: &[usize], selected: &[bool]) -> Vec<usize> {
    order.iter().zip(selected).filter(|(_, s)| **s).map(|(i, _)| *i).collect()
}

/// Largest-first accumulation.
pub fn largest_first(effective: &[i64], target: i64, change_need: i64) -> Option<Selection> {
    let order = sorted_positive(effective);
    let mut sum = 0i64;
    let mut chosen = Vec::new();
    for &i in &order {
        chosen.push(i);
        sum += effective[i];
        if sum >= target.saturating_add(change_need) {
            return Some(Selection { chosen, change: true });
        }
    }
    if sum >= target { Some(Selection { chosen, change: false }) } else { None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bnb_finds_exact_match() {
        let s = branch_and_bound(&[5, 9, 3, 7], 12, 0).expect("match");
        let total: i64 = s.iter().map(|&i| [5, 9, 3, 7][i]).sum();
        assert_eq!(total, 12);
    }

    #[test]
    fn bnb_respects_window_and_falls_back() {
        assert!(branch_and_bound(&[10, 20], 14, 2).is_none());
        let sel = select_coins(&[10, 20], 14, 2, 5).expect("fallback");
        assert_eq!(sel, Selection { chosen: vec![1], change: true });
        assert!(select_coins(&[10, 20], 31, 2, 5).is_none());
        let sel = select_coins(&[10, 20], 29, 0, 5).expect("no change");
        assert!(!sel.change);
        assert_eq!(sel.chosen.len(), 2);
    }

    #[test]
    fn negative_effective_values_are_ignored() {
        assert!(select_coins(&[-5, 0], 1, 0, 0).is_none());
    }
}
