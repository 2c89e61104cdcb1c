//! The row key: a deterministic identity for one usage row of one sync, derived from the sync
//! id and the model's primary key. It is what the anti-join compares and what Zuora receives
//! as `UniqueKey`, so it must never change for the same row: the primary key values are put in
//! a canonical form of dinmo's own (not a library's display format, which may change between
//! versions) and hashed with xxh3-128.
//!
//! Canonical forms: strings as-is; integers of any width in decimal; decimals in plain
//! notation without trailing zeros; dates as days since 1970-01-01; timestamps of any unit
//! and zone as nanoseconds since the epoch (UTC); booleans as 0/1. Each value is prefixed
//! with a type tag and its length, so no two different keys share an encoding.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringArray};
use arrow::buffer::OffsetBuffer;
use arrow::compute::cast;
use arrow::datatypes::{DataType, Date32Type, Int64Type, TimeUnit, TimestampNanosecondType, UInt64Type};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
#[cfg(test)]
use xxhash_rust::xxh3::Xxh3;
use xxhash_rust::xxh3::xxh3_128;

/// Version of the canonical encoding, recorded in run manifests.
pub const ROW_KEY_VERSION: u32 = 1;

/// Why a column cannot be part of a primary key, or `Ok` when it can.
pub fn check_key_type(data_type: &DataType) -> Result<(), String> {
    let inner = match data_type {
        DataType::Dictionary(_, value) => value.as_ref(),
        other => other,
    };
    match inner {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Boolean => Ok(()),
        t if t.is_integer() => Ok(()),
        DataType::Decimal32(..) | DataType::Decimal64(..) | DataType::Decimal128(..) | DataType::Decimal256(..) => {
            Ok(())
        }
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(..) => Ok(()),
        t if t.is_floating() => Err(format!(
            "is {t}; floating-point values are not exact enough to identify a usage row (cast to DECIMAL or BIGINT)"
        )),
        t => Err(format!("is {t}, which cannot be part of a primary key")),
    }
}

/// The key of every row of `batch`, as text: what the tests compare with the reference
/// encoding (the diff keeps the hashes, [`row_hashes`], and writes text only for new rows).
#[cfg(test)]
pub fn row_keys(sync_id: &str, batch: &RecordBatch, key_columns: &[usize]) -> Result<ArrayRef, ArrowError> {
    hex_keys(&row_hashes(sync_id, batch, key_columns)?)
}

/// The 128-bit hash behind the key of every row of `batch`, from the columns `key_columns`;
/// [`hex_keys`] writes them as keys.
///
/// Strings and integers (nearly every primary key) are encoded straight from the Arrow
/// buffers into one reused buffer; other types go through [`canonical_column`]. Both give the
/// same bytes (a test holds them to it), so the key does not depend on the path taken.
pub fn row_hashes(sync_id: &str, batch: &RecordBatch, key_columns: &[usize]) -> Result<Vec<u128>, ArrowError> {
    let columns = key_columns
        .iter()
        .map(|&i| KeyColumn::of(batch.column(i)))
        .collect::<Result<Vec<_>, _>>()?;
    let mut buffer = Vec::with_capacity(64);
    buffer.extend_from_slice(sync_id.as_bytes());
    buffer.push(0);
    let prefix = buffer.len();
    Ok((0..batch.num_rows())
        .map(|row| {
            buffer.truncate(prefix);
            for column in &columns {
                column.encode(row, &mut buffer);
            }
            xxh3_128(&buffer)
        })
        .collect())
}

/// Row keys (32 lower-case hex digits each) of `hashes`.
///
/// Each key is spelled into its own 32 bytes of a buffer sized once, two digits per lookup.
pub fn hex_keys(hashes: &[u128]) -> Result<ArrayRef, ArrowError> {
    let mut hex = vec![0u8; hashes.len() * 32];
    for (out, &hash) in hex.chunks_exact_mut(32).zip(hashes) {
        spell_hex(out, hash);
    }
    let offsets = OffsetBuffer::from_lengths(std::iter::repeat_n(32, hashes.len()));
    Ok(Arc::new(StringArray::try_new(offsets, hex.into(), None)?))
}

/// The same hashes as 16 big-endian bytes each (the bytes the hex of [`hex_keys`] spells):
/// half the size, and read back without parsing (the staged model output holds these).
pub fn binary_keys(hashes: &[u128]) -> Result<ArrayRef, ArrowError> {
    let bytes: Vec<u8> = hashes.iter().flat_map(|hash| hash.to_be_bytes()).collect();
    Ok(Arc::new(arrow::array::FixedSizeBinaryArray::try_new(
        16,
        bytes.into(),
        None,
    )?))
}

/// The hash behind 16 bytes of [`binary_keys`], or `None` when they are not 16.
pub fn binary_key(bytes: &[u8]) -> Option<u128> {
    bytes.try_into().ok().map(u128::from_be_bytes)
}

/// The hash a row key spells, or `None` when `key` is not 32 lower-case hex digits.
pub fn parse_key(key: &[u8]) -> Option<u128> {
    /// Each byte's value as a hex digit, or 16 when it is not one.
    const DIGIT: [u8; 256] = {
        let mut table = [16u8; 256];
        let mut i = 0;
        while i < 10 {
            table[b'0' as usize + i] = i as u8;
            i += 1;
        }
        let mut i = 0;
        while i < 6 {
            table[b'a' as usize + i] = 10 + i as u8;
            i += 1;
        }
        table
    };
    let key: &[u8; 32] = key.try_into().ok()?;
    let mut bytes = [0u8; 16];
    let mut invalid = 0u8;
    for (byte, pair) in bytes.iter_mut().zip(key.chunks_exact(2)) {
        let (high, low) = (DIGIT[usize::from(pair[0])], DIGIT[usize::from(pair[1])]);
        invalid |= high | low;
        *byte = (high << 4) | (low & 0x0f);
    }
    (invalid & 0x10 == 0).then(|| u128::from_be_bytes(bytes))
}

/// Calls `each` with the hash of every row key in `keys`, stored either way
/// ([`super::KeyEncoding`]): text that is not 32 lower-case hex digits, or bytes that are not
/// 16, give `None`, as does a null.
pub fn each_hash(keys: &ArrayRef, mut each: impl FnMut(Option<u128>)) -> Result<(), ArrowError> {
    let text = |key: Option<&str>| key.and_then(|k| parse_key(k.as_bytes()));
    match keys.data_type() {
        DataType::FixedSizeBinary(_) => keys
            .as_fixed_size_binary()
            .iter()
            .for_each(|k| each(k.and_then(binary_key))),
        DataType::Binary => keys
            .as_binary::<i32>()
            .iter()
            .for_each(|k| each(k.and_then(binary_key))),
        DataType::Utf8 => keys.as_string::<i32>().iter().for_each(|k| each(text(k))),
        DataType::LargeUtf8 => keys.as_string::<i64>().iter().for_each(|k| each(text(k))),
        DataType::Utf8View => keys.as_string_view().iter().for_each(|k| each(text(k))),
        other => {
            return Err(ArrowError::InvalidArgumentError(format!(
                "a row key column is {other}, neither text nor bytes"
            )));
        }
    }
    Ok(())
}

/// The hashes of every row key in `keys` (either way of storing them), refusing a null or a
/// key that is not one: for keys that dinmo wrote itself, where such a key is damage.
pub fn hashes_of(keys: &ArrayRef) -> Result<Vec<u128>, ArrowError> {
    let mut hashes = Vec::with_capacity(keys.len());
    let mut bad = None;
    each_hash(keys, |hash| match hash {
        Some(hash) => hashes.push(hash),
        None => bad = bad.or(Some(hashes.len())),
    })?;
    match bad {
        None => Ok(hashes),
        Some(row) => Err(ArrowError::InvalidArgumentError(format!(
            "row key {row} of a batch is not a row key (32 hex digits, or 16 bytes)"
        ))),
    }
}

/// One primary-key column, ready to encode row by row.
enum KeyColumn {
    Utf8(StringArray),
    LargeUtf8(arrow::array::LargeStringArray),
    View(arrow::array::StringViewArray),
    Signed(arrow::array::Int64Array),
    Unsigned(arrow::array::UInt64Array),
    /// Any other type, as its canonical texts (tag included).
    Text(Vec<Option<String>>),
}

impl KeyColumn {
    fn of(array: &ArrayRef) -> Result<Self, ArrowError> {
        let array = match array.data_type() {
            DataType::Dictionary(_, value) => cast(array, value)?,
            _ => Arc::clone(array),
        };
        Ok(match array.data_type() {
            DataType::Utf8 => KeyColumn::Utf8(array.as_string::<i32>().clone()),
            DataType::LargeUtf8 => KeyColumn::LargeUtf8(array.as_string::<i64>().clone()),
            DataType::Utf8View => KeyColumn::View(array.as_string_view().clone()),
            DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
                KeyColumn::Signed(cast(&array, &DataType::Int64)?.as_primitive::<Int64Type>().clone())
            }
            DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
                KeyColumn::Unsigned(cast(&array, &DataType::UInt64)?.as_primitive::<UInt64Type>().clone())
            }
            _ => KeyColumn::Text(canonical_column(&array)?),
        })
    }

    /// Appends `<length>:<tag><value>`, or `~;` for a null.
    fn encode(&self, row: usize, out: &mut Vec<u8>) {
        let mut digits = itoa::Buffer::new();
        let (tag, value): (u8, &[u8]) = match self {
            KeyColumn::Utf8(a) if a.is_valid(row) => (b's', a.value(row).as_bytes()),
            KeyColumn::LargeUtf8(a) if a.is_valid(row) => (b's', a.value(row).as_bytes()),
            KeyColumn::View(a) if a.is_valid(row) => (b's', a.value(row).as_bytes()),
            KeyColumn::Signed(a) if a.is_valid(row) => (b'i', digits.format(a.value(row)).as_bytes()),
            KeyColumn::Unsigned(a) if a.is_valid(row) => (b'i', digits.format(a.value(row)).as_bytes()),
            KeyColumn::Text(texts) => match &texts[row] {
                Some(text) => {
                    let mut length = itoa::Buffer::new();
                    out.extend_from_slice(length.format(text.len()).as_bytes());
                    out.push(b':');
                    out.extend_from_slice(text.as_bytes());
                    return;
                }
                None => {
                    out.extend_from_slice(b"~;");
                    return;
                }
            },
            // Nulls are refused before keys are used; encode them distinctly anyway.
            _ => {
                out.extend_from_slice(b"~;");
                return;
            }
        };
        let mut length = itoa::Buffer::new();
        out.extend_from_slice(length.format(value.len() + 1).as_bytes());
        out.push(b':');
        out.push(tag);
        out.extend_from_slice(value);
    }
}

/// Appends the 32 lower-case hex digits of `hash`, most significant first (`{:032x}`).
/// Writes the 32 lower-case hex digits of `hash` into `out` (32 bytes).
fn spell_hex(out: &mut [u8], hash: u128) {
    /// Each byte's two digits.
    const PAIRS: [[u8; 2]; 256] = {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut table = [[0u8; 2]; 256];
        let mut byte = 0;
        while byte < 256 {
            table[byte] = [DIGITS[byte >> 4], DIGITS[byte & 0x0f]];
            byte += 1;
        }
        table
    };
    for (pair, byte) in out.chunks_exact_mut(2).zip(hash.to_be_bytes()) {
        pair.copy_from_slice(&PAIRS[usize::from(byte)]);
    }
}

#[cfg(test)]
fn hash_key(sync_id: &str, encoded: &[u8]) -> String {
    let mut hasher = Xxh3::new();
    hasher.update(sync_id.as_bytes());
    hasher.update(&[0]);
    hasher.update(encoded);
    format!("{:032x}", hasher.digest128())
}

/// The canonical text of each value, type tag first.
fn canonical_column(array: &ArrayRef) -> Result<Vec<Option<String>>, ArrowError> {
    let array = match array.data_type() {
        DataType::Dictionary(_, value) => cast(array, value)?,
        _ => Arc::clone(array),
    };
    let tagged = |tag: char, values: Vec<Option<String>>| -> Vec<Option<String>> {
        values.into_iter().map(|v| v.map(|v| format!("{tag}{v}"))).collect()
    };
    let as_strings = |array: &ArrayRef| -> Result<Vec<Option<String>>, ArrowError> {
        let strings = cast(array, &DataType::Utf8)?;
        Ok(strings
            .as_string::<i32>()
            .iter()
            .map(|v| v.map(str::to_string))
            .collect())
    };
    Ok(match array.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => tagged('s', as_strings(&array)?),
        DataType::Boolean => tagged(
            'b',
            array
                .as_boolean()
                .iter()
                .map(|v| v.map(|b| if b { "1" } else { "0" }.to_string()))
                .collect(),
        ),
        t if t.is_integer() => tagged('i', as_strings(&array)?),
        DataType::Decimal32(..) | DataType::Decimal64(..) | DataType::Decimal128(..) | DataType::Decimal256(..) => {
            tagged(
                'n',
                as_strings(&array)?
                    .into_iter()
                    .map(|v| v.map(|s| normalise_decimal(&s)))
                    .collect(),
            )
        }
        DataType::Date32 | DataType::Date64 => {
            let days = cast(&array, &DataType::Date32)?;
            tagged(
                'd',
                days.as_primitive::<Date32Type>()
                    .iter()
                    .map(|v| v.map(|d| d.to_string()))
                    .collect(),
            )
        }
        DataType::Timestamp(unit, tz) => {
            let multiplier: i128 = match unit {
                TimeUnit::Second => 1_000_000_000,
                TimeUnit::Millisecond => 1_000_000,
                TimeUnit::Microsecond => 1_000,
                TimeUnit::Nanosecond => 1,
            };
            // Reinterpret the raw i64 in its own unit; widening avoids any overflow.
            let raw = cast(&array, &DataType::Timestamp(*unit, tz.clone()))?;
            let values: Vec<Option<String>> = match unit {
                TimeUnit::Nanosecond => raw
                    .as_primitive::<TimestampNanosecondType>()
                    .iter()
                    .map(|v| v.map(|n| n.to_string()))
                    .collect(),
                _ => {
                    let ints = cast(&raw, &DataType::Int64)?;
                    ints.as_primitive::<arrow::datatypes::Int64Type>()
                        .iter()
                        .map(|v| v.map(|n| (i128::from(n) * multiplier).to_string()))
                        .collect()
                }
            };
            tagged('t', values)
        }
        other => {
            return Err(ArrowError::InvalidArgumentError(format!(
                "{other} cannot be part of a primary key"
            )));
        }
    })
}

/// `12.500` → `12.5`, `3.00` → `3`, `-0.0` → `0`.
pub fn normalise_decimal(text: &str) -> String {
    let trimmed = match text.split_once('.') {
        Some((int, frac)) => {
            let frac = frac.trim_end_matches('0');
            if frac.is_empty() {
                int.to_string()
            } else {
                format!("{int}.{frac}")
            }
        }
        None => text.to_string(),
    };
    match trimmed.as_str() {
        "-0" => "0".to_string(),
        _ => trimmed,
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{
        Date32Array, Decimal128Array, DictionaryArray, Float64Array, Int32Array, Int64Array, StringArray,
        TimestampMicrosecondArray, TimestampSecondArray,
    };
    use arrow::datatypes::{Field, Int8Type, Schema};

    use super::*;

    /// A batch of `columns`, named `c0`, `c1`, ….
    fn batch_of(columns: Vec<ArrayRef>) -> RecordBatch {
        let fields: Vec<Field> = columns
            .iter()
            .enumerate()
            .map(|(i, c)| Field::new(format!("c{i}"), c.data_type().clone(), true))
            .collect();
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
    }

    fn keys_of(columns: Vec<ArrayRef>) -> Vec<String> {
        let batch = batch_of(columns);
        let indices: Vec<usize> = (0..batch.num_columns()).collect();
        let keys = row_keys("m.d", &batch, &indices).unwrap();
        keys.as_string::<i32>().iter().map(|k| k.unwrap().to_string()).collect()
    }

    #[test]
    fn a_key_parses_back_to_its_hash_and_nothing_else_parses() {
        for hash in [0u128, 1, u128::MAX, 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210] {
            let keys = hex_keys(&[hash]).unwrap();
            let key = keys.as_string::<i32>().value(0);
            assert_eq!(key, format!("{hash:032x}"));
            assert_eq!(parse_key(key.as_bytes()), Some(hash));
        }
        let good = "0123456789abcdef0123456789abcdef";
        assert!(parse_key(good.as_bytes()).is_some());
        for bad in [
            &good[1..],
            "0123456789ABCDEF0123456789abcdef",
            "0123456789abcdef0123456789abcdeg",
            "",
        ] {
            assert_eq!(parse_key(bad.as_bytes()), None, "{bad:?}");
        }
        assert_eq!(parse_key(format!("{good}0").as_bytes()), None);
        let hashes = [7u128, u128::MAX - 3];
        let binary = binary_keys(&hashes).unwrap();
        let binary = binary.as_fixed_size_binary();
        let hex = hex_keys(&hashes).unwrap();
        for (row, &hash) in hashes.iter().enumerate() {
            assert_eq!(binary_key(binary.value(row)), Some(hash));
            assert_eq!(hex.as_string::<i32>().value(row), format!("{hash:032x}"));
        }
        assert_eq!(binary_key(&[0; 15]), None);
    }

    #[test]
    fn keys_read_the_same_stored_either_way_and_damage_is_refused() {
        let hashes = [0u128, 7, u128::MAX, 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210];
        let (hex, binary) = (hex_keys(&hashes).unwrap(), binary_keys(&hashes).unwrap());
        assert_eq!(hashes_of(&hex).unwrap(), hashes);
        assert_eq!(hashes_of(&binary).unwrap(), hashes);
        let mut seen = Vec::new();
        each_hash(&binary, |hash| seen.push(hash)).unwrap();
        assert_eq!(seen, hashes.map(Some));
        // A key that is not one: `each_hash` says so row by row, `hashes_of` refuses the batch.
        let damaged: ArrayRef = Arc::new(StringArray::from(vec![
            Some(format!("{:032x}", 7u128)),
            Some("xyz".into()),
            None,
        ]));
        let mut seen = Vec::new();
        each_hash(&damaged, |hash| seen.push(hash)).unwrap();
        assert_eq!(seen, [Some(7), None, None]);
        let refused = hashes_of(&damaged).unwrap_err().to_string();
        assert!(refused.contains("row key 1 "), "{refused}");
        let numbers: ArrayRef = Arc::new(Int64Array::from(vec![1]));
        assert!(each_hash(&numbers, |_| {}).is_err());
    }

    #[test]
    fn keys_are_stable_across_releases() {
        // A changed value here means every sync would resend its whole history: never
        // update this expectation without a state migration.
        let keys = keys_of(vec![
            Arc::new(StringArray::from(vec!["A001"])),
            Arc::new(Int64Array::from(vec![7])),
        ]);
        assert_eq!(keys, ["a2f79e247a6d2e5d8217de3bdf080ac3"]);
        assert_eq!(
            hash_key("m.d", b"5:sA0012:i7"),
            keys[0],
            "length-prefixed, type-tagged parts"
        );
    }

    /// The version-1 encoding as first written: every part through [`canonical_column`].
    fn reference_keys(sync_id: &str, batch: &RecordBatch, key_columns: &[usize]) -> Vec<String> {
        let parts: Vec<Vec<Option<String>>> = key_columns
            .iter()
            .map(|&i| canonical_column(batch.column(i)).unwrap())
            .collect();
        (0..batch.num_rows())
            .map(|row| {
                let mut buffer = Vec::new();
                for part in &parts {
                    match &part[row] {
                        None => buffer.extend_from_slice(b"~;"),
                        Some(value) => {
                            buffer.extend_from_slice(value.len().to_string().as_bytes());
                            buffer.push(b':');
                            buffer.extend_from_slice(value.as_bytes());
                        }
                    }
                }
                hash_key(sync_id, &buffer)
            })
            .collect()
    }

    #[test]
    fn the_direct_encoding_matches_the_canonical_one() {
        use arrow::array::{LargeStringArray, StringViewArray, UInt8Array, UInt64Array};
        let texts = vec![
            Some("A001"),
            None,
            Some(""),
            Some("é漢字"),
            Some("a much longer value than twelve bytes"),
        ];
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(texts.clone())),
            Arc::new(LargeStringArray::from(texts.clone())),
            Arc::new(StringViewArray::from(texts)),
            Arc::new(Int64Array::from(vec![
                Some(i64::MIN),
                Some(-1),
                None,
                Some(0),
                Some(i64::MAX),
            ])),
            Arc::new(Int32Array::from(vec![
                Some(-7),
                Some(12),
                Some(0),
                None,
                Some(i32::MAX),
            ])),
            Arc::new(UInt64Array::from(vec![
                Some(u64::MAX),
                Some(0),
                Some(1),
                Some(10),
                None,
            ])),
            Arc::new(UInt8Array::from(vec![Some(255), None, Some(0), Some(1), Some(2)])),
            Arc::new(Date32Array::from(vec![Some(1), Some(-1), None, Some(20000), Some(0)])),
        ];
        let batch = batch_of(columns);
        for key_columns in [
            vec![0],
            vec![1],
            vec![2],
            vec![3],
            vec![4],
            vec![5],
            vec![6],
            vec![0, 3, 7],
            vec![7, 2, 5, 6],
        ] {
            let fast = row_keys("m.d", &batch, &key_columns).unwrap();
            let fast: Vec<String> = fast.as_string::<i32>().iter().map(|k| k.unwrap().to_string()).collect();
            assert_eq!(
                fast,
                reference_keys("m.d", &batch, &key_columns),
                "columns {key_columns:?}"
            );
        }
    }

    #[test]
    fn equal_values_of_different_physical_types_share_a_key() {
        let strings = keys_of(vec![Arc::new(StringArray::from(vec!["x"]))]);
        let dictionary: DictionaryArray<Int8Type> = vec!["x"].into_iter().collect();
        assert_eq!(strings, keys_of(vec![Arc::new(dictionary)]));
        assert_eq!(
            keys_of(vec![Arc::new(Int32Array::from(vec![5]))]),
            keys_of(vec![Arc::new(Int64Array::from(vec![5]))])
        );
        let seconds = keys_of(vec![Arc::new(TimestampSecondArray::from(vec![1_700_000_000]))]);
        let micros = keys_of(vec![Arc::new(
            TimestampMicrosecondArray::from(vec![1_700_000_000_000_000]).with_timezone("UTC"),
        )]);
        assert_eq!(seconds, micros);
        let a = Decimal128Array::from(vec![12500])
            .with_precision_and_scale(10, 3)
            .unwrap();
        let b = Decimal128Array::from(vec![125])
            .with_precision_and_scale(10, 1)
            .unwrap();
        assert_eq!(keys_of(vec![Arc::new(a)]), keys_of(vec![Arc::new(b)]));
    }

    #[test]
    fn encoding_is_unambiguous() {
        // ("ab", "c") and ("a", "bc") must not collide; nor may a string and an integer.
        let first = keys_of(vec![
            Arc::new(StringArray::from(vec!["ab"])),
            Arc::new(StringArray::from(vec!["c"])),
        ]);
        let second = keys_of(vec![
            Arc::new(StringArray::from(vec!["a"])),
            Arc::new(StringArray::from(vec!["bc"])),
        ]);
        assert_ne!(first, second);
        assert_ne!(
            keys_of(vec![Arc::new(StringArray::from(vec!["5"]))]),
            keys_of(vec![Arc::new(Int64Array::from(vec![5]))])
        );
        assert_ne!(
            keys_of(vec![Arc::new(Date32Array::from(vec![1]))]),
            keys_of(vec![Arc::new(Int64Array::from(vec![1]))])
        );
    }

    #[test]
    fn the_sync_id_is_part_of_the_key() {
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("a", DataType::Utf8, false)])),
            vec![Arc::new(StringArray::from(vec!["x"]))],
        )
        .unwrap();
        let one = row_keys("m.one", &batch, &[0]).unwrap();
        let two = row_keys("m.two", &batch, &[0]).unwrap();
        assert_ne!(one.as_string::<i32>().value(0), two.as_string::<i32>().value(0));
    }

    #[test]
    fn floats_are_refused_as_keys() {
        assert!(
            check_key_type(&DataType::Float64)
                .unwrap_err()
                .contains("floating-point")
        );
        assert!(
            check_key_type(&DataType::Dictionary(
                Box::new(DataType::Int32),
                Box::new(DataType::Utf8)
            ))
            .is_ok()
        );
        let floats: ArrayRef = Arc::new(Float64Array::from(vec![1.0]));
        assert!(canonical_column(&floats).is_err());
    }
}
