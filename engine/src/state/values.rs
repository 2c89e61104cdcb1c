//! A row's value: a 64-bit hash of the destination fields it was sent with, so the diff can
//! tell a row whose key was synced but whose values changed since ([`value_hashes`]).
//!
//! Values are compared as the destination receives them, not as Arrow stores them: every
//! number that is a whole number hashes as that integer whatever its type (`12`, `12.0` as a
//! float, `12.000` as a decimal), other numbers as their shortest plain decimal text (what
//! Rust prints for a float, a decimal without its trailing zeros); timestamps of any unit and
//! zone as nanoseconds since the epoch in UTC; dates as days; text as its bytes. Each field's
//! name is part of the hash, so renaming a model column that feeds the same field changes
//! nothing, while mapping a field more or less changes every row.
//!
//! The form is dinmo's own (not a library's display format), so states written by one release
//! compare equal under the next; snapshot parts store the hash in [`VALUE_COLUMN`], and parts
//! written before it are hashed from the fields they hold, which are the values that were sent.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, UInt64Array};
use arrow::compute::cast;
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Float32Type, Float64Type, Int64Type, TimeUnit, UInt64Type,
};
use arrow::error::ArrowError;
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use super::row_key::normalise_decimal;

/// Version of the canonical form [`value_hashes`] hashes, recorded with every part holding
/// values ([`PartInfo::value_version`](super::PartInfo::value_version)): a part of another
/// version has its values hashed again from its fields, so a change of the form never makes
/// every row look changed.
pub const VALUE_VERSION: u32 = 1;

/// Column of snapshot parts and checkpoint key parts: each row's [`value_hashes`] hash.
pub const VALUE_COLUMN: &str = "_dinmo_value";

/// Column of snapshot parts: on a row that corrects an earlier one (a difference record, an
/// update in place, a value accepted by hand), the row key it corrects, as hex; null on a row
/// of the model. Such a row's [`VALUE_COLUMN`] is the corrected row's value from then on.
pub const CORRECTS_COLUMN: &str = "_dinmo_corrects";

pub use dinmo_connectors::is_engine_column;

/// For each row of `batch` (a snapshot part's), the key of the row it corrects
/// ([`CORRECTS_COLUMN`]), `None` on a row of the model and in a part without the column.
pub fn corrected_keys(batch: &RecordBatch) -> Result<Vec<Option<u128>>, ArrowError> {
    let mut corrects = Vec::with_capacity(batch.num_rows());
    match batch.column_by_name(CORRECTS_COLUMN) {
        Some(column) => super::row_key::each_hash(column, |h| corrects.push(h))?,
        None => corrects.resize(batch.num_rows(), None),
    }
    Ok(corrects)
}

/// The value a correction records for a row it deleted from the destination
/// (`on_delete: rollback_pending`): no row's value hash takes it (they are compared on their
/// low 63 bits, and this is all of them set), so the key, should the model produce it again,
/// is a changed row whose value before is "deleted".
pub const DELETED_VALUE: u64 = u64::MAX >> 1;

const SEED_TEXT: u64 = 0x7465_7874;
const SEED_NUMBER: u64 = 0x6e75_6d62;
const SEED_INSTANT: u64 = 0x696e_7374;
const SEED_OTHER: u64 = 0x6f74_6872;
const TAG_NUMBER: u64 = 0x1f83_d9ab_fb41_bd6b;
const TAG_DATE: u64 = 0x5be0_cd19_137e_2179;
const TAG_BOOLEAN: u64 = 0x9b05_688c_2b3e_6c1f;
const TAG_INSTANT: u64 = 0x3c6e_f372_fe94_f82b;
const NULL: u64 = 0x510e_527f_ade6_82d1;

/// splitmix64's finaliser: spreads a 64-bit value over all bits.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// 10^0 to 10^18.
const POWERS_OF_TEN: [i128; 19] = {
    let mut powers = [1i128; 19];
    let mut i = 1;
    while i < 19 {
        powers[i] = powers[i - 1] * 10;
        i += 1;
    }
    powers
};

/// A number already at scale 18: numbers are compared as integers at this scale, which holds
/// every decimal usage carries and every i64.
fn fixed(value: i128) -> u64 {
    mix(value as u64 ^ mix((value >> 64) as u64 ^ TAG_NUMBER))
}

fn integer(value: i64) -> u64 {
    fixed(i128::from(value) * POWERS_OF_TEN[18])
}

/// A number as `mantissa × 10^-scale`, compared as the same integer at scale 18 whatever its
/// scale (`12`, `12.0`, `12.000` and `12.5`/`12.50` alike, from any type); numbers finer
/// than 18 decimals or too large for it keep their digits without trailing zeros and scale.
fn number(mut mantissa: i128, mut scale: i32) -> u64 {
    if (0..=18).contains(&scale)
        && let Some(at_18) = POWERS_OF_TEN[(18 - scale) as usize].checked_mul(mantissa)
    {
        return fixed(at_18);
    }
    while scale > 18 && mantissa % 10 == 0 {
        mantissa /= 10;
        scale -= 1;
    }
    if scale == 18 {
        return fixed(mantissa);
    }
    let mut bytes = [0u8; 20];
    bytes[..16].copy_from_slice(&mantissa.to_le_bytes());
    bytes[16..].copy_from_slice(&scale.to_le_bytes());
    xxh3_64_with_seed(&bytes, SEED_NUMBER)
}

/// A number given as plain decimal text (no exponent, as Rust prints floats and Arrow prints
/// decimals), through [`number`]; text that is not one hashes as itself.
fn number_text(text: &str) -> u64 {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let parsed = (!whole.is_empty() || !fraction.is_empty())
        .then(|| format!("{whole}{fraction}"))
        .filter(|all| all.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|all| all.parse::<i128>().ok());
    match parsed {
        Some(mantissa) => number(if negative { -mantissa } else { mantissa }, fraction.len() as i32),
        None => xxh3_64_with_seed(normalise_decimal(text).as_bytes(), SEED_NUMBER),
    }
}

/// 2^63, exactly.
const TWO_TO_63: f64 = 9_223_372_036_854_775_808.0;

/// Powers of ten a float's fast path tries.
const POWERS: [f64; 10] = [1.0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];

fn float(value: f64) -> u64 {
    // 2^63 is exactly representable; every whole float below it in magnitude fits an i64.
    if value.is_finite() && value.fract() == 0.0 && value.abs() < TWO_TO_63 {
        return integer(value as i64);
    }
    // The shortest decimal that reads back as this float, when it has at most nine decimals:
    // `m / 10^k` is correctly rounded in IEEE arithmetic, so it equals the float exactly when
    // the decimal `m × 10^-k` reads back as it, and the first such `k` is the shortest.
    if value.is_finite() && value.abs() < 9.0e6 {
        for (k, power) in POWERS.iter().enumerate().skip(1) {
            let m = (value * power).round();
            if m / power == value {
                return number(m as i128, k as i32);
            }
        }
    }
    // Display prints the shortest text that reads back as the same float, never an exponent.
    number_text(&value.to_string())
}

/// Folds each row's hash of `cells` into `rows` ([`fold`]): `hash` gives the hash of a row
/// that is not null. Generic, so that the hash inlines into the loop.
fn each(rows: &mut [u64], cells: &dyn Array, hash: impl Fn(usize) -> u64) {
    match cells.nulls().filter(|nulls| nulls.null_count() > 0) {
        Some(nulls) => {
            for (row, acc) in rows.iter_mut().enumerate() {
                *acc = fold(*acc, if nulls.is_null(row) { NULL } else { hash(row) });
            }
        }
        None => {
            for (row, acc) in rows.iter_mut().enumerate() {
                *acc = fold(*acc, hash(row));
            }
        }
    }
}

/// A row's hash so far with one more cell's.
#[inline]
fn fold(row: u64, cell: u64) -> u64 {
    (row.rotate_left(23) ^ cell).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// Folds each row's hash of one column, as described in the module's documentation, into
/// `rows` (one per row of `array`).
fn fold_cells(array: &ArrayRef, rows: &mut [u64]) -> Result<(), ArrowError> {
    let array = match array.data_type() {
        DataType::Dictionary(_, value) => cast(array, value)?,
        _ => Arc::clone(array),
    };
    let cells = array.as_ref();
    match array.data_type() {
        DataType::Utf8 => {
            let a = array.as_string::<i32>();
            each(rows, cells, |row| xxh3_64_with_seed(a.value(row).as_bytes(), SEED_TEXT))
        }
        DataType::LargeUtf8 => {
            let a = array.as_string::<i64>();
            each(rows, cells, |row| xxh3_64_with_seed(a.value(row).as_bytes(), SEED_TEXT))
        }
        DataType::Utf8View => {
            let a = array.as_string_view();
            each(rows, cells, |row| xxh3_64_with_seed(a.value(row).as_bytes(), SEED_TEXT))
        }
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
            let wide = cast(&array, &DataType::Int64)?;
            let a = wide.as_primitive::<Int64Type>();
            each(rows, cells, |row| integer(a.value(row)))
        }
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
            let wide = cast(&array, &DataType::UInt64)?;
            let a = wide.as_primitive::<UInt64Type>();
            each(rows, cells, |row| match i64::try_from(a.value(row)) {
                Ok(v) => integer(v),
                Err(_) => number_text(&a.value(row).to_string()),
            })
        }
        DataType::Float16 | DataType::Float32 => {
            let wide = cast(&array, &DataType::Float32)?;
            let a = wide.as_primitive::<Float32Type>();
            // A float32 is sent as the shortest text that reads back as that float32.
            each(rows, cells, |row| {
                let v = a.value(row);
                if v.is_finite() && v.fract() == 0.0 && v.abs() < 9.223_372e18 {
                    integer(v as i64)
                } else {
                    number_text(&v.to_string())
                }
            })
        }
        DataType::Float64 => {
            let a = array.as_primitive::<Float64Type>();
            each(rows, cells, |row| float(a.value(row)))
        }
        DataType::Decimal32(p, s) | DataType::Decimal64(p, s) | DataType::Decimal128(p, s) => {
            let wide = cast(&array, &DataType::Decimal128((*p).min(38), *s))?;
            let a = wide.as_primitive::<Decimal128Type>();
            let scale = i32::from(*s);
            each(rows, cells, |row| number(a.value(row), scale))
        }
        DataType::Decimal256(..) => {
            let text = cast(&array, &DataType::Utf8)?;
            let a = text.as_string::<i32>();
            each(rows, cells, |row| number_text(a.value(row)))
        }
        DataType::Boolean => {
            let a = array.as_boolean();
            each(rows, cells, |row| mix(u64::from(a.value(row)) ^ TAG_BOOLEAN))
        }
        DataType::Date32 | DataType::Date64 => {
            let days = cast(&array, &DataType::Date32)?;
            let a = days.as_primitive::<Date32Type>();
            each(rows, cells, |row| mix(a.value(row) as u64 ^ TAG_DATE))
        }
        DataType::Timestamp(unit, _) => {
            let multiplier: i128 = match unit {
                TimeUnit::Second => 1_000_000_000,
                TimeUnit::Millisecond => 1_000_000,
                TimeUnit::Microsecond => 1_000,
                TimeUnit::Nanosecond => 1,
            };
            // The raw value is the instant in UTC whatever the zone; widened, it cannot
            // overflow. Nanoseconds that fit an i64 (years 1677 to 2262) are mixed as one word.
            let raw = cast(&array, &DataType::Int64)?;
            let a = raw.as_primitive::<Int64Type>();
            each(rows, cells, |row| {
                let nanos = i128::from(a.value(row)) * multiplier;
                match i64::try_from(nanos) {
                    Ok(nanos) => mix(nanos as u64 ^ TAG_INSTANT),
                    Err(_) => xxh3_64_with_seed(&nanos.to_le_bytes(), SEED_INSTANT),
                }
            })
        }
        _ => {
            let text = cast(&array, &DataType::Utf8)?;
            let a = text.as_string::<i32>();
            each(rows, cells, |row| {
                xxh3_64_with_seed(a.value(row).as_bytes(), SEED_OTHER)
            })
        }
    }
    Ok(())
}

/// The value of every row of `batch`: the fields `columns` (indices into `batch`), named
/// `names` (the destination's field names, in the order the mapping lists them).
pub fn value_hashes(batch: &RecordBatch, columns: &[usize], names: &[&str]) -> Result<Vec<u64>, ArrowError> {
    let mut rows = vec![xxh3_64(names.join("\0").as_bytes()); batch.num_rows()];
    for &column in columns {
        fold_cells(batch.column(column), &mut rows)?;
    }
    for row in &mut rows {
        *row = mix(*row);
    }
    Ok(rows)
}

/// The value of every row of a batch of stored rows (a pending batch, a snapshot part): its
/// destination fields are every column but dinmo's own, in order.
pub fn stored_value_hashes(batch: &RecordBatch) -> Result<Vec<u64>, ArrowError> {
    let schema = batch.schema();
    let (columns, names): (Vec<usize>, Vec<&str>) = schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| !is_engine_column(f.name()))
        .map(|(i, f)| (i, f.name().as_str()))
        .unzip();
    value_hashes(batch, &columns, &names)
}

/// The rows of `batch` that are rows of the model: without a [`CORRECTS_COLUMN`], all of
/// them.
pub fn model_rows_of(batch: RecordBatch) -> Result<RecordBatch, ArrowError> {
    let Some(corrects) = batch.column_by_name(CORRECTS_COLUMN) else {
        return Ok(batch);
    };
    if corrects.null_count() == corrects.len() {
        return Ok(batch);
    }
    let keep = arrow::compute::is_null(corrects)?;
    arrow::compute::filter_record_batch(&batch, &keep)
}

/// `hashes` as a column.
pub fn value_column(hashes: Vec<u64>) -> ArrayRef {
    Arc::new(UInt64Array::from(hashes))
}

#[cfg(test)]
mod tests {
    use arrow::array::{
        Date32Array, Decimal128Array, Float64Array, Int32Array, Int64Array, StringArray, StringViewArray,
        TimestampMicrosecondArray, TimestampSecondArray, UInt64Array,
    };
    use arrow::datatypes::{Field, Schema};

    use super::*;

    fn hash_of(name: &str, array: ArrayRef) -> Vec<u64> {
        let schema = Arc::new(Schema::new(vec![Field::new(name, array.data_type().clone(), true)]));
        let batch = RecordBatch::try_new(schema, vec![array]).unwrap();
        value_hashes(&batch, &[0], &[name]).unwrap()
    }

    #[test]
    fn a_number_is_the_same_value_whatever_its_type() {
        let ints = hash_of("Quantity", Arc::new(Int32Array::from(vec![12, -3, 0])));
        let longs = hash_of("Quantity", Arc::new(Int64Array::from(vec![12, -3, 0])));
        let unsigned = hash_of("Quantity", Arc::new(UInt64Array::from(vec![12, 5, 0])));
        let floats = hash_of("Quantity", Arc::new(Float64Array::from(vec![12.0, -3.0, -0.0])));
        let decimals = hash_of(
            "Quantity",
            Arc::new(
                Decimal128Array::from(vec![12_000_000_000i128, -3_000_000_000, 0])
                    .with_precision_and_scale(38, 9)
                    .unwrap(),
            ),
        );
        assert_eq!(ints, longs);
        assert_eq!(ints, floats);
        assert_eq!(ints, decimals);
        assert_eq!(ints[0], unsigned[0]);
        assert_ne!(ints[0], ints[1]);
    }

    #[test]
    fn fractions_compare_as_their_shortest_decimal() {
        let floats = hash_of("Quantity", Arc::new(Float64Array::from(vec![12.5, 0.1, 1e-7])));
        let decimals = hash_of(
            "Quantity",
            Arc::new(
                Decimal128Array::from(vec![12_500i128, 100, 0])
                    .with_precision_and_scale(10, 3)
                    .unwrap(),
            ),
        );
        assert_eq!(floats[..2], decimals[..2]);
        let tiny = hash_of(
            "Quantity",
            Arc::new(
                Decimal128Array::from(vec![1i128])
                    .with_precision_and_scale(10, 7)
                    .unwrap(),
            ),
        );
        assert_eq!(floats[2], tiny[0]);
        assert_ne!(floats[0], floats[1]);
    }

    #[test]
    fn a_decimal_is_its_digits_without_trailing_zeros_whatever_its_scale() {
        let scaled = |value: i128, scale: i8| {
            hash_of(
                "Quantity",
                Arc::new(
                    Decimal128Array::from(vec![value])
                        .with_precision_and_scale(38, scale)
                        .unwrap(),
                ),
            )[0]
        };
        assert_eq!(scaled(1250, 2), scaled(125_000, 4));
        assert_eq!(
            scaled(1250, 2),
            hash_of("Quantity", Arc::new(Float64Array::from(vec![12.5])))[0]
        );
        assert_eq!(
            scaled(-5, 1),
            hash_of("Quantity", Arc::new(Float64Array::from(vec![-0.5])))[0]
        );
        assert_ne!(scaled(1250, 2), scaled(1251, 2));
        assert_ne!(scaled(125, 2), scaled(125, 1), "1.25 is not 12.5");
        // Whole values beyond an i64 still compare by value.
        let big = 10i128.pow(20);
        assert_eq!(scaled(big * 100, 2), scaled(big, 0));
    }

    #[test]
    fn an_instant_is_the_same_value_in_any_unit_or_zone() {
        let seconds = hash_of(
            "StartDateTime",
            Arc::new(TimestampSecondArray::from(vec![1_763_510_400]).with_timezone("UTC")),
        );
        let micros = hash_of(
            "StartDateTime",
            Arc::new(TimestampMicrosecondArray::from(vec![1_763_510_400_000_000]).with_timezone("+05:00")),
        );
        let naive = hash_of(
            "StartDateTime",
            Arc::new(TimestampMicrosecondArray::from(vec![1_763_510_400_000_001])),
        );
        assert_eq!(seconds, micros);
        assert_ne!(seconds, naive);
        let days = hash_of("StartDateTime", Arc::new(Date32Array::from(vec![20_410])));
        assert_ne!(days, seconds, "a date is not an instant");
    }

    #[test]
    fn text_compares_by_bytes_and_nulls_by_position() {
        let utf8 = hash_of("UOM", Arc::new(StringArray::from(vec![Some("API"), None, Some("")])));
        let view = hash_of(
            "UOM",
            Arc::new(StringViewArray::from(vec![Some("API"), None, Some("")])),
        );
        assert_eq!(utf8, view);
        assert_ne!(utf8[1], utf8[2], "a null is not an empty string");
    }

    #[test]
    fn the_field_names_and_their_order_are_part_of_the_value() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, false),
            Field::new("b", DataType::Int64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![Arc::new(Int64Array::from(vec![1])), Arc::new(Int64Array::from(vec![2]))],
        )
        .unwrap();
        let ab = value_hashes(&batch, &[0, 1], &["Quantity", "Tag"]).unwrap();
        let ba = value_hashes(&batch, &[1, 0], &["Quantity", "Tag"]).unwrap();
        let renamed = value_hashes(&batch, &[0, 1], &["Quantity", "Other"]).unwrap();
        assert_ne!(ab, ba);
        assert_ne!(ab, renamed);
        // Stored rows: every column but dinmo's, in order.
        assert_eq!(
            stored_value_hashes(&batch).unwrap(),
            value_hashes(&batch, &[0, 1], &["a", "b"]).unwrap()
        );
    }
}
