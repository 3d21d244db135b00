//! Durable appends per second (filled in below).
fn main() {}
