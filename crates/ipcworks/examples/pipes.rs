//! Pipes, the way an operating-systems course introduces them, then done
//! properly: an anonymous pipe into a child's stdin, a full-duplex
//! conversation with a child in one call, and a named pipe (FIFO).
//!
//! Run: `cargo run -p ipcworks --example pipes`

use std::io::{BufRead, BufReader, Read, Write};
use std::process::Command;
use std::time::Duration;

use ipcworks::pipe::{self, Duplex, Fifo};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. pipe(): one-way bytes. The read end becomes `wc -c`'s stdin.
    let (r, mut w) = pipe::pipe()?;
    let (out_r, out_w) = pipe::pipe()?;
    let mut wc = Command::new("wc")
        .arg("-c")
        .stdin(r)
        .stdout(out_w)
        .spawn()?;
    w.write_all(b"twelve bytes")?;
    drop(w); // wc sees end of input only when every write end is closed
    let mut count = String::new();
    BufReader::new(out_r).read_line(&mut count)?;
    wc.wait()?;
    println!("1. wc counted {} bytes sent through a pipe", count.trim());

    // 2. Duplex: two pipes crosswise, the child's ends on stdin/stdout.
    let mut tr = Command::new("tr");
    tr.args(["a-z", "A-Z"]);
    let (io, mut child) = Duplex::spawn(tr)?;
    let (r, mut w) = io.into_parts();
    w.write_all(b"talk both ways\n")?;
    drop(w);
    let mut answer = String::new();
    BufReader::new(r).read_to_string(&mut answer)?;
    child.wait()?;
    println!("2. tr answered over the duplex stream: {}", answer.trim());

    // 3. A FIFO: a pipe with a name, met by two unrelated parties.
    let path = std::env::temp_dir().join(format!("ipcworks-example-{}.fifo", std::process::id()));
    let fifo = Fifo::create(&path)?; // mode 0600, removed when `fifo` drops
    let writer = std::thread::spawn({
        let path = path.clone();
        move || -> ipcworks::Result<()> {
            let mut w = Fifo::open_write(&path, Some(Duration::from_secs(5)))?;
            w.write_all(b"hello through a named pipe")
                .map_err(|e| ipcworks::Error::io("write", e))
        }
    });
    let mut r = fifo.open_reader(Some(Duration::from_secs(5)))?;
    let mut text = String::new();
    r.read_to_string(&mut text)?;
    writer.join().expect("writer thread")?;
    println!("3. read from {}: {text}", path.display());
    Ok(())
}
