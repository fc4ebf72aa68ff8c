//! A TCP echo server for many clients at once (socket, bind, listen, then
//! one connected socket per accepted client), stopped from another thread.
//!
//! Run: `cargo run -p ipcworks --example echo_server`

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;

use ipcworks::socket::{Peer, ServerOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = ServerOptions::new()
        .max_connections(64)
        .max_message(1024)
        .bind_tcp("127.0.0.1:0")?;
    let addr = server.local_addr().expect("a TCP address");
    let stop = server.shutdown_handle();
    let serving = std::thread::spawn(move || server.run(|_: &Peer, msg: &[u8]| Some(msg.to_vec())));

    // Ten clients at once, each on its own connection.
    let clients: Vec<TcpStream> = (0..10)
        .map(|_| TcpStream::connect(addr))
        .collect::<Result<_, _>>()?;
    for (i, c) in clients.iter().enumerate() {
        writeln!(&*c, "hello from client {i}")?;
    }
    for c in &clients {
        let mut line = String::new();
        BufReader::new(c).read_line(&mut line)?;
        print!("echoed: {line}");
    }
    stop.shutdown();
    let stats = serving.join().expect("server thread")?;
    println!("{stats:?}");
    Ok(())
}
