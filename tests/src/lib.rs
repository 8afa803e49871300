//! What more than one integration test uses.

/// ES256 tokens, signed once (outside this repository) with a key whose public half is [`JWKS`];
/// they expire in 2100. [`FORGED`] has the same `kid` but another key.
pub mod es256 {
    pub const ISSUER: &str = "https://dex.example.com";
    pub const JWKS: &str = "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"ei4AI5RVTVCG8ni-TZfE8L2rmYS8M3KHac3viXNekfg\",\"y\":\"CI_8GTrzTQBH_SJr9AgKQRru4EPKVrQDmVLU7W0vcBk\",\"alg\":\"ES256\",\"use\":\"sig\",\"kid\":\"it-1\"}]}";
    /// iss `https://dex.example.com`, sub `alice`, aud `kserve`, groups `["ml-users"]`.
    pub const VALID: &str = "eyJhbGciOiJFUzI1NiIsImtpZCI6Iml0LTEiLCJ0eXAiOiJKV1QifQ.eyJpYXQiOjE3OTU2NTEyMDAsImV4cCI6NDEwMjQ0NDgwMCwibmJmIjoxNzk1NjUxMjAwLCJpc3MiOiJodHRwczovL2RleC5leGFtcGxlLmNvbSIsInN1YiI6ImFsaWNlIiwiYXVkIjoia3NlcnZlIiwiZ3JvdXBzIjpbIm1sLXVzZXJzIl19.gb-tvWY6BExtTd2vweWbsZUGLjXRJqq7kzG8oDW84iBBWWT34PMOU9rZJ9HIF_QO4KdDoASdSX7cp05rWoxD8Q";
    pub const FORGED: &str = "eyJhbGciOiJFUzI1NiIsImtpZCI6Iml0LTEiLCJ0eXAiOiJKV1QifQ.eyJpYXQiOjE3OTU2NTEyMDAsImV4cCI6NDEwMjQ0NDgwMCwibmJmIjoxNzk1NjUxMjAwLCJpc3MiOiJodHRwczovL2RleC5leGFtcGxlLmNvbSIsInN1YiI6ImFsaWNlIiwiYXVkIjoia3NlcnZlIiwiZ3JvdXBzIjpbIm1sLXVzZXJzIl19.CzRidnWp2lX16FGrSvXSkpQDSqg0kuop2eLeJVRd4NnsPQB-KfgDiqC17F6oUvPWEJ0QquZxeGk3GzGjMKlN2A";
    pub const EXPIRED: &str = "eyJhbGciOiJFUzI1NiIsImtpZCI6Iml0LTEiLCJ0eXAiOiJKV1QifQ.eyJpYXQiOjE3OTU2NTEyMDAsImV4cCI6MTcwMDAwMDAwMCwibmJmIjoxNzk1NjUxMjAwLCJpc3MiOiJodHRwczovL2RleC5leGFtcGxlLmNvbSIsInN1YiI6ImFsaWNlIiwiYXVkIjoia3NlcnZlIiwiZ3JvdXBzIjpbIm1sLXVzZXJzIl19.n8r-iHWapf0VY_qWufphHWxc4Im1cklkpMcvKZsUGxwzG41vYNMp5EHUPVd---qe-jveQz2WVdyO9O67Y13J3g";
    pub const WRONG_AUD: &str = "eyJhbGciOiJFUzI1NiIsImtpZCI6Iml0LTEiLCJ0eXAiOiJKV1QifQ.eyJpYXQiOjE3OTU2NTEyMDAsImV4cCI6NDEwMjQ0NDgwMCwibmJmIjoxNzk1NjUxMjAwLCJpc3MiOiJodHRwczovL2RleC5leGFtcGxlLmNvbSIsInN1YiI6ImFsaWNlIiwiYXVkIjoib3RoZXIiLCJncm91cHMiOlsibWwtdXNlcnMiXX0.oXwmDV36ViO7_P0RtmZEpkvxXvFwRUWyBQCNqEqRRuxNsmmziRWZzE4X7s6QvhT2mwXlD-_g_IhXU2vPi0rFWA";
}
