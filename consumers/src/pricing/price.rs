//! The price of a ride: one pure function of the plan and what the ride measured, in integer
//! minor units, so the same ride always costs the same and every cent is accounted for.
//!
//! The rules, in order:
//! 1. Time is billed per started minute: riding minutes at `per_minute_cents`, paused minutes at
//!    `paused_per_minute_cents`, each rounded up separately.
//! 2. Distance is billed per metre at `per_km_cents / 1000`, rounded half up.
//! 3. The gross (unlock + time + distance) is raised to the minimum fare, then lowered to the cap;
//!    the difference is the `adjustment_cents`.
//! 4. Discounts apply in the plan's order to what is left: a percentage of it (basis points,
//!    rounded half up) or a fixed amount, never more than is left.
//!
//! So `total = unlock + time + distance + adjustment - discount`, and `0 <= total`.

use schemas::pricing::{Discount, PricingPlan};
use schemas::rides::RidePricing;

/// What a ride measured, for pricing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Time riding (not paused), milliseconds.
    pub riding_ms: i64,
    /// Time paused, milliseconds.
    pub paused_ms: i64,
    /// Distance, metres.
    pub distance_m: i64,
}

impl Usage {
    /// Riding minutes billed: every started minute.
    pub fn riding_minutes(&self) -> i64 {
        started_minutes(self.riding_ms)
    }

    /// Paused minutes billed: every started minute.
    pub fn paused_minutes(&self) -> i64 {
        started_minutes(self.paused_ms)
    }
}

fn started_minutes(ms: i64) -> i64 {
    ms.max(0).saturating_add(59_999) / 60_000
}

/// `a * b`, saturated: plans and rides are validated to far smaller numbers, and a saturated
/// price is refused by its caller rather than wrapped into a small one.
fn times(a: i64, b: i64) -> i64 {
    a.saturating_mul(b)
}

/// `value * numerator / denominator`, rounded half up, for non-negative figures.
fn share(value: i64, numerator: i64, denominator: i64) -> i64 {
    let exact = i128::from(value.max(0)) * i128::from(numerator.max(0));
    let rounded = (exact + i128::from(denominator) / 2) / i128::from(denominator);
    i64::try_from(rounded).unwrap_or(i64::MAX)
}

/// The price of a ride that used `usage` under `plan`.
pub fn price(plan: &PricingPlan, usage: Usage) -> RidePricing {
    let unlock_cents = plan.unlock_cents.max(0);
    let time_cents = times(usage.riding_minutes(), plan.per_minute_cents.max(0))
        .saturating_add(times(usage.paused_minutes(), plan.paused_per_minute_cents.max(0)));
    let distance_cents = share(usage.distance_m, plan.per_km_cents, 1_000);
    let gross = unlock_cents.saturating_add(time_cents).saturating_add(distance_cents);
    let mut charged = gross.max(plan.minimum_fare_cents.max(0));
    if let Some(cap) = plan.cap_cents {
        charged = charged.min(cap.max(0));
    }
    let adjustment_cents = charged - gross;
    let mut left = charged;
    for discount in &plan.discounts {
        let off = match discount {
            Discount::Percentage { basis_points, .. } => share(left, i64::from(*basis_points).min(10_000), 10_000),
            Discount::Fixed { amount_cents, .. } => (*amount_cents).max(0),
        };
        left -= off.min(left);
    }
    RidePricing {
        total_cents: left,
        unlock_cents,
        time_cents,
        distance_cents,
        discount_cents: charged - left,
        adjustment_cents,
        currency: plan.currency,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use schemas::Currency;

    use super::*;

    fn plan() -> PricingPlan {
        PricingPlan {
            currency: Currency::BRL,
            unlock_cents: 100,
            per_minute_cents: 25,
            paused_per_minute_cents: 10,
            per_km_cents: 0,
            minimum_fare_cents: 0,
            cap_cents: None,
            minimum_balance_cents: 0,
            discounts: Vec::new(),
        }
    }

    fn minutes(riding: i64, paused: i64, metres: i64) -> Usage {
        Usage { riding_ms: riding * 60_000, paused_ms: paused * 60_000, distance_m: metres }
    }

    fn breakdown(total: i64, unlock: i64, time: i64, distance: i64, discount: i64, adjustment: i64) -> RidePricing {
        RidePricing {
            total_cents: total,
            unlock_cents: unlock,
            time_cents: time,
            distance_cents: distance,
            discount_cents: discount,
            adjustment_cents: adjustment,
            currency: Currency::BRL,
        }
    }

    #[test]
    fn the_seed_ride_costs_what_the_seed_says() {
        // `ride.ended` in the Levy Fleets seed: 30 minutes, 5.2 km, 100 + 750 = 850.
        assert_eq!(price(&plan(), minutes(30, 0, 5_200)), breakdown(850, 100, 750, 0, 0, 0));
    }

    #[test]
    fn minutes_are_billed_when_started() {
        let cases = [(0, 0), (1, 1), (59_999, 1), (60_000, 1), (60_001, 2), (-5, 0)];
        for (ms, billed) in cases {
            let usage = Usage { riding_ms: ms, ..Usage::default() };
            assert_eq!(usage.riding_minutes(), billed, "{ms} ms");
            assert_eq!(price(&plan(), usage).time_cents, 25 * billed, "{ms} ms");
        }
        let paused = Usage { riding_ms: 61_000, paused_ms: 1, distance_m: 0 };
        assert_eq!(price(&plan(), paused), breakdown(160, 100, 2 * 25 + 10, 0, 0, 0));
    }

    #[test]
    fn distance_is_billed_per_metre_rounded_half_up() {
        let per_km = PricingPlan { per_km_cents: 30, unlock_cents: 0, ..plan() };
        // 30 cents a km: 16 m is 0.48 cents, 17 m 0.51.
        for (metres, cents) in [(0, 0), (16, 0), (17, 1), (1_000, 30), (5_200, 156), (5_217, 157)] {
            assert_eq!(price(&per_km, minutes(0, 0, metres)).distance_cents, cents, "{metres} m");
        }
    }

    #[test]
    fn minimum_fare_and_cap_adjust_the_gross() {
        let floor = PricingPlan { minimum_fare_cents: 300, ..plan() };
        assert_eq!(price(&floor, minutes(2, 0, 0)), breakdown(300, 100, 50, 0, 0, 150));
        assert_eq!(price(&floor, minutes(20, 0, 0)), breakdown(600, 100, 500, 0, 0, 0));
        let capped = PricingPlan { cap_cents: Some(1_000), ..plan() };
        assert_eq!(price(&capped, minutes(60, 0, 0)), breakdown(1_000, 100, 1_500, 0, 0, -600));
        assert_eq!(price(&capped, minutes(20, 0, 0)), breakdown(600, 100, 500, 0, 0, 0));
    }

    #[test]
    fn discounts_apply_in_order_to_what_is_left() {
        let promo = PricingPlan {
            discounts: vec![
                Discount::Percentage { basis_points: 1_000, label: "10 %".into() },
                Discount::Fixed { amount_cents: 100, label: "welcome".into() },
            ],
            ..plan()
        };
        // 100 + 30 × 25 = 850; 10 % is 85, leaving 765; then 100 off: 665.
        assert_eq!(price(&promo, minutes(30, 0, 0)), breakdown(665, 100, 750, 0, 185, 0));
        // The other order: 750, then 75 off.
        let reversed = PricingPlan { discounts: promo.discounts.iter().rev().cloned().collect(), ..promo };
        assert_eq!(price(&reversed, minutes(30, 0, 0)), breakdown(675, 100, 750, 0, 175, 0));
        // Half a cent rounds up: 12.5 % of 100 + 25 = 15.625 → 16.
        let eighth = PricingPlan {
            discounts: vec![Discount::Percentage { basis_points: 1_250, label: "⅛".into() }],
            ..plan()
        };
        assert_eq!(price(&eighth, minutes(1, 0, 0)), breakdown(109, 100, 25, 0, 16, 0));
        // A discount larger than the price makes the ride free, never negative.
        let free =
            PricingPlan { discounts: vec![Discount::Fixed { amount_cents: 10_000, label: "free".into() }], ..plan() };
        assert_eq!(price(&free, minutes(3, 0, 0)), breakdown(0, 100, 75, 0, 175, 0));
    }

    #[test]
    fn a_full_ride_with_pause_distance_floor_and_promotion() {
        let full = PricingPlan {
            unlock_cents: 150,
            per_minute_cents: 39,
            paused_per_minute_cents: 12,
            per_km_cents: 45,
            minimum_fare_cents: 400,
            cap_cents: Some(5_000),
            discounts: vec![Discount::Percentage { basis_points: 2_000, label: "20 %".into() }],
            ..plan()
        };
        // 17 min 20 s riding → 18 minutes, 4 min 1 s paused → 5: 18 × 39 + 5 × 12 = 762.
        // 3,333 m at 45/km = 149.985 → 150. Gross 150 + 762 + 150 = 1,062; 20 % = 212.4 → 212.
        let usage = Usage { riding_ms: 1_040_000, paused_ms: 241_000, distance_m: 3_333 };
        assert_eq!(price(&full, usage), breakdown(850, 150, 762, 150, 212, 0));
    }

    fn discount() -> impl Strategy<Value = Discount> {
        prop_oneof![
            (0u16..=10_000).prop_map(|basis_points| Discount::Percentage { basis_points, label: "p".into() }),
            (0i64..100_000).prop_map(|amount_cents| Discount::Fixed { amount_cents, label: "f".into() }),
        ]
    }

    prop_compose! {
        fn any_plan()(
            unlock_cents in 0i64..10_000,
            per_minute_cents in 0i64..1_000,
            paused_per_minute_cents in 0i64..1_000,
            per_km_cents in 0i64..1_000,
            minimum_fare_cents in 0i64..5_000,
            cap in proptest::option::of(5_000i64..100_000),
            discounts in proptest::collection::vec(discount(), 0..4),
        ) -> PricingPlan {
            PricingPlan {
                currency: Currency::EUR,
                unlock_cents,
                per_minute_cents,
                paused_per_minute_cents,
                per_km_cents,
                minimum_fare_cents,
                cap_cents: cap,
                minimum_balance_cents: 0,
                discounts,
            }
        }
    }

    prop_compose! {
        fn any_usage()(riding_ms in 0i64..86_400_000, paused_ms in 0i64..86_400_000, distance_m in 0i64..500_000) -> Usage {
            Usage { riding_ms, paused_ms, distance_m }
        }
    }

    proptest! {
        #[test]
        fn every_cent_is_accounted_for(plan in any_plan(), usage in any_usage()) {
            let p = price(&plan, usage);
            prop_assert_eq!(p.total_cents, p.unlock_cents + p.time_cents + p.distance_cents + p.adjustment_cents - p.discount_cents);
            prop_assert!(p.total_cents >= 0);
            prop_assert!(p.discount_cents >= 0);
            prop_assert_eq!(p.currency, plan.currency);
            // Before discounts, the fare is within the floor and the cap.
            let charged = p.total_cents + p.discount_cents;
            prop_assert!(charged >= plan.minimum_fare_cents.min(plan.cap_cents.unwrap_or(i64::MAX)));
            prop_assert!(charged <= plan.cap_cents.unwrap_or(i64::MAX));
            if plan.discounts.is_empty() {
                prop_assert_eq!(p.discount_cents, 0);
            }
        }

        #[test]
        fn a_longer_or_further_ride_never_costs_less(
            plan in any_plan(),
            usage in any_usage(),
            more_ms in 0i64..3_600_000,
            more_paused_ms in 0i64..3_600_000,
            more_m in 0i64..10_000,
        ) {
            // Fixed discounts are what they are; percentages scale with the price, so the order
            // holds with both.
            let longer = Usage {
                riding_ms: usage.riding_ms + more_ms,
                paused_ms: usage.paused_ms + more_paused_ms,
                distance_m: usage.distance_m + more_m,
            };
            prop_assert!(price(&plan, longer).total_cents >= price(&plan, usage).total_cents);
        }

        #[test]
        fn the_same_ride_always_costs_the_same(plan in any_plan(), usage in any_usage()) {
            prop_assert_eq!(price(&plan, usage), price(&plan, usage));
        }
    }
}
