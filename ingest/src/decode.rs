//! Decoding within limits: a body is decompressed through a reader that
//! stops one byte past the decompressed limit, so a gzip or zstd bomb costs
//! at most that limit in memory and the time to inflate it.

use std::io::Read;

use bytes::Bytes;

use crate::{Error, Result};

mod whole;

/// The default bound on a body after decompression (32 MiB).
pub const DEFAULT_MAX_DECOMPRESSED_BYTES: usize = 32 << 20;

/// A `Content-Encoding` adit accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Gzip,
    /// zlib-wrapped deflate, as RFC 9110 defines `deflate`.
    Deflate,
    Zstd,
}

impl Encoding {
    /// The encoding a `Content-Encoding` value names (none: identity).
    pub fn from_header(value: Option<&[u8]>) -> Result<Self> {
        let Some(value) = value else {
            return Ok(Self::Identity);
        };
        let raw = std::str::from_utf8(value)
            .ok()
            .filter(|s| s.is_ascii())
            .ok_or_else(|| Error::UnsupportedEncoding("<non-ASCII>".into()))?;
        match raw.trim().to_ascii_lowercase().as_str() {
            "" | "identity" => Ok(Self::Identity),
            "gzip" | "x-gzip" => Ok(Self::Gzip),
            "deflate" => Ok(Self::Deflate),
            "zstd" => Ok(Self::Zstd),
            other => Err(Error::UnsupportedEncoding(other.to_string())),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Identity => "identity",
            Self::Gzip => "gzip",
            Self::Deflate => "deflate",
            Self::Zstd => "zstd",
        }
    }
}

/// A body sent as identity that starts like a compressed stream: gzip
/// (`1f 8b`), zstd (`28 b5 2f fd`) or zlib (`78` and a valid check byte).
/// No JSON text starts with those bytes, so the missing header is named
/// instead of reporting invalid JSON.
pub fn check_not_compressed(body: &[u8], encoding: Encoding) -> Result<()> {
    if encoding != Encoding::Identity {
        return Ok(());
    }
    let found = match body {
        [0x1f, 0x8b, ..] => Encoding::Gzip,
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Encoding::Zstd,
        [0x78, flags, ..] if (0x7800u16 | u16::from(*flags)).is_multiple_of(31) => {
            Encoding::Deflate
        }
        _ => return Ok(()),
    };
    Err(Error::MissingContentEncoding {
        encoding: found.name(),
    })
}

/// Decodes `body` into at most `limit` bytes.
pub fn decompress(body: Bytes, encoding: Encoding, limit: usize) -> Result<Bytes> {
    if encoding == Encoding::Gzip {
        if let Some(size) = gzip_trailer_size(&body).filter(|&n| n <= limit) {
            if let Some(out) = whole::gunzip(&body, size) {
                return Ok(Bytes::from(out));
            }
        }
    }
    let reader: Box<dyn Read + '_> = match encoding {
        Encoding::Identity => {
            if body.len() > limit {
                return Err(Error::DecompressedTooLarge { limit });
            }
            return Ok(body);
        }
        Encoding::Gzip => Box::new(flate2::read::MultiGzDecoder::new(&body[..])),
        Encoding::Deflate => Box::new(flate2::read::ZlibDecoder::new(&body[..])),
        Encoding::Zstd => Box::new(
            zstd::stream::read::Decoder::new(&body[..])
                .map_err(|e| bad(encoding, e.to_string()))?,
        ),
    };
    // A starting guess of 8x the compressed size fits typical JSON without
    // regrowth; the cap stops bombs from reserving their claimed size.
    let mut out = Vec::with_capacity(size_hint(&body, encoding).min(limit) + 1);
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| bad(encoding, e.to_string()))?;
    if out.len() > limit {
        return Err(Error::DecompressedTooLarge { limit });
    }
    Ok(Bytes::from(out))
}

/// The decoded size to reserve: a gzip trailer states it (mod 2^32, of the
/// last member; only a hint: at most 64x the input is reserved, and the
/// limit still rules what is read), else 8x the input.
fn size_hint(body: &[u8], encoding: Encoding) -> usize {
    match (encoding, gzip_trailer_size(body)) {
        (Encoding::Gzip, Some(isize)) => isize.clamp(body.len(), body.len().saturating_mul(64)),
        _ => body.len().saturating_mul(8),
    }
}

/// The decoded size a gzip stream's trailer states (ISIZE: mod 2^32, of
/// its last member; a claim until inflating proves it).
fn gzip_trailer_size(body: &[u8]) -> Option<usize> {
    let at = body.len().checked_sub(4).filter(|_| body.len() >= 18)?;
    Some(u32::from_le_bytes(body[at..].try_into().expect("4 bytes")) as usize)
}

fn bad(encoding: Encoding, reason: String) -> Error {
    Error::BadEncoding {
        encoding: encoding.name(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Bytes {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(data).unwrap();
        Bytes::from(enc.finish().unwrap())
    }

    #[test]
    fn every_encoding_round_trips() {
        let data = b"[{\"miner_id\":\"a\"}]".repeat(50);
        assert_eq!(
            decompress(gzip(&data), Encoding::Gzip, 1 << 20).unwrap(),
            data
        );
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(&data).unwrap();
        let z = Bytes::from(z.finish().unwrap());
        assert_eq!(decompress(z, Encoding::Deflate, 1 << 20).unwrap(), data);
        let zs = Bytes::from(zstd::encode_all(&data[..], 3).unwrap());
        assert_eq!(decompress(zs, Encoding::Zstd, 1 << 20).unwrap(), data);
        let id = Bytes::from(data.clone());
        assert_eq!(decompress(id, Encoding::Identity, 1 << 20).unwrap(), data);
    }

    #[test]
    fn a_bomb_stops_at_the_limit() {
        let bomb = gzip(&vec![b'0'; 50 << 20]);
        assert!(bomb.len() < 100_000, "compresses well: {}", bomb.len());
        let err = decompress(bomb, Encoding::Gzip, 1 << 20).unwrap_err();
        assert!(matches!(err, Error::DecompressedTooLarge { limit } if limit == 1 << 20));
    }

    #[test]
    fn exactly_the_limit_is_accepted() {
        let data = vec![b' '; 4096];
        assert_eq!(
            decompress(gzip(&data), Encoding::Gzip, 4096).unwrap().len(),
            4096
        );
        assert!(decompress(gzip(&data), Encoding::Gzip, 4095).is_err());
    }

    #[test]
    fn whole_bodies_take_libdeflate_and_the_rest_still_stream() {
        let data = b"[{\"miner_id\":\"a\"},".repeat(300);
        let one = gzip(&data);
        assert_eq!(whole::gunzip(&one, data.len()).unwrap(), data);
        // Two members: libdeflate would stop after the first, so the whole
        // path declines and the stream decodes both (RFC 1952: members
        // concatenate), even when both are the same and so is the trailer.
        for second in [&b"{}]"[..], &data[..]] {
            let two = Bytes::from([&one[..], &gzip(second)[..]].concat());
            let size = gzip_trailer_size(&two).unwrap();
            assert_eq!(whole::gunzip(&two, size), None);
            let out = decompress(two, Encoding::Gzip, 1 << 20).unwrap();
            assert_eq!(out, [&data[..], second].concat());
        }
        // A trailer stating less than the body holds is refused either way.
        let mut lying = one.to_vec();
        let at = lying.len() - 4;
        lying[at..].copy_from_slice(&100u32.to_le_bytes());
        assert_eq!(whole::gunzip(&lying, 100), None);
        assert!(matches!(
            decompress(Bytes::from(lying), Encoding::Gzip, 1 << 20),
            Err(Error::BadEncoding { .. })
        ));
    }

    #[test]
    fn a_bomb_with_a_small_trailer_still_stops_at_the_limit() {
        let mut bomb = gzip(&vec![b'0'; 50 << 20]).to_vec();
        let at = bomb.len() - 4;
        bomb[at..].copy_from_slice(&1000u32.to_le_bytes());
        let err = decompress(Bytes::from(bomb), Encoding::Gzip, 1 << 20).unwrap_err();
        assert!(matches!(err, Error::DecompressedTooLarge { limit } if limit == 1 << 20));
    }

    #[test]
    fn truncated_gzip_is_a_bad_encoding() {
        let full = gzip(&b"[1,2,3]".repeat(1000));
        let cut = full.slice(..full.len() / 2);
        assert!(matches!(
            decompress(cut, Encoding::Gzip, 1 << 20),
            Err(Error::BadEncoding { .. })
        ));
    }

    #[test]
    fn compressed_bodies_without_their_header_are_named() {
        let data = b"[{\"miner_id\":\"a\"}]";
        let gz = gzip(data);
        let zs = zstd::encode_all(&data[..], 3).unwrap();
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(data).unwrap();
        let z = z.finish().unwrap();
        for (body, name) in [(&gz[..], "gzip"), (&zs[..], "zstd"), (&z[..], "deflate")] {
            assert!(matches!(
                check_not_compressed(body, Encoding::Identity),
                Err(Error::MissingContentEncoding { encoding }) if encoding == name
            ));
        }
        check_not_compressed(&gz, Encoding::Gzip).unwrap();
        check_not_compressed(data, Encoding::Identity).unwrap();
        check_not_compressed(b"", Encoding::Identity).unwrap();
        check_not_compressed(b"x", Encoding::Identity).unwrap();
    }

    #[test]
    fn unknown_encodings_are_refused() {
        assert!(
            matches!(Encoding::from_header(Some(b"br")), Err(Error::UnsupportedEncoding(e)) if e == "br")
        );
        assert_eq!(
            Encoding::from_header(Some(b" GZIP")).unwrap(),
            Encoding::Gzip
        );
        assert!(matches!(
            Encoding::from_header(Some("gzïp".as_bytes())),
            Err(Error::UnsupportedEncoding(e)) if e == "<non-ASCII>"
        ));
        assert_eq!(Encoding::from_header(None).unwrap(), Encoding::Identity);
    }
}
