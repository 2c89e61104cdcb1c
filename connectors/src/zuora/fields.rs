//! The usage fields of Zuora's REST API (`ProxyCreateUsage` in Zuora's OpenAPI spec).

use crate::destination::FieldKind::{DateTime, Number, Text};
use crate::zuora_file::ColumnDefault::{Empty, RowKey};
use crate::zuora_file::{ColumnSet, CustomFields, LayoutColumn};

/// Lengths from the spec; AccountNumber ≤ 50 and UniqueKey ≤ 50 from Zuora's documentation.
const REST: &[LayoutColumn] = &[
    crate::zuora_file::layout_column("AccountNumber", Text, false, Some(50), Empty),
    crate::zuora_file::layout_column("AccountId", Text, false, Some(32), Empty),
    crate::zuora_file::layout_column("UOM", Text, true, None, Empty),
    crate::zuora_file::layout_column("Quantity", Number, true, None, Empty),
    crate::zuora_file::layout_column("StartDateTime", DateTime, true, None, Empty),
    crate::zuora_file::layout_column("EndDateTime", DateTime, false, None, Empty),
    crate::zuora_file::layout_column("Description", Text, false, Some(200), Empty),
    crate::zuora_file::layout_column("UniqueKey", Text, false, Some(50), RowKey),
    crate::zuora_file::layout_column("SubscriptionNumber", Text, false, Some(100), Empty),
    crate::zuora_file::layout_column("SubscriptionId", Text, false, Some(32), Empty),
    crate::zuora_file::layout_column("ChargeNumber", Text, false, Some(50), Empty),
    crate::zuora_file::layout_column("ChargeId", Text, false, None, Empty),
    crate::zuora_file::layout_column("ProductRatePlanChargeNumber", Text, false, None, Empty),
];

/// REST usage fields; custom fields end in `__c`.
pub const REST_COLUMNS: ColumnSet = ColumnSet {
    columns: REST,
    custom: CustomFields::Suffix("__c"),
};
