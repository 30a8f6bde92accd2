//! CRC-32C (Castagnoli), as Go's `crc32.MakeTable(crc32.Castagnoli)` with `crc32.Update`.
//!
//! etcd chains this checksum over WAL record payloads and stores it in `.snap` files.

/// Continues a CRC-32C: `update(0, data)` is the checksum of `data`, and
/// `update(update(0, a), b) == update(0, a ++ b)` (Go's `crc32.Update` semantics).
pub fn update(crc: u32, data: &[u8]) -> u32 {
    ::crc32c::crc32c_append(crc, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        // RFC 3720 (iSCSI) test vector and the classic "123456789" check value.
        assert_eq!(update(0, b"123456789"), 0xE306_9283);
        assert_eq!(update(0, &[0u8; 32]), 0x8A91_36AA);
        assert_eq!(update(0, b""), 0);
    }

    #[test]
    fn chaining_equals_concatenation() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 + 3) as u8).collect();
        for split in [0, 1, 7, 8, 9, 500, 999, 1000] {
            let (a, b) = data.split_at(split);
            assert_eq!(update(update(0, a), b), update(0, &data), "split {split}");
        }
    }
}
