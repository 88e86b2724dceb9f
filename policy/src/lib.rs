//! Federation policy: the registry model, agreements, rate limits, flood detection, SPIT scoring and header filtering.
#![warn(missing_docs)]
