//! NSCLDAQ-style ring items for the demo: a little-endian u32 size that counts itself,
//! a u32 type, and a body. Physics events carry a sequence number and a pattern derived
//! from it, so a consumer can check every byte and the order without any shared state.

pub const BEGIN_RUN: u32 = 1;
pub const END_RUN: u32 = 2;
pub const PHYSICS_EVENT: u32 = 30;
pub const HEADER: usize = 8;

/// Event sizes vary (16 B .. 8 KiB) so records wrap the ring at every offset.
pub fn event_size(seq: u64) -> usize {
    HEADER + 8 + (mix(seq) % 8176) as usize
}

fn mix(mut x: u64) -> u64 {
    // splitmix64: cheap, well spread, and the same in every process.
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn pattern(seq: u64, i: usize) -> u8 {
    (seq as u8).wrapping_mul(31).wrapping_add(i as u8)
}

/// Writes a whole item of `kind` into `out` (cleared first).
pub fn encode(out: &mut Vec<u8>, kind: u32, seq: u64, size: usize) {
    out.clear();
    out.extend_from_slice(&(size as u32).to_le_bytes());
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend((HEADER + 8..size).map(|i| pattern(seq, i)));
}

pub fn header(bytes: &[u8; HEADER]) -> (usize, u32) {
    let size = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    let kind = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    (size, kind)
}

/// The sequence number in a body (its first 8 bytes), if there is one.
pub fn body_seq(body: &[u8]) -> Option<u64> {
    body.get(..8).map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
}

/// Checks a physics event's body against what sequence number `seq` must carry.
pub fn check_event(seq: u64, size: usize, body: &[u8]) -> Result<(), String> {
    if size != event_size(seq) {
        return Err(format!("event {seq}: size {size}, expected {}", event_size(seq)));
    }
    match body_seq(body) {
        Some(got) if got == seq => {}
        got => return Err(format!("event {seq}: carries sequence {got:?} (lost or reordered data)")),
    }
    for (i, &b) in body.iter().enumerate().skip(8) {
        if b != pattern(seq, i + HEADER) {
            return Err(format!(
                "event {seq}: byte {} is {b:#04x}, expected {:#04x}",
                i + HEADER,
                pattern(seq, i + HEADER)
            ));
        }
    }
    Ok(())
}
