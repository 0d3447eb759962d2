//! C ABI for the port manager client.
