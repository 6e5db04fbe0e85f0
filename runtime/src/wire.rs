//! drove's envelope: how messages travel inside ractor_cluster casts.
//!
//! Every node has one remote-visible *inbox* actor whose message type is a
//! byte batch (`Vec<u8>`). A batch is:
//!
//! ```text
//! [u8 version = 1][u32 LE header length][BatchHeader]
//! then frames: [u32 LE frame length][FrameHeader][payload]
//! ```
//!
//! Headers and payloads are bincode 2 (serde path, standard config, with a
//! size limit so a hostile length can never make the decoder allocate more
//! than a frame). The payload of a `Send` frame is the user message; its
//! type is named by a stable 64-bit tag (FNV-1a of the message type's
//! declared `TAG` string), never by `TypeId` or `type_name`.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use drove_membership::{Incarnation, NodeId};

use crate::addr::LocalRef;
pub use crate::error::WireError;

use crate::error::DeliveryError;

/// Largest encoded message (frame) accepted or sent: 8 MiB, half of
/// ractor_cluster's 16 MiB inbound frame limit.
pub const MAX_FRAME: usize = 8 << 20;

/// Batches are cut at this size, so no transport frame nears 16 MiB.
pub const MAX_BATCH: usize = 1 << 20;

const VERSION: u8 = 1;

type Config = bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<MAX_FRAME>,
>;

const fn config() -> Config {
    bincode::config::standard().with_limit::<MAX_FRAME>()
}

/// The stable wire tag of a message type name: FNV-1a, 64 bits.
pub const fn tag_of(name: &str) -> u64 {
    let bytes = name.as_bytes();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

/// Who sent a batch, to which incarnation of the receiver, and the proof
/// that it is who it says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchHeader {
    /// The sending node.
    pub from: NodeId,
    /// The incarnation of the receiving node the sender meant.
    pub to: Incarnation,
    /// The token the receiver granted `from` over `from`'s own session
    /// (see [`FrameHeader::Grant`]); 0 in a batch that only carries a grant.
    pub token: u128,
}

/// One frame's header; a payload may follow it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FrameHeader {
    /// A message for a local actor; the payload is the message.
    Send {
        /// The receiving actor on the receiving node.
        to: LocalRef,
        /// The message type's tag.
        tag: u64,
        /// Set for calls, so a delivery failure can be answered.
        call: Option<u64>,
    },
    /// The answer to a call; on success the payload is the reply value.
    Reply {
        /// The caller's call id.
        call: u64,
        /// `Err` when the message could not be delivered.
        outcome: Result<(), DeliveryError>,
    },
    /// The sender is leaving the cluster gracefully.
    Leaving,
    /// The token the receiver must put in every later batch it sends to the
    /// sender. It travels only over the receiver's own session, so a batch
    /// that carries it came from the node that session authenticated.
    Grant {
        /// A random token.
        token: u128,
    },
    /// Flow control: the sender has handled this many bytes of batches
    /// from the receiver's link to it (the one that carries `token`, which
    /// the sender granted). Sent outside the window, so acknowledgements
    /// flow while both directions are full.
    Ack {
        /// The token of the link being acknowledged.
        token: u128,
        /// Bytes of that link's batches handled, counted from its grant.
        bytes: u64,
    },
}

/// Starts a batch buffer with its header.
pub fn begin_batch(header: &BatchHeader) -> Result<Vec<u8>, WireError> {
    let mut buf = Vec::with_capacity(256);
    buf.push(VERSION);
    buf.extend_from_slice(&[0; 4]);
    bincode::serde::encode_into_std_write(header, &mut buf, config())
        .map_err(|e| WireError::Encode(e.to_string()))?;
    let len = (buf.len() - 5) as u32;
    buf[1..5].copy_from_slice(&len.to_le_bytes());
    Ok(buf)
}

/// Appends one frame (header, then optional payload) to `buf`. On error
/// `buf` is left as it was.
pub fn push_frame<P: Serialize + ?Sized>(
    buf: &mut Vec<u8>,
    header: &FrameHeader,
    payload: Option<&P>,
) -> Result<(), WireError> {
    let start = buf.len();
    buf.extend_from_slice(&[0; 4]);
    let result = (|| {
        bincode::serde::encode_into_std_write(header, buf, config())
            .map_err(|e| WireError::Encode(e.to_string()))?;
        if let Some(p) = payload {
            bincode::serde::encode_into_std_write(p, buf, config())
                .map_err(|e| WireError::Encode(e.to_string()))?;
        }
        let len = buf.len() - start - 4;
        if len > MAX_FRAME {
            return Err(WireError::TooLarge {
                len,
                max: MAX_FRAME,
            });
        }
        Ok(len as u32)
    })();
    match result {
        Ok(len) => {
            buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
            Ok(())
        }
        Err(e) => {
            buf.truncate(start);
            Err(e)
        }
    }
}

fn read_u32<'a>(bytes: &'a [u8], what: &'static str) -> Result<(usize, &'a [u8]), WireError> {
    if bytes.len() < 4 {
        return Err(WireError::Truncated(what));
    }
    let (len, rest) = bytes.split_at(4);
    let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
    if len > MAX_FRAME {
        return Err(WireError::TooLarge {
            len,
            max: MAX_FRAME,
        });
    }
    if rest.len() < len {
        return Err(WireError::Truncated(what));
    }
    Ok((len, rest))
}

/// Splits a batch into its header and an iterator over its frames.
pub fn open_batch(bytes: &[u8]) -> Result<(BatchHeader, Frames<'_>), WireError> {
    let (&version, rest) = bytes.split_first().ok_or(WireError::Truncated("batch"))?;
    if version != VERSION {
        return Err(WireError::Version(version));
    }
    let (len, rest) = read_u32(rest, "batch header")?;
    let header = decode::<BatchHeader>(&rest[..len], "batch header")?;
    Ok((header, Frames { rest: &rest[len..] }))
}

/// The frames of a batch, in order. After a framing error (a length that
/// overruns the batch) the iterator yields that error once and stops; a
/// frame whose header does not decode is reported and skipped.
#[derive(Debug)]
pub struct Frames<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Frames<'a> {
    type Item = Result<(FrameHeader, &'a [u8]), WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let (len, rest) = match read_u32(self.rest, "frame") {
            Ok(v) => v,
            Err(e) => {
                self.rest = &[];
                return Some(Err(e));
            }
        };
        let (frame, rest) = rest.split_at(len);
        self.rest = rest;
        Some(
            bincode::serde::decode_from_slice::<FrameHeader, _>(frame, config())
                .map(|(header, used)| (header, &frame[used..]))
                .map_err(|e| WireError::Decode {
                    what: "frame header",
                    reason: e.to_string(),
                }),
        )
    }
}

/// Decodes a whole value from `bytes`; trailing bytes are an error.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], what: &'static str) -> Result<T, WireError> {
    let (value, used) =
        bincode::serde::decode_from_slice::<T, _>(bytes, config()).map_err(|e| {
            WireError::Decode {
                what,
                reason: e.to_string(),
            }
        })?;
    if used != bytes.len() {
        return Err(WireError::Decode {
            what,
            reason: format!("{} trailing bytes", bytes.len() - used),
        });
    }
    Ok(value)
}

/// How many bytes `value` takes encoded, without encoding it into memory
/// (to cut messages to a size before sending them).
pub fn encoded_len<T: Serialize + ?Sized>(value: &T) -> Result<usize, WireError> {
    let mut size = bincode::enc::write::SizeWriter::default();
    bincode::serde::encode_into_writer(value, &mut size, config())
        .map_err(|e| WireError::Encode(e.to_string()))?;
    Ok(size.bytes_written)
}

/// Encodes one value on its own (for tests and tools).
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, WireError> {
    bincode::serde::encode_to_vec(value, config()).map_err(|e| WireError::Encode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header() -> BatchHeader {
        BatchHeader {
            token: 99,
            from: NodeId::new("n1", Incarnation(7)),
            to: Incarnation(9),
        }
    }

    #[test]
    fn batch_round_trip() {
        let mut buf = begin_batch(&header()).unwrap();
        let send = FrameHeader::Send {
            to: LocalRef::Id(3),
            tag: tag_of("test.msg"),
            call: Some(11),
        };
        push_frame(&mut buf, &send, Some(&("hello".to_string(), 42u32))).unwrap();
        push_frame::<()>(&mut buf, &FrameHeader::Leaving, None).unwrap();
        let (h, frames) = open_batch(&buf).unwrap();
        assert_eq!(h, header());
        let frames: Vec<_> = frames.collect::<Result<_, _>>().unwrap();
        assert_eq!(frames[0].0, send);
        assert_eq!(
            decode::<(String, u32)>(frames[0].1, "payload").unwrap(),
            ("hello".to_string(), 42)
        );
        assert_eq!(frames[1], (FrameHeader::Leaving, &[][..]));
    }

    #[test]
    fn oversized_frame_is_refused_and_buffer_kept() {
        let mut buf = begin_batch(&header()).unwrap();
        let before = buf.clone();
        let big = vec![1u8; MAX_FRAME + 1];
        let err = push_frame(
            &mut buf,
            &FrameHeader::Leaving,
            Some(&serde_bytes::Bytes::new(&big)),
        );
        assert!(matches!(
            err,
            Err(WireError::Encode(_) | WireError::TooLarge { .. })
        ));
        assert_eq!(buf, before);
    }

    #[test]
    fn encoded_len_matches_the_encoding() {
        let value = ("hello".to_string(), vec![7u64; 300], Some(-3i32));
        assert_eq!(encoded_len(&value).unwrap(), encode(&value).unwrap().len());
    }

    #[test]
    fn tags_are_stable() {
        // Changing the hash would break every deployed cluster.
        assert_eq!(tag_of(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(tag_of("a"), 0xaf63_dc4c_8601_ec8c);
    }

    proptest! {
        /// Any bytes: the decoder returns errors, never panics, and never
        /// yields a frame past the end of the batch.
        #[test]
        fn decoder_survives_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok((_, frames)) = open_batch(&bytes) {
                for (_, payload) in frames.take(1000).flatten() {
                    prop_assert!(payload.len() <= bytes.len());
                }
            }
        }

        /// A valid batch with bytes flipped or cut short decodes to errors
        /// or to frames, never a panic.
        #[test]
        fn decoder_survives_corruption(
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut buf = begin_batch(&header()).unwrap();
            for i in 0..4u64 {
                let send = FrameHeader::Send { to: LocalRef::Name(format!("a{i}")), tag: i, call: None };
                push_frame(&mut buf, &send, Some(&vec![i; 10])).unwrap();
            }
            for (at, b) in flips {
                let i = at.index(buf.len());
                buf[i] ^= b;
            }
            let cut = cut.index(buf.len() + 1);
            if let Ok((_, frames)) = open_batch(&buf[..cut]) {
                for (_, payload) in frames.flatten() {
                    let _ = decode::<Vec<u64>>(payload, "payload");
                }
            }
        }
    }
}
