//! Column adaptors for sqlx's `FromRow` derive where the Any driver cannot decode a field's
//! Rust type directly: it decodes `bool` only from a boolean column (an interval's open flag is
//! its `status` text, so one statement serves SQLite and PostgreSQL alike), and `Vec<f32>` not
//! at all (anomaly scores are stored as little-endian `f32` blocks). Each
//! adaptor decodes as the stored type and converts with `TryFrom`
//! (`#[sqlx(try_from = "…")]`).

use sqlx::any::{Any, AnyTypeInfo, AnyValueRef};
use sqlx::decode::Decode;
use sqlx::error::BoxDynError;
use sqlx::types::Type;

use super::StorageError;

/// Implements `Type<Any>` and `Decode<Any>` for a newtype over a stored type.
macro_rules! stored_as {
    ($adaptor:ident($stored:ty)) => {
        impl Type<Any> for $adaptor {
            fn type_info() -> AnyTypeInfo {
                <$stored as Type<Any>>::type_info()
            }

            fn compatible(ty: &AnyTypeInfo) -> bool {
                <$stored as Type<Any>>::compatible(ty)
            }
        }

        impl<'r> Decode<'r, Any> for $adaptor {
            fn decode(value: AnyValueRef<'r>) -> Result<Self, BoxDynError> {
                Ok(Self(<$stored as Decode<'r, Any>>::decode(value)?))
            }
        }
    };
}

/// An interval's `status` column, `open` or `closed`.
#[derive(Debug, Clone)]
pub(super) struct OpenStatus(String);
stored_as!(OpenStatus(String));

impl TryFrom<OpenStatus> for bool {
    type Error = StorageError;

    fn try_from(s: OpenStatus) -> Result<bool, StorageError> {
        match s.0.as_str() {
            "open" => Ok(true),
            "closed" => Ok(false),
            other => Err(StorageError::Corrupt(format!("interval status {other:?}"))),
        }
    }
}

/// A 0/1 flag stored as an integer (the Any driver decodes no boolean on both back-ends).
#[derive(Debug, Clone)]
pub(super) struct Flag(i64);
stored_as!(Flag(i64));

impl TryFrom<Flag> for bool {
    type Error = StorageError;

    fn try_from(f: Flag) -> Result<bool, StorageError> {
        match f.0 {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(StorageError::Corrupt(format!("flag {other}"))),
        }
    }
}

/// A block of little-endian `f32`s.
#[derive(Debug, Clone)]
pub(super) struct F32Block(Vec<u8>);
stored_as!(F32Block(Vec<u8>));

impl TryFrom<F32Block> for Vec<f32> {
    type Error = StorageError;

    fn try_from(b: F32Block) -> Result<Vec<f32>, StorageError> {
        decode_f32s(&b.0)
    }
}

/// Little-endian `f32`s, refused unless the length is a whole number of them.
pub(super) fn decode_f32s(bytes: &[u8]) -> Result<Vec<f32>, StorageError> {
    if !bytes.len().is_multiple_of(4) {
        return Err(StorageError::Corrupt(format!("an f32 block of {} bytes", bytes.len())));
    }
    Ok(bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))).collect())
}

/// Little-endian bytes of `f32`s.
pub(super) fn encode_f32s(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}
