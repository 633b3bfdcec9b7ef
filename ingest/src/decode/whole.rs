//! Whole-body gzip inflation with libdeflate, about twice as fast as a
//! streaming inflater on upload-sized bodies because it decodes straight
//! into an output buffer of the size the trailer states.
//!
//! It only answers the common case, one gzip member that fills the body
//! and inflates to exactly its stated size; everything else (several
//! members, a trailer that lies, corrupt data, a bomb) returns `None` and
//! the caller streams the body through flate2, which has the error
//! messages and the limits.

use std::cell::RefCell;
use std::ptr::NonNull;

use libdeflate_sys::{
    libdeflate_alloc_decompressor, libdeflate_decompressor, libdeflate_free_decompressor,
    libdeflate_gzip_decompress_ex, libdeflate_result_LIBDEFLATE_SUCCESS,
};

/// One libdeflate decompressor (about 10 KB of tables), owned by a thread.
struct Inflater(NonNull<libdeflate_decompressor>);

impl Inflater {
    fn new() -> Option<Self> {
        // SAFETY: no arguments; a null return (out of memory) is handled.
        NonNull::new(unsafe { libdeflate_alloc_decompressor() }).map(Self)
    }
}

impl Drop for Inflater {
    fn drop(&mut self) {
        // SAFETY: the pointer came from libdeflate_alloc_decompressor and
        // is freed once, here.
        unsafe { libdeflate_free_decompressor(self.0.as_ptr()) }
    }
}

thread_local! {
    static INFLATER: RefCell<Option<Inflater>> = const { RefCell::new(None) };
}

/// Inflates `body`, a gzip stream stating `size` decoded bytes in its
/// trailer, when it is exactly one member that decodes to `size` bytes.
/// The caller has checked `size` against its limit: at most `size` bytes
/// are allocated and written.
pub(super) fn gunzip(body: &[u8], size: usize) -> Option<Vec<u8>> {
    INFLATER.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Inflater::new();
        }
        let inflater = slot.as_ref()?;
        let mut out = Vec::<u8>::with_capacity(size);
        let (mut used_in, mut used_out) = (0usize, 0usize);
        // SAFETY: libdeflate reads `body.len()` bytes from `body` and writes
        // at most `size` bytes into `out`'s spare capacity (which is at
        // least `size`), reporting how many it wrote in `used_out`; the
        // length is set only to that, and only on success.
        let result = unsafe {
            let result = libdeflate_gzip_decompress_ex(
                inflater.0.as_ptr(),
                body.as_ptr().cast(),
                body.len(),
                out.as_mut_ptr().cast(),
                size,
                &mut used_in,
                &mut used_out,
            );
            if result == libdeflate_result_LIBDEFLATE_SUCCESS && used_out <= size {
                out.set_len(used_out);
            }
            result
        };
        // One member, ending where the body ends (libdeflate stops after
        // the first member and ignores what follows), of the stated size.
        (result == libdeflate_result_LIBDEFLATE_SUCCESS
            && used_in == body.len()
            && used_out == size)
            .then_some(out)
    })
}
