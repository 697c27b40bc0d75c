//! Result codes: OTA failure codes and gateway operation results.

use std::fmt;

/// The `result_code` of an OTA progress report (protocol.md section 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OtaResultCode {
    /// `0`: no error.
    Ok,
    /// `-1`: the download timed out.
    DownloadTimeout,
    /// `-2`: the file does not exist (HTTP 404).
    FileNotExist,
    /// `-3`: COS refused the signed URL (HTTP 403): expired or a signature mismatch. The SDK
    /// names it `IOT_OTAR_AUTH_FAIL`; the COS error body (and journal) tells which.
    SignatureExpired,
    /// `-4`: the MD5 of the image does not match.
    Md5Mismatch,
    /// `-5`: the upgrade failed; also the catch-all.
    UpgradeFailed,
    /// Any other code a device sent; kept so that nothing is lost.
    Other(i32),
}

impl OtaResultCode {
    /// The integer on the wire.
    pub fn code(self) -> i32 {
        match self {
            OtaResultCode::Ok => 0,
            OtaResultCode::DownloadTimeout => -1,
            OtaResultCode::FileNotExist => -2,
            OtaResultCode::SignatureExpired => -3,
            OtaResultCode::Md5Mismatch => -4,
            OtaResultCode::UpgradeFailed => -5,
            OtaResultCode::Other(c) => c,
        }
    }

    /// The code for an integer from the wire.
    pub fn from_code(code: i32) -> Self {
        match code {
            0 => OtaResultCode::Ok,
            -1 => OtaResultCode::DownloadTimeout,
            -2 => OtaResultCode::FileNotExist,
            -3 => OtaResultCode::SignatureExpired,
            -4 => OtaResultCode::Md5Mismatch,
            -5 => OtaResultCode::UpgradeFailed,
            c => OtaResultCode::Other(c),
        }
    }

    /// What the code means, for people reading a report.
    pub fn meaning(self) -> &'static str {
        match self {
            OtaResultCode::Ok => "ok",
            OtaResultCode::DownloadTimeout => "download timeout",
            OtaResultCode::FileNotExist => "file does not exist",
            OtaResultCode::SignatureExpired => "url refused (expired or signature mismatch)",
            OtaResultCode::Md5Mismatch => "md5 mismatch",
            OtaResultCode::UpgradeFailed => "upgrade failed",
            OtaResultCode::Other(_) => "unknown code",
        }
    }
}

impl fmt::Display for OtaResultCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.code(), self.meaning())
    }
}

/// The integer `result` of a gateway operation reply (protocol.md section 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GatewayResult {
    /// `0`: success.
    Success,
    /// `-1`: the subdevice is not bound to this gateway.
    NotBound,
    /// `-801`: bad parameter.
    BindParameter,
    /// `-802`: the subdevice does not exist.
    BindSubdeviceMissing,
    /// `-803`: bad signature.
    BindBadSignature,
    /// `-804`: bad sign method.
    BindBadSignMethod,
    /// `-805`: signature expired.
    BindSignatureExpired,
    /// `-806`: bound to another gateway.
    BindToOtherGateway,
    /// `-807`: subdevice forbidden.
    BindSubdeviceForbidden,
    /// `-808`: operation forbidden.
    BindOperationForbidden,
    /// `-809`: already bound.
    BindAlreadyBound,
    /// Any other code.
    Other(i64),
}

impl GatewayResult {
    /// The integer on the wire.
    pub fn code(self) -> i64 {
        match self {
            GatewayResult::Success => 0,
            GatewayResult::NotBound => -1,
            GatewayResult::BindParameter => -801,
            GatewayResult::BindSubdeviceMissing => -802,
            GatewayResult::BindBadSignature => -803,
            GatewayResult::BindBadSignMethod => -804,
            GatewayResult::BindSignatureExpired => -805,
            GatewayResult::BindToOtherGateway => -806,
            GatewayResult::BindSubdeviceForbidden => -807,
            GatewayResult::BindOperationForbidden => -808,
            GatewayResult::BindAlreadyBound => -809,
            GatewayResult::Other(c) => c,
        }
    }

    /// The result for an integer from the wire.
    pub fn from_code(code: i64) -> Self {
        const ALL: [GatewayResult; 11] = [
            GatewayResult::Success,
            GatewayResult::NotBound,
            GatewayResult::BindParameter,
            GatewayResult::BindSubdeviceMissing,
            GatewayResult::BindBadSignature,
            GatewayResult::BindBadSignMethod,
            GatewayResult::BindSignatureExpired,
            GatewayResult::BindToOtherGateway,
            GatewayResult::BindSubdeviceForbidden,
            GatewayResult::BindOperationForbidden,
            GatewayResult::BindAlreadyBound,
        ];
        ALL.into_iter()
            .find(|r| r.code() == code)
            .unwrap_or(GatewayResult::Other(code))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ota_codes_round_trip_including_unknown_ones() {
        for c in -7..=1 {
            assert_eq!(OtaResultCode::from_code(c).code(), c);
        }
        assert_eq!(OtaResultCode::from_code(-4), OtaResultCode::Md5Mismatch);
    }

    #[test]
    fn gateway_results_round_trip_including_bind_errors() {
        for c in [0, -1, -801, -805, -809, -42] {
            assert_eq!(GatewayResult::from_code(c).code(), c);
        }
        assert_eq!(
            GatewayResult::from_code(-806),
            GatewayResult::BindToOtherGateway
        );
    }
}
