//! Permissions of partner keys and integrations: the Levy Fleets seed's list, its read-only
//! defaults for new keys, and EVCare's access bundles as named sets of them.

use schemas::integrations::{AccessBundle, Permission};

use Permission::*;

/// Every permission, in the seed's order (ours beside its kin).
pub const ALL: [Permission; 14] = Permission::ALL;

/// What a new key gets unless told otherwise: read-only, as the seed's defaults.
pub const DEFAULTS: [Permission; 5] = [VehiclesRead, RidesRead, CustomersRead, ZonesRead, PricingRead];

/// The permissions an access bundle stands for. The bundles' descriptions are EVCare's; this
/// table is the one place they become permissions (recorded in docs/ARCHITECTURE.md).
pub fn bundle(bundle: AccessBundle) -> &'static [Permission] {
    match bundle {
        // Organisation-wide management and subordinate accounts: everything but webhooks, which
        // an organisation's integrators manage through their own keys.
        AccessBundle::OrganizationAccess => &[
            VehiclesRead,
            VehiclesWrite,
            VehiclesCommands,
            VehiclesMaintenance,
            RidesRead,
            RidesWrite,
            CustomersRead,
            CustomersWrite,
            WalletRead,
            WalletWrite,
            ZonesRead,
            PricingRead,
        ],
        // Fleet-scoped vehicles, their commands and maintenance, and the rides on them.
        AccessBundle::FleetManagerAccess => {
            &[VehiclesRead, VehiclesWrite, VehiclesCommands, VehiclesMaintenance, RidesRead, ZonesRead, PricingRead]
        }
        // A client's own self-service: finding vehicles, riding, paying.
        AccessBundle::ClientAccess => &[VehiclesRead, RidesRead, RidesWrite, WalletRead, ZonesRead, PricingRead],
        // The union of all.
        AccessBundle::AllAccess => &ALL,
    }
}

/// What a bundle grants beyond the partner permissions (EVCare's portal features).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    /// Map external users to voltbus users and open their browser sessions (`/auth/exchange`).
    SignInBridge,
    /// Open the hosted portal's embed page.
    EmbedPortal,
    /// A fleet manager's maintenance tickets, at the workshops the integration may choose.
    MaintenanceTickets,
    /// Tickets drivers open.
    DriverTickets,
}

/// The capabilities an access bundle grants: the sign-in bridge and driver tickets are the client
/// bundle's, maintenance and driver tickets the fleet manager's, and ALL_ACCESS is the union with
/// the embed portal.
pub fn capabilities(bundle: AccessBundle) -> &'static [Capability] {
    match bundle {
        AccessBundle::ClientAccess => &[Capability::SignInBridge, Capability::DriverTickets],
        AccessBundle::FleetManagerAccess => &[Capability::MaintenanceTickets, Capability::DriverTickets],
        AccessBundle::AllAccess => &[
            Capability::SignInBridge,
            Capability::EmbedPortal,
            Capability::MaintenanceTickets,
            Capability::DriverTickets,
        ],
        AccessBundle::OrganizationAccess => &[],
    }
}

/// A permission named as the seed names it (`vehicles:read`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown permission `{0}`")]
pub struct UnknownPermission(pub String);

/// Reads a permission's name.
pub fn parse(name: &str) -> Result<Permission, UnknownPermission> {
    serde_json::from_value(serde_json::Value::String(name.to_owned())).map_err(|_| UnknownPermission(name.to_owned()))
}

/// Whether `granted` allows `needed`.
pub fn allows(granted: &[Permission], needed: Permission) -> bool {
    granted.contains(&needed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_names_parse_and_nothing_else() {
        let names = [
            "vehicles:read",
            "vehicles:write",
            "vehicles:commands",
            "vehicles:maintenance",
            "rides:read",
            "rides:write",
            "customers:read",
            "customers:write",
            "wallet:read",
            "wallet:write",
            "zones:read",
            "pricing:read",
            "webhooks:read",
            "webhooks:write",
        ];
        let parsed: Vec<Permission> = names.iter().map(|n| parse(n).unwrap()).collect();
        assert_eq!(parsed, ALL);
        for bad in ["vehicles:delete", "VEHICLES:READ", "zones:write", ""] {
            assert_eq!(parse(bad), Err(UnknownPermission(bad.to_owned())));
        }
    }

    #[test]
    fn defaults_are_read_only() {
        for permission in DEFAULTS {
            let name = serde_json::to_value(permission).unwrap();
            assert!(name.as_str().unwrap().ends_with(":read"), "{name}");
        }
    }

    #[test]
    fn bundles_are_subsets_of_all_and_all_access_is_the_union() {
        for b in [AccessBundle::OrganizationAccess, AccessBundle::FleetManagerAccess, AccessBundle::ClientAccess] {
            assert!(bundle(b).iter().all(|p| ALL.contains(p)));
            assert!(bundle(b).len() < ALL.len(), "{b:?} is narrower than ALL_ACCESS");
        }
        assert_eq!(bundle(AccessBundle::AllAccess), &ALL);
        assert!(!allows(bundle(AccessBundle::ClientAccess), CustomersWrite));
        assert!(allows(bundle(AccessBundle::FleetManagerAccess), VehiclesWrite));
    }
}
