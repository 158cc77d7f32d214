//! Checkpoint files of a consumer, in the format the Python consumers
//! write (`python/ringstat/broker/_checkpoint.py`), so either language
//! resumes from the other's: the line `RSCK 1`, one line of JSON
//! `{"offset": POSITION, "dedup": {"gaps": G, "producers": {"<id>":
//! [<floor>, [<sequence>, ...]], ...}}}`, then the pipeline state bytes
//! (`wire::encode_pipeline_state`) to the end of the file. `POSITION` is,
//! for Kafka, `{"<partition>": <offset to read next>, ...}`; for a RabbitMQ
//! stream, the offset of the last frame applied (-1 before offset 0; null
//! before any). Written
//! atomically: a temporary file, fsync, rename, and the directory synced,
//! so a crash leaves the old checkpoint or the new.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::consumer::Shared;
use super::BrokerError;
use crate::pipeline::{Pipeline, PipelineState};
use crate::sync::Ordering;
use crate::wire::{decode_pipeline_state, encode_pipeline_state, Dedup};

const MAGIC: &[u8] = b"RSCK 1\n";

/// The broker position a checkpoint covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Position {
    /// Kafka: the offset to read next, by partition.
    Partitions(BTreeMap<i32, i64>),
    /// A RabbitMQ stream: the offset of the last frame applied.
    Stream(Option<i64>),
}

/// What a checkpoint holds.
pub(super) struct Checkpoint {
    pub(super) position: Position,
    pub(super) dedup: Dedup,
    pub(super) state: PipelineState,
}

/// Where and how often a consumer writes its checkpoint, and how many
/// frames wait for the next.
#[derive(Debug, Clone)]
pub(super) struct Saver {
    pub(super) path: PathBuf,
    every_frames: u64,
    interval: Duration,
    unsaved: u64,
    since: Instant,
}

impl Saver {
    pub(super) fn new(path: PathBuf, every_frames: u64, interval: Duration) -> Self {
        Self {
            path,
            every_frames,
            interval,
            unsaved: 0,
            since: Instant::now(),
        }
    }

    /// A setting error, for `start`.
    pub(super) fn check(&self) -> Result<(), BrokerError> {
        if self.every_frames == 0 || self.interval.is_zero() {
            return Err(BrokerError::Config(format!(
                "checkpoints every >= 1 frames and > 0 s, got {} and {:?}",
                self.every_frames, self.interval
            )));
        }
        Ok(())
    }

    /// Reads the file, if there is one, checks that its position `fits`
    /// the consumer (a Kafka consumer's or a stream consumer's; else the
    /// error says `not a {kind}`)
    /// and merges its state into `pipeline`; returns its position and dedup
    /// record. Nothing changes on an error.
    pub(super) fn restore(
        &self,
        pipeline: &Pipeline,
        max_pending: usize,
        kind: &str,
        fits: impl Fn(&Position) -> bool,
    ) -> Result<Option<(Position, Dedup)>, BrokerError> {
        let Some(got) = read(&self.path, max_pending).map_err(BrokerError::Checkpoint)? else {
            return Ok(None);
        };
        if !fits(&got.position) {
            return Err(BrokerError::Checkpoint(format!(
                "{}: not a {kind}",
                self.path.display()
            )));
        }
        pipeline
            .merge_state(&got.state)
            .map_err(|e| BrokerError::Checkpoint(format!("{}: {e}", self.path.display())))?;
        Ok(Some((got.position, got.dedup)))
    }

    /// Counts one frame applied.
    pub(super) fn applied(&mut self) {
        self.unsaved += 1;
    }

    /// Writes the checkpoint if one is due: the frames waiting reached the
    /// setting, or frames wait and the interval passed, or `last` (the
    /// consumer stops) and any frame waits. The pipeline is flushed first,
    /// so its state holds every frame up to `position`. A failure is
    /// reported in `last_error` and tried again later.
    pub(super) fn save_if_due(
        &mut self,
        sh: &Shared,
        pipeline: &Pipeline,
        position: &Position,
        dedup: &Dedup,
        last: bool,
    ) {
        let n = self.unsaved;
        let due =
            n >= self.every_frames || (n > 0 && (last || self.since.elapsed() >= self.interval));
        if due {
            self.save(sh, pipeline, position, dedup);
        }
    }

    /// Writes a checkpoint now.
    pub(super) fn save(
        &mut self,
        sh: &Shared,
        pipeline: &Pipeline,
        position: &Position,
        dedup: &Dedup,
    ) {
        pipeline.flush();
        let written = pipeline
            .export_state()
            .map_err(|e| e.to_string())
            .and_then(|state| {
                let bytes = encode_pipeline_state(&state);
                write(&self.path, position, dedup, &bytes).map_err(|e| e.to_string())
            });
        match written {
            Ok(()) => {
                self.unsaved = 0;
                self.since = Instant::now();
                // Relaxed: a statistic.
                sh.counts.checkpoints.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => sh.set_error(format!("checkpoint {}: {e}", self.path.display())),
        }
    }
}

/// Writes a checkpoint to `path` atomically.
pub(super) fn write(
    path: &Path,
    position: &Position,
    dedup: &Dedup,
    state: &[u8],
) -> std::io::Result<()> {
    let mut header = String::from("{\"offset\":");
    match position {
        Position::Partitions(parts) => {
            header.push('{');
            for (i, (p, o)) in parts.iter().enumerate() {
                let sep = if i == 0 { "" } else { "," };
                let _ = write!(header, "{sep}\"{p}\":{o}");
            }
            header.push('}');
        }
        Position::Stream(Some(o)) => {
            let _ = write!(header, "{o}");
        }
        Position::Stream(None) => header.push_str("null"),
    }
    let (producers, gaps) = dedup.state();
    let _ = write!(header, ",\"dedup\":{{\"gaps\":{gaps},\"producers\":{{");
    for (i, (p, floor, above)) in producers.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        let above: Vec<String> = above.iter().map(u64::to_string).collect();
        let _ = write!(header, "{sep}\"{p}\":[{floor},[{}]]", above.join(","));
    }
    header.push_str("}}}\n");
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    let tmp = path.with_file_name(name);
    {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(MAGIC)?;
        f.write_all(header.as_bytes())?;
        f.write_all(state)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    fs::File::open(dir)?.sync_all()
}

/// Reads the checkpoint at `path`: `Ok(None)` if there is no file, an
/// error naming the file for one that is not a Kafka checkpoint.
pub(super) fn read(path: &Path, max_pending: usize) -> Result<Option<Checkpoint>, String> {
    let data = match fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let bad = |why: &str| format!("{}: {why}", path.display());
    let rest = data
        .strip_prefix(MAGIC)
        .ok_or_else(|| bad("not a ringstat checkpoint (version 1)"))?;
    let end = rest
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(|| bad("truncated checkpoint header"))?;
    let header = std::str::from_utf8(&rest[..end]).map_err(|_| bad("bad checkpoint header"))?;
    let json = Json::parse(header).map_err(|e| bad(&format!("bad checkpoint header: {e}")))?;
    let (position, dedup) =
        from_header(&json, max_pending).ok_or_else(|| bad("not a checkpoint header"))?;
    let state = decode_pipeline_state(&rest[end + 1..])
        .map_err(|e| bad(&format!("bad pipeline state: {e}")))?;
    Ok(Some(Checkpoint {
        position,
        dedup,
        state,
    }))
}

/// The position and dedup record of a parsed header.
fn from_header(json: &Json, max_pending: usize) -> Option<(Position, Dedup)> {
    let position = match json.get("offset")? {
        Json::Null => Position::Stream(None),
        Json::Int(o) => Position::Stream(Some(i64::try_from(*o).ok()?)),
        Json::Neg(-1) => Position::Stream(Some(-1)),
        offsets => {
            let mut parts = BTreeMap::new();
            for (p, o) in offsets.object()? {
                let o = i64::try_from(o.int()?).ok()?;
                parts.insert(p.parse().ok().filter(|p: &i32| *p >= 0)?, o);
            }
            Position::Partitions(parts)
        }
    };
    let dedup = json.get("dedup")?;
    let gaps = match dedup.get("gaps") {
        Some(g) => g.int()?,
        None => 0,
    };
    let mut producers = Vec::new();
    for (p, entry) in dedup.get("producers")?.object()? {
        let [floor, above] = entry.array()? else {
            return None;
        };
        let above: Option<Vec<u64>> = above.array()?.iter().map(Json::int).collect();
        producers.push((p.parse().ok()?, floor.int()?, above?));
    }
    Some((position, Dedup::from_state(&producers, gaps, max_pending)))
}

/// The JSON the header uses: objects, arrays, non-negative integers, the
/// strings of object keys, and null.
#[derive(Debug, PartialEq)]
enum Json {
    Null,
    Int(u64),
    /// A negative integer (a stream offset of -1: nothing applied yet, the
    /// next frame is offset 0).
    Neg(i64),
    Str(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    fn parse(text: &str) -> Result<Self, String> {
        let mut p = Parser {
            s: text.as_bytes(),
            i: 0,
            depth: 0,
        };
        let v = p.value()?;
        p.ws();
        if p.i != p.s.len() {
            return Err(format!("trailing bytes at {}", p.i));
        }
        Ok(v)
    }

    fn get(&self, key: &str) -> Option<&Json> {
        self.object()?
            .iter()
            .find_map(|(k, v)| (k == key).then_some(v))
    }

    fn object(&self) -> Option<&[(String, Json)]> {
        match self {
            Self::Object(o) => Some(o),
            _ => None,
        }
    }

    fn array(&self) -> Option<&[Json]> {
        match self {
            Self::Array(a) => Some(a),
            _ => None,
        }
    }

    fn int(&self) -> Option<u64> {
        match self {
            Self::Int(n) => Some(*n),
            _ => None,
        }
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    depth: usize,
}

impl Parser<'_> {
    /// Nesting allowed: the header needs 4 levels.
    const MAX_DEPTH: usize = 16;

    fn ws(&mut self) {
        while self.s.get(self.i).is_some_and(u8::is_ascii_whitespace) {
            self.i += 1;
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        self.ws();
        let hit = self.s.get(self.i) == Some(&b);
        if hit {
            self.i += 1;
        }
        hit
    }

    fn value(&mut self) -> Result<Json, String> {
        self.ws();
        let at = self.i;
        match self.s.get(at) {
            Some(b'{') | Some(b'[') => {
                self.depth += 1;
                if self.depth > Self::MAX_DEPTH {
                    return Err("nested too deeply".into());
                }
                let v = if self.s[at] == b'{' {
                    self.object()
                } else {
                    self.array()
                };
                self.depth -= 1;
                v
            }
            Some(b'"') => self.string().map(Json::Str),
            Some(b'n') if self.s[at..].starts_with(b"null") => {
                self.i += 4;
                Ok(Json::Null)
            }
            Some(b'-') if self.s.get(at + 1).is_some_and(u8::is_ascii_digit) => {
                self.i += 1;
                match self.value()? {
                    Json::Int(n) => i64::try_from(n)
                        .map(|n| Json::Neg(-n))
                        .map_err(|_| "number out of range".into()),
                    _ => Err(format!("unexpected input at {at}")),
                }
            }
            Some(b'0'..=b'9') => {
                let mut n: u64 = 0;
                while let Some(d @ b'0'..=b'9') = self.s.get(self.i).copied() {
                    n = n
                        .checked_mul(10)
                        .and_then(|n| n.checked_add(u64::from(d - b'0')))
                        .ok_or("number out of range")?;
                    self.i += 1;
                }
                if matches!(self.s.get(self.i), Some(b'.' | b'e' | b'E')) {
                    return Err(format!("not an integer at {at}"));
                }
                Ok(Json::Int(n))
            }
            _ => Err(format!("unexpected input at {at}")),
        }
    }

    fn object(&mut self) -> Result<Json, String> {
        self.i += 1; // '{'
        let mut fields = Vec::new();
        if self.eat(b'}') {
            return Ok(Json::Object(fields));
        }
        loop {
            self.ws();
            let key = self.string()?;
            if !self.eat(b':') {
                return Err(format!("expected ':' at {}", self.i));
            }
            fields.push((key, self.value()?));
            if self.eat(b'}') {
                return Ok(Json::Object(fields));
            }
            if !self.eat(b',') {
                return Err(format!("expected ',' or '}}' at {}", self.i));
            }
        }
    }

    fn array(&mut self) -> Result<Json, String> {
        self.i += 1; // '['
        let mut items = Vec::new();
        if self.eat(b']') {
            return Ok(Json::Array(items));
        }
        loop {
            items.push(self.value()?);
            if self.eat(b']') {
                return Ok(Json::Array(items));
            }
            if !self.eat(b',') {
                return Err(format!("expected ',' or ']' at {}", self.i));
            }
        }
    }

    /// A string without escapes (the header's keys are digits and names).
    fn string(&mut self) -> Result<String, String> {
        if self.s.get(self.i) != Some(&b'"') {
            return Err(format!("expected a string at {}", self.i));
        }
        let start = self.i + 1;
        let len = self.s[start..]
            .iter()
            .position(|&b| b == b'"' || b == b'\\')
            .ok_or("unterminated string")?;
        if self.s[start + len] == b'\\' {
            return Err(format!(
                "escapes are not used in a header, at {}",
                start + len
            ));
        }
        self.i = start + len + 1;
        String::from_utf8(self.s[start..start + len].to_vec()).map_err(|_| "bad UTF-8".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("ringstat-ckpt-{}-{name}", std::process::id()))
    }

    #[test]
    fn round_trip_and_reads_what_python_writes() {
        let path = temp("rt");
        let mut d = Dedup::default();
        for s in [1, 2, 3, 5] {
            d.add(42, s);
        }
        let state = encode_pipeline_state(&PipelineState::default());
        for position in [
            Position::Partitions(BTreeMap::from([(0, 17), (3, 2)])),
            Position::Stream(Some(41)),
            Position::Stream(Some(-1)),
            Position::Stream(None),
        ] {
            write(&path, &position, &d, &state).unwrap();
            let c = read(&path, 4096).unwrap().unwrap();
            assert_eq!((&c.position, &c.dedup), (&position, &d));
            assert_eq!(c.state, PipelineState::default());
        }
        // The headers exactly as `_checkpoint.write` (json.dumps with
        // separators=(",", ":")) writes them, for Kafka and for a stream.
        for (header, want) in [
            (
                &br#"{"offset":{"0":17,"3":2},"dedup":{"gaps":1,"producers":{"42":[4,[5]]}}}"#[..],
                Position::Partitions(BTreeMap::from([(0, 17), (3, 2)])),
            ),
            (
                &br#"{"offset":9,"dedup":{"gaps":1,"producers":{"42":[4,[5]]}}}"#[..],
                Position::Stream(Some(9)),
            ),
            (
                &br#"{"offset":-1,"dedup":{"gaps":1,"producers":{"42":[4,[5]]}}}"#[..],
                Position::Stream(Some(-1)),
            ),
        ] {
            let mut file = MAGIC.to_vec();
            file.extend_from_slice(header);
            file.push(b'\n');
            file.extend_from_slice(&state);
            fs::write(&path, &file).unwrap();
            let c = read(&path, 4096).unwrap().unwrap();
            assert_eq!(c.position, want);
            assert_eq!(c.dedup.state(), (vec![(42, 4, vec![5])], 1));
        }
        fs::remove_file(&path).unwrap();
        assert!(
            read(&path, 4096).unwrap().is_none(),
            "no file: no checkpoint"
        );
    }

    #[test]
    fn a_bad_file_is_a_clear_error() {
        let path = temp("bad");
        let state = encode_pipeline_state(&PipelineState::default());
        let with = |header: &str, body: &[u8]| {
            let mut f = MAGIC.to_vec();
            f.extend_from_slice(header.as_bytes());
            f.push(b'\n');
            f.extend_from_slice(body);
            f
        };
        let good = r#"{"offset":{},"dedup":{"producers":{}}}"#;
        for (file, why) in [
            (b"hello".to_vec(), "not a ringstat checkpoint"),
            (MAGIC.to_vec(), "truncated"),
            (
                with(r#"{"offset":"7","dedup":{"producers":{}}}"#, &state),
                "not a checkpoint header",
            ),
            (
                with(r#"{"offset":null,"dedup":{}}"#, &state),
                "not a checkpoint header",
            ),
            (
                with(r#"{"offset":-2,"dedup":{"producers":{}}}"#, &state),
                "not a checkpoint header",
            ),
            (
                with(r#"{"offset":{"0":-1},"dedup":{"producers":{}}}"#, &state),
                "not a checkpoint header",
            ),
            (
                with(r#"{"offset":{"x":1},"dedup":{"producers":{}}}"#, &state),
                "not a checkpoint header",
            ),
            (with(r#"{"offset":{"0":1.5}}"#, &state), "not an integer"),
            (
                with(r#"{"offset":{"0":99999999999999999999}}"#, &state),
                "out of range",
            ),
            (with(r#"{"offset":{}"#, &state), "bad checkpoint header"),
            (with(&"[".repeat(40), &state), "nested too deeply"),
            (with(good, b"junk"), "bad pipeline state"),
        ] {
            fs::write(&path, &file).unwrap();
            let e = read(&path, 4096).err().expect(why);
            assert!(e.contains(why) && e.contains("ringstat-ckpt"), "{why}: {e}");
        }
        fs::write(&path, with(good, &state)).unwrap();
        assert!(read(&path, 4096).unwrap().is_some());
        fs::remove_file(&path).unwrap();
    }
}
