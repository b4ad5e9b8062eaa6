//! Order lines as a protocol sees them: merged per item and in a fixed order.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One item of an order and how many of it to take.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineItem {
    /// The stock service's id of the item.
    pub item_id: String,
    /// How many units; always positive.
    pub quantity: i64,
}

/// Why a set of order lines cannot be merged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MergeError {
    /// A line had a quantity of zero or less.
    #[error("quantity of item {0} is not positive")]
    NonPositive(String),
    /// The quantities of one item add up past `i64::MAX`.
    #[error("quantity of item {0} overflows")]
    Overflow(String),
}

/// Merges repeated lines of the same item and sorts by item id.
///
/// An order may name an item several times (`addItem` twice); participants want
/// one row update per item, and taking row locks in one global order (item id)
/// is what keeps concurrent checkouts that share items from deadlocking.
pub fn merge_items<I>(lines: I) -> Result<Vec<LineItem>, MergeError>
where
    I: IntoIterator<Item = (String, i64)>,
{
    let mut merged: BTreeMap<String, i64> = BTreeMap::new();
    for (item_id, quantity) in lines {
        if quantity <= 0 {
            return Err(MergeError::NonPositive(item_id));
        }
        let slot = merged.entry(item_id.clone()).or_insert(0);
        *slot = slot.checked_add(quantity).ok_or(MergeError::Overflow(item_id))?;
    }
    Ok(merged.into_iter().map(|(item_id, quantity)| LineItem { item_id, quantity }).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: &str, q: i64) -> (String, i64) {
        (id.to_owned(), q)
    }

    #[test]
    fn merges_repeats_and_sorts_by_item_id() {
        let merged = merge_items([line("b", 1), line("a", 2), line("b", 3)]);
        assert_eq!(
            merged,
            Ok(vec![LineItem { item_id: "a".into(), quantity: 2 }, LineItem { item_id: "b".into(), quantity: 4 },])
        );
    }

    #[test]
    fn rejects_non_positive_and_overflowing_quantities() {
        assert_eq!(merge_items([line("a", 0)]), Err(MergeError::NonPositive("a".into())));
        assert_eq!(merge_items([line("a", i64::MAX), line("a", 1)]), Err(MergeError::Overflow("a".into())));
    }

    #[test]
    fn empty_input_gives_empty_output() {
        assert_eq!(merge_items(Vec::new()), Ok(Vec::new()));
    }
}

/// The business effect one participant carries out for a checkout, whichever
/// protocol asks for it (a 2PC branch or a saga step).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Work {
    /// Take these quantities from stock (merged per item, sorted by item id).
    Stock {
        /// The lines.
        items: Vec<LineItem>,
        /// Refuse rows reset after this ([`crate::CheckoutRequest::as_of_us`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        as_of_us: Option<i64>,
    },
    /// Take `amount` from the user's credit.
    Payment {
        /// The paying user.
        user_id: String,
        /// The order total.
        amount: i64,
        /// Refuse a user reset after this ([`crate::CheckoutRequest::as_of_us`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        as_of_us: Option<i64>,
    },
}

impl Work {
    /// The stock part of `request`.
    pub fn stock_for(request: &crate::CheckoutRequest) -> Work {
        Work::Stock { items: request.items.clone(), as_of_us: request.as_of_us }
    }

    /// The payment part of `request`.
    pub fn payment_for(request: &crate::CheckoutRequest) -> Work {
        Work::Payment { user_id: request.user_id.clone(), amount: request.total_cost, as_of_us: request.as_of_us }
    }
}
