use spin_sdk::wasip3::random::random::get_random_bytes;

/// Fills `buf` from the host's cryptographically secure random source.
pub fn fill(buf: &mut [u8]) {
    let mut filled = 0;
    while filled < buf.len() {
        let wanted = buf.len() - filled;
        let bytes = get_random_bytes(wanted as u64);
        // A host may hand out fewer bytes than asked; it never hands out more.
        let taken = bytes.len().min(wanted);
        buf[filled..filled + taken].copy_from_slice(&bytes[..taken]);
        filled += taken;
    }
}

pub fn bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    fill(&mut buf);
    buf
}
