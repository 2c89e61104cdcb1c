//! The usage fields of Zuora's REST API (`ProxyCreateUsage` in Zuora's OpenAPI spec).

use std::collections::BTreeSet;

use crate::destination::FieldKind::{DateTime, Number, Text};
use crate::rules::{Cell, CellColumn, RejectCode, Rejection};
use crate::zuora_common::ColumnDefault::{Empty, RowKey};
use crate::zuora_common::prepare::PreparedBatch;
use crate::zuora_common::{ColumnSet, CustomFields, LayoutColumn};

/// Lengths from the spec; AccountNumber ≤ 50 and UniqueKey ≤ 50 from Zuora's documentation.
const REST: &[LayoutColumn] = &[
    crate::zuora_common::layout_column("AccountNumber", Text, false, Some(50), Empty),
    crate::zuora_common::layout_column("AccountId", Text, false, Some(32), Empty),
    crate::zuora_common::layout_column("UOM", Text, true, None, Empty),
    crate::zuora_common::layout_column("Quantity", Number, true, None, Empty),
    crate::zuora_common::layout_column("StartDateTime", DateTime, true, None, Empty),
    crate::zuora_common::layout_column("EndDateTime", DateTime, false, None, Empty),
    crate::zuora_common::layout_column("Description", Text, false, Some(200), Empty),
    crate::zuora_common::layout_column("UniqueKey", Text, false, Some(50), RowKey),
    crate::zuora_common::layout_column("SubscriptionNumber", Text, false, Some(100), Empty),
    crate::zuora_common::layout_column("SubscriptionId", Text, false, Some(32), Empty),
    crate::zuora_common::layout_column("ChargeNumber", Text, false, Some(50), Empty),
    crate::zuora_common::layout_column("ChargeId", Text, false, None, Empty),
    crate::zuora_common::layout_column("ProductRatePlanChargeNumber", Text, false, None, Empty),
];

/// REST usage fields; custom fields end in `__c`.
pub const REST_COLUMNS: ColumnSet = ColumnSet {
    columns: REST,
    custom: CustomFields::Suffix("__c"),
};

/// Field rules, plus what only a Zuora row needs: an account, and a known unit of measure
/// (when the tenant's units were loaded and the check is on).
pub(crate) fn verdicts(
    prepared: &PreparedBatch,
    rows: usize,
    units: Option<&BTreeSet<String>>,
) -> Vec<Option<Rejection>> {
    let column = |name: &str| {
        prepared
            .columns
            .iter()
            .find(|(c, _)| c.spec.name == name)
            .and_then(|(_, cells)| cells.as_ref())
    };
    let (number, id, uom) = (column("AccountNumber"), column("AccountId"), column("UOM"));
    (0..rows)
        .map(|row| {
            if let Some(rejection) = &prepared.rejections[row] {
                return Some(rejection.clone());
            }
            let present = |cells: Option<&CellColumn>| cells.is_some_and(|c| matches!(c.get(row), Cell::Text(t) if !t.trim().is_empty()));
            if !present(number) && !present(id) {
                return Some(Rejection {
                    code: RejectCode::MissingField,
                    field: Some("AccountNumber".into()),
                    message: "one of AccountNumber or AccountId is required".into(),
                });
            }
            if let (Some(units), Some(Cell::Text(unit))) = (units, uom.map(|c| c.get(row)))
                && !units.contains(&unit.to_ascii_uppercase())
            {
                return Some(Rejection {
                    code: RejectCode::Destination("unknown_unit_of_measure".into()),
                    field: Some("UOM".into()),
                    message: format!("unit of measure `{unit}` is not defined in the Zuora tenant; Zuora would store the usage and never bill it"),
                });
            }
            None
        })
        .collect()
}
