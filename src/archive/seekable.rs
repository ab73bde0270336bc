//! Segments as zstd's *seekable format*, so that a reader can fetch the
//! part of an archived recording it needs with range requests.
//!
//! The object is a run of independent zstd frames, each holding
//! [`FRAME_PLAIN`] bytes of the segment (the first [`FIRST_FRAME_PLAIN`],
//! the last fewer), each with
//! zstd's content checksum, followed by a seek table in a skippable frame,
//! as zstd's `contrib/seekable_format` specifies it:
//!
//! ```text
//! skippable frame: magic 0x184D2A5E (u32 LE), size (u32 LE), then
//!   per frame: compressed size (u32 LE), decompressed size (u32 LE)
//!   footer: number of frames (u32 LE), descriptor (u8, 0: no checksums
//!           in the table), seekable magic 0x8F92EAB1 (u32 LE)
//! ```
//!
//! Any zstd decoder (`zstd -d`, every library) reads the object as the
//! whole segment: it joins the frames and skips the skippable one.

use anyhow::{Context, Result};

/// The bytes of a segment each frame holds (the last fewer)...
pub const FRAME_PLAIN: usize = 1 << 20;

/// ...but the first: a reader that opens a segment for its header line
/// fetches little.
pub const FIRST_FRAME_PLAIN: usize = 64 << 10;

/// The magic number of the skippable frame that holds the seek table.
const SKIPPABLE_MAGIC: u32 = 0x184D_2A5E;

/// The magic number that ends the seek table.
const SEEKABLE_MAGIC: u32 = 0x8F92_EAB1;

/// The footer's size: number of frames, descriptor, magic.
pub const FOOTER: u64 = 9;

/// Frames a table may name (a 256 MiB segment has 257).
const FRAMES_MAX: u32 = 1 << 16;

/// The most a segment may hold (what the uploader ships at most).
const PLAIN_MAX: u64 = super::scan::SEGMENT_MAX;

/// One frame of a seekable object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// Where its bytes start in the segment.
    pub plain_start: u64,
    /// How many bytes of the segment it holds.
    pub plain_len: u32,
    /// Where it starts in the object.
    pub packed_start: u64,
    /// Its size in the object.
    pub packed_len: u32,
}

/// Compresses `data` at `level` in the seekable format.
///
/// # Errors
///
/// zstd fails (it does not, short of memory).
pub fn compress(data: &[u8], level: i32) -> Result<Vec<u8>> {
    let mut compressor = zstd::bulk::Compressor::new(level)?;
    compressor.include_checksum(true)?;
    let mut out = Vec::with_capacity(data.len() / 4 + 64);
    let mut table = Vec::new();
    let first = data.len().min(FIRST_FRAME_PLAIN);
    let chunks = std::iter::once(&data[..first])
        .filter(|c| !c.is_empty())
        .chain(data[first..].chunks(FRAME_PLAIN));
    for chunk in chunks {
        let frame = compressor.compress(chunk).context("compressing")?;
        table.extend_from_slice(&u32::try_from(frame.len())?.to_le_bytes());
        table.extend_from_slice(&u32::try_from(chunk.len())?.to_le_bytes());
        out.extend_from_slice(&frame);
    }
    let frames = u32::try_from(table.len() / 8)?;
    out.extend_from_slice(&SKIPPABLE_MAGIC.to_le_bytes());
    out.extend_from_slice(&u32::try_from(table.len() + FOOTER as usize)?.to_le_bytes());
    out.extend_from_slice(&table);
    out.extend_from_slice(&frames.to_le_bytes());
    out.push(0);
    out.extend_from_slice(&SEEKABLE_MAGIC.to_le_bytes());
    Ok(out)
}

/// How many frames the object's last [`FOOTER`] bytes say it has, if they
/// are a seekable footer (without checksums in the table). A count over
/// what the uploader writes is still returned: [`parse_table`] refuses it.
pub fn frames_in(footer: &[u8]) -> Option<u32> {
    let footer: [u8; FOOTER as usize] = footer.try_into().ok()?;
    let frames = u32::from_le_bytes(footer[..4].try_into().ok()?);
    let magic = u32::from_le_bytes(footer[5..].try_into().ok()?);
    (magic == SEEKABLE_MAGIC && footer[4] == 0).then_some(frames)
}

/// The size of the skippable frame (header included) that ends an object
/// of `frames` frames.
pub fn table_len(frames: u32) -> u64 {
    8 + u64::from(frames) * 8 + FOOTER
}

/// The frames that `table` (the last [`table_len`] bytes of an object of
/// `size` bytes) describes; `None` when the table is not well-formed, does
/// not add up to the object, or claims more than the uploader writes (a
/// frame over [`FRAME_PLAIN`] bytes, one larger compressed than zstd ever
/// makes it, a segment over the largest shipped): an object planted in
/// the bucket cannot make a reader decompress without bound.
pub fn parse_table(table: &[u8], size: u64) -> Option<Vec<Frame>> {
    let frames = frames_in(table.get(table.len().checked_sub(FOOTER as usize)?..)?)?;
    if frames > FRAMES_MAX {
        return None;
    }
    if table.len() as u64 != table_len(frames) {
        return None;
    }
    let word = |at: usize| Some(u32::from_le_bytes(table.get(at..at + 4)?.try_into().ok()?));
    if word(0)? != SKIPPABLE_MAGIC || u64::from(word(4)?) != table.len() as u64 - 8 {
        return None;
    }
    let mut out = Vec::with_capacity(frames as usize);
    let (mut plain, mut packed) = (0u64, 0u64);
    for i in 0..frames as usize {
        let (packed_len, plain_len) = (word(8 + i * 8)?, word(12 + i * 8)?);
        let bound = zstd::zstd_safe::compress_bound(plain_len as usize) as u64 + 64;
        if plain_len as usize > FRAME_PLAIN || u64::from(packed_len) > bound {
            return None;
        }
        out.push(Frame { plain_start: plain, plain_len, packed_start: packed, packed_len });
        plain += u64::from(plain_len);
        packed += u64::from(packed_len);
    }
    (packed + table.len() as u64 == size && plain <= PLAIN_MAX).then_some(out)
}

/// The bytes of one frame, checked against its content checksum and the
/// length the table gives.
///
/// # Errors
///
/// Not a zstd frame of that length.
pub fn decompress_frame(packed: &[u8], frame: &Frame) -> Result<Vec<u8>> {
    let plain = zstd::bulk::decompress(packed, frame.plain_len as usize)
        .context("an archived frame does not decompress")?;
    anyhow::ensure!(
        plain.len() == frame.plain_len as usize,
        "an archived frame holds {} bytes, its table says {}",
        plain.len(),
        frame.plain_len
    );
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(len: usize) -> Vec<u8> {
        (0..len).map(|i| b"tether recording line\n"[i % 22] ^ (i / 7919) as u8).collect()
    }

    #[test]
    fn any_zstd_decoder_reads_the_whole_segment() {
        for len in [0, 1, FIRST_FRAME_PLAIN, FRAME_PLAIN, 2 * FRAME_PLAIN + 17] {
            let data = sample(len);
            let packed = compress(&data, 3).unwrap();
            let mut plain = Vec::new();
            std::io::Read::read_to_end(
                &mut zstd::stream::read::Decoder::new(&packed[..]).unwrap(),
                &mut plain,
            )
            .unwrap();
            assert_eq!(plain, data, "length {len}");
        }
    }

    #[test]
    fn each_frame_reads_alone_from_the_table() {
        let data = sample(3 * FRAME_PLAIN + 5);
        let packed = compress(&data, 3).unwrap();
        let frames = frames_in(&packed[packed.len() - FOOTER as usize..]).unwrap();
        assert_eq!(frames, 4);
        let table = &packed[packed.len() - table_len(frames) as usize..];
        let parsed = parse_table(table, packed.len() as u64).unwrap();
        for f in &parsed {
            let start = f.packed_start as usize;
            let bytes = &packed[start..start + f.packed_len as usize];
            let plain = decompress_frame(bytes, f).unwrap();
            let at = f.plain_start as usize;
            assert_eq!(plain, &data[at..at + f.plain_len as usize]);
        }
    }

    #[test]
    fn a_table_that_does_not_add_up_is_refused() {
        let packed = compress(&sample(FRAME_PLAIN + 1), 3).unwrap();
        let len = packed.len();
        let table = &packed[len - table_len(2) as usize..];
        assert!(parse_table(table, len as u64 + 1).is_none());
        let mut bent = table.to_vec();
        bent[8] ^= 1;
        assert!(parse_table(&bent, len as u64).is_none());
        // A frame that claims more than the uploader writes (16 MiB of
        // zeros packs into a few hundred bytes): refused.
        let zeros = zstd::bulk::compress(&vec![0u8; 16 << 20], 3).unwrap();
        let mut planted = zeros.clone();
        planted.extend_from_slice(&SKIPPABLE_MAGIC.to_le_bytes());
        planted.extend_from_slice(&(8 + FOOTER as u32).to_le_bytes());
        planted.extend_from_slice(&u32::try_from(zeros.len()).unwrap().to_le_bytes());
        planted.extend_from_slice(&(16u32 << 20).to_le_bytes());
        planted.extend_from_slice(&1u32.to_le_bytes());
        planted.push(0);
        planted.extend_from_slice(&SEEKABLE_MAGIC.to_le_bytes());
        let t = &planted[planted.len() - table_len(1) as usize..];
        assert!(parse_table(t, planted.len() as u64).is_none());
        // A plain zstd object has no seekable footer.
        let plain = zstd::bulk::compress(b"one frame", 3).unwrap();
        assert!(frames_in(&plain[plain.len() - FOOTER as usize..]).is_none());
        // A flipped byte inside a frame fails its checksum.
        let parsed = parse_table(table, len as u64).unwrap();
        let mut frame = packed[..parsed[0].packed_len as usize].to_vec();
        let mid = frame.len() / 2;
        frame[mid] ^= 0x40;
        assert!(decompress_frame(&frame, &parsed[0]).is_err());
    }
}
