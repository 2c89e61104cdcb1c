//! The comparison itself, in DataFusion SQL over the three local files (see the module
//! documentation of [`super`]), and the report's numbers read from its result.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use serde::Serialize;

use super::class::{Class, Period};
use crate::error::{DinmoError, Result};

const CONTEXT: &str = "reconciling";

/// The local files compared.
#[derive(Debug)]
pub struct Inputs<'a> {
    /// The expected records ([`super::expected`]).
    pub expected: &'a Path,
    /// The held records read for the period, and those read by id.
    pub held: &'a [&'a Path],
    /// Whether the destination could be read at all.
    pub readable: bool,
    /// The model's new rows (with the destination's field names), if any.
    pub new_rows: Option<&'a Path>,
    /// The model's changed rows, if any.
    pub changed_rows: Option<&'a Path>,
    /// The keys of the gone rows, as hex.
    pub gone: Vec<String>,
    /// The destination's account, unit, quantity and start fields.
    pub roles: dinmo_connectors::FieldRoles,
    /// The dates compared (delivered and new rows).
    pub period: Period,
    /// The dates whose records the destination holds count as extra when dinmo did not
    /// send them: the period asked for, else the dates of the rows delivered.
    pub extra_period: Period,
}

/// A row of the comparison ([`classify`]'s output, and `--out`'s).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Compared {
    /// Its class.
    pub class: Class,
    /// The model row's key (`_dinmo_key`); none for an extra record.
    pub row_key: Option<String>,
    /// The destination's record id (what dinmo recorded, or what the destination holds).
    pub record_id: Option<String>,
    /// The account as delivered (as held, for an extra record).
    pub account: Option<String>,
    /// The unit, likewise.
    pub unit: Option<String>,
    /// The usage date, likewise.
    pub start_date: Option<String>,
    /// The quantity delivered.
    pub delivered_quantity: Option<String>,
    /// The quantity the destination holds.
    pub zuora_quantity: Option<String>,
    /// The model's quantity now (changed and new rows).
    pub model_quantity: Option<String>,
    /// The account the destination holds.
    pub zuora_account: Option<String>,
    /// The unit it holds.
    pub zuora_unit: Option<String>,
    /// The usage date it holds.
    pub zuora_start_date: Option<String>,
    /// `Pending` or `Processed` (a bill run took it), as the destination says.
    pub zuora_status: Option<String>,
    /// The file, import or upload that carried it.
    pub destination_id: Option<String>,
    /// The run that delivered it.
    pub run_id: Option<String>,
}

/// The columns of [`Compared`], in order.
pub const COLUMNS: [&str; 15] = [
    "class",
    "row_key",
    "record_id",
    "account",
    "unit",
    "start_date",
    "delivered_quantity",
    "zuora_quantity",
    "model_quantity",
    "zuora_account",
    "zuora_unit",
    "zuora_start_date",
    "zuora_status",
    "destination_id",
    "run_id",
];

/// `name` quoted as a SQL identifier.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A row key column as hex text, however the file stores it.
fn hex_key(data_type: &DataType) -> String {
    let key = ident(dinmo_connectors::ROW_KEY_COLUMN);
    match data_type {
        DataType::Binary | DataType::FixedSizeBinary(_) | DataType::LargeBinary => format!("encode({key}, 'hex')"),
        _ => format!("cast({key} as varchar)"),
    }
}

/// Registers the model's rows at `path` as `name` (row key, account, unit, day, quantity),
/// or an empty table when there are none.
async fn register_model_rows(
    ctx: &SessionContext,
    name: &str,
    path: Option<&Path>,
    roles: &dinmo_connectors::FieldRoles,
) -> Result<()> {
    let empty = "select cast(null as varchar) as row_key, cast(null as varchar) as account, cast(null as varchar) as unit, cast(null as varchar) as day, cast(null as decimal(38,9)) as q where false";
    let sql = match path.filter(|p| p.exists()) {
        None => empty.to_string(),
        Some(path) => {
            let source = format!("{name}_file");
            ctx.register_parquet(&source, path.display().to_string(), ParquetReadOptions::default())
                .await
                .map_err(DinmoError::engine(CONTEXT))?;
            let schema = ctx
                .table(&source)
                .await
                .map_err(DinmoError::engine(CONTEXT))?
                .schema()
                .as_arrow()
                .clone();
            let text = |field: &str| match schema.field_with_name(field) {
                Ok(_) => format!("cast({} as varchar)", ident(field)),
                Err(_) => "cast(null as varchar)".to_string(),
            };
            let key = schema
                .field_with_name(dinmo_connectors::ROW_KEY_COLUMN)
                .map(|f| hex_key(f.data_type()))
                .unwrap_or_else(|_| "cast(null as varchar)".into());
            let quantity = match schema.field_with_name(roles.quantity) {
                Ok(_) => format!("try_cast({} as decimal(38,9))", ident(roles.quantity)),
                Err(_) => "cast(null as decimal(38,9))".to_string(),
            };
            format!(
                "select {key} as row_key, {} as account, {} as unit, substr({}, 1, 10) as day, {quantity} as q from {source}",
                text(roles.account),
                text(roles.unit),
                text(roles.start),
            )
        }
    };
    let frame = ctx.sql(&sql).await.map_err(DinmoError::engine(CONTEXT))?;
    ctx.register_table(name, frame.into_view())
        .map_err(DinmoError::engine(CONTEXT))?;
    Ok(())
}

/// `day` within the period, as SQL: every row when the period is open at both ends (a row
/// without a date included), else rows whose date is within it.
fn in_period(column: &str, period: &Period) -> String {
    let mut conditions = Vec::new();
    if let Some(from) = period.from {
        conditions.push(format!("{column} >= '{from}'"));
    }
    if let Some(to) = period.to {
        conditions.push(format!("{column} <= '{to}'"));
    }
    match conditions.is_empty() {
        true => "true".to_string(),
        false => conditions.join(" and "),
    }
}

/// `frame` written to the Parquet file `path`, then registered as `name` (a result read more
/// than once is computed once).
async fn materialise_as(ctx: &SessionContext, name: &str, sql: &str, path: &Path) -> Result<()> {
    let frame = ctx.sql(sql).await.map_err(DinmoError::engine(CONTEXT))?;
    write_one_file(frame, path).await?;
    ctx.register_parquet(name, path.display().to_string(), ParquetReadOptions::default())
        .await
        .map_err(DinmoError::engine(CONTEXT))
}

/// `frame` written to one Parquet file at `path`.
pub async fn write_one_file(frame: datafusion::dataframe::DataFrame, path: &Path) -> Result<()> {
    frame
        .write_parquet(
            &path.display().to_string(),
            datafusion::dataframe::DataFrameWriteOptions::new().with_single_file_output(true),
            None,
        )
        .await
        .map(|_| ())
        .map_err(DinmoError::engine(format!("writing {}", path.display())))
}

/// Registers `sql` as the view `name`.
async fn view(ctx: &SessionContext, name: &str, sql: &str) -> Result<()> {
    let frame = ctx.sql(sql).await.map_err(DinmoError::engine(CONTEXT))?;
    ctx.register_table(name, frame.into_view())
        .map_err(DinmoError::engine(CONTEXT))
        .map(|_| ())
}

/// Registers every input, matches delivered records with held ones (written once to `work`),
/// and registers the view `compared_rows` (one row per [`Compared`]).
///
/// Matching, each step among the records the steps before left: by record id, then by the key
/// sent (one held record for a delivered one, should Zuora hold two with that key), then by
/// values, the n-th delivered record of some account, unit, date and quantity with the n-th
/// held one — only for delivered records dinmo knows no id of.
pub async fn register(ctx: &SessionContext, inputs: &Inputs<'_>, work: &Path) -> Result<()> {
    ctx.register_parquet(
        "e",
        inputs.expected.display().to_string(),
        ParquetReadOptions::default(),
    )
    .await
    .map_err(DinmoError::engine(CONTEXT))?;
    let mut held = Vec::new();
    for (n, path) in inputs.held.iter().enumerate() {
        let name = format!("h{n}");
        ctx.register_parquet(&name, path.display().to_string(), ParquetReadOptions::default())
            .await
            .map_err(DinmoError::engine(CONTEXT))?;
        held.push(format!("select * from {name}"));
    }
    let held = held.join(" union all ");
    view(
        ctx,
        "hn",
        &format!(
            "select id, account, unit, substr(start, 1, 10) as day, try_cast(quantity as decimal(38,9)) as q, status, unique_key from ({held})"
        ),
    )
    .await?;
    view(
        ctx,
        "en",
        &format!(
            "select record_key, row_key, record_id, unique_key, account, unit, day, try_cast(quantity as decimal(38,9)) as q, destination_id, run_id from e where {}",
            in_period("day", &inputs.period)
        ),
    )
    .await?;
    materialise_as(
        ctx,
        "m1",
        "select en.record_key, hn.id from en join hn on en.record_id = hn.id",
        &work.join("matched_by_id.parquet"),
    )
    .await?;
    materialise_as(
        ctx,
        "m12",
        "select record_key, id from m1 union all \
         select record_key, id from (select en.record_key, hn.id, row_number() over (partition by en.record_key order by hn.id) as n \
         from en join hn on en.unique_key = hn.unique_key \
         where not exists (select 1 from m1 where m1.record_key = en.record_key) \
         and not exists (select 1 from m1 where m1.id = hn.id)) where n = 1",
        &work.join("matched_by_key.parquet"),
    )
    .await?;
    materialise_as(
        ctx,
        "matched",
        "select record_key, id from m12 union all \
         select eu.record_key, hu.id from \
         (select record_key, account, upper(unit) as unit, day, q, row_number() over (partition by account, upper(unit), day, q order by record_key) as n \
          from en where record_id is null and not exists (select 1 from m12 where m12.record_key = en.record_key)) eu \
         join (select id, account, upper(unit) as unit, day, q, row_number() over (partition by account, upper(unit), day, q order by id) as n \
          from hn where not exists (select 1 from m12 where m12.id = hn.id)) hu \
         on eu.account = hu.account and eu.unit = hu.unit and eu.day = hu.day and eu.q = hu.q and eu.n = hu.n",
        &work.join("matched.parquet"),
    )
    .await?;
    register_model_rows(ctx, "new_rows", inputs.new_rows, &inputs.roles).await?;
    register_model_rows(ctx, "changed_rows", inputs.changed_rows, &inputs.roles).await?;
    let gone = Arc::new(Schema::new(vec![Field::new("row_key", DataType::Utf8, true)]));
    let batch = RecordBatch::try_new(
        Arc::clone(&gone),
        vec![Arc::new(StringArray::from_iter_values(inputs.gone.iter()))],
    )
    .map_err(DinmoError::arrow(CONTEXT))?;
    let table = MemTable::try_new(gone, vec![vec![batch]]).map_err(DinmoError::engine(CONTEXT))?;
    ctx.register_table("gone_keys", Arc::new(table))
        .map_err(DinmoError::engine(CONTEXT))?;

    let model_class =
        "case when c.row_key is not null then 'changed' when g.row_key is not null then 'gone' else '{held}' end";
    let delivered_class = match inputs.readable {
        true => format!(
            "case when hn.id is null then 'missing' \
             when en.account = hn.account and upper(en.unit) = upper(hn.unit) and en.day = hn.day and en.q = hn.q then {} \
             else 'different' end",
            model_class.replace("{held}", "equal")
        ),
        false => model_class.replace("{held}", "unverified"),
    };
    let text = "cast(null as varchar)";
    let number = "cast(null as decimal(38,9))";
    view(
        ctx,
        "scope",
        &format!(
            "select account, unit from en union select account, unit from new_rows where {}",
            in_period("day", &inputs.period)
        ),
    )
    .await?;
    let extra = match inputs.readable {
        true => format!(
            "union all select 'extra' as class, {text} as row_key, hn.id as record_id, hn.account as account, hn.unit as unit, hn.day as start_date, \
             {number} as delivered_quantity, hn.q as zuora_quantity, {number} as model_quantity, hn.account as zuora_account, hn.unit as zuora_unit, \
             hn.day as zuora_start_date, hn.status as zuora_status, {text} as destination_id, {text} as run_id \
             from hn where {} and not exists (select 1 from matched where matched.id = hn.id) \
             and hn.account in (select account from scope) and upper(hn.unit) in (select upper(unit) from scope)",
            in_period("hn.day", &inputs.extra_period)
        ),
        false => String::new(),
    };
    let compared = format!(
        "select {delivered_class} as class, en.row_key, coalesce(hn.id, en.record_id) as record_id, en.account, en.unit, en.day as start_date, \
         en.q as delivered_quantity, hn.q as zuora_quantity, c.q as model_quantity, hn.account as zuora_account, hn.unit as zuora_unit, \
         hn.day as zuora_start_date, hn.status as zuora_status, en.destination_id, en.run_id \
         from en left join matched m on en.record_key = m.record_key left join hn on m.id = hn.id \
         left join changed_rows c on en.row_key = c.row_key left join gone_keys g on en.row_key = g.row_key \
         {extra} \
         union all select 'new' as class, n.row_key as row_key, {text} as record_id, n.account as account, n.unit as unit, n.day as start_date, \
         {number} as delivered_quantity, {number} as zuora_quantity, n.q as model_quantity, {text} as zuora_account, {text} as zuora_unit, \
         {text} as zuora_start_date, {text} as zuora_status, {text} as destination_id, {text} as run_id \
         from new_rows n where {}",
        in_period("n.day", &inputs.period)
    );
    view(ctx, "compared_rows", &compared).await
}

/// Writes `compared_rows` to the Parquet file `path` and registers it as `compared`.
pub async fn materialise(ctx: &SessionContext, path: &Path) -> Result<()> {
    materialise_as(
        ctx,
        "compared",
        &format!("select {} from compared_rows", COLUMNS.join(", ")),
        path,
    )
    .await
}

/// The rows of `sql`, each column as text.
pub async fn texts(ctx: &SessionContext, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
    let batches = ctx
        .sql(sql)
        .await
        .map_err(DinmoError::engine(CONTEXT))?
        .collect()
        .await
        .map_err(DinmoError::engine(CONTEXT))?;
    let mut rows = Vec::new();
    for batch in batches {
        let columns: Vec<_> = batch
            .columns()
            .iter()
            .map(|c| cast(c, &DataType::Utf8).map_err(DinmoError::arrow(CONTEXT)))
            .collect::<Result<_>>()?;
        for row in 0..batch.num_rows() {
            rows.push(
                columns
                    .iter()
                    .map(|c| {
                        let c = c.as_string::<i32>();
                        c.is_valid(row).then(|| number_text(c.value(row)))
                    })
                    .collect(),
            );
        }
    }
    Ok(rows)
}

/// A decimal's text without trailing zeros (`12.500000000` → `12.5`); other text as it is.
fn number_text(text: &str) -> String {
    let numeric = !text.is_empty() && text.chars().all(|c| c.is_ascii_digit() || c == '.' || c == '-');
    match numeric && text.contains('.') {
        true => text.trim_end_matches('0').trim_end_matches('.').to_string(),
        false => text.to_string(),
    }
}

/// The rows of `compared` a query selects, as [`Compared`] values.
pub async fn rows(ctx: &SessionContext, condition: &str, limit: usize) -> Result<Vec<Compared>> {
    let found = texts(
        ctx,
        &format!(
            "select {} from compared where {condition} order by account, unit, start_date, row_key, record_id limit {limit}",
            COLUMNS.join(", ")
        ),
    )
    .await?;
    Ok(found
        .into_iter()
        .filter_map(|mut row| {
            let mut take = |i: usize| row.get_mut(i).and_then(Option::take);
            Some(Compared {
                class: Class::parse(&take(0)?)?,
                row_key: take(1),
                record_id: take(2),
                account: take(3),
                unit: take(4),
                start_date: take(5),
                delivered_quantity: take(6),
                zuora_quantity: take(7),
                model_quantity: take(8),
                zuora_account: take(9),
                zuora_unit: take(10),
                zuora_start_date: take(11),
                zuora_status: take(12),
                destination_id: take(13),
                run_id: take(14),
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, RecordBatch, StringArray};

    use super::*;

    fn write(path: &Path, schema: arrow::datatypes::SchemaRef, rows: &[Vec<Option<&str>>]) {
        let columns: Vec<ArrayRef> = (0..schema.fields().len())
            .map(|c| Arc::new(StringArray::from_iter(rows.iter().map(|r| r[c]))) as ArrayRef)
            .collect();
        let batch = RecordBatch::try_new(Arc::clone(&schema), columns).unwrap();
        let mut writer =
            parquet::arrow::ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema, None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
    }

    /// record_key, row_key, record_id, unique_key, account, unit, day, quantity.
    fn delivered(
        key: &str,
        id: Option<&'static str>,
        account: &'static str,
        day: &'static str,
        quantity: &'static str,
    ) -> Vec<Option<&'static str>> {
        let key: &'static str = Box::leak(key.to_string().into_boxed_str());
        vec![
            Some(key),
            Some(key),
            id,
            Some(key),
            Some(account),
            Some("GB"),
            Some(day),
            Some(quantity),
            None,
            Some("run"),
        ]
    }

    /// id, account, unit, start, quantity, status, unique_key, import_id.
    fn held(
        id: &'static str,
        account: &'static str,
        start: &'static str,
        quantity: &'static str,
        key: Option<&'static str>,
    ) -> Vec<Option<&'static str>> {
        vec![
            Some(id),
            Some(account),
            Some("gb"),
            Some(start),
            Some(quantity),
            Some("Pending"),
            key,
            None,
        ]
    }

    async fn classes(
        period: Period,
        extra_period: Period,
        delivered_rows: &[Vec<Option<&str>>],
        held_rows: &[Vec<Option<&str>>],
    ) -> Vec<(String, String)> {
        let dir = tempfile::tempdir().unwrap();
        let (e, h) = (dir.path().join("e.parquet"), dir.path().join("h.parquet"));
        write(&e, super::super::expected::schema(), delivered_rows);
        write(&h, dinmo_connectors::holdings_schema(), held_rows);
        let ctx = SessionContext::new();
        let inputs = Inputs {
            expected: &e,
            held: &[&h],
            readable: true,
            new_rows: None,
            changed_rows: None,
            gone: Vec::new(),
            roles: dinmo_connectors::FieldRoles {
                account: "AccountNumber",
                unit: "UOM",
                quantity: "Quantity",
                start: "StartDateTime",
            },
            period,
            extra_period,
        };
        register(&ctx, &inputs, dir.path()).await.unwrap();
        materialise(&ctx, &dir.path().join("compared.parquet")).await.unwrap();
        texts(
            &ctx,
            "select class, coalesce(row_key, record_id) from compared order by 2, 1",
        )
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r[0].clone().unwrap(), r[1].clone().unwrap()))
        .collect()
    }

    fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
        expected.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[tokio::test]
    async fn records_match_by_id_then_key_then_values_one_for_one() {
        let found = classes(
            Period::default(),
            Period::default(),
            &[
                // By id: held with another quantity.
                delivered("k1", Some("r1"), "A-1", "2026-01-05", "10"),
                // By key (an import's row): held as sent, the unit spelled otherwise.
                delivered("k2", None, "A-1", "2026-01-05", "11"),
                // By values, twice the same values: two held records, one each.
                delivered("k3", None, "A-2", "2026-01-05", "12"),
                delivered("k4", None, "A-2", "2026-01-05", "12"),
                // Its id is not held: missing, even though a record with its values is.
                delivered("k5", Some("r5"), "A-3", "2026-01-05", "13"),
            ],
            &[
                held("r1", "A-1", "2026-01-05T00:00:00", "10.5", Some("k1")),
                held("x2", "A-1", "2026-01-05", "11.000", Some("k2")),
                held("x3", "A-2", "2026-01-05T08:00:00+02:00", "12", None),
                held("x4", "A-2", "2026-01-05", "12", None),
                held("x5", "A-3", "2026-01-05", "13", None),
                // Another account's record: not this sync's business.
                held("x6", "B-9", "2026-01-05", "1", None),
            ],
        )
        .await;
        assert_eq!(
            found,
            pairs(&[
                ("different", "k1"),
                ("equal", "k2"),
                ("equal", "k3"),
                ("equal", "k4"),
                ("missing", "k5"),
                ("extra", "x5"),
            ])
        );
    }

    #[tokio::test]
    async fn only_the_dates_asked_for_are_compared() {
        let day = |d: &str| Some(chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap());
        let period = Period {
            from: day("2026-01-06"),
            to: day("2026-01-06"),
        };
        let found = classes(
            period.clone(),
            period,
            &[
                delivered("k1", Some("r1"), "A-1", "2026-01-05", "10"),
                delivered("k2", Some("r2"), "A-1", "2026-01-06", "10"),
            ],
            &[
                held("r2", "A-1", "2026-01-06", "10", None),
                held("x1", "A-1", "2026-01-05", "3", None),
                held("x2", "A-1", "2026-01-06", "4", None),
            ],
        )
        .await;
        assert_eq!(found, pairs(&[("equal", "k2"), ("extra", "x2")]));
    }
}
