//! Sans-IO SIP: message parsing and serialisation, transactions and the stateful proxy core, with no I/O and no clock.
#![warn(missing_docs)]
