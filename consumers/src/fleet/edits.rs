//! What a change does to a vehicle, and the names of the properties it changed, as
//! `VehicleChanged.changed_properties` reports them (`license_plate`, `custom_fields.color`,
//! `status`).

use schemas::vehicles::{MasterData, UpdateVehicle};

use super::Vehicle;

/// Master data properties by name, for reading and setting them alike.
fn master_fields(data: &mut MasterData) -> [(&'static str, &mut Option<String>); 7] {
    [
        ("vin", &mut data.vin),
        ("vehicle_number", &mut data.vehicle_number),
        ("license_plate", &mut data.license_plate),
        ("vehicle_type", &mut data.vehicle_type),
        ("brand", &mut data.brand),
        ("model", &mut data.model),
        ("telematics_unit_id", &mut data.telematics_unit_id),
    ]
}

/// Applies `update` to `vehicle`; the properties that changed (none: the update changed nothing).
pub(super) fn apply(vehicle: &mut Vehicle, update: &UpdateVehicle) -> Vec<String> {
    let mut changed = Vec::new();
    let mut given = update.master_data.clone();
    for ((name, held), (_, new)) in master_fields(&mut vehicle.master_data).into_iter().zip(master_fields(&mut given)) {
        if let Some(new) = new.take()
            && held.as_deref() != Some(new.as_str())
        {
            *held = Some(new);
            changed.push(name.to_owned());
        }
    }
    if let Some(transmission) = update.master_data.transmission
        && vehicle.master_data.transmission != Some(transmission)
    {
        vehicle.master_data.transmission = Some(transmission);
        changed.push("transmission".to_owned());
    }
    for (name, value) in &update.set_custom_fields {
        if vehicle.custom_fields.get(name) != Some(value) {
            vehicle.custom_fields.insert(name.clone(), value.clone());
            changed.push(format!("custom_fields.{name}"));
        }
    }
    for name in &update.remove_custom_fields {
        if vehicle.custom_fields.remove(name).is_some() {
            changed.push(format!("custom_fields.{name}"));
        }
    }
    if let Some(status) = update.status
        && status != vehicle.status
    {
        vehicle.status = status;
        changed.push("status".to_owned());
    }
    changed
}

/// The properties a new vehicle has, as a creation reports them.
pub(super) fn properties_of(vehicle: &Vehicle) -> Vec<String> {
    let mut data = vehicle.master_data.clone();
    let mut names: Vec<String> =
        master_fields(&mut data).into_iter().filter(|(_, v)| v.is_some()).map(|(n, _)| n.to_owned()).collect();
    if vehicle.master_data.transmission.is_some() {
        names.push("transmission".to_owned());
    }
    names.extend(vehicle.custom_fields.keys().map(|name| format!("custom_fields.{name}")));
    names.push("status".to_owned());
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::vehicles::OperationStatus;
    use serde_json::json;

    fn vehicle() -> Vehicle {
        Vehicle {
            id: uuid::Uuid::nil(),
            subaccount_id: uuid::Uuid::nil(),
            master_data: MasterData {
                vin: Some("WVWZZZ1JZXW000001".into()),
                license_plate: Some("B-VB 1".into()),
                ..MasterData::default()
            },
            custom_fields: [("color".to_owned(), json!("red"))].into(),
            capabilities: Vec::new(),
            status: OperationStatus::Available,
            state: Default::default(),
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn only_what_differs_is_a_change() {
        let mut v = vehicle();
        let update = UpdateVehicle {
            master_data: MasterData {
                license_plate: Some("B-VB 1".into()),
                brand: Some("VW".into()),
                ..MasterData::default()
            },
            set_custom_fields: [("color".to_owned(), json!("red")), ("seats".to_owned(), json!(2))].into(),
            remove_custom_fields: vec!["missing".into()],
            status: Some(OperationStatus::Maintenance),
            ..UpdateVehicle::default()
        };
        assert_eq!(apply(&mut v, &update), ["brand", "custom_fields.seats", "status"]);
        assert_eq!(v.master_data.brand.as_deref(), Some("VW"));
        assert!(apply(&mut v, &update).is_empty(), "the same update again changes nothing");
    }

    #[test]
    fn a_new_vehicle_reports_what_it_has() {
        assert_eq!(properties_of(&vehicle()), ["vin", "license_plate", "custom_fields.color", "status"]);
    }
}
