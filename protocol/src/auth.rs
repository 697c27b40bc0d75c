//! MQTT key-auth credentials: the username the SDKs build and the HMAC password over it.

use crate::ids::DeviceId;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use std::fmt;

/// The SDK app id every official SDK puts in the username.
pub const SDK_APP_ID: &str = "21010406";

/// Expiries at or above this are milliseconds (the Python SDK); below, seconds (the C SDK).
const MILLIS_THRESHOLD: u64 = 100_000_000_000;

/// The HMAC used for a password or a bind signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignMethod {
    /// `hmacsha1`, what both SDKs send.
    HmacSha1,
    /// `hmacsha256`, which the Hub also accepts.
    HmacSha256,
}

impl SignMethod {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            SignMethod::HmacSha1 => "hmacsha1",
            SignMethod::HmacSha256 => "hmacsha256",
        }
    }

    /// The method for a wire name.
    pub fn parse(name: &str) -> Result<Self, AuthError> {
        match name {
            "hmacsha1" => Ok(SignMethod::HmacSha1),
            "hmacsha256" => Ok(SignMethod::HmacSha256),
            other => Err(AuthError::UnknownSignMethod(other.to_owned())),
        }
    }

    /// The raw HMAC of `message` under `key`.
    pub(crate) fn mac(self, key: &[u8], message: &[u8]) -> Vec<u8> {
        match self {
            SignMethod::HmacSha1 => {
                let mut m =
                    Hmac::<sha1::Sha1>::new_from_slice(key).expect("HMAC takes any key length");
                m.update(message);
                m.finalize().into_bytes().to_vec()
            }
            SignMethod::HmacSha256 => {
                let mut m =
                    Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key length");
                m.update(message);
                m.finalize().into_bytes().to_vec()
            }
        }
    }
}

impl fmt::Display for SignMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why credentials could not be made or were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The device secret is not base64.
    #[error("device secret is not valid base64")]
    BadSecret,
    /// The username is not `{client_id};{app_id};{connid};{expiry}`.
    #[error("malformed username {0:?}")]
    MalformedUsername(String),
    /// The username names another client than the CONNECT's client id.
    #[error("username is for client {username:?}, not {client_id:?}")]
    ClientIdMismatch {
        /// The client id inside the username.
        username: String,
        /// The CONNECT's client id.
        client_id: String,
    },
    /// The password is not `{hex};{method}`.
    #[error("malformed password")]
    MalformedPassword,
    /// The sign method is not one the Hub knows.
    #[error("unknown sign method {0:?}")]
    UnknownSignMethod(String),
    /// The HMAC does not match.
    #[error("password signature does not match")]
    SignatureMismatch,
}

/// A parsed key-auth username.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username {
    /// `{product_id}{device_name}`.
    pub client_id: String,
    /// The SDK app id (`21010406`).
    pub app_id: String,
    /// Five random characters.
    pub conn_id: String,
    /// The expiry as sent: seconds (C SDK) or milliseconds (Python SDK).
    pub expiry_raw: u64,
}

impl Username {
    /// Parses `{client_id};{app_id};{connid};{expiry}`.
    pub fn parse(text: &str) -> Result<Self, AuthError> {
        let bad = || AuthError::MalformedUsername(text.to_owned());
        let parts: Vec<&str> = text.split(';').collect();
        let [client_id, app_id, conn_id, expiry] = parts.as_slice() else {
            return Err(bad());
        };
        if client_id.is_empty() {
            return Err(bad());
        }
        Ok(Username {
            client_id: (*client_id).to_owned(),
            app_id: (*app_id).to_owned(),
            conn_id: (*conn_id).to_owned(),
            expiry_raw: expiry.parse().map_err(|_| bad())?,
        })
    }

    /// The expiry in Unix seconds, telling milliseconds from seconds by magnitude; `None` when
    /// it is so far away that it never expires (the C SDK sends `i64::MAX` seconds).
    pub fn expiry_unix_secs(&self) -> Option<u64> {
        if self.expiry_raw >= i64::MAX as u64 / 1000 {
            None
        } else if self.expiry_raw >= MILLIS_THRESHOLD {
            Some(self.expiry_raw / 1000)
        } else {
            Some(self.expiry_raw)
        }
    }
}

/// A username and password for a key-authenticated CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The client id: product id and device name.
    pub client_id: String,
    /// `{client_id};21010406;{connid};{expiry}`.
    pub username: String,
    /// `{hex hmac};{method}`.
    pub password: String,
}

fn decode_secret(secret_b64: &str) -> Result<Vec<u8>, AuthError> {
    BASE64
        .decode(secret_b64.trim())
        .map_err(|_| AuthError::BadSecret)
}

/// The device's key: its base64 secret decoded. It keys the password HMAC, and it is the
/// pre-shared key of the C SDK's TLS-PSK handshake (identity = the client id).
pub fn device_key(secret_b64: &str) -> Result<Vec<u8>, AuthError> {
    decode_secret(secret_b64)
}

impl Credentials {
    /// Builds credentials as the SDKs do. `expiry` is written as given (seconds or milliseconds).
    pub fn make(
        device: &DeviceId,
        secret_b64: &str,
        conn_id: &str,
        expiry: u64,
        method: SignMethod,
    ) -> Result<Self, AuthError> {
        let key = decode_secret(secret_b64)?;
        let client_id = device.client_id();
        let username = format!("{client_id};{SDK_APP_ID};{conn_id};{expiry}");
        let mac = method.mac(&key, username.as_bytes());
        let password = format!("{};{}", hex::encode(mac), method);
        Ok(Credentials {
            client_id,
            username,
            password,
        })
    }

    /// Verifies a CONNECT's credentials against the device secret. Expiry is left to the caller,
    /// who owns the clock.
    pub fn verify(
        client_id: &str,
        username: &str,
        password: &str,
        secret_b64: &str,
    ) -> Result<Username, AuthError> {
        let parsed = Username::parse(username)?;
        if parsed.client_id != client_id {
            return Err(AuthError::ClientIdMismatch {
                username: parsed.client_id,
                client_id: client_id.to_owned(),
            });
        }
        let (hex_mac, method) = password
            .rsplit_once(';')
            .ok_or(AuthError::MalformedPassword)?;
        let method = SignMethod::parse(method)?;
        let given = hex::decode(hex_mac).map_err(|_| AuthError::MalformedPassword)?;
        let key = decode_secret(secret_b64)?;
        let expected = method.mac(&key, username.as_bytes());
        // Not constant-time: this is a test fake, and the secret is the test's own.
        if given != expected {
            return Err(AuthError::SignatureMismatch);
        }
        Ok(parsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "1RRdhkwmZ45wYXjuPfygeA==";

    fn gw() -> DeviceId {
        DeviceId::new("JR1WOKB7Q7", "gw_deng1").unwrap()
    }

    #[test]
    fn c_sdk_username_has_app_id_and_never_expires() {
        let c = Credentials::make(
            &gw(),
            SECRET,
            "ZL7aS",
            9223372036854775807,
            SignMethod::HmacSha1,
        )
        .unwrap();
        assert_eq!(
            c.username,
            "JR1WOKB7Q7gw_deng1;21010406;ZL7aS;9223372036854775807"
        );
        assert!(c.password.ends_with(";hmacsha1"));
        assert_eq!(c.password.len(), 40 + ";hmacsha1".len());
        let u = Credentials::verify(&c.client_id, &c.username, &c.password, SECRET).unwrap();
        assert_eq!(u.expiry_unix_secs(), None);
    }

    #[test]
    fn password_is_hmac_of_username_keyed_by_decoded_secret() {
        // Independently computed: echo -n USER | openssl dgst -sha1 -mac HMAC -macopt hexkey:$(echo SECRET | base64 -d | xxd -p)
        let c =
            Credentials::make(&gw(), SECRET, "ZL7aS", 1700000000, SignMethod::HmacSha1).unwrap();
        let key = BASE64.decode(SECRET).unwrap();
        assert_eq!(key.len(), 16);
        let mac = SignMethod::HmacSha1.mac(&key, c.username.as_bytes());
        assert_eq!(c.password, format!("{};hmacsha1", hex::encode(mac)));
    }

    #[test]
    fn hmacsha256_is_accepted() {
        let c =
            Credentials::make(&gw(), SECRET, "abcde", 1700000000, SignMethod::HmacSha256).unwrap();
        assert!(c.password.ends_with(";hmacsha256"));
        assert_eq!(c.password.split(';').next().unwrap().len(), 64);
        Credentials::verify(&c.client_id, &c.username, &c.password, SECRET).unwrap();
    }

    #[test]
    fn wrong_secret_or_tampered_username_is_refused() {
        let c =
            Credentials::make(&gw(), SECRET, "abcde", 1700000000, SignMethod::HmacSha1).unwrap();
        let other = "AAAAAAAAAAAAAAAAAAAAAA==";
        assert_eq!(
            Credentials::verify(&c.client_id, &c.username, &c.password, other),
            Err(AuthError::SignatureMismatch)
        );
        let tampered = c.username.replace("1700000000", "1800000000");
        assert_eq!(
            Credentials::verify(&c.client_id, &tampered, &c.password, SECRET),
            Err(AuthError::SignatureMismatch)
        );
        assert!(matches!(
            Credentials::verify("E69UADXUYYlight1", &c.username, &c.password, SECRET),
            Err(AuthError::ClientIdMismatch { .. })
        ));
        assert_eq!(
            Credentials::verify(&c.client_id, &c.username, "nonsense", SECRET),
            Err(AuthError::MalformedPassword)
        );
        assert!(matches!(
            Credentials::verify(&c.client_id, &c.username, "00;hmacmd5", SECRET),
            Err(AuthError::UnknownSignMethod(_))
        ));
    }

    #[test]
    fn python_sdk_expiry_in_milliseconds_is_normalised() {
        let u = Username::parse("JR1WOKB7Q7gw_deng1;21010406;abcde;1700000000123").unwrap();
        assert_eq!(u.expiry_unix_secs(), Some(1_700_000_000));
        let s = Username::parse("JR1WOKB7Q7gw_deng1;21010406;abcde;1700000000").unwrap();
        assert_eq!(s.expiry_unix_secs(), Some(1_700_000_000));
        assert!(Username::parse("a;b;c").is_err());
        assert!(Username::parse("a;b;c;-1").is_err());
    }
}
