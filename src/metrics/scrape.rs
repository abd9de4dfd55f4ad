//! One `/metrics` response: the targets' part, merged and compressed once per change, then
//! the exporter's own instruments, encoded per scrape.
//!
//! The targets' part only changes when a collection stores a new snapshot. [`ScrapeCache`]
//! keeps it merged (one `Bytes`, shared by every scrape until a target's encoding changes)
//! and, on the first scrape that asks for gzip, deflated once: a raw deflate stream ended
//! with a sync flush, so it stops on a byte boundary without a final block. A gzip scrape is
//! then the gzip header, that cached stream, the exporter's small part deflated with the
//! final block, and the CRC-32 and length of the whole (the CRC state after the targets'
//! part is cached too, so only the small part is hashed per scrape). Splicing deflate streams
//! this way is what pigz does: back-references never cross the seam, and a decoder sees one
//! ordinary gzip member. Nothing proportional to the number of series is copied or
//! allocated per scrape once the part is cached.

use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use flate2::{Compress, Compression, FlushCompress, Status};

use super::families::{EncodedTarget, write_merged};
use super::format::{Format, to_classic};

/// zlib's level 1: Prometheus' text compresses about 10:1 at it, and it is several times
/// faster than the default level (docs/BENCHMARKS.md).
const LEVEL: u32 = 1;

/// The fixed gzip member header (RFC 1952): deflate, no flags, no mtime, unknown OS.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// Deflates `input` into a raw stream (no zlib or gzip framing). With
/// [`FlushCompress::Sync`] the stream ends on a byte boundary without a final block, ready to
/// be followed by more blocks; with [`FlushCompress::Finish`] it ends with the final block.
fn deflate(input: &[u8], flush: FlushCompress) -> Result<Vec<u8>, flate2::CompressError> {
    let mut c = Compressors::take();
    let out = deflate_with(&mut c, input, flush);
    // Put back only after a complete stream: a failed one may have left state behind.
    if out.is_ok() {
        Compressors::give_back(c);
    }
    let mut out = out?;
    // The first guess of the size is generous; a cached stream lives as long as its part.
    if out.capacity() - out.len() > out.len() / 4 + 4096 {
        out.shrink_to_fit();
    }
    Ok(out)
}

/// A few compressors kept between scrapes: zlib's state is a few hundred KB, allocated and
/// freed per gzip scrape otherwise (each a fresh mapping, above the allocator's threshold).
struct Compressors;

/// At most this many are kept (scrapes rarely overlap more).
const KEPT_COMPRESSORS: usize = 2;

static COMPRESSORS: Mutex<Vec<Compress>> = Mutex::new(Vec::new());

impl Compressors {
    fn take() -> Compress {
        let kept = COMPRESSORS.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match kept {
            Some(mut c) => {
                c.reset();
                c
            }
            None => Compress::new(Compression::new(LEVEL), false),
        }
    }

    fn give_back(c: Compress) {
        let mut kept = COMPRESSORS.lock().unwrap_or_else(|p| p.into_inner());
        if kept.len() < KEPT_COMPRESSORS {
            kept.push(c);
        }
    }
}

fn deflate_with(
    c: &mut Compress,
    input: &[u8],
    flush: FlushCompress,
) -> Result<Vec<u8>, flate2::CompressError> {
    let mut out = Vec::with_capacity(input.len() / 6 + 64);
    loop {
        if out.capacity() - out.len() < 64 {
            out.reserve(out.capacity().max(4096));
        }
        let consumed = usize::try_from(c.total_in()).unwrap_or(input.len());
        let status = c.compress_vec(&input[consumed..], &mut out, flush)?;
        let all_in = usize::try_from(c.total_in()).unwrap_or(0) == input.len();
        let done = match flush {
            FlushCompress::Finish => status == Status::StreamEnd,
            // zlib's rule: a flush is complete when it left output space unused.
            _ => all_in && out.len() < out.capacity(),
        };
        if done {
            return Ok(out);
        }
    }
}

/// `text` as one complete gzip member (for `/probe`, which is small and encoded per request).
pub fn gzip(text: &[u8]) -> Option<Vec<Bytes>> {
    let body = deflate(text, FlushCompress::Finish)
        .inspect_err(|e| tracing::error!(error = %e, "gzip failed; serving plain text"))
        .ok()?;
    let mut crc = crc32fast::Hasher::new();
    crc.update(text);
    Some(vec![
        Bytes::from_static(&GZIP_HEADER),
        Bytes::from(body),
        Bytes::from(trailer(crc.finalize(), text.len())),
    ])
}

/// The gzip trailer: CRC-32 and the uncompressed length modulo 2^32, little-endian.
fn trailer(crc: u32, len: usize) -> Vec<u8> {
    let mut t = Vec::with_capacity(8);
    t.extend_from_slice(&crc.to_le_bytes());
    // RFC 1952: ISIZE is the input size modulo 2^32.
    t.extend_from_slice(&((len as u64 & 0xffff_ffff) as u32).to_le_bytes());
    t
}

/// The targets' part deflated with a sync flush, and the CRC state after hashing it.
#[derive(Debug)]
struct Deflated {
    stream: Bytes,
    crc: crc32fast::Hasher,
}

/// One format's text of the targets' part, and its deflated stream once a gzip scrape asked.
#[derive(Debug, Default)]
struct Encoded {
    text: Bytes,
    /// Built by the first gzip scrape; `None` inside if compression failed.
    deflated: OnceLock<Option<Deflated>>,
}

impl Encoded {
    fn new(text: Bytes) -> Self {
        Self {
            text,
            deflated: OnceLock::new(),
        }
    }

    fn deflated(&self) -> Option<&Deflated> {
        self.deflated
            .get_or_init(|| {
                let stream = deflate(&self.text, FlushCompress::Sync)
                    .inspect_err(|e| tracing::error!(error = %e, "gzip failed; serving plain text"))
                    .ok()?;
                let mut crc = crc32fast::Hasher::new();
                crc.update(&self.text);
                Some(Deflated {
                    stream: Bytes::from(stream),
                    crc,
                })
            })
            .as_ref()
    }
}

/// The targets' part of `/metrics` for one set of encodings.
#[derive(Debug)]
struct TargetsPart {
    /// The encodings' generation it was merged from (not the encodings themselves: holding
    /// them would keep every target's previous encoding alive until the next scrape).
    generation: u64,
    /// OpenMetrics, as encoded.
    om: Encoded,
    /// The classic text, derived by the first scrape that asks for it.
    classic: OnceLock<Encoded>,
}

impl TargetsPart {
    fn new(generation: u64, text: Bytes) -> Self {
        Self {
            generation,
            om: Encoded::new(text),
            classic: OnceLock::new(),
        }
    }

    fn encoded(&self, format: Format) -> &Encoded {
        match format {
            Format::OpenMetrics => &self.om,
            Format::Text => self.classic.get_or_init(|| {
                let mut out = Vec::new();
                to_classic(&self.om.text, &mut out);
                Encoded::new(Bytes::from(out))
            }),
        }
    }
}

/// Parts up to this size are kept between scrapes; larger ones only while a scrape still
/// sends them. A fleet whose `/metrics` is this large changes it every few milliseconds (at
/// 1000 targets every 15 s, 67 collections a second), so keeping the ~40 MB part would cost
/// its size in memory and save nothing; below it, a repeated scrape is a copy of pointers.
pub const KEEP_PART_BYTES: usize = 8 << 20;

/// The merged targets' part, kept while no target's encoding changed.
#[derive(Debug, Default)]
pub struct ScrapeCache {
    current: Mutex<Kept>,
}

/// The last part: held when small, else only referenced while in use.
#[derive(Debug, Default)]
enum Kept {
    #[default]
    Nothing,
    Held(Arc<TargetsPart>),
    InUse(std::sync::Weak<TargetsPart>),
}

impl ScrapeCache {
    /// The part for `encoded` (in serving order) of `generation`: the cached one when it was
    /// merged from the same generation (and is still around), else merged now. The lock is
    /// held while merging, so concurrent scrapes after a change merge once.
    fn part(&self, generation: u64, encoded: &[Arc<EncodedTarget>]) -> Arc<TargetsPart> {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let cached = match &*current {
            Kept::Nothing => None,
            Kept::Held(part) => Some(part.clone()),
            Kept::InUse(weak) => weak.upgrade(),
        };
        if let Some(part) = cached.filter(|p| p.generation == generation) {
            return part;
        }
        // Sized exactly by the merge.
        let mut text = String::new();
        write_merged(&mut text, encoded);
        debug_assert_eq!(text.len(), text.capacity());
        let part = Arc::new(TargetsPart::new(generation, Bytes::from(text)));
        *current = if part.om.text.len() <= KEEP_PART_BYTES {
            Kept::Held(part.clone())
        } else {
            Kept::InUse(Arc::downgrade(&part))
        };
        part
    }

    /// A scrape of `encoded` (of `generation`) followed by `tail` (the exporter's own part,
    /// ending `# EOF`).
    pub fn scrape(
        &self,
        (generation, encoded): (u64, Vec<Arc<EncodedTarget>>),
        tail: String,
    ) -> Scrape {
        let targets = self.part(generation, &encoded);
        // The encodings are not needed once merged.
        drop(encoded);
        Scrape {
            targets,
            tail: Bytes::from(tail),
        }
    }
}

/// One `/metrics` response before its encoding is chosen.
#[derive(Debug)]
pub struct Scrape {
    targets: Arc<TargetsPart>,
    tail: Bytes,
}

impl Scrape {
    /// The exporter's part in `format` (it is small: converted per scrape).
    fn tail(&self, format: Format) -> Bytes {
        match format {
            Format::OpenMetrics => self.tail.clone(),
            Format::Text => {
                let mut out = Vec::new();
                to_classic(&self.tail, &mut out);
                Bytes::from(out)
            }
        }
    }

    /// The body in `format` as plain text, in chunks (shared, not copied).
    pub fn plain(&self, format: Format) -> Vec<Bytes> {
        vec![self.targets.encoded(format).text.clone(), self.tail(format)]
    }

    /// The body in `format` as one gzip member, in chunks; `None` if compression failed
    /// (serve [`Scrape::plain`] then).
    pub fn gzip(&self, format: Format) -> Option<Vec<Bytes>> {
        let targets = self.targets.encoded(format);
        let cached = targets.deflated()?;
        let tail = self.tail(format);
        let tail_stream = deflate(&tail, FlushCompress::Finish)
            .inspect_err(|e| tracing::error!(error = %e, "gzip failed; serving plain text"))
            .ok()?;
        let mut crc = cached.crc.clone();
        crc.update(&tail);
        let len = targets.text.len() + tail.len();
        let tail = tail_stream;
        Some(vec![
            Bytes::from_static(&GZIP_HEADER),
            cached.stream.clone(),
            Bytes::from(tail),
            Bytes::from(trailer(crc.finalize(), len)),
        ])
    }

    /// The whole text in OpenMetrics (tests and callers that want one string).
    pub fn text(&self) -> String {
        let mut s = String::with_capacity(self.targets.om.text.len() + self.tail.len());
        s.push_str(&String::from_utf8_lossy(&self.targets.om.text));
        s.push_str(&String::from_utf8_lossy(&self.tail));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gunzip(chunks: &[Bytes]) -> String {
        let all: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        let mut out = String::new();
        flate2::read::GzDecoder::new(&all[..])
            .read_to_string(&mut out)
            .expect("a valid gzip member");
        out
    }

    #[test]
    fn a_spliced_stream_is_one_valid_gzip_member() {
        let targets: String = (0..5000)
            .map(|i| format!("pg_up{{server=\"t{i}\"}} 1\n"))
            .collect();
        let part = TargetsPart::new(0, Bytes::from(targets.clone()));
        let scrape = Scrape {
            targets: Arc::new(part),
            tail: Bytes::from("mesa_build_info{version=\"x\"} 1\n# EOF\n"),
        };
        let gz = scrape.gzip(Format::OpenMetrics).expect("compresses");
        assert_eq!(gunzip(&gz), scrape.text());
        let size: usize = gz.iter().map(|c| c.len()).sum();
        assert!(size * 5 < scrape.text().len(), "{size} bytes");
        // The cached stream is reused, and a second scrape decodes the same.
        let again = scrape.gzip(Format::OpenMetrics).expect("compresses");
        assert_eq!(gz[1].as_ptr(), again[1].as_ptr());
        assert_eq!(gunzip(&again), scrape.text());
        // The classic text: its own cached stream, the same samples, no `# EOF`.
        let classic = gunzip(&scrape.gzip(Format::Text).expect("compresses"));
        assert_eq!(
            classic,
            format!("{targets}mesa_build_info{{version=\"x\"}} 1\n")
        );
        let plain: Vec<u8> = scrape.plain(Format::Text).concat();
        assert_eq!(plain, classic.as_bytes());
    }

    #[test]
    fn a_large_part_is_dropped_with_its_last_scrape_and_a_small_one_is_kept() {
        use crate::collectors::{Family, Kind, Value};
        use crate::snapshot::TargetSnapshot;
        let target = |name: &str, series: usize| {
            let mut f = Family::new("pg_big", "help", Kind::Gauge);
            for i in 0..series {
                f.push(vec![("n", format!("{i:0>64}"))], Value::Int(1));
            }
            let snapshot = TargetSnapshot {
                target: name.to_owned(),
                driver: crate::gateway::Driver::Postgres,
                finished_at: std::time::SystemTime::now(),
                duration: std::time::Duration::ZERO,
                result: Ok(crate::collectors::Collection {
                    server_version: 150_000,
                    outcomes: vec![crate::collectors::Outcome {
                        collector: "health",
                        duration: std::time::Duration::ZERO,
                        result: Ok(crate::collectors::Harvest {
                            families: vec![f],
                            omitted: None,
                        }),
                        collected_at: None,
                        from_earlier: false,
                    }],
                    change_key: None,
                    ..Default::default()
                }),
                last_success: None,
            };
            Arc::new(EncodedTarget::new(&Arc::new(snapshot), true))
        };
        let cache = ScrapeCache::default();
        let small = vec![target("a", 10)];
        let first = cache.part(1, &small);
        drop(first);
        let again = cache.part(1, &small);
        assert!(
            matches!(&*cache.current.lock().expect("lock"), Kept::Held(p) if Arc::ptr_eq(p, &again))
        );
        // ~100 bytes a line: 100 000 lines is past the limit.
        let large = vec![target("b", 100_000)];
        let big = cache.part(2, &large);
        assert!(big.om.text.len() > KEEP_PART_BYTES);
        let shared = cache.part(2, &large);
        assert!(Arc::ptr_eq(&big, &shared), "shared while in use");
        drop((big, shared));
        assert!(
            matches!(&*cache.current.lock().expect("lock"), Kept::InUse(w) if w.upgrade().is_none())
        );
    }

    #[test]
    fn an_empty_targets_part_still_makes_a_valid_member() {
        let scrape = Scrape {
            targets: Arc::new(TargetsPart::new(0, Bytes::new())),
            tail: Bytes::from("# EOF\n"),
        };
        assert_eq!(
            gunzip(&scrape.gzip(Format::OpenMetrics).expect("compresses")),
            "# EOF\n"
        );
        assert_eq!(gunzip(&scrape.gzip(Format::Text).expect("compresses")), "");
        assert_eq!(gunzip(&gzip(b"abc").expect("compresses")), "abc");
    }
}
