//! ENUM and RFC 3263: E.164 numbers, NAPTR processing, SIP server location, DNS caching, the ENUM zone and its authoritative server.
#![warn(missing_docs)]
