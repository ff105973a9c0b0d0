//! Per-hop payloads: the TLV streams a forwarding hop and the final hop find in the onion.
//!
//! | type | name                  | value                                  | forward  | final    |
//! |------|-----------------------|----------------------------------------|----------|----------|
//! | 2    | `amt_to_forward`      | `tu64`                                 | required | required |
//! | 4    | `outgoing_cltv_value` | `tu32`                                 | required | required |
//! | 6    | `short_channel_id`    | `u64` (8 bytes, big-endian)            | required | refused  |
//! | 8    | `payment_data`        | `32*byte payment_secret ‖ tu64 total`  | refused  | required |
//! | 16   | `payment_metadata`    | `*byte`                                | refused  | optional |
//!
//! Any other even type is refused, any other odd type is skipped.

use super::error::{PayloadError, TlvError};
use super::tlv::{TlvReader, read_truncated, write_record, write_truncated};

/// TLV type of `amt_to_forward`.
pub const TLV_AMT_TO_FORWARD: u64 = 2;
/// TLV type of `outgoing_cltv_value`.
pub const TLV_OUTGOING_CLTV_VALUE: u64 = 4;
/// TLV type of `short_channel_id`.
pub const TLV_SHORT_CHANNEL_ID: u64 = 6;
/// TLV type of `payment_data` (`payment_secret ‖ total_msat`).
pub const TLV_PAYMENT_DATA: u64 = 8;
/// TLV type of `payment_metadata`.
pub const TLV_PAYMENT_METADATA: u64 = 16;

/// What a forwarding hop is told: how much to send on, with which expiry, over which channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardPayload {
    /// Amount of the outgoing HTLC, in the HTLC amount unit.
    pub amt_to_forward: u64,
    /// CLTV expiry (block height) of the outgoing HTLC.
    pub outgoing_cltv_value: u32,
    /// The outgoing channel (BOLT 7 layout: block height 3 bytes ‖ tx index 3 ‖ output 2).
    pub short_channel_id: u64,
}

/// What the final hop is told: the amount and expiry to expect and the invoice's secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinalPayload {
    /// Amount the final HTLC must carry at least.
    pub amt_to_forward: u64,
    /// CLTV expiry the final HTLC must have at least.
    pub outgoing_cltv_value: u32,
    /// The invoice's payment secret; it stops intermediate hops from probing the payee.
    pub payment_secret: [u8; 32],
    /// Total amount of the (possibly multi-part) payment.
    pub total_msat: u64,
    /// The invoice's `payment_metadata`, echoed back to the payee, if it had one.
    pub payment_metadata: Option<Vec<u8>>,
}

/// One hop's payload as the sender gives it to [`super::construct_onion`]: every hop but the
/// last forwards, the last is final.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HopPayload {
    /// An intermediate hop.
    Forward(ForwardPayload),
    /// The payee.
    Final(FinalPayload),
}

impl HopPayload {
    /// The TLV stream encoding (without the BigSize length prefix of the packet framing).
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::Forward(p) => p.encode(),
            Self::Final(p) => p.encode(),
        }
    }

    /// Whether this is the final hop's payload.
    pub fn is_final(&self) -> bool {
        matches!(self, Self::Final(_))
    }
}

fn write_amount_and_cltv(out: &mut Vec<u8>, amt: u64, cltv: u32) {
    let mut v = Vec::with_capacity(8);
    write_truncated(&mut v, amt);
    write_record(out, TLV_AMT_TO_FORWARD, &v);
    v.clear();
    write_truncated(&mut v, u64::from(cltv));
    write_record(out, TLV_OUTGOING_CLTV_VALUE, &v);
}

impl ForwardPayload {
    /// The TLV stream encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(26);
        write_amount_and_cltv(&mut out, self.amt_to_forward, self.outgoing_cltv_value);
        write_record(&mut out, TLV_SHORT_CHANNEL_ID, &self.short_channel_id.to_be_bytes());
        out
    }

    /// Strictly decode a forwarding hop's TLV stream.
    pub fn decode(bytes: &[u8]) -> Result<Self, PayloadError> {
        let fields = Fields::parse(bytes)?;
        if let Some(offset) = fields.payment_data_offset {
            return Err(PayloadError::Forbidden { tlv_type: TLV_PAYMENT_DATA, offset });
        }
        if let Some(offset) = fields.payment_metadata_offset {
            return Err(PayloadError::Forbidden { tlv_type: TLV_PAYMENT_METADATA, offset });
        }
        Ok(Self {
            amt_to_forward: fields.amt.ok_or(missing(TLV_AMT_TO_FORWARD))?,
            outgoing_cltv_value: fields.cltv.ok_or(missing(TLV_OUTGOING_CLTV_VALUE))?,
            short_channel_id: fields.scid.ok_or(missing(TLV_SHORT_CHANNEL_ID))?,
        })
    }
}

impl FinalPayload {
    /// The TLV stream encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(58);
        write_amount_and_cltv(&mut out, self.amt_to_forward, self.outgoing_cltv_value);
        let mut data = Vec::with_capacity(40);
        data.extend_from_slice(&self.payment_secret);
        write_truncated(&mut data, self.total_msat);
        write_record(&mut out, TLV_PAYMENT_DATA, &data);
        if let Some(meta) = &self.payment_metadata {
            write_record(&mut out, TLV_PAYMENT_METADATA, meta);
        }
        out
    }

    /// Strictly decode the final hop's TLV stream.
    pub fn decode(bytes: &[u8]) -> Result<Self, PayloadError> {
        let fields = Fields::parse(bytes)?;
        if let Some(offset) = fields.scid_offset {
            return Err(PayloadError::Forbidden { tlv_type: TLV_SHORT_CHANNEL_ID, offset });
        }
        let (payment_secret, total_msat) = fields.payment_data.ok_or(missing(TLV_PAYMENT_DATA))?;
        Ok(Self {
            amt_to_forward: fields.amt.ok_or(missing(TLV_AMT_TO_FORWARD))?,
            outgoing_cltv_value: fields.cltv.ok_or(missing(TLV_OUTGOING_CLTV_VALUE))?,
            payment_secret,
            total_msat,
            payment_metadata: fields.payment_metadata,
        })
    }
}

fn missing(tlv_type: u64) -> PayloadError {
    PayloadError::Missing { tlv_type }
}

/// Every known record of a payload, before the position rules are applied.
#[derive(Default)]
struct Fields {
    amt: Option<u64>,
    cltv: Option<u32>,
    scid: Option<u64>,
    scid_offset: Option<usize>,
    payment_data: Option<([u8; 32], u64)>,
    payment_data_offset: Option<usize>,
    payment_metadata: Option<Vec<u8>>,
    payment_metadata_offset: Option<usize>,
}

impl Fields {
    fn parse(bytes: &[u8]) -> Result<Self, TlvError> {
        let mut f = Self::default();
        for record in TlvReader::new(bytes) {
            let r = record?;
            let invalid = TlvError::InvalidValue { tlv_type: r.tlv_type, offset: r.offset };
            match r.tlv_type {
                TLV_AMT_TO_FORWARD => f.amt = Some(read_truncated(r.value, 8).ok_or(invalid)?),
                TLV_OUTGOING_CLTV_VALUE => {
                    let v = read_truncated(r.value, 4).ok_or(invalid)?;
                    f.cltv = Some(u32::try_from(v).map_err(|_| invalid)?);
                }
                TLV_SHORT_CHANNEL_ID => {
                    let b: [u8; 8] = r.value.try_into().map_err(|_| invalid)?;
                    f.scid = Some(u64::from_be_bytes(b));
                    f.scid_offset = Some(r.offset);
                }
                TLV_PAYMENT_DATA => {
                    let (secret, total) = r.value.split_at_checked(32).ok_or(invalid)?;
                    let secret: [u8; 32] = secret.try_into().map_err(|_| invalid)?;
                    let total = read_truncated(total, 8).ok_or(invalid)?;
                    f.payment_data = Some((secret, total));
                    f.payment_data_offset = Some(r.offset);
                }
                TLV_PAYMENT_METADATA => {
                    f.payment_metadata = Some(r.value.to_vec());
                    f.payment_metadata_offset = Some(r.offset);
                }
                t if t % 2 == 0 => {
                    return Err(TlvError::UnknownEvenType { tlv_type: t, offset: r.offset });
                }
                _ => {}
            }
        }
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn final_payload() -> FinalPayload {
        FinalPayload {
            amt_to_forward: 1_000,
            outgoing_cltv_value: 800_000,
            payment_secret: [0x24; 32],
            total_msat: 1_000,
            payment_metadata: None,
        }
    }

    #[test]
    fn forward_payload_layout_is_pinned() {
        let p = ForwardPayload {
            amt_to_forward: 15_000,
            outgoing_cltv_value: 1_500,
            short_channel_id: 1,
        };
        // Same bytes as the first hop payload of BOLT 4's onion-test.json (less the length byte).
        assert_eq!(hex::encode(p.encode()), "02023a98040205dc06080000000000000001");
        assert_eq!(ForwardPayload::decode(&p.encode()), Ok(p));
    }

    #[test]
    fn final_payload_round_trips_and_refuses_scid() {
        let mut p = final_payload();
        assert_eq!(FinalPayload::decode(&p.encode()), Ok(p.clone()));
        p.payment_metadata = Some(vec![1, 2, 3]);
        assert_eq!(FinalPayload::decode(&p.encode()), Ok(p.clone()));
        assert_eq!(
            ForwardPayload::decode(&p.encode()),
            Err(PayloadError::Forbidden { tlv_type: TLV_PAYMENT_DATA, offset: 9 })
        );
        let fwd = ForwardPayload { amt_to_forward: 1, outgoing_cltv_value: 2, short_channel_id: 3 };
        assert_eq!(
            FinalPayload::decode(&fwd.encode()),
            Err(PayloadError::Forbidden { tlv_type: TLV_SHORT_CHANNEL_ID, offset: 6 })
        );
    }

    #[test]
    fn unknown_odd_types_are_skipped_and_even_refused() {
        let p = final_payload();
        let mut with_odd = p.encode();
        write_record(&mut with_odd, 65_537, b"custom");
        assert_eq!(FinalPayload::decode(&with_odd), Ok(p.clone()));
        let mut with_even = p.encode();
        let offset = with_even.len();
        write_record(&mut with_even, 65_536, b"custom");
        assert_eq!(
            FinalPayload::decode(&with_even),
            Err(PayloadError::Tlv(TlvError::UnknownEvenType { tlv_type: 65_536, offset }))
        );
    }

    #[test]
    fn values_must_be_minimal_and_well_sized() {
        // amt_to_forward with a leading zero byte.
        let bad_amt = [2u8, 2, 0, 1, 4, 1, 1, 6, 8, 0, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(
            ForwardPayload::decode(&bad_amt),
            Err(PayloadError::Tlv(TlvError::InvalidValue { tlv_type: 2, offset: 0 }))
        );
        // outgoing_cltv_value of five bytes.
        let bad_cltv = [2u8, 1, 1, 4, 5, 1, 1, 1, 1, 1];
        assert_eq!(
            ForwardPayload::decode(&bad_cltv),
            Err(PayloadError::Tlv(TlvError::InvalidValue { tlv_type: 4, offset: 3 }))
        );
        // short_channel_id of seven bytes.
        let bad_scid = [2u8, 1, 1, 4, 1, 1, 6, 7, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(
            ForwardPayload::decode(&bad_scid),
            Err(PayloadError::Tlv(TlvError::InvalidValue { tlv_type: 6, offset: 6 }))
        );
        // Missing amount.
        let no_amt = [4u8, 1, 1, 6, 8, 0, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(ForwardPayload::decode(&no_amt), Err(PayloadError::Missing { tlv_type: 2 }));
        // Zero amount is the empty value and is accepted.
        let zero_amt = [2u8, 0, 4, 1, 1, 6, 8, 0, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(ForwardPayload::decode(&zero_amt).map(|p| p.amt_to_forward), Ok(0));
    }
}
