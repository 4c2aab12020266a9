//! The frames of the worker protocol (docs/worker-protocol.md): a u32 LE length,
//! a JSON header, and an optional payload whose length the header gives.

use std::io::{Read, Write};

use serde_json::{Value, json};

/// The protocol version this host speaks.
pub const PROTOCOL: u64 = 1;
/// Largest JSON header accepted; anything larger is garbage, not a frame.
pub(super) const MAX_HEADER: u32 = 64 << 20;

/// Writes one frame: u32 LE length, JSON header, optional payload (its length is
/// in the header's `payload_len`).
pub fn write_frame(w: &mut impl Write, header: &Value, payload: Option<&[u8]>) -> std::io::Result<()> {
    let mut header = header.clone();
    if let Some(p) = payload {
        header["payload_len"] = json!(p.len());
    }
    let body = serde_json::to_vec(&header)?;
    w.write_all(&(body.len() as u32).to_le_bytes())?;
    w.write_all(&body)?;
    if let Some(p) = payload {
        w.write_all(p)?;
    }
    w.flush()
}

/// A frame: the JSON header and the payload, if the header announced one.
pub type Frame = (Value, Option<Vec<u8>>);

/// Reads one frame. `Ok(None)` = end of stream before a frame started.
pub fn read_frame(r: &mut impl Read) -> Result<Option<Frame>, String> {
    let mut payload = None;
    let header = read_frame_streaming(r, &mut |p| buffer_payload(p, &mut payload))?;
    Ok(header.map(|h| (h, payload)))
}

/// Reads a whole payload into memory.
pub(super) fn buffer_payload(r: &mut dyn Read, into: &mut Option<Vec<u8>>) -> Result<(), String> {
    let mut buf = Vec::new();
    r.read_to_end(&mut buf).map_err(|e| format!("truncated payload: {e}"))?;
    *into = Some(buf);
    Ok(())
}

/// Reads one frame whose payload is handed to `on_payload` as a reader limited
/// to the payload (whatever it leaves unread is drained), instead of being
/// buffered. `Ok(None)` = end of stream before a frame started.
pub(super) fn read_frame_streaming(
    r: &mut impl Read,
    on_payload: &mut dyn FnMut(&mut dyn Read) -> Result<(), String>,
) -> Result<Option<Value>, String> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.to_string()),
    }
    let n = u32::from_le_bytes(len);
    if n > MAX_HEADER {
        return Err(format!(
            "frame header of {n} bytes (bytes {:02x?}): not a frame; is the worker printing to stdout?",
            len
        ));
    }
    let mut body = vec![0u8; n as usize];
    r.read_exact(&mut body)
        .map_err(|e| format!("truncated frame header: {e}"))?;
    let header: Value = serde_json::from_slice(&body).map_err(|e| {
        let shown = String::from_utf8_lossy(&body[..body.len().min(80)]).to_string();
        format!("frame header is not JSON ({e}): {shown:?}")
    })?;
    if let Some(p) = header.get("payload_len").and_then(Value::as_u64) {
        let mut limited = r.take(p);
        on_payload(&mut limited)?;
        std::io::copy(&mut limited, &mut std::io::sink()).map_err(|e| format!("truncated payload: {e}"))?;
        if limited.limit() > 0 {
            return Err(format!("truncated payload: {} bytes missing", limited.limit()));
        }
    }
    Ok(Some(header))
}

#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    fn valid_frame(header: &Value, payload: Option<&[u8]>) -> Vec<u8> {
        let mut out = Vec::new();
        write_frame(&mut out, header, payload).unwrap();
        out
    }

    proptest! {
        /// The host's frame decoder takes any bytes a broken worker may write: an
        /// error or a frame, never a panic, and never more than the bytes given.
        #[test]
        fn any_bytes_decode_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let mut r = &bytes[..];
            while let Ok(Some(_)) = read_frame(&mut r) {}
        }

        /// Structure-aware: valid frames with bytes flipped, cut, or lengths lied.
        #[test]
        fn mutated_frames_decode_or_fail_cleanly(
            payload in proptest::collection::vec(any::<u8>(), 0..256),
            at in 0usize..4096, b in any::<u8>(), cut in proptest::option::of(0usize..4096)
        ) {
            let mut bytes = valid_frame(&json!({"ok": true, "kind": "batches"}), Some(&payload));
            bytes.extend(valid_frame(&json!({"ok": false, "error_class": "plan", "message": "x"}), None));
            let i = at % bytes.len();
            bytes[i] = b;
            if let Some(c) = cut { bytes.truncate(c % (bytes.len() + 1)); }
            let mut r = &bytes[..];
            let mut frames = 0;
            while let Ok(Some(_)) = read_frame(&mut r) { frames += 1; }
            prop_assert!(frames <= 2);
        }
    }

    #[test]
    fn a_valid_frame_round_trips() {
        let bytes = valid_frame(&json!({"id": 7}), Some(b"abc"));
        let (h, p) = read_frame(&mut &bytes[..]).unwrap().unwrap();
        assert_eq!(h["id"], 7);
        assert_eq!(p.as_deref(), Some(&b"abc"[..]));
    }
}
