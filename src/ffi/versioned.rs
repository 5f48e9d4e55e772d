//! The `struct_size` rules that let the public structs grow: each struct has a frozen v0.1
//! size; an input struct is read only as far as its `struct_size` reaches (defaults beyond),
//! an output struct written only that far, and new fields are only ever appended. The
//! structs themselves, with their defaults, live in the module of each.

use std::mem::size_of;

use super::boundary::Failure;
use crate::engine::Error;

/// A public struct: `struct_size` first, a frozen v0.1 size, defaults, and field-by-field
/// copies bounded by the caller's `struct_size`. Implemented by [`versioned_struct!`] only.
pub(crate) trait Versioned: Copy {
    const NAME: &'static str;
    /// `sizeof` the struct in the v0.1 header: the smallest `struct_size` accepted.
    const V0_1_SIZE: usize;
    fn defaults() -> Self;
    /// Writes every field but `struct_size` that ends within `limit` bytes of `dest`.
    unsafe fn write_fields(&self, dest: *mut u8, limit: usize);
}

/// An input struct: read from the caller field by field.
pub(crate) trait VersionedInput: Versioned {
    /// Copies every field but `struct_size` that ends within `limit` bytes of `src` into
    /// `self` (the others keep their defaults). A field that `limit` cuts in two is an error
    /// naming it.
    unsafe fn read_fields(&mut self, src: *const u8, limit: usize) -> Result<(), String>;
}

/// The v0.1 size: x86_64 and other 64-bit targets, then 32-bit targets (where pointers and
/// `size_t` are 4 bytes; doubles stay at offsets that are multiples of 8 by design).
pub(crate) const fn frozen(size_64: usize, size_32: usize) -> usize {
    if cfg!(target_pointer_width = "64") {
        size_64
    } else {
        size_32
    }
}

/// Declares, once, what the library needs to know of a public struct beyond its definition:
/// its frozen v0.1 size, the last field v0.1 had (a compile-time check that nothing was
/// inserted before it), and each field's default. The defaults form a struct literal, so the
/// compiler insists on every field exactly once; the same list drives bounded reads and
/// writes. `input` structs can also be read from the caller; `output` ones only written.
macro_rules! versioned_struct {
    (@common $ty:ident, $v0_1_size:expr, $v0_1_last:ident, [$($field:ident: $default:expr),* $(,)?]) => {
        impl $crate::ffi::versioned::Versioned for $ty {
            const NAME: &'static str = stringify!($ty);
            const V0_1_SIZE: usize = $v0_1_size;
            fn defaults() -> Self {
                $ty {
                    struct_size: ::std::mem::size_of::<Self>() as u32,
                    $($field: $default),*
                }
            }
            unsafe fn write_fields(&self, dest: *mut u8, limit: usize) {
                $(
                    let offset = std::mem::offset_of!($ty, $field);
                    let value = self.$field;
                    if offset + std::mem::size_of_val(&value) <= limit {
                        unsafe { std::ptr::write_unaligned(dest.add(offset).cast(), value) };
                    }
                )*
            }
        }
        // The v0.1 fields end where v0.1's struct did: fields were only appended after them.
        const _: () = {
            let end = std::mem::offset_of!($ty, $v0_1_last) + $crate::ffi::versioned::field_size!($ty, $v0_1_last);
            let align = std::mem::align_of::<$ty>();
            assert!(end.div_ceil(align) * align == $v0_1_size);
        };
    };
    (input $ty:ident { v0_1_size: $v0_1_size:expr, v0_1_last: $v0_1_last:ident, $($field:ident: $default:expr),* $(,)? }) => {
        $crate::ffi::versioned::versioned_struct!(@common $ty, $v0_1_size, $v0_1_last, [$($field: $default),*]);
        impl $crate::ffi::versioned::VersionedInput for $ty {
            unsafe fn read_fields(&mut self, src: *const u8, limit: usize) -> Result<(), String> {
                $(
                    let offset = std::mem::offset_of!($ty, $field);
                    let size = std::mem::size_of_val(&self.$field);
                    if offset + size <= limit {
                        // SAFETY: the caller's struct has `limit` readable bytes; every field
                        // of an input struct is plain data valid for any bit pattern
                        // (integers, floats, raw pointers, optional fn pointers: NULL is None).
                        self.$field = unsafe { std::ptr::read_unaligned(src.add(offset).cast()) };
                    } else if offset < limit {
                        return Err(format!(
                            "{}.struct_size {limit} ends inside field {} (offset {offset}, {size} bytes); \
                             pass sizeof the struct",
                            stringify!($ty),
                            stringify!($field)
                        ));
                    }
                )*
                Ok(())
            }
        }
    };
    (output $ty:ident { v0_1_size: $v0_1_size:expr, v0_1_last: $v0_1_last:ident, $($field:ident: $default:expr),* $(,)? }) => {
        $crate::ffi::versioned::versioned_struct!(@common $ty, $v0_1_size, $v0_1_last, [$($field: $default),*]);
    };
}
pub(crate) use versioned_struct;

/// The size of one field of a struct type, at compile time.
macro_rules! field_size {
    ($ty:ident, $field:ident) => {{
        const fn size_of_field<T, F>(_: fn(&T) -> &F) -> usize {
            ::std::mem::size_of::<F>()
        }
        size_of_field(|value: &$ty| &value.$field)
    }};
}
pub(crate) use field_size;

fn bad_size(message: String) -> Failure {
    Error::invalid(message).into()
}

/// Writes the defaults of `T` into the caller's `struct_size` bytes at `ptr`: zeroes them,
/// writes each default field that fits, then sets `struct_size`.
pub(crate) unsafe fn init_struct<T: Versioned>(
    ptr: *mut T,
    struct_size: usize,
) -> Result<(), Failure> {
    if ptr.is_null() {
        return Err(Failure::null(T::NAME));
    }
    if struct_size < T::V0_1_SIZE || struct_size > u32::MAX as usize {
        return Err(bad_size(format!(
            "struct_size {struct_size} is not a valid size for {} (at least {}); pass sizeof the struct",
            T::NAME,
            T::V0_1_SIZE
        )));
    }
    let bytes = ptr.cast::<u8>();
    unsafe {
        std::ptr::write_bytes(bytes, 0, struct_size);
        T::defaults().write_fields(bytes, struct_size);
        bytes.cast::<u32>().write_unaligned(struct_size as u32);
    }
    Ok(())
}

/// The `struct_size` a caller's struct declares (its first field), read without forming a
/// reference to memory of unknown size.
pub(crate) unsafe fn declared_size<T>(ptr: *const T) -> usize {
    unsafe { ptr.cast::<u32>().read_unaligned() as usize }
}

/// Reads a caller's input struct: a `struct_size` of at least the v0.1 size; fields that fit
/// in it are copied, the rest keep their defaults; bytes beyond the fields this library
/// knows must be zero (a newer program's fields this library cannot honour).
pub(crate) unsafe fn read_input<T: VersionedInput>(ptr: *const T) -> Result<T, Failure> {
    if ptr.is_null() {
        return Err(Failure::null(T::NAME));
    }
    let struct_size = unsafe { declared_size(ptr) };
    if struct_size < T::V0_1_SIZE {
        return Err(bad_size(format!(
            "{}.struct_size is {struct_size} but must be at least {}; call {}_init first",
            T::NAME,
            T::V0_1_SIZE,
            T::NAME
        )));
    }
    let bytes = ptr.cast::<u8>();
    for offset in size_of::<T>()..struct_size {
        if unsafe { bytes.add(offset).read() } != 0 {
            return Err(bad_size(format!(
                "{} has a non-zero byte at offset {offset}, beyond the fields this library \
                 version knows ({} bytes); it is newer than the library",
                T::NAME,
                size_of::<T>()
            )));
        }
    }
    let mut value = T::defaults();
    unsafe { value.read_fields(bytes, struct_size.min(size_of::<T>())) }.map_err(bad_size)?;
    Ok(value)
}

/// Checks an output struct's `struct_size` (at least `min` bytes) before any work is done,
/// so a bad size does not cost a whole generation. Returns the size.
pub(crate) unsafe fn check_output<T: Versioned>(
    ptr: *const T,
    min: usize,
    what: &str,
) -> Result<usize, Failure> {
    let struct_size = unsafe { declared_size(ptr) };
    if struct_size < min {
        return Err(bad_size(format!(
            "{what}->struct_size is {struct_size} but must be at least {min}; call {}_init first",
            T::NAME
        )));
    }
    Ok(struct_size)
}

#[cfg(test)]
mod tests {
    use std::ffi::c_char;

    use super::*;

    /// A struct as it will look once a later version appends fields: `grown_count` and
    /// `grown_scale` come after what "v0.1" had.
    #[repr(C)]
    #[derive(Clone, Copy, Debug)]
    struct rigllama_test_grown {
        struct_size: u32,
        count: u32,
        name: *const c_char,
        grown_count: u32,
        grown_flag: u32,
        grown_scale: f64,
    }

    versioned_struct!(input rigllama_test_grown {
        v0_1_size: frozen(16, 12),
        v0_1_last: name,
        count: 7,
        name: std::ptr::null(),
        grown_count: 42,
        grown_flag: 1,
        grown_scale: 0.5,
    });

    /// A caller's struct of `struct_size` bytes (inside a larger zeroed buffer), with every
    /// field it covers set to a non-default value.
    fn caller_bytes(struct_size: usize) -> Vec<u8> {
        let full = rigllama_test_grown {
            struct_size: struct_size as u32,
            count: 3,
            name: c"x".as_ptr(),
            grown_count: 9,
            grown_flag: 0,
            grown_scale: 2.0,
        };
        let mut bytes = vec![0u8; size_of::<rigllama_test_grown>() + 16];
        unsafe { full.write_fields(bytes.as_mut_ptr(), struct_size) };
        bytes[..4].copy_from_slice(&(struct_size as u32).to_ne_bytes());
        bytes
    }

    fn read(bytes: &[u8]) -> Result<rigllama_test_grown, String> {
        unsafe { read_input(bytes.as_ptr().cast::<rigllama_test_grown>()) }
            .map_err(|f| f.message().to_owned())
    }

    #[test]
    fn a_struct_of_the_v0_1_size_gets_defaults_for_every_appended_field() {
        let v0_1 = rigllama_test_grown::V0_1_SIZE;
        let value = read(&caller_bytes(v0_1)).unwrap();
        assert_eq!((value.count, value.name), (3, c"x".as_ptr()));
        assert_eq!(
            (value.grown_count, value.grown_flag, value.grown_scale),
            (42, 1, 0.5)
        );
    }

    #[test]
    fn a_size_between_v0_1_and_current_reads_the_fields_it_covers() {
        let v0_1 = rigllama_test_grown::V0_1_SIZE;
        let value = read(&caller_bytes(v0_1 + 4)).unwrap();
        assert_eq!(value.grown_count, 9, "covered: the caller's value");
        assert_eq!((value.grown_flag, value.grown_scale), (1, 0.5), "defaults");
        let value = read(&caller_bytes(v0_1 + 8)).unwrap();
        assert_eq!((value.grown_count, value.grown_flag), (9, 0));
        assert_eq!(value.grown_scale, 0.5);
        let value = read(&caller_bytes(size_of::<rigllama_test_grown>())).unwrap();
        assert_eq!(value.grown_scale, 2.0);
    }

    #[test]
    fn a_size_ending_inside_a_field_is_refused_naming_it() {
        let v0_1 = rigllama_test_grown::V0_1_SIZE;
        let error = read(&caller_bytes(v0_1 + 2)).unwrap_err();
        assert!(error.contains("ends inside field grown_count"), "{error}");
    }

    #[test]
    fn sizes_below_v0_1_or_with_unknown_non_zero_bytes_are_refused() {
        let v0_1 = rigllama_test_grown::V0_1_SIZE;
        let error = read(&caller_bytes(v0_1 - 4)).unwrap_err();
        assert!(error.contains("must be at least"), "{error}");
        let size = size_of::<rigllama_test_grown>();
        let mut bytes = caller_bytes(size + 8);
        assert!(
            read(&bytes).is_ok(),
            "zero bytes beyond the known fields are fine"
        );
        bytes[size + 3] = 1;
        let error = read(&bytes).unwrap_err();
        assert!(error.contains(&format!("offset {}", size + 3)), "{error}");
    }

    #[test]
    fn init_writes_only_inside_struct_size() {
        let mut bytes = vec![0xAAu8; size_of::<rigllama_test_grown>() + 8];
        let v0_1 = rigllama_test_grown::V0_1_SIZE;
        assert!(
            unsafe { init_struct(bytes.as_mut_ptr().cast::<rigllama_test_grown>(), v0_1) }.is_ok()
        );
        assert!(bytes[v0_1..].iter().all(|&b| b == 0xAA));
        let value = read(&bytes[..]).unwrap();
        assert_eq!(value.count, 7);
    }
}
