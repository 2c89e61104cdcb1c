//! The column types a source's `schema:` pins, read by DataFusion's own SQL type names (the
//! names a model's `CAST` takes), so a pinned type means what it means in the model's SQL.

use std::collections::BTreeMap;

use arrow::datatypes::DataType;
use datafusion::prelude::SessionContext;

use crate::error::{DinmoError, Result};
use crate::project::Source;

/// The pinned type of each column of `source.schema`; every unknown type is reported at once.
pub async fn pinned_types(ctx: &SessionContext, source: &Source) -> Result<BTreeMap<String, DataType>> {
    let mut types = BTreeMap::new();
    let mut problems = Vec::new();
    for (column, text) in &source.schema {
        match sql_type(ctx, text).await {
            Ok(ty) => {
                types.insert(column.clone(), ty);
            }
            Err(why) => problems.push(format!("column `{column}`: `{text}` {why}")),
        }
    }
    if problems.is_empty() {
        Ok(types)
    } else {
        Err(DinmoError::Source {
            source_name: source.name.clone(),
            location: source.location.clone(),
            message: format!("schema: {}", problems.join("; ")),
        })
    }
}

/// The Arrow type DataFusion gives `CAST(NULL AS text)`.
async fn sql_type(ctx: &SessionContext, text: &str) -> std::result::Result<DataType, String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, ' ' | '(' | ')' | ',' | '_');
    if text.trim().is_empty() || !text.chars().all(allowed) {
        return Err("is not a SQL type name (e.g. BIGINT, VARCHAR, DECIMAL(18, 4), TIMESTAMP)".into());
    }
    let sql = format!("SELECT CAST(NULL AS {text}) AS pinned");
    let plan = ctx
        .state()
        .create_logical_plan(&sql)
        .await
        .map_err(|e| format!("is not a type DataFusion knows: {e}"))?;
    let schema = plan.schema();
    match schema.fields().first() {
        Some(field) if schema.fields().len() == 1 => Ok(field.data_type().clone()),
        _ => Err("is not a single SQL type".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::TimeUnit;

    #[tokio::test]
    async fn reads_sql_type_names_as_datafusion_does() {
        let ctx = SessionContext::new();
        assert_eq!(sql_type(&ctx, "BIGINT").await, Ok(DataType::Int64));
        assert_eq!(sql_type(&ctx, "decimal(18, 4)").await, Ok(DataType::Decimal128(18, 4)));
        assert_eq!(
            sql_type(&ctx, "TIMESTAMP").await,
            Ok(DataType::Timestamp(TimeUnit::Nanosecond, None))
        );
        assert!(
            sql_type(&ctx, "VARCHAR")
                .await
                .is_ok_and(|t| matches!(t, DataType::Utf8 | DataType::Utf8View))
        );
        assert!(sql_type(&ctx, "NOSUCHTYPE").await.unwrap_err().contains("DataFusion"));
        assert!(sql_type(&ctx, "INT) AS x, 1; DROP TABLE t; --").await.is_err());
    }
}
