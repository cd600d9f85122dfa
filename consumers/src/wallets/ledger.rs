//! The ledger's one rule, apart from the database: an entry moves the balance by its amount, and
//! a debit may not take it below minus the overdraft limit. A credit is always accepted (it can
//! only raise the balance), however far below zero the balance stands.

use schemas::wallets::WalletAction;

/// Why an entry cannot be posted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The debit would take the balance below what the overdraft allows.
    #[error("the balance of {balance} cannot cover {amount} (overdraft limit {overdraft})")]
    Shortfall {
        /// Balance before.
        balance: i64,
        /// The debit.
        amount: i64,
        /// How far below zero the wallet may go.
        overdraft: i64,
    },
    /// The balance would leave the range of a 64-bit integer.
    #[error("the balance would overflow")]
    Overflow,
}

/// The balance after `action` of `amount` (positive) on `balance`, with `overdraft` allowed.
pub fn next_balance(balance: i64, overdraft: i64, action: WalletAction, amount: i64) -> Result<i64, Refused> {
    match action {
        WalletAction::Credit => balance.checked_add(amount).ok_or(Refused::Overflow),
        WalletAction::Debit => {
            let after = balance.checked_sub(amount).ok_or(Refused::Overflow)?;
            if after < -overdraft.max(0) {
                return Err(Refused::Shortfall { balance, amount, overdraft });
            }
            Ok(after)
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn signed(action: WalletAction, amount: i64) -> i64 {
        match action {
            WalletAction::Credit => amount,
            WalletAction::Debit => -amount,
        }
    }

    #[test]
    fn a_debit_stops_at_the_overdraft_limit() {
        assert_eq!(next_balance(1_000, 0, WalletAction::Debit, 1_000), Ok(0));
        assert!(matches!(next_balance(1_000, 0, WalletAction::Debit, 1_001), Err(Refused::Shortfall { .. })));
        assert_eq!(next_balance(1_000, 500, WalletAction::Debit, 1_500), Ok(-500));
        assert!(next_balance(1_000, 500, WalletAction::Debit, 1_501).is_err());
        // Below the limit already (the limit was lowered): credits still land, debits do not.
        assert_eq!(next_balance(-800, 0, WalletAction::Credit, 100), Ok(-700));
        assert!(next_balance(-800, 0, WalletAction::Debit, 1).is_err());
        assert_eq!(next_balance(i64::MAX, 0, WalletAction::Credit, 1), Err(Refused::Overflow));
    }

    fn operation() -> impl Strategy<Value = (WalletAction, i64)> {
        (prop_oneof![Just(WalletAction::Credit), Just(WalletAction::Debit)], 1i64..50_000)
    }

    proptest! {
        /// Whatever is posted in whatever order: the balance is the sum of the accepted entries,
        /// never below minus the overdraft, and a refused entry changes nothing.
        #[test]
        fn the_balance_is_the_sum_of_what_was_accepted(
            overdraft in 0i64..20_000,
            operations in proptest::collection::vec(operation(), 0..200),
        ) {
            let (mut balance, mut accepted) = (0i64, Vec::new());
            for (action, amount) in operations {
                match next_balance(balance, overdraft, action, amount) {
                    Ok(after) => {
                        prop_assert_eq!(after, balance + signed(action, amount));
                        balance = after;
                        accepted.push(signed(action, amount));
                    }
                    Err(Refused::Shortfall { .. }) => {
                        prop_assert_eq!(action, WalletAction::Debit);
                        prop_assert!(balance - amount < -overdraft);
                    }
                    Err(Refused::Overflow) => prop_assert!(false, "no overflow at these amounts"),
                }
                prop_assert!(balance >= -overdraft);
            }
            prop_assert_eq!(balance, accepted.iter().sum::<i64>());
        }

        /// A reversing entry brings the balance back to where it was before the entry it reverses.
        #[test]
        fn a_reversal_undoes_its_entry(start in -10_000i64..100_000, amount in 1i64..50_000) {
            for action in [WalletAction::Credit, WalletAction::Debit] {
                let reverse = match action {
                    WalletAction::Credit => WalletAction::Debit,
                    WalletAction::Debit => WalletAction::Credit,
                };
                let after = next_balance(start, i64::MAX / 2, action, amount).unwrap();
                prop_assert_eq!(next_balance(after, i64::MAX / 2, reverse, amount), Ok(start));
            }
        }
    }
}
