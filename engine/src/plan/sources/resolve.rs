//! A source's table schema from the schemas of its files: what can be unified without loss is
//! unified, everything else is refused with the column, both types and a file of each.
//!
//! Pure: no I/O. DataFusion reads each file in its own types and casts every column to the
//! type chosen here (its physical-expression adapter; a column a file lacks reads as null),
//! so no file is rewritten.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

use crate::error::SchemaProblem;

/// The columns of one file, as its format reads them.
#[derive(Debug, Clone)]
pub struct FileColumns {
    /// The file, for messages.
    pub file: String,
    /// Its schema.
    pub schema: Arc<Schema>,
}

/// How a source's files are unified.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// CSV or JSON: numbers are written as text, so an integer column that has a fraction in
    /// another file is a float column.
    pub text: bool,
    /// CSV: a file is text, so a column read as text in one file and as a number or date in
    /// another is text; and columns are matched by position, so every file must have the
    /// same header.
    pub csv: bool,
    /// The zone of timestamps written without one, when other files carry a zone.
    pub naive_zone: Option<Arc<str>>,
    /// Column types the project pins (the source's `schema:`); every file must fit them.
    pub pinned: BTreeMap<String, DataType>,
}

const PIN_HINT: &str =
    "fix the export, or pin the column's type in the source's `schema:` (e.g. VARCHAR to read both as text)";

/// One column as seen so far.
struct Column {
    name: String,
    /// The unified type so far.
    ty: DataType,
    /// Each distinct type seen, with the first file that had it.
    seen: Vec<(DataType, String)>,
    /// How many files have it.
    files: usize,
}

/// The table schema of `files` (in the order given; callers sort by path) under `rules`.
/// Columns keep the order of their first appearance; a column some files lack is nullable.
/// Every column is nullable: a later file may hold nulls an earlier one did not.
/// One pass over the files' columns, then one over the unified columns, each collecting
/// problems; the rules are `unify` and `fits`.
pub fn resolve(files: &[FileColumns], rules: &Rules) -> Result<Schema, Vec<SchemaProblem>> {
    let mut problems = Vec::new();
    let mut columns: Vec<Column> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    let mut conflicted: BTreeSet<String> = BTreeSet::new();
    let mut csv_header: Option<(Vec<String>, String)> = None;
    for file in files {
        if rules.csv {
            let header: Vec<String> = file.schema.fields().iter().map(|f| f.name().clone()).collect();
            match &csv_header {
                None => csv_header = Some((header, file.file.clone())),
                Some(first) if first.0 != header => {
                    problems.push(SchemaProblem::CsvHeader {
                        first: first.clone(),
                        second: (header, file.file.clone()),
                    });
                    return Err(problems);
                }
                Some(_) => {}
            }
        }
        for field in file.schema.fields() {
            let name = field.name();
            let ty = field.data_type();
            if let Some(pinned) = rules.pinned.get(name)
                && !fits(ty, pinned, rules)
            {
                problems.push(SchemaProblem::NotPinnedType {
                    column: name.clone(),
                    pinned: pinned.clone(),
                    found: ty.clone(),
                    file: file.file.clone(),
                });
            }
            let Some(&at) = index.get(name) else {
                index.insert(name.clone(), columns.len());
                columns.push(Column {
                    name: name.clone(),
                    ty: ty.clone(),
                    seen: vec![(ty.clone(), file.file.clone())],
                    files: 1,
                });
                continue;
            };
            let column = &mut columns[at];
            column.files += 1;
            if column.seen.iter().any(|(seen, _)| seen == ty) {
                continue;
            }
            column.seen.push((ty.clone(), file.file.clone()));
            if rules.pinned.contains_key(name) || conflicted.contains(name) {
                continue;
            }
            match unify(&column.ty, ty, rules) {
                Ok(unified) => column.ty = unified,
                Err(_) => {
                    // Name the first type this one cannot join, and why.
                    let (other, why) = column
                        .seen
                        .iter()
                        .find_map(|(seen, seen_in)| {
                            unify(seen, ty, rules)
                                .err()
                                .map(|why| ((seen.clone(), seen_in.clone()), why))
                        })
                        .unwrap_or_else(|| {
                            let why = unify(&column.ty, ty, rules).err().unwrap_or_default();
                            ((column.ty.clone(), column.seen[0].1.clone()), why)
                        });
                    problems.push(SchemaProblem::Conflict {
                        column: name.clone(),
                        first: other,
                        second: (ty.clone(), file.file.clone()),
                        why,
                    });
                    conflicted.insert(name.clone());
                }
            }
        }
    }
    for (name, pinned) in &rules.pinned {
        match index.get(name) {
            None if !files.is_empty() => problems.push(SchemaProblem::PinnedUnknown {
                column: name.clone(),
                columns: columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", "),
            }),
            None => {}
            Some(&at) => {
                columns[at].ty = pinned.clone();
                if columns[at].files < files.len() {
                    let missing = files
                        .iter()
                        .find(|f| f.schema.field_with_name(name).is_err())
                        .map(|f| f.file.clone())
                        .unwrap_or_default();
                    problems.push(SchemaProblem::PinnedMissing {
                        column: name.clone(),
                        file: missing,
                    });
                }
            }
        }
    }
    // One column named in two cases (`event_id`, then `EVENT_ID` in newer files) would read
    // as two columns, each null in the other's files: refused, naming a file of each. Two
    // cases in one file are two columns, as the writer meant.
    for (at, column) in columns.iter().enumerate() {
        for other in &columns[at + 1..] {
            if column.name.eq_ignore_ascii_case(&other.name)
                && !files.iter().any(|f| {
                    f.schema.field_with_name(&column.name).is_ok() && f.schema.field_with_name(&other.name).is_ok()
                })
            {
                problems.push(SchemaProblem::CaseDiffers {
                    first: (column.name.clone(), column.seen[0].1.clone()),
                    second: (other.name.clone(), other.seen[0].1.clone()),
                });
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Schema::new(
        columns
            .into_iter()
            .map(|c| Field::new(c.name, c.ty, true))
            .collect::<Vec<_>>(),
    ))
}

/// Whether values of `found` convert to `pinned` without loss: they unify to `pinned`
/// (strings and binaries in any encoding), or `pinned` is text and `found` a scalar.
pub fn fits(found: &DataType, pinned: &DataType, rules: &Rules) -> bool {
    if found == pinned {
        return true;
    }
    let found = value_type(found);
    if is_string(pinned) && (is_string(found) || is_scalar(found)) {
        return true;
    }
    match unify(found, pinned, rules) {
        Ok(unified) => {
            unified == *pinned
                || (is_string(&unified) && is_string(pinned))
                || (is_binary(&unified) && is_binary(pinned))
        }
        Err(_) => false,
    }
}

/// The common type of `a` and `b` that holds every value of both, or why there is none.
pub fn unify(a: &DataType, b: &DataType, rules: &Rules) -> Result<DataType, String> {
    use DataType::*;
    if a == b {
        return Ok(a.clone());
    }
    let (a, b) = (value_type(a), value_type(b));
    if a == b {
        return Ok(a.clone());
    }
    match (a, b) {
        (Null, other) | (other, Null) => Ok(other.clone()),
        _ if is_string(a) && is_string(b) => Ok(widest_string(a, b)),
        _ if rules.csv && (is_string(a) || is_string(b)) => Ok(if is_string(a) { a.clone() } else { b.clone() }),
        _ if is_binary(a) && is_binary(b) => Ok(widest_binary(a, b)),
        _ if is_integer(a) && is_integer(b) => unify_integers(a, b),
        (Float16 | Float32 | Float64, Float16 | Float32 | Float64) => {
            Ok(if a.primitive_width() >= b.primitive_width() {
                a.clone()
            } else {
                b.clone()
            })
        }
        (Float16 | Float32 | Float64, _) | (_, Float16 | Float32 | Float64) if is_integer(a) || is_integer(b) => {
            let (int, float) = if is_integer(a) { (a, b) } else { (b, a) };
            // A double holds every integer of up to 53 bits; a CSV or JSON number column
            // that has a fraction in one file is a float column in every file.
            if rules.text || integer_digits(int).is_some_and(|digits| digits <= 10) {
                Ok(
                    if matches!(float, Float64) || integer_digits(int).is_some_and(|d| d > 5) {
                        Float64
                    } else {
                        float.clone()
                    },
                )
            } else {
                Err(format!("{int} values may not all fit a {float}; {PIN_HINT}"))
            }
        }
        _ if is_decimal(a) && is_decimal(b) => unify_decimals(decimal_shape(a), decimal_shape(b)),
        _ if is_decimal(a) && is_integer(b) || is_integer(a) && is_decimal(b) => {
            let (int, decimal) = if is_integer(a) { (a, b) } else { (b, a) };
            let digits = integer_digits(int).unwrap_or(20);
            unify_decimals(decimal_shape(decimal), Some((digits, 0)))
        }
        (Timestamp(unit_a, zone_a), Timestamp(unit_b, zone_b)) => {
            let unit = finest(*unit_a, *unit_b);
            match (zone_a, zone_b) {
                (None, None) => Ok(Timestamp(unit, None)),
                (Some(x), Some(y)) if x == y => Ok(Timestamp(unit, Some(Arc::clone(x)))),
                (Some(x), Some(y)) if is_utc(x) && is_utc(y) => Ok(Timestamp(unit, Some("UTC".into()))),
                (Some(x), Some(y)) => match &rules.naive_zone {
                    Some(zone) => Ok(Timestamp(unit, Some(Arc::clone(zone)))),
                    None => Err(format!(
                        "the time zones differ ({x}, {y}); the instants are the same either way, so pin the column's type in the source's `schema:` (e.g. TIMESTAMPTZ) to read both in one zone"
                    )),
                },
                (Some(zone), None) | (None, Some(zone)) => match &rules.naive_zone {
                    Some(naive) => Ok(Timestamp(unit, Some(Arc::clone(naive)))),
                    None => Err(format!(
                        "one has a time zone ({zone}) and the other none, and dinmo cannot tell which zone the timestamps without one are in: set `naive_timestamp_zone` (e.g. UTC) in the source's options"
                    )),
                },
            }
        }
        (Date32, Date64) | (Date64, Date32) => Ok(Date64),
        (List(x), List(y)) | (LargeList(x), List(y)) | (List(x), LargeList(y)) | (LargeList(x), LargeList(y)) => {
            let item = unify(x.data_type(), y.data_type(), rules)?;
            let field = Arc::new(Field::new(x.name(), item, true));
            Ok(if matches!(a, LargeList(_)) || matches!(b, LargeList(_)) {
                LargeList(field)
            } else {
                List(field)
            })
        }
        _ => Err(format!("no type holds the values of both without loss; {PIN_HINT}")),
    }
}

/// The values' type of a dictionary-encoded column; other types as they are.
fn value_type(ty: &DataType) -> &DataType {
    match ty {
        DataType::Dictionary(_, values) => value_type(values),
        other => other,
    }
}

fn is_string(ty: &DataType) -> bool {
    matches!(ty, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

fn is_binary(ty: &DataType) -> bool {
    matches!(
        ty,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_)
    )
}

fn is_integer(ty: &DataType) -> bool {
    ty.is_integer()
}

fn is_decimal(ty: &DataType) -> bool {
    matches!(
        ty,
        DataType::Decimal32(..) | DataType::Decimal64(..) | DataType::Decimal128(..) | DataType::Decimal256(..)
    )
}

/// What can be read as text without loss when a pinned type says text.
fn is_scalar(ty: &DataType) -> bool {
    ty.is_integer()
        || ty.is_floating()
        || is_decimal(ty)
        || matches!(
            ty,
            DataType::Boolean
                | DataType::Date32
                | DataType::Date64
                | DataType::Timestamp(..)
                | DataType::Time32(_)
                | DataType::Time64(_)
        )
}

fn is_utc(zone: &str) -> bool {
    matches!(
        zone,
        "UTC" | "utc" | "Z" | "+00:00" | "+0000" | "00:00" | "Etc/UTC" | "GMT" | "Etc/GMT"
    )
}

fn widest_string(a: &DataType, b: &DataType) -> DataType {
    use DataType::*;
    match (a, b) {
        (Utf8View, _) | (_, Utf8View) => Utf8View,
        (LargeUtf8, _) | (_, LargeUtf8) => LargeUtf8,
        _ => Utf8,
    }
}

fn widest_binary(a: &DataType, b: &DataType) -> DataType {
    use DataType::*;
    match (a, b) {
        (BinaryView, _) | (_, BinaryView) => BinaryView,
        (LargeBinary, _) | (_, LargeBinary) => LargeBinary,
        _ => Binary,
    }
}

/// Decimal digits an integer type needs for its extremes.
fn integer_digits(ty: &DataType) -> Option<u8> {
    use DataType::*;
    Some(match ty {
        Int8 | UInt8 => 3,
        Int16 | UInt16 => 5,
        Int32 | UInt32 => 10,
        Int64 => 19,
        UInt64 => 20,
        _ => return None,
    })
}

fn unify_integers(a: &DataType, b: &DataType) -> Result<DataType, String> {
    use DataType::*;
    let bits = |ty: &DataType| ty.primitive_width().unwrap_or(8) * 8;
    let signed = |ty: &DataType| ty.is_signed_integer();
    let width = match (signed(a), signed(b)) {
        (true, true) | (false, false) => bits(a).max(bits(b)),
        // An unsigned type fits a signed one of twice its width.
        (true, false) => bits(a).max(bits(b) * 2),
        (false, true) => bits(b).max(bits(a) * 2),
    };
    let any_signed = signed(a) || signed(b);
    Ok(match (any_signed, width) {
        (true, 8) => Int8,
        (true, 16) => Int16,
        (true, 32) => Int32,
        (true, 64) => Int64,
        (false, 8) => UInt8,
        (false, 16) => UInt16,
        (false, 32) => UInt32,
        (false, 64) => UInt64,
        _ => {
            return Err(format!(
                "no integer type holds both {a} and {b}; pin the column's type in the source's `schema:` (e.g. DECIMAL(20, 0))"
            ));
        }
    })
}

/// (precision, scale) of a decimal type.
fn decimal_shape(ty: &DataType) -> Option<(u8, i8)> {
    match ty {
        DataType::Decimal32(p, s)
        | DataType::Decimal64(p, s)
        | DataType::Decimal128(p, s)
        | DataType::Decimal256(p, s) => Some((*p, *s)),
        _ => None,
    }
}

/// The decimal that holds both: the larger scale and the larger count of integer digits.
fn unify_decimals(a: Option<(u8, i8)>, b: Option<(u8, i8)>) -> Result<DataType, String> {
    let (Some((pa, sa)), Some((pb, sb))) = (a, b) else {
        return Err("not decimals".into());
    };
    let scale = sa.max(sb).max(0);
    let integer = (i16::from(pa) - i16::from(sa)).max(i16::from(pb) - i16::from(sb));
    let precision = integer + i16::from(scale);
    match u8::try_from(precision) {
        Ok(p) if p <= 38 => Ok(DataType::Decimal128(p, scale)),
        Ok(p) if p <= 76 => Ok(DataType::Decimal256(p, scale)),
        _ => Err(format!(
            "DECIMAL({pa}, {sa}) and DECIMAL({pb}, {sb}) together need {precision} digits, more than any decimal holds; {PIN_HINT}"
        )),
    }
}

fn finest(a: TimeUnit, b: TimeUnit) -> TimeUnit {
    let rank = |unit: TimeUnit| match unit {
        TimeUnit::Second => 0,
        TimeUnit::Millisecond => 1,
        TimeUnit::Microsecond => 2,
        TimeUnit::Nanosecond => 3,
    };
    if rank(a) >= rank(b) { a } else { b }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DataType::*;

    fn file(name: &str, fields: &[(&str, DataType)]) -> FileColumns {
        FileColumns {
            file: name.into(),
            schema: Arc::new(Schema::new(
                fields
                    .iter()
                    .map(|(n, t)| Field::new(*n, t.clone(), true))
                    .collect::<Vec<_>>(),
            )),
        }
    }

    fn dict(values: DataType) -> DataType {
        Dictionary(Box::new(Int32), Box::new(values))
    }

    fn one(a: DataType, b: DataType) -> Result<DataType, String> {
        unify(&a, &b, &Rules::default())
    }

    #[test]
    fn unifies_encodings_and_widens_without_loss() {
        assert_eq!(one(dict(Utf8), Utf8), Ok(Utf8));
        assert_eq!(one(dict(Utf8), Utf8View), Ok(Utf8View));
        assert_eq!(one(LargeUtf8, Utf8), Ok(LargeUtf8));
        assert_eq!(one(Binary, FixedSizeBinary(16)), Ok(Binary));
        assert_eq!(one(Int32, Int64), Ok(Int64));
        assert_eq!(one(UInt32, Int32), Ok(Int64));
        assert_eq!(one(UInt8, UInt32), Ok(UInt32));
        assert_eq!(one(Float32, Float64), Ok(Float64));
        assert_eq!(one(Int32, Float64), Ok(Float64));
        assert_eq!(one(Decimal128(12, 3), Decimal128(10, 5)), Ok(Decimal128(14, 5)));
        assert_eq!(one(Decimal128(38, 0), Decimal128(38, 10)), Ok(Decimal256(48, 10)));
        assert_eq!(one(Int64, Decimal128(10, 2)), Ok(Decimal128(21, 2)));
        assert_eq!(one(Null, Date32), Ok(Date32));
        assert_eq!(
            one(
                Timestamp(TimeUnit::Microsecond, None),
                Timestamp(TimeUnit::Nanosecond, None)
            ),
            Ok(Timestamp(TimeUnit::Nanosecond, None))
        );
        assert_eq!(
            one(
                Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
                Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
            ),
            Ok(Timestamp(TimeUnit::Microsecond, Some("UTC".into())))
        );
    }

    #[test]
    fn refuses_what_would_lose_or_guess() {
        assert!(one(Utf8, Int64).is_err());
        assert!(one(UInt64, Int64).unwrap_err().contains("DECIMAL(20, 0)"));
        assert!(one(Int64, Float64).is_err());
        assert!(one(Decimal256(76, 0), Decimal256(76, 10)).is_err());
        let zoned = Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let naive = Timestamp(TimeUnit::Microsecond, None);
        assert!(
            one(zoned.clone(), naive.clone())
                .unwrap_err()
                .contains("naive_timestamp_zone")
        );
        let rules = Rules {
            naive_zone: Some("UTC".into()),
            ..Rules::default()
        };
        assert_eq!(unify(&zoned, &naive, &rules), Ok(zoned.clone()));
        assert!(
            one(zoned, Timestamp(TimeUnit::Microsecond, Some("Europe/Paris".into())))
                .unwrap_err()
                .contains("Europe/Paris")
        );
    }

    #[test]
    fn a_column_new_in_later_files_is_nullable_and_keeps_its_place() {
        let schema = resolve(
            &[
                file("day=1/a.parquet", &[("id", Int32), ("name", dict(Utf8))]),
                file("day=2/a.parquet", &[("id", Int64), ("name", Utf8), ("extra", Utf8)]),
            ],
            &Rules::default(),
        )
        .expect("resolves");
        let names: Vec<_> = schema
            .fields()
            .iter()
            .map(|f| (f.name().as_str(), f.data_type().clone()))
            .collect();
        assert_eq!(names, vec![("id", Int64), ("name", Utf8), ("extra", Utf8)]);
        assert!(schema.fields().iter().all(|f| f.is_nullable()));
    }

    #[test]
    fn a_conflict_names_the_column_both_types_and_a_file_of_each() {
        let problems = resolve(
            &[
                file("day=1/a.parquet", &[("account", Utf8)]),
                file("day=2/a.parquet", &[("account", dict(Utf8))]),
                file("day=3/a.parquet", &[("account", Int64)]),
            ],
            &Rules::default(),
        )
        .unwrap_err();
        assert_eq!(problems.len(), 1);
        let text = problems[0].to_string();
        assert!(
            text.starts_with("column `account` is Utf8 in day=1/a.parquet but Int64 in day=3/a.parquet"),
            "{text}"
        );
    }

    #[test]
    fn csv_text_absorbs_numbers_but_headers_must_match() {
        let rules = Rules {
            csv: true,
            text: true,
            ..Rules::default()
        };
        let schema = resolve(
            &[
                file("a.csv", &[("account", Int64)]),
                file("b.csv", &[("account", Utf8)]),
            ],
            &rules,
        )
        .expect("resolves");
        assert_eq!(schema.field(0).data_type(), &Utf8);
        let problems = resolve(
            &[
                file("a.csv", &[("a", Utf8)]),
                file("b.csv", &[("a", Utf8), ("b", Utf8)]),
            ],
            &rules,
        )
        .unwrap_err();
        assert!(matches!(problems[0], SchemaProblem::CsvHeader { .. }));
    }

    #[test]
    fn pinned_types_are_enforced_file_by_file() {
        let rules = Rules {
            pinned: [("qty".to_string(), Decimal128(18, 4)), ("account".to_string(), Utf8)]
                .into_iter()
                .collect(),
            ..Rules::default()
        };
        let schema = resolve(
            &[
                file("1.parquet", &[("account", Int64), ("qty", Decimal128(10, 2))]),
                file("2.parquet", &[("account", Utf8View), ("qty", Int32)]),
            ],
            &rules,
        )
        .expect("resolves");
        assert_eq!(schema.field(0).data_type(), &Utf8);
        assert_eq!(schema.field(1).data_type(), &Decimal128(18, 4));
        let problems = resolve(
            &[
                file("1.parquet", &[("account", Utf8), ("qty", Float64)]),
                file("2.parquet", &[("account", Utf8)]),
            ],
            &rules,
        )
        .unwrap_err();
        let texts: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert!(texts[0].contains("`qty` is Float64 in 1.parquet"), "{texts:?}");
        assert!(
            texts[1].contains("`qty`, pinned in the source's `schema:`, is missing from 2.parquet"),
            "{texts:?}"
        );
    }
}
