//! The dashboard is embedded at compile time (rust-embed): a file added to,
//! changed in or removed from `dashboard/` must rebuild this crate, or an
//! incremental build would serve a stale page (or miss a new module).

fn main() {
    println!("cargo:rerun-if-changed=../../dashboard");
}
