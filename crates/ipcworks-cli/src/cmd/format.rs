//! How `recv` prints messages and `send` reads them from stdin, so that
//! every message keeps its bytes and its boundaries:
//!
//! - **lines** (the default): one message per line. `recv` writes a message
//!   that would break its line (a newline, a backslash, another control
//!   character, invalid UTF-8) with C escapes (`\n`, `\\`, `\xHH`);
//!   `send -e` reads those escapes back, as `echo -e`/`printf %b` do.
//! - **`--json`**: one JSON object per line ([`json_schema!`]), text payloads as
//!   text, anything else in base64.
//! - **`-0`/`--null`**: raw bytes, each message followed by a NUL byte, like
//!   `find -print0` and `xargs -0`. A message holding a NUL cannot be
//!   delimited this way.

use std::io::BufRead;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

/// The `--json` record, as `recv --help` documents it (a macro, so it can
/// be `concat!`ed into a help text).
macro_rules! json_schema {
    () => {
        r#"--json prints one JSON object per message and line:
  {"endpoint":"mq:jobs","priority":5,"len":5,"payload":"hello","encoding":"utf8"}
  endpoint  where the message came from (the address, sysv: keys in hex)
  priority  mq:, queue: and zenoh: only (the message priority)
  type      sysv: and zenoh: only (the message type)
  len       the message's length in bytes
  payload   the message: the text itself when it is valid UTF-8 ("encoding":"utf8"),
            else its bytes in base64 ("encoding":"base64")
`ipcworks send --json` reads the same records (priority and type from the record
when present, endpoint ignored)."#
    };
}
pub(crate) use json_schema;

/// How messages are written to stdout or read from stdin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One per line, C escapes where needed (`recv`); `send` reads lines
    /// raw, or unescaped with `-e`.
    Lines {
        /// `send -e`: read C escapes.
        escapes: bool,
    },
    /// One JSON record per line.
    Json,
    /// Raw bytes, each message followed by NUL.
    Null,
}

impl Format {
    /// From the command's flags (clap keeps them exclusive).
    pub fn from_flags(json: bool, null: bool, escapes: bool) -> Self {
        if json {
            Format::Json
        } else if null {
            Format::Null
        } else {
            Format::Lines { escapes }
        }
    }
}

/// Which metadata an endpoint's messages carry into a JSON record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaField {
    /// `priority` (mq:, queue:).
    Priority,
    /// `type` (sysv:).
    Type,
    /// Both (zenoh:, whose samples carry both in their attachment).
    Both,
    /// Neither (byte streams, the shm channel).
    None,
}

/// Appends `msg` to `out` as one line's text (without the newline) with C
/// escapes: `\\`, `\n`, `\r`, and `\xHH` for every other control
/// character (C0, DEL, C1) and every byte of invalid UTF-8. Tabs and
/// printable text, non-ASCII included, stay as they are. Returns whether
/// anything was escaped. [`unescape`] undoes it exactly.
pub fn escape_into(msg: &[u8], out: &mut Vec<u8>) -> bool {
    let mut escaped = false;
    let hex = |out: &mut Vec<u8>, b: u8| {
        out.extend_from_slice(format!("\\x{b:02x}").as_bytes());
    };
    for chunk in msg.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.extend_from_slice(b"\\\\"),
                '\n' => out.extend_from_slice(b"\\n"),
                '\r' => out.extend_from_slice(b"\\r"),
                '\t' => {
                    out.push(b'\t');
                    continue;
                }
                c if c.is_control() => {
                    let mut buf = [0u8; 4];
                    for &b in c.encode_utf8(&mut buf).as_bytes() {
                        hex(out, b);
                    }
                }
                c => {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    continue;
                }
            }
            escaped = true;
        }
        for &b in chunk.invalid() {
            hex(out, b);
            escaped = true;
        }
    }
    escaped
}

/// Reads C escapes as `echo -e` and `printf %b` do: `\\`, `\a`, `\b`,
/// `\e`, `\f`, `\n`, `\r`, `\t`, `\v`, `\0NNN` (up to three octal
/// digits), `\xHH` (one or two hex digits), `\uHHHH` and `\UHHHHHHHH`
/// (a character, written in UTF-8). Any other byte stands for itself. An
/// unknown escape or a lone backslash at the end is an error, not
/// passed through: a typo must not become data.
pub fn unescape(text: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    // Up to `max` digits of `radix` from position `i`.
    let digits = |i: usize, max: usize, radix: u32| -> (u32, usize) {
        let mut v = 0u32;
        let mut n = 0;
        while n < max {
            match text.get(i + n).and_then(|&b| (b as char).to_digit(radix)) {
                Some(d) => v = v * radix + d,
                None => break,
            }
            n += 1;
        }
        (v, n)
    };
    while i < text.len() {
        let b = text[i];
        i += 1;
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let Some(&e) = text.get(i) else {
            return Err("a lone backslash at the end (write \\\\ for a backslash)".into());
        };
        i += 1;
        let simple = match e {
            b'\\' => Some(b'\\'),
            b'a' => Some(7),
            b'b' => Some(8),
            b'e' | b'E' => Some(0x1b),
            b'f' => Some(0x0c),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'v' => Some(0x0b),
            _ => None,
        };
        if let Some(byte) = simple {
            out.push(byte);
            continue;
        }
        match e {
            b'0' => {
                let (v, n) = digits(i, 3, 8);
                let byte = u8::try_from(v)
                    .map_err(|_| format!("\\0{:o} is more than one byte (\\0377 at most)", v))?;
                out.push(byte);
                i += n;
            }
            b'x' => {
                let (v, n) = digits(i, 2, 16);
                if n == 0 {
                    return Err("\\x without hex digits (write \\xHH)".into());
                }
                out.push(v as u8);
                i += n;
            }
            b'u' | b'U' => {
                let want = if e == b'u' { 4 } else { 8 };
                let (v, n) = digits(i, want, 16);
                let c = char::from_u32(v).filter(|_| n == want).ok_or_else(|| {
                    format!(
                        "\\{} needs {want} hex digits of a Unicode character",
                        e as char
                    )
                })?;
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                i += n;
            }
            other => {
                return Err(format!(
                    "unknown escape \\{} (write \\\\ for a backslash)",
                    String::from_utf8_lossy(&[other])
                ));
            }
        }
    }
    Ok(out)
}

/// One `--json` record (without the newline).
pub fn json_record(endpoint: &str, field: MetaField, meta: (u32, i64), msg: &[u8]) -> String {
    let text = std::str::from_utf8(msg);
    let (payload, encoding) = match text {
        Ok(s) => (s.to_string(), "utf8"),
        Err(_) => (BASE64.encode(msg), "base64"),
    };
    let quote = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
    let meta = match field {
        MetaField::Priority => format!(",\"priority\":{}", meta.0),
        MetaField::Type => format!(",\"type\":{}", meta.1),
        MetaField::Both => format!(",\"priority\":{},\"type\":{}", meta.0, meta.1),
        MetaField::None => String::new(),
    };
    format!(
        "{{\"endpoint\":{}{meta},\"len\":{},\"payload\":{},\"encoding\":\"{encoding}\"}}",
        quote(endpoint),
        msg.len(),
        quote(&payload)
    )
}

/// A message read from a `--json` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The payload, decoded.
    pub payload: Vec<u8>,
    /// `priority`, when the record has it.
    pub priority: Option<u32>,
    /// `type`, when the record has it.
    pub msg_type: Option<i64>,
}

/// Reads one `--json` record: `payload` (required), `encoding` (`utf8`,
/// the default, or `base64`), `len` (checked when present), `priority`,
/// `type`. Other fields (`endpoint`, fields of later versions) are ignored.
pub fn parse_record(line: &[u8]) -> Result<Record, String> {
    use serde_json::Value;
    let v: Value = serde_json::from_slice(line).map_err(|e| format!("not a JSON record ({e})"))?;
    let Value::Object(o) = v else {
        return Err("not a JSON object".into());
    };
    let payload = match o.get("payload") {
        Some(Value::String(s)) => s,
        Some(_) => return Err("\"payload\" is not a string".into()),
        None => return Err("no \"payload\" field".into()),
    };
    let payload = match o.get("encoding").map(|e| e.as_str()) {
        None | Some(Some("utf8")) => payload.as_bytes().to_vec(),
        Some(Some("base64")) => BASE64
            .decode(payload)
            .map_err(|e| format!("\"payload\" is not valid base64 ({e})"))?,
        Some(_) => {
            return Err(format!(
                "\"encoding\" must be \"utf8\" or \"base64\", not {}",
                o["encoding"]
            ));
        }
    };
    if let Some(len) = o.get("len")
        && len.as_u64() != Some(payload.len() as u64)
    {
        return Err(format!(
            "\"len\" is {len} but the payload has {} bytes",
            payload.len()
        ));
    }
    let priority = match o.get("priority") {
        None => None,
        Some(p) => Some(
            p.as_u64()
                .and_then(|p| u32::try_from(p).ok())
                .ok_or_else(|| format!("\"priority\" {p} is not a number from 0 to 4294967295"))?,
        ),
    };
    let msg_type = match o.get("type") {
        None => None,
        Some(t) => Some(
            t.as_i64()
                .ok_or_else(|| format!("\"type\" {t} is not an integer"))?,
        ),
    };
    Ok(Record {
        payload,
        priority,
        msg_type,
    })
}

/// Reads stdin in `format`, calling `each(message, record)` per message;
/// `record` is the JSON record's metadata. Errors name the line or record.
pub fn read_messages(
    input: impl BufRead,
    format: Format,
    mut each: impl FnMut(&[u8], Option<&Record>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let sep = if format == Format::Null { b'\0' } else { b'\n' };
    let what = if format == Format::Null {
        "record"
    } else {
        "line"
    };
    for (i, item) in input.split(sep).enumerate() {
        let item = item.map_err(|e| anyhow::anyhow!("reading stdin: {e}"))?;
        let at = |why: String| anyhow::anyhow!("stdin {what} {}: {why}", i + 1);
        match format {
            Format::Lines { escapes: false } | Format::Null => each(&item, None)?,
            Format::Lines { escapes: true } => each(&unescape(&item).map_err(at)?, None)?,
            Format::Json => {
                if item.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let r = parse_record(&item).map_err(at)?;
                each(&r.payload, Some(&r))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn escape(msg: &[u8]) -> (String, bool) {
        let mut out = Vec::new();
        let e = escape_into(msg, &mut out);
        (String::from_utf8(out).expect("escaped text is UTF-8"), e)
    }

    #[test]
    fn escapes_what_breaks_a_line_and_nothing_else() {
        assert_eq!(escape(b"plain text"), ("plain text".into(), false));
        assert_eq!(
            escape("h\u{e9}llo\tw".as_bytes()),
            ("h\u{e9}llo\tw".into(), false)
        );
        assert_eq!(escape(b"a\nb"), ("a\\nb".into(), true));
        assert_eq!(escape(b"back\\slash"), ("back\\\\slash".into(), true));
        assert_eq!(
            escape(b"\r\0\x1b[2J\x7f"),
            ("\\r\\x00\\x1b[2J\\x7f".into(), true)
        );
        assert_eq!(escape(&[0xff, b'a', 0xc3]), ("\\xffa\\xc3".into(), true));
        // A C1 control (U+009B, a terminal's CSI) goes out as its bytes.
        assert_eq!(escape("\u{9b}".as_bytes()), ("\\xc2\\x9b".into(), true));
    }

    #[test]
    fn reads_the_escapes_printf_b_reads() {
        let cases: [(&str, &[u8]); 10] = [
            (r"a\nb", b"a\nb"),
            (r"\\", b"\\"),
            (r"\x41\x4", b"A\x04"),
            (r"\x00z", b"\0z"),
            (r"\0", b"\0"),
            (r"\0101\0end", b"A\0end"),
            (r"\a\b\e\f\v\r\t", b"\x07\x08\x1b\x0c\x0b\r\t"),
            (r"\u00e9", "\u{e9}".as_bytes()),
            (r"\U0001F600", "\u{1F600}".as_bytes()),
            ("raw \u{e9}", "raw \u{e9}".as_bytes()),
        ];
        for (text, bytes) in cases {
            assert_eq!(unescape(text.as_bytes()).as_deref(), Ok(bytes), "{text}");
        }
        for (bad, needle) in [
            (r"\q", r"\q"),
            ("x\\", "lone backslash"),
            (r"\xg", "hex"),
            (r"\u12", "4 hex digits"),
            (r"\ud800", "Unicode"),
            (r"\0777", "one byte"),
        ] {
            let e = unescape(bad.as_bytes()).unwrap_err();
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }

    #[test]
    fn json_records_carry_the_metadata_of_their_mechanism() {
        assert_eq!(
            json_record("mq:jobs", MetaField::Priority, (5, 0), b"hello"),
            r#"{"endpoint":"mq:jobs","priority":5,"len":5,"payload":"hello","encoding":"utf8"}"#
        );
        assert_eq!(
            json_record("sysv:0x2a", MetaField::Type, (0, -3), b"a\nb"),
            r#"{"endpoint":"sysv:0x2a","type":-3,"len":3,"payload":"a\nb","encoding":"utf8"}"#
        );
        assert_eq!(
            json_record("-", MetaField::None, (0, 0), &[0xff, 0]),
            r#"{"endpoint":"-","len":2,"payload":"/wA=","encoding":"base64"}"#
        );
    }

    proptest! {
        #[test]
        fn escaping_is_one_clean_line_and_undone_exactly(msg in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut out = Vec::new();
            let escaped = escape_into(&msg, &mut out);
            let text = String::from_utf8(out.clone()).expect("UTF-8");
            prop_assert!(!text.chars().any(|c| c.is_control() && c != '\t'));
            prop_assert_eq!(escaped, out != msg);
            prop_assert_eq!(unescape(&out), Ok(msg));
        }

        #[test]
        fn json_records_are_read_back_exactly(
            msg in proptest::collection::vec(any::<u8>(), 0..64),
            text in ".{0,16}",
            priority in any::<u32>(),
            t in any::<i64>(),
        ) {
            for m in [&msg[..], text.as_bytes()] {
                let p = parse_record(json_record("queue:q", MetaField::Priority, (priority, 0), m).as_bytes()).unwrap();
                prop_assert_eq!(&p.payload[..], m);
                prop_assert_eq!((p.priority, p.msg_type), (Some(priority), None));
                let s = parse_record(json_record("sysv:1", MetaField::Type, (0, t), m).as_bytes()).unwrap();
                prop_assert_eq!((s.priority, s.msg_type), (None, Some(t)));
            }
        }
    }
}
