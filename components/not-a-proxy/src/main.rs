//! A valid component of the wrong kind: it exports `wasi:cli/run`, not
//! `wasi:http/incoming-handler`, so the host must refuse to route to it.

fn main() {
    println!("I am a command, not an HTTP handler");
}
