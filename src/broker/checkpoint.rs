//! Checkpoint files of a Kafka consumer, in the format the Python
//! consumers write (`python/ringstat/broker/_checkpoint.py`), so either
//! language resumes from the other's file: the line `RSCK 1`, one line of
//! JSON `{"offset": {"<partition>": <offset to read next>, ...}, "dedup":
//! {"gaps": G, "producers": {"<id>": [<floor>, [<sequence>, ...]], ...}}}`,
//! then the pipeline state bytes (`wire::encode_pipeline_state`) to the end
//! of the file. Written atomically: a temporary file, fsync, rename, and
//! the directory synced, so a crash leaves the old checkpoint or the new.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::Path;

use crate::pipeline::PipelineState;
use crate::wire::{decode_pipeline_state, Dedup};

const MAGIC: &[u8] = b"RSCK 1\n";

/// What a checkpoint holds.
pub(super) struct Checkpoint {
    /// The offset to read next, by partition.
    pub(super) positions: BTreeMap<i32, i64>,
    pub(super) dedup: Dedup,
    pub(super) state: PipelineState,
}

/// Writes a checkpoint to `path` atomically.
pub(super) fn write(
    path: &Path,
    positions: &BTreeMap<i32, i64>,
    dedup: &Dedup,
    state: &[u8],
) -> std::io::Result<()> {
    let mut header = String::from("{\"offset\":{");
    for (i, (p, o)) in positions.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        let _ = write!(header, "{sep}\"{p}\":{o}");
    }
    let (producers, gaps) = dedup.state();
    let _ = write!(header, "}},\"dedup\":{{\"gaps\":{gaps},\"producers\":{{");
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
    let (positions, dedup) =
        from_header(&json, max_pending).ok_or_else(|| bad("not a Kafka checkpoint header"))?;
    let state = decode_pipeline_state(&rest[end + 1..])
        .map_err(|e| bad(&format!("bad pipeline state: {e}")))?;
    Ok(Some(Checkpoint {
        positions,
        dedup,
        state,
    }))
}

/// The positions and dedup record of a parsed header; `None` if it is not
/// a Kafka checkpoint's (a RabbitMQ stream's holds one offset or null).
fn from_header(json: &Json, max_pending: usize) -> Option<(BTreeMap<i32, i64>, Dedup)> {
    let mut positions = BTreeMap::new();
    for (p, o) in json.get("offset")?.object()? {
        let o = i64::try_from(o.int()?).ok()?;
        positions.insert(p.parse().ok().filter(|p: &i32| *p >= 0)?, o);
    }
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
    Some((positions, Dedup::from_state(&producers, gaps, max_pending)))
}

/// The JSON the header uses: objects, arrays, non-negative integers, the
/// strings of object keys, and null.
#[derive(Debug, PartialEq)]
enum Json {
    Null,
    Int(u64),
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
    use crate::wire::encode_pipeline_state;

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
        let positions = BTreeMap::from([(0, 17), (3, 2)]);
        let state = encode_pipeline_state(&PipelineState::default());
        write(&path, &positions, &d, &state).unwrap();
        let c = read(&path, 4096).unwrap().unwrap();
        assert_eq!(
            (c.positions, c.dedup, c.state),
            (positions, d, PipelineState::default())
        );
        // The header exactly as `_checkpoint.write` (json.dumps with
        // separators=(",", ":")) writes it.
        let header = br#"{"offset":{"0":17,"3":2},"dedup":{"gaps":1,"producers":{"42":[4,[5]]}}}"#;
        let mut file = MAGIC.to_vec();
        file.extend_from_slice(header);
        file.push(b'\n');
        file.extend_from_slice(&state);
        fs::write(&path, &file).unwrap();
        let c = read(&path, 4096).unwrap().unwrap();
        assert_eq!(c.positions, BTreeMap::from([(0, 17), (3, 2)]));
        assert_eq!(c.dedup.state(), (vec![(42, 4, vec![5])], 1));
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
        let with = |header: &[u8], body: &[u8]| {
            let mut f = MAGIC.to_vec();
            f.extend_from_slice(header);
            f.push(b'\n');
            f.extend_from_slice(body);
            f
        };
        for (file, why) in [
            (b"hello".to_vec(), "not a ringstat checkpoint"),
            (MAGIC.to_vec(), "truncated"),
            (
                with(b"{\"offset\":7,\"dedup\":{\"producers\":{}}}", &state),
                "not a Kafka",
            ),
            (
                with(b"{\"offset\":null,\"dedup\":{}}", &state),
                "not a Kafka",
            ),
            (
                with(
                    b"{\"offset\":{\"x\":1},\"dedup\":{\"producers\":{}}}",
                    &state,
                ),
                "not a Kafka",
            ),
            (with(b"{\"offset\":{\"0\":1.5}}", &state), "not an integer"),
            (
                with(b"{\"offset\":{\"0\":99999999999999999999}}", &state),
                "out of range",
            ),
            (with(b"{\"offset\":{}", &state), "bad checkpoint header"),
            (with(&[b'['; 40], &state), "nested too deeply"),
            (
                with(b"{\"offset\":{},\"dedup\":{\"producers\":{}}}", b"junk"),
                "bad pipeline state",
            ),
        ] {
            fs::write(&path, &file).unwrap();
            let e = read(&path, 4096).err().expect(why);
            assert!(e.contains(why) && e.contains("ringstat-ckpt"), "{why}: {e}");
        }
        fs::remove_file(&path).unwrap();
    }
}
